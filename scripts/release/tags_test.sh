#!/usr/bin/env bash
# Table test of tags.sh: each case is `args | expected tags (space separated)`, or
# `args | !` when tags.sh must refuse the input (exit 2).
set -euo pipefail
cd "$(dirname "$0")"

cases=(
  "--version v1.2.3 | 1.2.3 v1.2.3 1.2 v1.2 1 v1 latest"
  "--version 1.2.3 | 1.2.3 v1.2.3 1.2 v1.2 1 v1 latest"
  "--version v0.10.0 | 0.10.0 v0.10.0 0.10 v0.10 0 v0 latest"
  "--version v1.3.0-rc.1 | 1.3.0-rc.1 v1.3.0-rc.1"
  "--version 2.0.0-beta | 2.0.0-beta v2.0.0-beta"
  "--version v1.2.3+build.7 | 1.2.3 v1.2.3 1.2 v1.2 1 v1 latest"
  "--version v1.2.3 --sha 0123456789abcdef0123456789abcdef01234567 | 1.2.3 v1.2.3 1.2 v1.2 1 v1 latest sha-0123456"
  "--sha ABCDEF0 | sha-abcdef0"
  "--branch main | main"
  "--branch feature/Add_Images | feature-add_images"
  "--branch -.weird..Name | weird..name"
  "--pr 42 | pr-42"
  "--ref refs/tags/v1.2.3 | 1.2.3 v1.2.3 1.2 v1.2 1 v1 latest"
  "--ref refs/tags/v1.3.0-rc.1 | 1.3.0-rc.1 v1.3.0-rc.1"
  "--ref refs/heads/release/1.x --sha 89abcdef | release-1.x sha-89abcde"
  "--ref refs/pull/17/merge --sha 1234567 | pr-17 sha-1234567"
  "--version 1.2 | !"
  "--version v01.2.3 | !"
  "--version latest | !"
  "--sha xyz1234 | !"
  "--sha 12345 | !"
  "--pr 0 | !"
  "--pr abc | !"
  "--branch /// | !"
  "--ref refs/remotes/x | !"
  "--version v1.2 --sha 0123456 | !"
  " | !"
)

pass=0 fail=0
for c in "${cases[@]}"; do
  args=${c%%|*} want=${c#*|}
  want=$(echo $want)
  # shellcheck disable=SC2086 # word splitting of the args is the point
  if got=$(./tags.sh $args 2>/dev/null); then rc=0; else rc=$?; fi
  got=$(echo $got)
  if [[ $want == "!" ]]; then
    if [[ $rc -eq 2 ]]; then pass=$((pass + 1)); else
      fail=$((fail + 1)); echo "FAIL: tags.sh $args: want exit 2, got $rc ($got)"; fi
  elif [[ $rc -eq 0 && $got == "$want" ]]; then pass=$((pass + 1))
  else fail=$((fail + 1)); echo "FAIL: tags.sh $args: want '$want', got '$got' (exit $rc)"; fi
done
echo "tags: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
