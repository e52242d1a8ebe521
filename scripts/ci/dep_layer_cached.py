"""Reads a classic `docker build --target builder` log (after a source-only change) and
checks the Dockerfile's promise: the dependency layer is cached, the sources are not.

Each `Step N/M : INSTRUCTION` is followed by ` ---> Using cache` when it was a cache hit.
Exit 0 when: the skeleton stage's `COPY . .` ran (the context did change), the builder's
`COPY --from=skeleton` and the dependency `RUN` after it were cache hits, and the
builder's own `COPY . .` ran.
"""

import re
import sys


def steps(log):
    parts = re.split(r"^Step \d+/\d+ : ", log, flags=re.M)[1:]
    return [(p.splitlines()[0], " ---> Using cache" in p) for p in parts]


def main(path):
    got = steps(open(path, encoding="utf-8", errors="replace").read())
    if not got:
        print("no build steps in the log", file=sys.stderr)
        return 1
    starts = [i for i, (ins, _) in enumerate(got) if ins.startswith("FROM ") and " AS builder" in ins]
    if not starts:
        print("no builder stage in the log", file=sys.stderr)
        return 1
    skeleton, builder = got[: starts[0]], got[starts[0]:]
    checks = []
    skel_copy = [c for ins, c in skeleton if ins.startswith("COPY . .")]
    checks.append(("skeleton COPY . . ran (the context changed)", skel_copy == [False]))
    i = next((k for k, (ins, _) in enumerate(builder) if ins.startswith("COPY --from=skeleton")), None)
    checks.append(("builder COPY --from=skeleton is cached", i is not None and builder[i][1]))
    dep = builder[i + 1] if i is not None and i + 1 < len(builder) else ("", False)
    checks.append(("the dependency RUN after it is cached", dep[0].startswith("RUN ") and dep[1]))
    src = [c for ins, c in builder if ins.startswith("COPY . .")]
    checks.append(("builder COPY . . ran (sources rebuilt)", src == [False]))
    for what, ok in checks:
        print(("ok   " if ok else "FAIL ") + what)
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
