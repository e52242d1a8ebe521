#!/usr/bin/env python3
"""The Helm chart and the Kustomize overlays deploy the same objects (scripts/ci/helm.sh).

  helm_parity.py HELM_RENDER KUSTOMIZE_RENDER

Both renders are for the same settings (values-sqlite.yaml ~ overlays/sqlite-single,
values-postgres.yaml ~ overlays/postgres, each with ci/parity-ingress.yaml). Objects are
matched by kind and name and must be equal after removing what only one tool adds:
Helm's bookkeeping labels (instance, managed-by, version, helm.sh/chart, also in
selectors), `helm.sh/*` annotations, and the Namespace object (Kustomize creates it;
a chart leaves that to `helm install --create-namespace`). Env lists compare by name.
Exit 1 listing every difference.
"""
import difflib
import sys

import yaml

HELM_ONLY_LABELS = {
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/version",
    "helm.sh/chart",
}



def strip_labels(d):
    if isinstance(d, dict):
        for k in list(d):
            if k in HELM_ONLY_LABELS:
                del d[k]
            elif k == "annotations" and isinstance(d[k], dict):
                for a in [a for a in d[k] if a.startswith("helm.sh/")]:
                    del d[k][a]
                if not d[k]:
                    del d[k]
            else:
                strip_labels(d[k])
    elif isinstance(d, list):
        for x in d:
            strip_labels(x)


def normalize(doc):
    strip_labels(doc)
    spec = doc.get("spec", {}).get("template", {}).get("spec")
    if spec:
        for c in spec.get("containers", []):
            if "env" in c:
                c["env"] = sorted(c["env"], key=lambda e: e["name"])
    return doc


def objects(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d and d.get("kind") != "Namespace"]
    out = {}
    for d in docs:
        key = (d["kind"], d["metadata"]["name"])
        if key in out:
            raise SystemExit(f"{path}: {key} twice")
        out[key] = normalize(d)
    return out


def main(helm_path, kustomize_path):
    helm, kust = objects(helm_path), objects(kustomize_path)
    problems = []
    for key in sorted(set(helm) | set(kust)):
        if key not in helm:
            problems.append(f"only Kustomize has {key[0]}/{key[1]}")
        elif key not in kust:
            problems.append(f"only the chart has {key[0]}/{key[1]}")
        elif helm[key] != kust[key]:
            a = yaml.safe_dump(kust[key], sort_keys=True).splitlines()
            b = yaml.safe_dump(helm[key], sort_keys=True).splitlines()
            diff = "\n".join(difflib.unified_diff(a, b, "kustomize", "helm", lineterm=""))
            problems.append(f"{key[0]}/{key[1]} differs:\n{diff}")
    for p in problems:
        print(f"parity: {p}")
    if problems:
        return 1
    print(f"parity: {len(helm)} objects equal ({', '.join(sorted(f'{k}/{n}' for k, n in helm))})")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
