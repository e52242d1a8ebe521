#!/usr/bin/env bash
# check-image.sh IMAGE COMPONENT BUDGET_MB VERSION REVISION SOURCE
# Fails unless IMAGE has the release labels (source = SOURCE), runs as uid 1000, holds
# the `aof` build of its component (runner images: no coordinator; coordinator and
# dashboard: no runner), has a HEALTHCHECK that does not use curl, and fits its
# compressed size budget (then prints the layer sizes).
set -euo pipefail
img=$1 component=$2 budget_mb=$3 version=$4 revision=$5 source=$6
docker=${DOCKER:-docker}
fail() { echo "check-image: $img: $*" >&2; exit 1; }

label() { $docker image inspect --format "{{ index .Config.Labels \"$1\" }}" "$img"; }
for l in org.opencontainers.image.version org.opencontainers.image.revision \
         org.opencontainers.image.created org.opencontainers.image.source \
         org.opencontainers.image.title org.opencontainers.image.licenses \
         aof.component aof.component.version; do
  v=$(label "$l")
  [[ -n $v && $v != "<no value>" ]] || fail "label $l missing"
done
[[ $(label org.opencontainers.image.version) == "$version" ]] || fail "version label is $(label org.opencontainers.image.version), want $version"
[[ $(label org.opencontainers.image.revision) == "$revision" ]] || fail "revision label is $(label org.opencontainers.image.revision), want $revision"
[[ $(label aof.component) == "$component" ]] || fail "aof.component is $(label aof.component), want $component"
[[ $(label org.opencontainers.image.title) == "aof-$component" ]] || fail "title is $(label org.opencontainers.image.title)"
[[ $(label org.opencontainers.image.source) == "$source" ]] || fail "source label is $(label org.opencontainers.image.source), want $source"

user=$($docker image inspect --format '{{.Config.User}}' "$img")
[[ $user == 1000:1000 || $user == 1000 ]] || fail "USER is '$user', want 1000"
# The identity the process really runs with, read from /proc on the host (scratch
# images have no `id`), and `id` itself where the image has one.
# The binary's subcommands say which build it is.
help=$($docker run --rm --entrypoint /usr/local/bin/aof "$img" --help)
if [[ $component == runner* ]]; then
  grep -qE '^  runner ' <<<"$help" || fail "aof in $img has no runner command"
  ! grep -qE '^  (coordinator|dashboard|up) ' <<<"$help" || fail "aof in $img has the coordinator (want the runner build)"
  cid=$($docker run -d --entrypoint /bin/sleep "$img" 60)
else
  grep -qE '^  coordinator ' <<<"$help" || fail "aof in $img has no coordinator command"
  ! grep -qE '^  (runner|up) ' <<<"$help" || fail "aof in $img has the runner (want the coordinator build)"
  cid=$($docker run -d --entrypoint /usr/local/bin/aof "$img" coordinator --listen 127.0.0.1:0 --data-dir /tmp/uid-check)
fi
pid=$($docker inspect --format '{{.State.Pid}}' "$cid")
uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
[[ $uid == 1000 ]] || $docker logs "$cid" >&2 || true
$docker rm -f "$cid" >/dev/null
[[ $uid == 1000 ]] || fail "runs as uid '$uid', want 1000"
if [[ $component == runner* ]]; then
  id_out=$($docker run --rm "$img" id)
  [[ $id_out == uid=1000* ]] || fail "docker run $img id: $id_out"
fi

hc=$($docker image inspect --format '{{json .Config.Healthcheck}}' "$img")
[[ $hc == *'"aof","health"'* || $hc == *'aof health'* || $hc == *'/usr/local/bin/aof","health'* ]] || fail "HEALTHCHECK is $hc, want aof health"
[[ $hc != *curl* && $hc != *wget* ]] || fail "HEALTHCHECK uses curl/wget: $hc"

# Compressed size as a registry stores it: each layer tar gzipped (docker push's default).
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
$docker save "$img" | tar -x -C "$tmp"
total=0
printf '%-12s %-12s %s\n' compressed uncompressed layer
while read -r layer; do
  raw=$(stat -c %s "$tmp/$layer")
  gz=$(gzip -c "$tmp/$layer" | wc -c)
  total=$((total + gz))
  printf '%-12s %-12s %s\n' "$((gz / 1024))K" "$((raw / 1024))K" "${layer%%/*}"
done < <(jq -r '.[0].Layers[]' "$tmp/manifest.json")
mb=$(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "$img: $mb MB compressed (budget $budget_mb MB)"
if (( total > budget_mb * 1048576 )); then
  $docker history --no-trunc --format '{{.Size}}\t{{.CreatedBy}}' "$img" | cut -c1-160 >&2
  fail "$mb MB compressed exceeds the budget of $budget_mb MB"
fi
echo "check-image: $img ok (labels, uid 1000, HEALTHCHECK, size)"
