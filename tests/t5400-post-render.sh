#!/usr/bin/env bash
test_description='slipway-post-render: sets built images on a rendered chart read from stdin,
as the real helm runs it (helm template --post-renderer), reports what matched,
and refuses bad input with a message and nothing on stdout; needs no cluster'
. "$(dirname "$0")/test-lib.sh"
test_require_helm

pr=$SLIPWAY_BUILD/bin/slipway-post-render

test_expect_success 'set up a chart and an images file' '
	mkdir -p chart/templates &&
	printf "apiVersion: v2\nname: www\nversion: 0.1.0\n" >chart/Chart.yaml &&
	printf "image: placeholder.invalid/www:never\n" >chart/values.yaml &&
	cat >chart/templates/all.yaml <<-'"'"'EOF_'"'"' &&
	# a comment helm keeps in its output
	apiVersion: apps/v1
	kind: Deployment
	metadata: {name: {{ .Release.Name }}}
	spec:
	  selector: {matchLabels: {app: www}}
	  template:
	    metadata: {labels: {app: www}}
	    spec:
	      initContainers: [{name: migrate, image: {{ .Values.image | quote }}}]
	      containers:
	      - {name: web, image: {{ .Values.image | quote }}, args: ["on", "0123", "yes"]}
	      - {name: sidecar, image: busybox:1}
	---
	apiVersion: batch/v1
	kind: Job
	metadata: {name: setup}
	spec:
	  template:
	    spec:
	      restartPolicy: Never
	      containers: [{name: web, image: {{ .Values.image | quote }}}]
	---
	apiVersion: v1
	kind: Service
	metadata: {name: www}
	spec: {ports: [{port: 80}]}
	EOF_
	cat >images.json <<-EOF_
	[{"deployment":"www","container":"web","image":"r.example/www@sha256:aaaa"},
	 {"deployment":"www","container":"migrate","image":"r.example/www@sha256:bbbb"},
	 {"deployment":"gone","container":"web","image":"r.example/gone@sha256:cccc"}]
	EOF_
	"$pr" --help >help && test_grep "^usage: slipway-post-render IMAGES-FILE" help
'

# check YAML-FILE PYTHON: runs PYTHON with docs (the documents of the file,
# read by PyYAML, empty ones dropped) and find(kind, name).
check() {
	python3 - "$1" "$2" <<-'EOF_'
	import sys, yaml
	docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
	def find(kind, name):
	    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)
	def pod(o):
	    return o["spec"]["template"]["spec"]
	exec(sys.argv[2])
	EOF_
}

test_expect_success 'helm template with the post-renderer sets the images on the named containers only' '
	"$HELM" template www ./chart --post-renderer "$pr" \
		--post-renderer-args "$TRASH_DIRECTORY/images.json" \
		--post-renderer-args "$TRASH_DIRECTORY/report.json" >out.yaml &&
	check out.yaml "
d = pod(find(\"Deployment\", \"www\"))
assert d[\"containers\"][0][\"image\"] == \"r.example/www@sha256:aaaa\", d
assert d[\"initContainers\"][0][\"image\"] == \"r.example/www@sha256:bbbb\", d
assert d[\"containers\"][1][\"image\"] == \"busybox:1\", d
assert d[\"containers\"][0][\"args\"] == [\"on\", \"0123\", \"yes\"], d
assert pod(find(\"Job\", \"setup\"))[\"containers\"][0][\"image\"] == \"placeholder.invalid/www:never\"
assert find(\"Service\", \"www\")[\"spec\"] == {\"ports\": [{\"port\": 80}]}
assert len(docs) == 3, docs
" &&
	python3 -c "
import json
r = json.load(open(\"report.json\"))
assert [i[\"matched\"] for i in r] == [1, 1, 0], r
"
'

test_expect_success 'a stream that does not parse fails with its line, nothing on stdout' '
	printf "a: [1\n" | test_expect_code 1 "$pr" images.json >out 2>err &&
	test_grep "^slipway-post-render: .*yaml: line" err &&
	test ! -s out
'

test_expect_success 'a malformed images file is refused, naming it' '
	echo "{\"deployment\":\"www\"}" >bad.json &&
	test_expect_code 1 "$pr" bad.json </dev/null >out 2>err &&
	test_grep "bad.json: not a JSON array" err && test ! -s out &&
	echo "[{\"deployment\":\"www\",\"container\":\"web\"}]" >bad.json &&
	test_expect_code 1 "$pr" bad.json </dev/null 2>err &&
	test_grep "bad.json: item 0: image is missing" err &&
	test_expect_code 1 "$pr" missing.json </dev/null 2>err &&
	test_grep "missing.json" err &&
	test_expect_code 2 "$pr" 2>err && test_expect_code 2 "$pr" --images x 2>err
'

test_done
