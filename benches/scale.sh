#!/usr/bin/env bash
# Scale benchmark (what a large cloud needs): N clusters seeded through the public API into
# 3 local conductors with 16 shards, then read latencies at that size, memory and data dirs,
# Heat requests per minute while the clusters are idle (and with K creates in progress), and a
# cold restart of every conductor. See benches/src/bin/scale.rs for what is measured.
#
#   benches/scale.sh [OUT_DIR] [scale flags...]
#   e.g. benches/scale.sh /tmp/scale-small --clusters 300 --projects 10 --idle-window-s 60
#
# OUT_DIR defaults to target/bench/scale; it receives results.md, results.json and logs/.
# Builds `magnum` and the bench in release (CARGO_TARGET_DIR is honoured), starts
# deploy/local-cluster.sh on free 127.0.0.1 ports under a temporary directory and stops it on
# exit, failure included. MAGNUM_RAFT_ARGS reaches the conductors.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root/target/bench/scale
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then out=$1; shift; fi
target=${CARGO_TARGET_DIR:-$root/target}

(cd "$root" && cargo build --release -q -p magnum-deploy --bin magnum -p magnum-benches --bin scale)

# cloud-sim rewrites its whole state file after changes: at 100,000 stacks that is over 1 GB
# each time, under the lock its Heat API needs. It is never restarted here, so it keeps none.
export MAGNUM_SIM_STATE=0

mkdir -p "$out"
out=$(cd "$out" && pwd)
MAGNUM_BIN="$target/release/magnum" "$target/release/scale" \
  --out "$out" --command "benches/scale.sh${*:+ $*}" "$@"
