#!/usr/bin/env bash
test_description='PipelineRun status as gitd writes it (stages, Succeeded condition,
images, logTail), its ConfigMap mirror, its Events and the Remote status.lastRun,
the sweep of interrupted runs; and the Remote status (remoteUrl, Ready,
observedGeneration) the watcher keeps current'
. "$(dirname "$0")/test-lib.sh"
test_require_env
. "$SLIPWAY_ROOT/tests/lib-gitd.sh"

ns=plr-e2e
swept=plr-e2e-sweep
slip=slipway.dev/v1alpha1/remotes
before=0000000000000000000000000000000000000000
after=0123456789abcdef0123456789abcdef01234567

# run REMOTE GVR REF < SCRIPT: drive one PipelineRun; its name lands in ./name.
run() {
	runtool run $ns "$1" "$2" "$3" $before $after >run.out &&
		sed -n "s/^name //p" run.out >name &&
		test -s name
}

# jp KIND NAME JSONPATH: one field of an object in $ns.
jp() {
	kubectl -n $ns get "$1" "$2" -o "jsonpath=$3"
}

test_expect_success 'set up namespaces, CRDs as in manifests/crds, and Remotes' '
	kubectl apply -f "$SLIPWAY_ROOT/manifests/crds/" >/dev/null &&
	for n in $ns $swept; do
		kubectl delete namespace $n --ignore-not-found --wait --timeout=90s &&
		kubectl create namespace $n || return 1
	done &&
	kubectl -n $ns apply -f - <<-EOF_
	{"apiVersion":"v1","kind":"List","items":[
	 {"apiVersion":"slipway.dev/v1alpha1","kind":"Remote","metadata":{"name":"web"},"spec":{}},
	 {"apiVersion":"gitkube.sh/v1alpha1","kind":"Remote","metadata":{"name":"legacy"},"spec":{}}]}
	EOF_
'

test_expect_success 'a successful run: created, progressed, staged, imaged, logged, finished' '
	run web $slip refs/heads/feature/x <<-EOF_ &&
	progress Running building web/nginx
	stage receive Succeeded pack received
	stage queue Running
	stage queue Succeeded no wait
	stage build Running
	stage build:web/nginx Running
	log step 1/2 FROM scratch
	log step 2/2 COPY . /
	image web nginx registry.example.com/team/web@sha256:1111111111111111111111111111111111111111111111111111111111111111
	stage build:web/nginx Succeeded registry.example.com/team/web@sha256:1111111111111111111111111111111111111111111111111111111111111111
	stage build Succeeded built web/nginx
	stage deploy Running
	stage deploy Succeeded rolled out
	finish true Succeeded deployed
	EOF_
	kubectl -n $ns wait --for=condition=Succeeded "pipelinerun/$(cat name)" --timeout=10s
'

test_expect_success 'the run carries the labels and spec of its push' '
	n=$(cat name) &&
	test "$(jp plr $n "{.metadata.labels.slipway\.dev/remote}")" = web &&
	test "$(jp plr $n "{.metadata.labels.slipway\.dev/ref}")" = feature-x &&
	test "$(jp plr $n "{.metadata.labels.slipway\.dev/commit}")" = $after &&
	test "$(jp plr $n "{.spec.remote} {.spec.ref} {.spec.before} {.spec.after} {.spec.trigger}")" = \
		"web refs/heads/feature/x $before $after push" &&
	test "$(jp plr $n "{.spec.pusher.fingerprint}")" = SHA256:runtool &&
	kubectl -n $ns get plr -l slipway.dev/ref=feature-x,slipway.dev/commit=$after -o name >l &&
	test_grep "pipelinerun.slipway.dev/$n" l
'

test_expect_success 'status: Succeeded True, stages with times, images, logTail, start and completion' '
	n=$(cat name) &&
	kubectl -n $ns get plr $n -o json >plr.json &&
	test "$(jq -r ".status.conditions[] | select(.type==\"Succeeded\") | .status+\" \"+.reason+\" \"+.message" plr.json)" = \
		"True Succeeded deployed" &&
	test "$(jq -r "[.status.stages[] | .name+\":\"+.phase] | join(\",\")" plr.json)" = \
		"receive:Succeeded,queue:Succeeded,build:Succeeded,build:web/nginx:Succeeded,deploy:Succeeded" &&
	test "$(jq -r ".status.stages[2].message" plr.json)" = "built web/nginx" &&
	test "$(jq -r ".status.stages[3].message" plr.json)" = \
		"registry.example.com/team/web@sha256:1111111111111111111111111111111111111111111111111111111111111111" &&
	for i in 1 2 3; do
		jq -e ".status.stages[$i].startTime | test(\"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$\")" plr.json &&
		jq -e ".status.stages[$i].completionTime >= .status.stages[$i].startTime" plr.json || return 1
	done &&
	test "$(kubectl -n $ns get plr $n -o jsonpath="{.status.stages[*].name}")" = "receive queue build build:web/nginx deploy" &&
	jq -e ".status.startTime and .status.completionTime and .status.completionTime >= .status.startTime" plr.json &&
	test "$(jq -r ".status.images[0] | .deployment+\" \"+.container+\" \"+.image" plr.json)" = \
		"web nginx registry.example.com/team/web@sha256:1111111111111111111111111111111111111111111111111111111111111111" &&
	test "$(jq -r .status.logTail plr.json)" = "$(printf "step 1/2 FROM scratch\nstep 2/2 COPY . /")"
'

test_expect_success 'the ConfigMap web-pipeline mirrors the run' '
	n=$(cat name) &&
	kubectl -n $ns get cm web-pipeline -o json >cm.json &&
	test "$(jq -r ".data.pipelineRun, .data.ref, .data.commit, .data.succeeded, .data.reason" cm.json | tr "\n" " ")" = \
		"$n refs/heads/feature/x $after True Succeeded " &&
	jq -r ".data[\"status.json\"]" cm.json | jq -e ".conditions[0].status == \"True\" and (.stages | length) == 5" &&
	test "$(jq -r ".metadata.labels[\"slipway.dev/remote\"], .metadata.labels[\"app.kubernetes.io/managed-by\"]" cm.json | tr "\n" " ")" = "web slipway "
'

test_expect_success 'Events on the run: kubectl get events and kubectl describe show them' '
	n=$(cat name) &&
	kubectl -n $ns get events --field-selector involvedObject.name=$n \
		-o jsonpath="{range .items[*]}{.type} {.reason} {.involvedObject.kind} {.source.component}{\"\n\"}{end}" >ev &&
	test_grep "^Normal Created PipelineRun slipway-gitd$" ev &&
	test_grep "^Normal StageRunning PipelineRun" ev &&
	test_grep "^Normal StageSucceeded PipelineRun" ev &&
	test_grep "^Normal Succeeded PipelineRun" ev &&
	kubectl -n $ns describe pipelinerun $n >describe &&
	test_grep "Normal +StageSucceeded +.* slipway-gitd +built web/nginx" describe
'

test_expect_success 'the Remote status.lastRun names the run' '
	n=$(cat name) &&
	test "$(kubectl -n $ns get remotes.slipway.dev web -o jsonpath="{.status.lastRun.name} {.status.lastRun.succeeded} {.status.lastRun.reason} {.status.lastRun.commit}")" = \
		"$n True Succeeded $after" &&
	kubectl -n $ns get remotes.slipway.dev web -o jsonpath={.status.lastRun.completionTime} | grep -Eq "^[0-9T:-]+Z$"
'

test_expect_success 'a failed run: Succeeded False with its reason, the running stage Failed, a Warning' '
	run legacy gitkube.sh/v1alpha1/remotes refs/heads/main <<-EOF_ &&
	stage build Running
	stage deploy Pending
	finish false BuildFailed Dockerfile not found at web/Dockerfile
	EOF_
	n=$(cat name) &&
	kubectl -n $ns wait --for=condition=Succeeded=False "pipelinerun/$n" --timeout=10s &&
	test "$(jp plr $n "{.status.conditions[?(@.type==\"Succeeded\")].reason}")" = BuildFailed &&
	test "$(jp plr $n "{.status.conditions[?(@.type==\"Succeeded\")].message}")" = "Dockerfile not found at web/Dockerfile" &&
	test "$(jp plr $n "{.status.stages[*].phase}")" = "Failed Skipped" &&
	kubectl -n $ns get events --field-selector involvedObject.name=$n,type=Warning \
		-o jsonpath="{.items[*].reason}" >ev &&
	test_grep BuildFailed ev &&
	test "$(jp remotes.gitkube.sh legacy "{.status.lastRun.name} {.status.lastRun.succeeded} {.status.lastRun.reason}")" = \
		"$n False BuildFailed" &&
	test "$(kubectl -n $ns get cm legacy-pipeline -o jsonpath="{.data.succeeded} {.data.reason}")" = "False BuildFailed"
'

test_expect_success 'logTail keeps only the tail, cut at a line start' '
	run web $slip refs/heads/main <<-EOF_ &&
	logs 3000 a fairly long log line to fill the tail, number
	finish true
	EOF_
	n=$(cat name) &&
	jp plr $n "{.status.logTail}" >tail &&
	test "$(wc -c <tail)" -le 16000 &&
	test "$(wc -c <tail)" -gt 15000 &&
	test "$(tail -n 1 tail)" = "a fairly long log line to fill the tail, number 3000" &&
	head -n 1 tail | grep -Eq "^a fairly long log line to fill the tail, number [0-9]+$" &&
	! grep -q "number 1$" tail
'

test_expect_success 'stage changes faster than the writes: the status ends with all, every change is an Event, in order' '
	for i in $(seq 1 20); do
		echo "stage s$i Running" && echo "stage s$i Succeeded" || return 1
	done >script &&
	echo "finish true" >>script &&
	run web $slip refs/heads/main <script &&
	n=$(cat name) &&
	test "$(jp plr $n "{.status.stages[*].phase}")" = "$(for i in $(seq 1 20); do printf "Succeeded "; done | sed "s/ $//")" &&
	test "$(jp plr $n "{.status.stages[19].name}")" = s20 &&
	kubectl -n $ns get events --field-selector involvedObject.name=$n -o json >ev.json &&
	jq -r "[.items[] | select(.reason | startswith(\"Stage\"))] | sort_by(.metadata.name) | .[] | .reason + \" \" + .message" ev.json >got &&
	for i in $(seq 1 20); do
		echo "StageRunning s$i" && echo "StageSucceeded s$i" || return 1
	done >want &&
	test_cmp want got
'

test_expect_success 'the sweep marks a run left Unknown Interrupted and deletes its labelled Pod' '
	runtool run $swept web $slip refs/heads/main $before $after >run.out <<-EOF_ &&
	stage build Running
	EOF_
	n=$(sed -n "s/^name //p" run.out) &&
	test "$(kubectl -n $swept get plr $n -o jsonpath="{.status.conditions[0].status}")" = Unknown &&
	kubectl -n $swept apply -f - <<-EOF_ &&
	{"apiVersion":"v1","kind":"List","items":[
	 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"builder-$n","labels":{"slipway.dev/pipelinerun":"$n"}},
	  "spec":{"containers":[{"name":"b","image":"busybox"}]}},
	 {"apiVersion":"v1","kind":"Secret","metadata":{"name":"builder-$n","labels":{"slipway.dev/pipelinerun":"$n"}}},
	 {"apiVersion":"v1","kind":"Pod","metadata":{"name":"bystander","labels":{"slipway.dev/pipelinerun":"other"}},
	  "spec":{"containers":[{"name":"b","image":"busybox"}]}}]}
	EOF_
	runtool sweep $swept >out &&
	test "$(cat out)" = "marked 1" &&
	kubectl -n $swept wait --for=condition=Succeeded=False pipelinerun/$n --timeout=10s &&
	test "$(kubectl -n $swept get plr $n -o jsonpath="{.status.conditions[0].reason}: {.status.conditions[0].message}")" = \
		"Interrupted: gitd restarted while this pipeline ran" &&
	test "$(kubectl -n $swept get plr $n -o jsonpath="{.status.stages[0].phase}")" = Failed &&
	test_wait_for 30 test_must_fail kubectl -n $swept get pod builder-$n &&
	test_must_fail kubectl -n $swept get secret builder-$n &&
	kubectl -n $swept get pod bystander &&
	test "$(kubectl -n $swept get cm web-pipeline -o jsonpath="{.data.reason}")" = Interrupted &&
	kubectl -n $swept get events --field-selector involvedObject.name=$n,reason=Interrupted -o name >ev &&
	test -s ev &&
	runtool sweep $swept >out &&
	test "$(cat out)" = "marked 0"
'

# --- Remote.status from the watcher ----------------------------------------

# remote_json API NAME KEYLINE...: a Remote listing the key lines.
remote_json() {
	local api=$1 name=$2 keys="" k
	shift 2
	for k in "$@"; do keys="$keys\"$k\","; done
	printf '{"apiVersion":"%s","kind":"Remote","metadata":{"name":"%s"},"spec":{"authorizedKeys":[%s]}}\n' \
		"$api" "$name" "${keys%,}"
}

# status_is RES NAME WANT: "remoteUrl|observedGeneration=generation|Ready status|message" is WANT.
status_is() {
	local got
	got=$(kubectl -n $ns get "$1" "$2" -o json |
		jq -r "[.status.remoteUrl, (.status.observedGeneration == .metadata.generation | tostring),
		        (.status.conditions[]? | select(.type==\"Ready\") | .status+\" \"+.reason+\" \"+.message)] | join(\"|\")")
	[ "$got" = "$3" ] || { echo "status of $1/$2: got '$got', want '$3'" >&2; return 1; }
}

# rv_stays RES NAME: resourceVersion unchanged over two polls 1 s apart, checked
# twice: gitd does not patch the status over and over.
rv_stays() {
	local a b
	a=$(kubectl -n $ns get "$1" "$2" -o jsonpath={.metadata.resourceVersion}) &&
		! test_wait_for 2 rv_changed "$1" "$2" "$a" 2>/dev/null &&
		b=$(kubectl -n $ns get "$1" "$2" -o jsonpath={.metadata.resourceVersion}) &&
		! test_wait_for 2 rv_changed "$1" "$2" "$b" 2>/dev/null &&
		test "$a" = "$b"
}
rv_changed() {
	test "$(kubectl -n $ns get "$1" "$2" -o jsonpath={.metadata.resourceVersion})" != "$3"
}

test_expect_success 'gitd --external-url writes remoteUrl, Ready and observedGeneration of both Remote kinds' '
	make_key alice && make_key bob &&
	remote_json slipway.dev/v1alpha1 served "$(cat alice.pub)" "ssh-ed25519 AAAAnotakey x@y" |
		kubectl -n $ns apply -f - &&
	remote_json gitkube.sh/v1alpha1 served-gk "$(cat alice.pub)" | kubectl -n $ns apply -f - &&
	gitd_start_cluster --namespace $ns --external-url ssh://git@git.example.com:2222/ &&
	test_wait_for 10 status_is remotes.slipway.dev served \
		"ssh://git@git.example.com:2222/$ns/served.git|true|True Serving 1 authorized key; 1 line skipped (not OpenSSH public keys)" &&
	test_wait_for 10 status_is remotes.gitkube.sh served-gk \
		"ssh://git@git.example.com:2222/$ns/served-gk.git|true|True Serving 1 authorized key" &&
	test "$(kubectl -n $ns get rmt served -o jsonpath="{.status.lastRun}")" = "" &&
	test_wait_for 10 status_is remotes.slipway.dev web \
		"ssh://git@git.example.com:2222/$ns/web.git|true|False NoKeys no authorized keys" &&
	test "$(kubectl -n $ns get remotes.slipway.dev web -o jsonpath={.status.lastRun.reason})" = Succeeded
'

test_expect_success 'gitd settles: its own status patch does not trigger another' '
	rv_stays remotes.slipway.dev served &&
	rv_stays remotes.gitkube.sh served-gk
'

test_expect_success 'an added key updates Ready and observedGeneration, keeping lastTransitionTime and other conditions' '
	kubectl -n $ns patch remotes.slipway.dev served --subresource=status --type=merge -p "{\"status\":{\"conditions\":[
		{\"type\":\"Other\",\"status\":\"True\",\"reason\":\"Mine\",\"lastTransitionTime\":\"2026-01-01T00:00:00Z\"},
		$(kubectl -n $ns get rmt served -o json | jq -c ".status.conditions[] | select(.type==\"Ready\")")]}}" &&
	t0=$(kubectl -n $ns get rmt served -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}") &&
	gen=$(kubectl -n $ns get rmt served -o jsonpath={.metadata.generation}) &&
	remote_json slipway.dev/v1alpha1 served "$(cat alice.pub)" "ssh-ed25519 AAAAnotakey x@y" "$(cat bob.pub)" |
		kubectl -n $ns apply -f - &&
	test_wait_for 10 status_is remotes.slipway.dev served \
		"ssh://git@git.example.com:2222/$ns/served.git|true|True Serving 2 authorized keys; 1 line skipped (not OpenSSH public keys)" &&
	test "$(kubectl -n $ns get rmt served -o jsonpath={.status.observedGeneration})" -gt "$gen" &&
	test "$(kubectl -n $ns get rmt served -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}")" = "$t0" &&
	test "$(kubectl -n $ns get rmt served -o jsonpath="{.status.conditions[?(@.type==\"Other\")].reason}")" = Mine &&
	remote_json gitkube.sh/v1alpha1 served-gk "$(cat alice.pub)" "$(cat bob.pub)" | kubectl -n $ns apply -f - &&
	test_wait_for 10 status_is remotes.gitkube.sh served-gk \
		"ssh://git@git.example.com:2222/$ns/served-gk.git|true|True Serving 2 authorized keys" &&
	rv_stays remotes.slipway.dev served &&
	rv_stays remotes.gitkube.sh served-gk
'

test_expect_success 'a malformed Remote turns Ready False (InvalidSpec) naming the field, and True once fixed' '
	kubectl -n $ns apply -f - <<-EOF_ &&
	{"apiVersion":"gitkube.sh/v1alpha1","kind":"Remote","metadata":{"name":"served-gk"},
	 "spec":{"authorizedKeys":["$(cat alice.pub)","$(cat bob.pub)"],
	         "deployments":[{"name":"web","containers":[{"name":"app"},{"name":"app"}]}]}}
	EOF_
	test_wait_for 10 status_is remotes.gitkube.sh served-gk \
		"ssh://git@git.example.com:2222/$ns/served-gk.git|true|False InvalidSpec spec.deployments[0].containers[1].name: \"app\" is also containers[0]" &&
	rv_stays remotes.gitkube.sh served-gk &&
	remote_json gitkube.sh/v1alpha1 served-gk "$(cat alice.pub)" "$(cat bob.pub)" | kubectl -n $ns apply -f - &&
	test_wait_for 10 status_is remotes.gitkube.sh served-gk \
		"ssh://git@git.example.com:2222/$ns/served-gk.git|true|True Serving 2 authorized keys" &&
	rv_stays remotes.gitkube.sh served-gk
'

test_expect_success 'removing every key turns Ready False (NoKeys) with a new lastTransitionTime' '
	t0=$(kubectl -n $ns get remotes.gitkube.sh served-gk -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}") &&
	remote_json gitkube.sh/v1alpha1 served-gk | kubectl -n $ns apply -f - &&
	test_wait_for 10 status_is remotes.gitkube.sh served-gk \
		"ssh://git@git.example.com:2222/$ns/served-gk.git|true|False NoKeys no authorized keys" &&
	t1=$(kubectl -n $ns get remotes.gitkube.sh served-gk -o jsonpath="{.status.conditions[?(@.type==\"Ready\")].lastTransitionTime}") &&
	test -n "$t0" && test "$t1" \> "$t0" &&
	rv_stays remotes.gitkube.sh served-gk &&
	gitd_stop &&
	test_must_fail grep "\"level\":\"warn\".*remote_status" gitd.log
'

test_done
