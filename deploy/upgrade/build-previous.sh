#!/usr/bin/env bash
# Builds the previous release (the commit on the first line of deploy/upgrade/previous-release)
# from this repository's git history, in its own source dir, and prints the directory holding
# its tree (with its own deploy/local-cluster.sh) and its binary:
#   <dir>/src        the release's tree
#   <dir>/magnum     its binary
# Idempotent: a finished build is reused. Environment: MAGNUM_PREVIOUS_DIR (default
# target/previous-release/<commit> in this checkout).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
commit=$(head -n 1 "$root/deploy/upgrade/previous-release" | tr -d '[:space:]')
if ! git -C "$root" cat-file -e "$commit^{commit}" 2>/dev/null; then
  echo "build-previous: commit $commit is not in this clone's history (a shallow clone? run 'git fetch --unshallow')" >&2
  exit 1
fi
dir=${MAGNUM_PREVIOUS_DIR:-$root/target/previous-release/$commit}
if [ -x "$dir/magnum" ]; then
  echo "$dir"
  exit 0
fi
mkdir -p "$dir"
rm -rf "$dir/src"
mkdir -p "$dir/src"
git -C "$root" archive "$commit" | tar -x -C "$dir/src"
echo "build-previous: building $commit (in this checkout's target dir)" >&2
# This checkout's target dir: the dependencies both trees share are compiled once (the release's
# own crates have other paths, so other artifact hashes, and overwrite nothing of this tree's).
# Only the uplifted target/debug/magnum is the release's afterwards: copy it out, then build
# this tree's again (cargo re-links a fresh binary; nothing is recompiled).
target=${CARGO_TARGET_DIR:-$root/target}
(cd "$dir/src" && CARGO_TARGET_DIR="$target" cargo build -q -p magnum-deploy) >&2
cp "$target/debug/magnum" "$dir/magnum.tmp"
(cd "$root" && cargo build -q -p magnum-deploy) >&2
mv "$dir/magnum.tmp" "$dir/magnum"
echo "$dir"
