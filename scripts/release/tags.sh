#!/usr/bin/env bash
# Image tags for a release, one per line. Tested by tags_test.sh (a table of cases).
#
#   tags.sh [--version V] [--sha SHA] [--branch NAME] [--pr N] [--ref GIT_REF]
#
#   --version v1.2.3 | 1.2.3   1.2.3 v1.2.3 1.2 v1.2 1 v1 latest
#   --version v1.3.0-rc.1      1.3.0-rc.1 v1.3.0-rc.1 (a pre-release moves no alias)
#   --sha <hex, ≥7>            sha-<first 7>
#   --branch NAME              NAME sanitized: lower case, [a-z0-9._-], ≤128, no leading . or -
#   --pr N                     pr-N
#   --ref refs/tags/v1.2.3 | refs/heads/NAME | refs/pull/N/merge   (a CI's GITHUB_REF)
# Bad input exits 2 with a message on stderr.
set -euo pipefail

die() { echo "tags.sh: $*" >&2; exit 2; }

semver_re='^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$'

version_tags() {
  local v=$1
  [[ $v =~ $semver_re ]] || die "--version $v: not a semantic version (v1.2.3 or 1.2.3[-pre])"
  local major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]} patch=${BASH_REMATCH[3]}
  local pre=${BASH_REMATCH[4]}
  # Build metadata (+...) is not allowed in a tag; it names the same version.
  local plain="$major.$minor.$patch$pre"
  echo "$plain"
  echo "v$plain"
  if [[ -z $pre ]]; then
    echo "$major.$minor"
    echo "v$major.$minor"
    echo "$major"
    echo "v$major"
    echo latest
  fi
}

branch_tag() {
  local b
  b=$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]' | sed -e 's/[^a-z0-9._-]/-/g' -e 's/^[.-]*//')
  b=${b:0:128}
  [[ -n $b ]] || die "--branch '$1': nothing left after sanitizing"
  echo "$b"
}

sha_tag() {
  [[ $1 =~ ^[0-9a-fA-F]{7,64}$ ]] || die "--sha $1: not a commit hash (7 to 64 hex digits)"
  local s=${1,,}
  echo "sha-${s:0:7}"
}

pr_tag() {
  [[ $1 =~ ^[1-9][0-9]*$ ]] || die "--pr $1: not a pull request number"
  echo "pr-$1"
}

out=()
while [[ $# -gt 0 ]]; do
  [[ $# -ge 2 ]] || die "$1 needs a value"
  case $1 in
    --version) v=$(version_tags "$2"); mapfile -t -O "${#out[@]}" out <<<"$v" ;;
    --sha) out+=("$(sha_tag "$2")") ;;
    --branch) out+=("$(branch_tag "$2")") ;;
    --pr) out+=("$(pr_tag "$2")") ;;
    --ref)
      case $2 in
        refs/tags/*) v=$(version_tags "${2#refs/tags/}"); mapfile -t -O "${#out[@]}" out <<<"$v" ;;
        refs/heads/*) out+=("$(branch_tag "${2#refs/heads/}")") ;;
        refs/pull/*/*) n=${2#refs/pull/}; out+=("$(pr_tag "${n%%/*}")") ;;
        *) die "--ref $2: expected refs/tags/…, refs/heads/… or refs/pull/N/…" ;;
      esac ;;
    *) die "unknown argument $1" ;;
  esac
  shift 2
done
[[ ${#out[@]} -gt 0 ]] || die "no tags: give --version, --sha, --branch, --pr or --ref"
# Once each, in order (a branch named like a version tag would repeat it).
printf '%s\n' "${out[@]}" | awk 'NF && !seen[$0]++'
