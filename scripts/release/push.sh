#!/usr/bin/env bash
# push.sh REPOSITORY TAG... : push every tag of one image, then print its digest
# (`REPOSITORY@sha256:…`, the reference to pin). All tags name the same image, so
# they must all report one digest.
set -euo pipefail
repo=$1; shift
docker=${DOCKER:-docker}
digest=
for tag in "$@"; do
  # Not `tee /dev/stderr`: reopening a log file that stderr points to truncates it.
  out=$($docker push "$repo:$tag")
  printf '%s\n' "$out" >&2
  d=$(sed -n 's/.*digest: \(sha256:[0-9a-f]\{64\}\).*/\1/p' <<<"$out" | tail -n1)
  [[ -n $d ]] || { echo "push.sh: no digest in the output of docker push $repo:$tag" >&2; exit 1; }
  [[ -z $digest || $d == "$digest" ]] || { echo "push.sh: $repo:$tag is $d, other tags $digest" >&2; exit 1; }
  digest=$d
done
echo "pushed $repo@$digest ($*)"
