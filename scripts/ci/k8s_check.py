#!/usr/bin/env python3
"""Policy check over rendered Kubernetes manifests (scripts/ci/k8s.sh).

Every container of every workload must have a liveness and a readiness probe, run as
non-root (pod or container `runAsNonRoot: true`, no `runAsUser: 0`), have
`readOnlyRootFilesystem: true`, `allowPrivilegeEscalation: false`, drop ALL
capabilities, set resource requests and limits, and use a pinned image (a tag that is
not `latest`, or a digest). The coordinator must run with auth on, without
`CORS_ORIGINS=*`, and with `AOF_ALLOWED_HOSTS` naming its Service (agents reach `/mcp`
by that name and its Host check stays on) — issue #20.

Stopping (issue #28): the coordinator and the dashboard need a `preStop` sleep (so the
Service stops sending new connections before SIGTERM closes the listener) and a
`terminationGracePeriodSeconds` of at least that sleep + `AOF_SHUTDOWN_TIMEOUT` (10 s
unset) + 5 s; a runner at least `AOF_RUNNER_DRAIN_TIMEOUT` (20) + `AOF_STOP_GRACE` (5) +
9 s (reports, deregistration), or SIGKILL cuts what the stop promises.

  k8s_check.py FILE...        check; exit 1 listing every violation
  k8s_check.py --self-test FILE
                              break FILE in one way per rule and require each broken
                              copy to fail (so the check itself cannot silently pass)
"""
import copy
import re
import sys

import yaml

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


def pod_spec(doc):
    kind = doc.get("kind")
    if kind in WORKLOADS:
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return doc["spec"]
    return None


def pinned(image):
    if "@sha256:" in image:
        return re.search(r"@sha256:[0-9a-f]{64}$", image) is not None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    return last.rsplit(":", 1)[1] not in ("", "latest")


def violations(docs):
    out = []
    # One namespace for everything: a PVC or HPA left in `default` would not reach its
    # Deployment in `aof`.
    spaces = {d["metadata"].get("namespace") for d in docs if d and d["kind"] != "Namespace"}
    if len(spaces) != 1 or None in spaces:
        out.append(f"objects are not all in one explicit namespace: {sorted(map(str, spaces))}")
    workloads = 0
    for doc in docs:
        spec = pod_spec(doc) if doc else None
        if spec is None:
            continue
        workloads += 1
        name = f'{doc["kind"]}/{doc["metadata"]["name"]}'
        pod_sc = spec.get("securityContext") or {}
        containers = spec.get("containers", []) + spec.get("initContainers", [])
        if not containers:
            out.append(f"{name}: no containers")
        for c in containers:
            where = f'{name} container {c.get("name")}'
            sc = c.get("securityContext") or {}
            init = c in spec.get("initContainers", [])
            if not init:
                for probe in ("livenessProbe", "readinessProbe"):
                    if not c.get(probe):
                        out.append(f"{where}: no {probe}")
            non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
            user = sc.get("runAsUser", pod_sc.get("runAsUser"))
            if non_root is not True or user == 0:
                out.append(f"{where}: not forced non-root (runAsNonRoot: true)")
            if sc.get("readOnlyRootFilesystem") is not True:
                out.append(f"{where}: readOnlyRootFilesystem is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                out.append(f"{where}: allowPrivilegeEscalation is not false")
            drops = (sc.get("capabilities") or {}).get("drop") or []
            if "ALL" not in drops:
                out.append(f"{where}: capabilities do not drop ALL")
            res = c.get("resources") or {}
            if not res.get("requests") or not res.get("limits"):
                out.append(f"{where}: resources need requests and limits")
            image = c.get("image", "")
            if not pinned(image):
                out.append(f"{where}: image '{image}' is not pinned (tag other than latest, or digest)")
    if workloads == 0:
        out.append("no workloads found")
    coordinators = list(coordinator_containers(docs))
    if not coordinators:
        out.append("no coordinator container found")
    for name, c in coordinators:
        env = {e["name"]: str(e.get("value", "")) for e in c.get("env", []) if "value" in e}
        auth = env.get("AOF_AUTH_ENABLED", env.get("AUTH_ENABLED", "false"))
        if auth.strip().lower() not in ("true", "1", "yes", "on"):
            out.append(f"{name}: the coordinator runs with auth off (set AOF_AUTH_ENABLED=true)")
        if env.get("AOF_CORS_ORIGINS", env.get("CORS_ORIGINS", "")).strip() == "*":
            out.append(f"{name}: CORS_ORIGINS=* (list exact origins, or none)")
        if not env.get("AOF_ALLOWED_HOSTS", "").strip():
            out.append(f"{name}: no AOF_ALLOWED_HOSTS (agents reach /mcp by the Service name)")
    out += stop_violations(docs)
    return out, workloads


# Kubernetes' default grace period, when a pod sets none.
DEFAULT_GRACE = 30


def seconds_env(c, name, default):
    env = {e["name"]: str(e.get("value", "")) for e in c.get("env", []) if "value" in e}
    try:
        return float(env.get(name, default))
    except ValueError:
        return float("inf")  # unparseable: the process refuses to start anyway


def role(c):
    """'coordinator', 'dashboard', 'runner' or None for an `aof` container."""
    args = c.get("args") or [None]
    image = c.get("image", "")
    for r in ("coordinator", "dashboard", "runner"):
        if args[0] == r or f"aof-{r}" in image:
            return r
    return None


def stop_violations(docs):
    out = []
    for doc in docs:
        spec = pod_spec(doc) if doc else None
        if spec is None:
            continue
        grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE)
        for c in spec.get("containers", []):
            where = f'{doc["kind"]}/{doc["metadata"]["name"]} container {c.get("name")}'
            r = role(c)
            if r in ("coordinator", "dashboard"):
                pre = (((c.get("lifecycle") or {}).get("preStop") or {}).get("sleep") or {}).get("seconds", 0)
                if pre < 1:
                    out.append(f"{where}: no preStop sleep (the Service would still send connections to a closed listener)")
                need = pre + seconds_env(c, "AOF_SHUTDOWN_TIMEOUT", 10) + 5
            elif r == "runner":
                need = seconds_env(c, "AOF_RUNNER_DRAIN_TIMEOUT", 20) + seconds_env(c, "AOF_STOP_GRACE", 5) + 9
            else:
                continue
            if grace < need:
                out.append(f"{where}: terminationGracePeriodSeconds {grace} < {need:g} s its stop may take (SIGKILL would cut it)")
    return out


def coordinator_containers(docs):
    """(where, container) of every `aof coordinator` container."""
    for doc in docs:
        spec = pod_spec(doc) if doc else None
        for c in (spec or {}).get("containers", []):
            if (c.get("args") or [None])[0] == "coordinator" or "aof-coordinator" in c.get("image", ""):
                yield f'{doc["kind"]}/{doc["metadata"]["name"]} container {c.get("name")}', c


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def first_container(docs):
    for d in docs:
        spec = pod_spec(d)
        if spec:
            return spec["containers"][0], spec
    raise SystemExit("self-test: no workload to break")


def mutations():
    def drop(key):
        return lambda c, s: c.pop(key, None)

    def sc(key, value):
        return lambda c, s: c.setdefault("securityContext", {}).__setitem__(key, value)

    return {
        "no liveness probe": drop("livenessProbe"),
        "no readiness probe": drop("readinessProbe"),
        "image :latest": lambda c, s: c.__setitem__("image", c["image"].rsplit(":", 1)[0] + ":latest"),
        "image without tag": lambda c, s: c.__setitem__("image", c["image"].rsplit(":", 1)[0]),
        "runs as root": lambda c, s: (
            sc("runAsNonRoot", False)(c, s),
            s.setdefault("securityContext", {}).__setitem__("runAsNonRoot", False),
        ),
        "writable root fs": sc("readOnlyRootFilesystem", False),
        "privilege escalation": sc("allowPrivilegeEscalation", True),
        "capabilities kept": sc("capabilities", {"drop": ["NET_RAW"]}),
        "no limits": lambda c, s: c.get("resources", {}).pop("limits", None),
    }


def self_test(path):
    docs = load(path)
    ok, _ = violations(docs)
    if ok:
        print("self-test: the unbroken manifests must pass first:\n  " + "\n  ".join(ok))
        return 1
    failed = 0
    for what, mutate in mutations().items():
        broken = copy.deepcopy(docs)
        c, s = first_container(broken)
        mutate(c, s)
        found, _ = violations(broken)
        if found:
            print(f"self-test: '{what}' caught: {found[0]}")
        else:
            print(f"self-test: '{what}' was NOT caught")
            failed += 1
    # The coordinator's browser-facing defaults (issue #20).
    def set_env(name, value):
        def mutate(c):
            c["env"] = [e for e in c.get("env", []) if e["name"] != name]
            if value is not None:
                c["env"].append({"name": name, "value": value})
        return mutate

    for what, mutate in {
        "coordinator auth off": set_env("AOF_AUTH_ENABLED", "false"),
        "coordinator CORS *": set_env("CORS_ORIGINS", "*"),
        "coordinator without allowed hosts": set_env("AOF_ALLOWED_HOSTS", None),
    }.items():
        broken = copy.deepcopy(docs)
        for _, c in coordinator_containers(broken):
            mutate(c)
        found, _ = violations(broken)
        if found:
            print(f"self-test: '{what}' caught: {found[0]}")
        else:
            print(f"self-test: '{what}' was NOT caught")
            failed += 1
    # Stopping (issue #28): a grace period shorter than the stop, no preStop sleep.
    def each(r, mutate):
        def apply(docs):
            for d in docs:
                spec = pod_spec(d)
                for c in (spec or {}).get("containers", []):
                    if role(c) == r:
                        mutate(c, spec)
        return apply

    for what, mutate in {
        "coordinator grace below its bound": each(
            "coordinator", lambda c, s: s.__setitem__("terminationGracePeriodSeconds", 10)),
        "coordinator shutdown timeout above its grace": each(
            "coordinator", lambda c, s: set_env("AOF_SHUTDOWN_TIMEOUT", "60")(c)),
        "coordinator without preStop": each("coordinator", lambda c, s: c.pop("lifecycle", None)),
        "dashboard without preStop": each("dashboard", lambda c, s: c.pop("lifecycle", None)),
        "runner drain above its grace": each(
            "runner", lambda c, s: set_env("AOF_RUNNER_DRAIN_TIMEOUT", "600")(c)),
    }.items():
        broken = copy.deepcopy(docs)
        mutate(broken)
        found, _ = violations(broken)
        if found:
            print(f"self-test: '{what}' caught: {found[0]}")
        else:
            print(f"self-test: '{what}' was NOT caught")
            failed += 1
    # An object left out of the namespace (the mutations above only touch a pod).
    broken = copy.deepcopy(docs)
    [d for d in broken if d["kind"] != "Namespace"][-1]["metadata"].pop("namespace", None)
    found, _ = violations(broken)
    if found:
        print(f"self-test: 'namespace missing' caught: {found[0]}")
    else:
        print("self-test: 'namespace missing' was NOT caught")
        failed += 1
    return 1 if failed else 0


def main(argv):
    if argv[:1] == ["--self-test"]:
        return self_test(argv[1])
    bad = 0
    for path in argv:
        found, n = violations(load(path))
        for v in found:
            print(f"{path}: {v}")
        bad += len(found)
        if not found:
            print(f"{path}: {n} workloads pass the container policy")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
