#!/usr/bin/env bash
test_description='charts/slipway: lints, renders objects the API server accepts, and the same objects as manifests/'
. "$(dirname "$0")/test-lib.sh"
test_require_env
test_require_helm

chart="$SLIPWAY_ROOT/charts/slipway"
# The kustomize tree to compare with (another checkout's while both are in
# progress: SLIPWAY_MANIFESTS=../other/manifests).
manifests=${SLIPWAY_MANIFESTS:-$SLIPWAY_ROOT/manifests}
ns=chart-e2e

# render FILE ARGS...: helm template release "slipway" in $ns into FILE.
render() {
	local out=$1
	shift
	"$HELM" template slipway "$chart" --namespace "$ns" "$@" >"$out" 2>render.err ||
		{ cat render.err >&2; return 1; }
}

# to_json YAML JSON: the objects of YAML as JSON objects one after another,
# as written (no server defaults), without needing the namespaces they name.
to_json() {
	kubectl create --dry-run=client -o json -f "$1" >"$2"
}

# jq-like checks without jq: check JSON PYTHON-EXPR... evaluates each
# expression with objs (the List's items) and find(kind, name, ns=None).
check() {
	python3 - "$@" <<-'EOF'
	import json, sys
	text, objs, i = open(sys.argv[1]).read(), [], 0
	while text[i:].strip():
	    doc, i = json.JSONDecoder().raw_decode(text, len(text) - len(text[i:].lstrip()))
	    objs += doc["items"] if doc.get("kind") == "List" else [doc]
	def find(kind, name, ns=None):
	    for o in objs:
	        m = o["metadata"]
	        if o["kind"] == kind and m["name"] == name and (ns is None or m.get("namespace") == ns):
	            return o
	    raise SystemExit("no %s %s%s" % (kind, ns + "/" if ns else "", name))
	bad = 0
	for expr in sys.argv[2:]:
	    try:
	        ok = eval(expr)
	    except SystemExit as e:
	        ok, expr = False, "%s: %s" % (expr, e)
	    if not ok:
	        print("check failed:", expr, file=sys.stderr)
	        bad = 1
	sys.exit(bad)
	EOF
}

cat >second-values.yaml <<-EOF
	watchNamespaces: [$ns-a, {name: $ns-b, registrySecrets: [b-push, b-pull]}]
	service: {type: NodePort, nodePort: 30022}
	builder: {mode: local}
	storage: {size: 1Gi, storageClass: fast}
	images:
	  gitd: {repository: registry.example.com/slipway/gitd, tag: "9.9"}
	  pullPolicy: Always
	hooks: {serviceAccountName: deploy-hooks}
	externalUrl: ssh://git@git.example.com
EOF

test_expect_success "the chart's appVersion is the VERSION file and helm is the pinned one" '
	test "$(sed -n "s/^appVersion: \"\(.*\)\"$/\1/p" "$chart/Chart.yaml")" = "$(cat "$SLIPWAY_ROOT/VERSION")" &&
	"$HELM" version --template "{{.Version}}" >version &&
	test "$(cat version)" = "$HELM_VERSION"
'

test_expect_success 'helm lint --strict passes with the default and with a second set of values' '
	"$HELM" lint --strict "$chart" >lint.out 2>&1 &&
	"$HELM" lint --strict "$chart" -f second-values.yaml >>lint.out 2>&1 &&
	! grep -E "\[(WARNING|ERROR)\]" lint.out
'

test_expect_success "the chart's CRDs are manifests/crds, file for file" '
	(cd "$SLIPWAY_ROOT/manifests/crds" && ls *.yaml) >want &&
	(cd "$chart/crds" && ls) >got &&
	test_cmp want got &&
	while read -r f; do
		cmp "$SLIPWAY_ROOT/manifests/crds/$f" "$chart/crds/$f" || return 1
	done <want &&
	"$HELM" show crds "$chart" 2>/dev/null | grep -c "^kind: CustomResourceDefinition$" >n &&
	test "$(cat n)" = "$(wc -l <want)"
'

test_expect_success 'values the schema refuses are refused before rendering' '
	test_must_fail "$HELM" template slipway "$chart" --set builder.mode=docker 2>err &&
	test_grep "/builder/mode" err &&
	test_must_fail "$HELM" template slipway "$chart" --set service.type=External 2>err &&
	test_grep "/service/type" err &&
	test_must_fail "$HELM" template slipway "$chart" --set service.nodePort=22 2>err &&
	test_grep "/service/nodePort" err &&
	test_must_fail "$HELM" template slipway "$chart" --set watchNamespaces[0]=Not_A_Name 2>err &&
	test_grep "/watchNamespaces/0" err &&
	test_must_fail "$HELM" template slipway "$chart" --set no.such=value 2>err &&
	test_grep "additional properties" err
'

test_expect_success 'no namespaces without clusterWide, or namespaces with it, is refused with a sentence' '
	printf "watchNamespaces: []\n" >none.yaml &&
	test_must_fail "$HELM" template slipway "$chart" -f none.yaml 2>err &&
	test_grep "watchNamespaces is empty: list the namespaces gitd serves, or set rbac.clusterWide=true" err &&
	test_must_fail "$HELM" template slipway "$chart" --set rbac.clusterWide=true 2>err &&
	test_grep "rbac.clusterWide=true serves every namespace: leave watchNamespaces empty" err
'

test_expect_success 'set up the release namespace and two served namespaces' '
	for n in $ns $ns-a $ns-b; do
		kubectl delete namespace $n --ignore-not-found --wait --timeout=90s &&
		kubectl create namespace $n || return 1
	done
'

test_expect_success 'the default rendering is accepted by the API server (dry run)' '
	render default.yaml &&
	kubectl apply --dry-run=server -f default.yaml >out &&
	test_grep "^statefulset.apps/gitd created \(server dry run\)" out &&
	test_grep "^rolebinding.rbac.authorization.k8s.io/slipway-gitd created" out
'

test_expect_success 'the default rendering: gitd serves default, LoadBalancer, pod builds, locked down' '
	to_json default.yaml default.json &&
	check default.json \
		"sorted(o[\"kind\"] for o in objs) == sorted([\"ServiceAccount\", \"ServiceAccount\", \"ClusterRole\", \"ClusterRole\", \"ClusterRole\", \"ClusterRole\", \"Role\", \"Role\", \"Role\", \"RoleBinding\", \"RoleBinding\", \"RoleBinding\", \"RoleBinding\", \"RoleBinding\", \"Service\", \"StatefulSet\"])" \
		"find(\"RoleBinding\", \"slipway-apply\", \"default\")[\"subjects\"] == [{\"kind\": \"ServiceAccount\", \"name\": \"slipway-apply\", \"namespace\": \"default\"}]" \
		"not [r for r in find(\"Role\", \"slipway-apply\", \"default\")[\"rules\"] if \"secrets\" in r[\"resources\"] or \"rbac.authorization.k8s.io\" in r[\"apiGroups\"]]" \
		"{\"apiGroups\": [\"\"], \"resources\": [\"serviceaccounts/token\"], \"resourceNames\": [\"slipway-apply\"], \"verbs\": [\"create\"]} in find(\"ClusterRole\", \"slipway-gitd\")[\"rules\"]" \
		"find(\"Service\", \"gitd\", \"$ns\")[\"spec\"][\"type\"] == \"LoadBalancer\"" \
		"find(\"RoleBinding\", \"slipway-gitd\", \"default\")[\"subjects\"] == [{\"kind\": \"ServiceAccount\", \"name\": \"gitd\", \"namespace\": \"$ns\"}]" \
		"find(\"Role\", \"slipway-gitd-registry\", \"default\")[\"rules\"][0][\"resourceNames\"] == [\"registry-push\"]" \
		"find(\"StatefulSet\", \"gitd\", \"$ns\")[\"spec\"][\"template\"][\"spec\"][\"containers\"][0][\"args\"][:2] == [\"--namespace=default\", \"--external-url-from-service=$ns/gitd\"]" \
		"\"--builder-mode=pod\" in find(\"StatefulSet\", \"gitd\")[\"spec\"][\"template\"][\"spec\"][\"containers\"][0][\"args\"]" \
		"\"--builder-image=slipway/builder:$(cat "$SLIPWAY_ROOT/VERSION")\" in find(\"StatefulSet\", \"gitd\")[\"spec\"][\"template\"][\"spec\"][\"containers\"][0][\"args\"]" \
		"find(\"StatefulSet\", \"gitd\")[\"spec\"][\"template\"][\"spec\"][\"containers\"][0][\"image\"] == \"slipway/gitd:$(cat "$SLIPWAY_ROOT/VERSION")\"" \
		"find(\"StatefulSet\", \"gitd\")[\"spec\"][\"template\"][\"spec\"][\"containers\"][0][\"securityContext\"][\"readOnlyRootFilesystem\"] is True" \
		"find(\"StatefulSet\", \"gitd\")[\"spec\"][\"template\"][\"spec\"][\"securityContext\"][\"runAsUser\"] == 65532" \
		"find(\"StatefulSet\", \"gitd\")[\"spec\"][\"template\"][\"spec\"][\"containers\"][0][\"readinessProbe\"][\"httpGet\"][\"path\"] == \"/readyz\"" \
		"find(\"StatefulSet\", \"gitd\")[\"spec\"][\"template\"][\"spec\"][\"containers\"][0][\"livenessProbe\"][\"httpGet\"][\"path\"] == \"/healthz\"" \
		"\"storageClassName\" not in find(\"StatefulSet\", \"gitd\")[\"spec\"][\"volumeClaimTemplates\"][0][\"spec\"]"
'

test_expect_success 'the second rendering (NodePort, two namespaces, local builds) is accepted by the API server (dry run)' '
	render second.yaml -f second-values.yaml &&
	kubectl apply --dry-run=server -f second.yaml >out &&
	test_grep "^service/gitd created \(server dry run\)" out &&
	test_grep "^clusterrole.rbac.authorization.k8s.io/slipway-gitd-nodes created" out
'

test_expect_success 'the second rendering has what its values say' '
	to_json second.yaml second.json &&
	check second.json \
		"find(\"Service\", \"gitd\")[\"spec\"][\"type\"] == \"NodePort\"" \
		"find(\"Service\", \"gitd\")[\"spec\"][\"ports\"][0][\"nodePort\"] == 30022" \
		"[a for a in find(\"StatefulSet\", \"gitd\")[\"spec\"][\"template\"][\"spec\"][\"containers\"][0][\"args\"] if a.startswith(\"--namespace=\")] == [\"--namespace=$ns-a\", \"--namespace=$ns-b\"]" \
		"\"--builder-mode=local\" in find(\"StatefulSet\", \"gitd\")[\"spec\"][\"template\"][\"spec\"][\"containers\"][0][\"args\"]" \
		"\"--external-url=ssh://git@git.example.com\" in find(\"StatefulSet\", \"gitd\")[\"spec\"][\"template\"][\"spec\"][\"containers\"][0][\"args\"]" \
		"\"--hooks-service-account=deploy-hooks\" in find(\"StatefulSet\", \"gitd\")[\"spec\"][\"template\"][\"spec\"][\"containers\"][0][\"args\"]" \
		"find(\"ClusterRole\", \"slipway-gitd\")[\"rules\"][-1] == {\"apiGroups\": [\"\"], \"resources\": [\"serviceaccounts/token\"], \"resourceNames\": [\"deploy-hooks\"], \"verbs\": [\"create\"]}" \
		"find(\"StatefulSet\", \"gitd\")[\"spec\"][\"template\"][\"spec\"][\"containers\"][0][\"image\"] == \"registry.example.com/slipway/gitd:9.9\"" \
		"find(\"StatefulSet\", \"gitd\")[\"spec\"][\"template\"][\"spec\"][\"containers\"][0][\"imagePullPolicy\"] == \"Always\"" \
		"find(\"StatefulSet\", \"gitd\")[\"spec\"][\"volumeClaimTemplates\"][0][\"spec\"][\"storageClassName\"] == \"fast\"" \
		"find(\"StatefulSet\", \"gitd\")[\"spec\"][\"volumeClaimTemplates\"][0][\"spec\"][\"resources\"][\"requests\"][\"storage\"] == \"1Gi\"" \
		"find(\"Role\", \"slipway-gitd-registry\", \"$ns-a\")[\"rules\"][0][\"resourceNames\"] == [\"registry-push\"]" \
		"find(\"Role\", \"slipway-gitd-registry\", \"$ns-b\")[\"rules\"][0][\"resourceNames\"] == [\"b-push\", \"b-pull\"]" \
		"len([o for o in objs if o[\"kind\"] == \"RoleBinding\" and o[\"metadata\"][\"namespace\"] in (\"$ns-a\", \"$ns-b\")]) == 8" \
		"find(\"ClusterRoleBinding\", \"slipway-gitd-nodes\")[\"subjects\"][0][\"namespace\"] == \"$ns\""
'

test_expect_success 'cluster-wide: ClusterRoleBindings, no --namespace, no RoleBindings outside the release namespace' '
	printf "watchNamespaces: []\nrbac: {clusterWide: true}\n" >cw-values.yaml &&
	render cw.yaml -f cw-values.yaml &&
	kubectl apply --dry-run=server -f cw.yaml >out &&
	to_json cw.yaml cw.json &&
	check cw.json \
		"sorted(o[\"metadata\"][\"name\"] for o in objs if o[\"kind\"] == \"ClusterRoleBinding\") == [\"slipway-gitd\", \"slipway-gitd-registry\", \"slipway-gitd-remotes\"]" \
		"not [a for a in find(\"StatefulSet\", \"gitd\")[\"spec\"][\"template\"][\"spec\"][\"containers\"][0][\"args\"] if a.startswith(\"--namespace\")]" \
		"all(o[\"metadata\"].get(\"namespace\") in (None, \"$ns\") for o in objs)"
'

test_expect_success 'helm installs and uninstalls the chart on the API server' '
	test_when_finished "\"$HELM\" uninstall slipway --namespace $ns >/dev/null 2>&1 || :" &&
	"$HELM" install slipway "$chart" --namespace $ns -f second-values.yaml >out 2>&1 &&
	test_grep "^STATUS: deployed" out &&
	kubectl -n $ns get statefulset gitd -o jsonpath="{.metadata.labels.app\.kubernetes\.io/managed-by}" >by &&
	test "$(cat by)" = Helm &&
	kubectl -n $ns-b get role slipway-gitd-registry &&
	"$HELM" uninstall slipway --namespace $ns --wait >out 2>&1 &&
	test_must_fail kubectl -n $ns get statefulset gitd 2>/dev/null &&
	test_must_fail kubectl get clusterrole slipway-gitd 2>/dev/null
'

# same MANIFESTS-JSON CHART-JSON: every object but Namespaces and CRDs is in
# both, with the same content; labels aside (the chart adds Helm's), and the
# chart's explicit --hooks-service-account=slipway-hooks (gitd's default) and
# imagePullPolicy IfNotPresent (the API's default for a tag other than latest).
same() {
	python3 - "$1" "$2" <<-'EOF'
	import difflib, json, sys
	def load(path):
	    text, objs, i = open(path).read(), [], 0
	    while text[i:].strip():
	        doc, i = json.JSONDecoder().raw_decode(text, len(text) - len(text[i:].lstrip()))
	        objs += doc["items"] if doc.get("kind") == "List" else [doc]
	    out = {}
	    for o in objs:
	        if o["kind"] in ("Namespace", "CustomResourceDefinition"):
	            continue
	        m = o["metadata"]
	        out[(o["kind"], m.get("namespace", ""), m["name"])] = norm(o)
	    return out
	def sort_rules(rules):
	    rules = [{k: sorted(v) if isinstance(v, list) else v for k, v in r.items()} for r in rules]
	    return sorted(rules, key=lambda r: json.dumps(r, sort_keys=True))
	def norm(o):
	    o = json.loads(json.dumps(o))
	    o["metadata"].pop("labels", None)
	    if "rules" in o:
	        o["rules"] = sort_rules(o["rules"])
	    tmpl = o.get("spec", {}).get("template")
	    if tmpl:
	        tmpl["metadata"].pop("labels", None)
	        for c in tmpl["spec"]["containers"]:
	            c["args"] = [a for a in c.get("args", []) if a != "--hooks-service-account=slipway-hooks"]
	            if c.get("imagePullPolicy") == "IfNotPresent" and not c["image"].endswith(":latest"):
	                del c["imagePullPolicy"]
	    return o
	want, got = load(sys.argv[1]), load(sys.argv[2])
	bad = 0
	for k in sorted(set(want) | set(got)):
	    if k not in got:
	        print("only in manifests: %s %s/%s" % k)
	    elif k not in want:
	        print("only in the chart: %s %s/%s" % k)
	    elif want[k] != got[k]:
	        print("differs: %s %s/%s" % k)
	        a = json.dumps(want[k], indent=1, sort_keys=True).splitlines()
	        b = json.dumps(got[k], indent=1, sort_keys=True).splitlines()
	        print("\n".join(difflib.unified_diff(a, b, "manifests", "chart", lineterm="")))
	    else:
	        continue
	    bad = 1
	sys.exit(bad)
	EOF
}

# compare DESCRIPTION "KUSTOMIZE-DIRS" HELM-ARGS...: kubectl kustomize of each
# dir (relative to $manifests) together, against the chart in slipway-system.
compare() {
	local d
	: >k.yaml
	for d in $2; do
		kubectl kustomize "$manifests/$d" >>k.yaml || return 1
		echo --- >>k.yaml
	done
	"$HELM" template slipway "$chart" --namespace slipway-system "${@:3}" >h.yaml 2>render.err ||
		{ cat render.err >&2; return 1; }
	to_json k.yaml k.json && to_json h.yaml h.json && same k.json h.json
}

if [ -f "$manifests/kustomization.yaml" ]; then
	test_expect_success 'the chart renders the objects of manifests/ with its namespace-example overlay' '
		compare base ". overlays/namespace-example" --set "watchNamespaces={example}"
	'
	test_expect_success 'the chart with service.type=NodePort renders the objects of overlays/nodeport/' '
		compare nodeport "overlays/nodeport overlays/namespace-example" \
			--set "watchNamespaces={example}" --set service.type=NodePort
	'
	test_expect_success 'the chart with rbac.clusterWide renders the objects of overlays/all-namespaces/' '
		compare all-namespaces overlays/all-namespaces -f "$TRASH_DIRECTORY/cw-values.yaml"
	'
	test_expect_success 'the chart with hostKeys.existingSecret renders the objects of overlays/host-keys-secret/' '
		compare host-keys "overlays/host-keys-secret overlays/namespace-example" \
			--set "watchNamespaces={example}" --set hostKeys.existingSecret=gitd-host-keys
	'
else
	test_skip 'the chart renders the objects of manifests/ and its overlays' \
		"no $manifests/kustomization.yaml (set SLIPWAY_MANIFESTS)"
fi

test_expect_success 'clean up the namespaces' '
	kubectl delete namespace $ns $ns-a $ns-b --wait=false
'

test_done
