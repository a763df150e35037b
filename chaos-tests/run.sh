#!/usr/bin/env bash
# The chaos suite (chaos-tests/README.md, "The chaos suite"): a seeded, recorded workload under
# kills, pauses, partitions, restarts and Heat faults, then the checkers.
#
#   chaos-tests/run.sh --bounded OUTDIR          the CI run: 5 minutes of faults (at least 500), ~6.5 in all
#   chaos-tests/run.sh --soak MINUTES OUTDIR     as long as asked
#   chaos-tests/run.sh --seed N --duration-s S OUTDIR    replay a run (the seed a failure printed)
#   chaos-tests/run.sh --check OUTDIR/history.jsonl      re-check a recorded history
#
# Writes OUTDIR/summary.json, history.jsonl, faults.json and notifications.jsonl; exit status 1
# on any violation. Needs root for the network namespaces (--no-netns runs without partitions).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
cargo build -q -p magnum-deploy -p magnum-chaos-tests --bin magnum --bin chaos
target=${CARGO_TARGET_DIR:-$root/target}
export MAGNUM_BIN=${MAGNUM_BIN:-$target/debug/magnum}
exec "$target/debug/chaos" "$@"
