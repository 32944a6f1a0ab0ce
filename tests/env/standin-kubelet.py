#!/usr/bin/env python3
# standin-kubelet: a FAKE kubelet, for Slipway's tests only. NOT part of
# Slipway, and nothing like a real kubelet: no container runtime, no images,
# no isolation. It exists because nothing here can run containers, yet the
# pod runner (gitd/runner.c) must be tested end to end against the real API
# server: Pods created, scheduled, run, ended, deleted.
#
# It registers one Node (default "slipway-standin", label type=standin,
# taint slipway.dev/standin=true:NoSchedule so ordinary pods never land on
# it; KWOK does not manage it) and keeps its Ready condition and Lease fresh.
# It watches Pods with spec.schedulerName=slipway-standin, binds each to the
# node, and runs its single container's command + args as a LOCAL process
# (argv, no shell):
#   - command[0] "builder" becomes --builder PATH (the repo's build/bin/builder);
#   - Secret volumes are written to a private directory (items, defaultMode),
#     and every argument that starts with a volumeMount's mountPath is
#     rewritten to point there;
#   - env: value and valueFrom.secretKeyRef;
#   - stdout and stderr go to WORK/NAMESPACE_NAME.log;
#   - activeDeadlineSeconds: the process group is killed, the Pod Failed with
#     reason DeadlineExceeded, as the kubelet does;
#   - on exit the Pod is Succeeded or Failed with the container terminated
#     (exitCode, reason Completed or Error);
#   - a Pod deleted while running: the process group is killed (TERM, KILL
#     after the grace period) and the Pod object removed (grace 0), which a
#     kubelet does for Pods bound to it.
# Python 3 standard library only; talks to the API with a client certificate.
import argparse
import base64
import datetime
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

SCHEDULER = "slipway-standin"
TAINT_KEY = "slipway.dev/standin"

args = None
ctx = None
lock = threading.Lock()
runs = {}  # pod uid -> Run


def log(msg):
    print("%s standin-kubelet: %s" % (now(), msg), flush=True)


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ApiError(Exception):
    def __init__(self, code, body):
        super().__init__("HTTP %d: %s" % (code, body[:300]))
        self.code = code


def api(method, path, body=None, content_type="application/json", timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(args.server + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", content_type)
    req.add_header("Accept", "application/json")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
            raw = r.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raise ApiError(e.code, e.read().decode(errors="replace")) from None


def merge_patch(path, patch):
    return api("PATCH", path, patch, "application/merge-patch+json")


def pod_path(ns, name, sub=""):
    return "/api/v1/namespaces/%s/pods/%s%s" % (ns, name, sub)


# --- the node ---------------------------------------------------------------

def node_status():
    cond = lambda t, s, reason, msg: {
        "type": t, "status": s, "reason": reason, "message": msg,
        "lastHeartbeatTime": now(), "lastTransitionTime": started_at}
    res = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    return {"status": {
        "conditions": [
            cond("Ready", "True", "StandinReady", "FAKE stand-in kubelet is posting status"),
            cond("MemoryPressure", "False", "StandinNoPressure", "fake"),
            cond("DiskPressure", "False", "StandinNoPressure", "fake"),
            cond("PIDPressure", "False", "StandinNoPressure", "fake"),
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                      {"type": "Hostname", "address": args.node}],
        "capacity": res, "allocatable": res,
        "nodeInfo": {"kubeletVersion": "standin-fake", "operatingSystem": "linux",
                     "architecture": "amd64", "containerRuntimeVersion": "standin://fake",
                     "kernelVersion": "", "osImage": "", "kubeProxyVersion": "",
                     "machineID": "", "systemUUID": "", "bootID": ""},
    }}


def register_node():
    meta = {"name": args.node,
            "labels": {"type": "standin", "kubernetes.io/hostname": args.node,
                       "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
            "annotations": {"slipway.dev/standin": "FAKE kubelet for tests"}}
    spec = {"taints": [{"key": TAINT_KEY, "value": "true", "effect": "NoSchedule"}]}
    try:
        api("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                      "metadata": meta, "spec": spec})
        log("registered node %s" % args.node)
    except ApiError as e:
        if e.code != 409:
            raise
        merge_patch("/api/v1/nodes/" + args.node, {"metadata": meta, "spec": spec})
        log("node %s exists: labels and taint updated" % args.node)
    merge_patch("/api/v1/nodes/%s/status" % args.node, node_status())


def renew_lease():
    path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/" + args.node
    spec = {"holderIdentity": args.node, "leaseDurationSeconds": 40, "renewTime": now_micro()}
    try:
        merge_patch(path, {"spec": spec})
    except ApiError as e:
        if e.code != 404:
            raise
        api("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
            {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": args.node, "namespace": "kube-node-lease"}, "spec": spec})


def heartbeat():
    while True:
        try:
            merge_patch("/api/v1/nodes/%s/status" % args.node, node_status())
            renew_lease()
        except Exception as e:  # the API server may be restarting
            log("heartbeat failed: %s" % e)
        time.sleep(10)


# --- one pod ----------------------------------------------------------------

class Run:
    def __init__(self, pod):
        self.pod = pod
        self.ns = pod["metadata"]["namespace"]
        self.name = pod["metadata"]["name"]
        self.uid = pod["metadata"]["uid"]
        self.deleted = threading.Event()
        self.proc = None


def secret_files(run, vol, target):
    """Writes Secret volume VOL into directory TARGET, as the kubelet would."""
    src = vol["secret"]
    deadline = time.time() + 30
    while True:  # the kubelet retries a Secret that does not exist yet
        try:
            secret = api("GET", "/api/v1/namespaces/%s/secrets/%s" % (run.ns, src["secretName"]))
            break
        except ApiError as e:
            if e.code != 404 or time.time() > deadline or run.deleted.is_set():
                raise
            time.sleep(0.25)
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    mode = src.get("defaultMode", 0o644)
    items = src.get("items") or [{"key": k, "path": k} for k in data]
    for it in items:
        path = os.path.join(target, it["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data[it["key"]])
        os.chmod(path, it.get("mode", mode))


def container_env(run, ctr, work):
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "HOME": work, "TMPDIR": os.environ.get("TMPDIR", "/tmp"), "LANG": "C",
           "HOSTNAME": run.name}
    for e in ctr.get("env") or []:
        if "value" in e:
            env[e["name"]] = e["value"]
        elif "secretKeyRef" in (e.get("valueFrom") or {}):
            ref = e["valueFrom"]["secretKeyRef"]
            s = api("GET", "/api/v1/namespaces/%s/secrets/%s" % (run.ns, ref["name"]))
            env[e["name"]] = base64.b64decode(s["data"][ref["key"]]).decode()
    return env


def set_status(run, phase, ctr_name, state, reason=None, message=None, start=None):
    status = {"phase": phase, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
              "podIPs": [{"ip": "127.0.0.1"}], "startTime": start or now(),
              "containerStatuses": [{
                  "name": ctr_name, "state": state, "ready": phase == "Running",
                  "started": phase == "Running", "restartCount": 0,
                  "image": run.pod["spec"]["containers"][0].get("image", ""), "imageID": "",
                  "containerID": "standin://%s" % (run.proc.pid if run.proc else 0)}],
              "conditions": [
                  {"type": t, "status": "True" if phase == "Running" or t in (
                      "PodScheduled", "Initialized") else "False",
                   "lastTransitionTime": now()}
                  for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]}
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    merge_patch(pod_path(run.ns, run.name, "/status"), {"status": status})


def kill_group(proc, grace):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def run_pod(run):
    pod = run.pod
    spec = pod["spec"]
    ctr = spec["containers"][0]
    work = tempfile.mkdtemp(prefix="pod-%s-%s-" % (run.ns, run.name), dir=args.work)
    logf = None
    try:
        if not spec.get("nodeName"):
            api("POST", pod_path(run.ns, run.name, "/binding"),
                {"apiVersion": "v1", "kind": "Binding",
                 "metadata": {"name": run.name, "namespace": run.ns},
                 "target": {"apiVersion": "v1", "kind": "Node", "name": args.node}})
            log("bound %s/%s to %s" % (run.ns, run.name, args.node))
        mounts = {}
        vols = {v["name"]: v for v in spec.get("volumes") or []}
        for m in ctr.get("volumeMounts") or []:
            v = vols.get(m["name"])
            if not v or "secret" not in v:
                raise RuntimeError("volume %s: only Secret volumes are faked" % m["name"])
            target = os.path.join(work, "volumes", m["name"])
            os.makedirs(target, mode=0o700)
            secret_files(run, v, target)
            mounts[m["mountPath"].rstrip("/")] = target
        argv = list(ctr.get("command") or []) + list(ctr.get("args") or [])
        if not argv:
            raise RuntimeError("container %s has no command (no image to take it from)"
                               % ctr["name"])
        if argv[0] == "builder":
            argv[0] = args.builder
        for i, a in enumerate(argv):
            for mp, target in mounts.items():
                if a == mp or a.startswith(mp + "/"):
                    argv[i] = target + a[len(mp):]
        env = container_env(run, ctr, work)
        if run.deleted.is_set():
            return
        logf = open(os.path.join(args.work, "%s_%s.log" % (run.ns, run.name)), "ab")
        start = now()
        run.proc = subprocess.Popen(argv, env=env, cwd=work, stdin=subprocess.DEVNULL,
                                    stdout=logf, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        log("started %s/%s: pid %d: %s" % (run.ns, run.name, run.proc.pid, argv[0]))
        set_status(run, "Running", ctr["name"], {"running": {"startedAt": start}}, start=start)
        deadline = spec.get("activeDeadlineSeconds")
        t0 = time.monotonic()
        reason = None
        while run.proc.poll() is None:
            if run.deleted.is_set():
                kill_group(run.proc, spec.get("terminationGracePeriodSeconds", 30))
                log("killed %s/%s: pod deleted" % (run.ns, run.name))
                return
            if deadline and time.monotonic() - t0 >= deadline:
                kill_group(run.proc, spec.get("terminationGracePeriodSeconds", 30))
                reason = "DeadlineExceeded"
                break
            time.sleep(0.1)
        rc = run.proc.returncode
        code = rc if rc >= 0 else 128 - rc
        term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                "startedAt": start, "finishedAt": now()}
        if reason:
            set_status(run, "Failed", ctr["name"], {"terminated": term}, reason,
                       "Pod was active on the node longer than the specified deadline",
                       start=start)
        else:
            set_status(run, "Succeeded" if code == 0 else "Failed", ctr["name"],
                       {"terminated": term}, start=start)
        log("%s/%s ended: exit code %d%s" % (run.ns, run.name, code,
                                              ", " + reason if reason else ""))
    except Exception as e:
        log("%s/%s: %s" % (run.ns, run.name, e))
        try:
            set_status(run, "Failed", ctr["name"],
                       {"terminated": {"exitCode": 128, "reason": "StandinError",
                                       "message": str(e)[:500]}},
                       "StandinError", str(e)[:500])
        except Exception:
            pass
    finally:
        if logf:
            logf.close()
        shutil.rmtree(work, ignore_errors=True)
        if run.deleted.is_set():
            finalize_delete(run)
        with lock:
            runs.pop(run.uid, None)


def finalize_delete(run):
    """A bound Pod being deleted waits for its kubelet: remove it now."""
    try:
        api("DELETE", pod_path(run.ns, run.name) + "?gracePeriodSeconds=0",
            {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
             "preconditions": {"uid": run.uid}})
    except ApiError as e:
        if e.code not in (404, 409):
            log("%s/%s: cannot finish deletion: %s" % (run.ns, run.name, e))


# --- the watch --------------------------------------------------------------

def handle(ev, pod):
    meta = pod["metadata"]
    uid = meta["uid"]
    phase = (pod.get("status") or {}).get("phase", "Pending")
    with lock:
        run = runs.get(uid)
        if ev == "DELETED" or meta.get("deletionTimestamp"):
            if run:
                run.deleted.set()
            elif ev != "DELETED" and pod["spec"].get("nodeName") == args.node:
                threading.Thread(target=finalize_delete, args=(Run(pod),), daemon=True).start()
            return
        if run or phase in ("Succeeded", "Failed"):
            return
        if phase == "Running" or pod["spec"].get("nodeName") not in (None, "", args.node):
            if phase == "Running":  # ours from before a restart: its process is gone
                r = Run(pod)
                threading.Thread(target=lambda: set_status(
                    r, "Failed", pod["spec"]["containers"][0]["name"],
                    {"terminated": {"exitCode": 137, "reason": "Error"}},
                    "StandinRestarted", "the FAKE kubelet restarted"), daemon=True).start()
            return
        run = runs[uid] = Run(pod)
    threading.Thread(target=run_pod, args=(run,), daemon=True).start()


def watch_pods():
    sel = urllib.parse.quote("spec.schedulerName=" + SCHEDULER)
    rv = None
    while True:
        try:
            if rv is None:
                lst = api("GET", "/api/v1/pods?fieldSelector=" + sel)
                rv = lst["metadata"]["resourceVersion"]
                for p in lst["items"]:
                    handle("ADDED", p)
            url = ("%s/api/v1/pods?watch=1&allowWatchBookmarks=true&timeoutSeconds=60"
                   "&fieldSelector=%s&resourceVersion=%s" % (args.server, sel, rv))
            with urllib.request.urlopen(url, context=ctx, timeout=90) as r:
                for line in r:
                    ev = json.loads(line)
                    obj = ev["object"]
                    if ev["type"] == "ERROR":
                        if obj.get("code") == 410:
                            rv = None
                        break
                    rv = obj["metadata"]["resourceVersion"]
                    if ev["type"] != "BOOKMARK":
                        handle(ev["type"], obj)
        except Exception as e:
            log("watch: %s" % e)
            time.sleep(1)


def on_term(sig, frame):
    with lock:
        for run in runs.values():
            if run.proc and run.proc.poll() is None:
                try:
                    os.killpg(run.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    os._exit(0)


def main():
    global args, ctx, started_at
    p = argparse.ArgumentParser(description="FAKE kubelet for Slipway's tests")
    p.add_argument("--server", required=True, help="https://127.0.0.1:PORT")
    p.add_argument("--ca", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--builder", required=True, help="what command 'builder' runs")
    p.add_argument("--work", required=True, help="volumes and logs go here")
    p.add_argument("--node", default="slipway-standin")
    args = p.parse_args()
    args.server = args.server.rstrip("/")
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    os.makedirs(args.work, mode=0o700, exist_ok=True)
    started_at = now()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log("FAKE kubelet for tests: node %s, builder %s" % (args.node, args.builder))
    register_node()
    threading.Thread(target=heartbeat, daemon=True).start()
    watch_pods()


if __name__ == "__main__":
    sys.exit(main())
