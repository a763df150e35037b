#!/usr/bin/env bash
# Idle cost of many shards (issue 14, quiescence): 3 local conductors with SHARDS Raft shards and
# no load. Reports how long `local-cluster.sh up` took until every group had a leader; after
# SETTLE_S more seconds, over WINDOW_S seconds: CPU seconds of each conductor (utime +
# stime from /proc) and the groups whose term moved (elections), from `magnum manage status
# --json` before and after. Prints one JSON line and writes it to OUT_DIR/idle.json.
#
#   benches/idle-shards.sh [OUT_DIR]
#
# Environment: SHARDS (256), SETTLE_S (30), WINDOW_S (60), BENCH_PORT_BASE (32500), and
# MAGNUM_RAFT_ARGS for the conductors (e.g. "--no-quiesce" to compare). Builds `magnum` in
# release, starts everything on 127.0.0.1 and stops it on exit, failure included.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/target/bench/idle-shards}
shards=${SHARDS:-256}
settle=${SETTLE_S:-30}
window=${WINDOW_S:-60}
base=${BENCH_PORT_BASE:-32500}

(cd "$root" && cargo build --release -q -p magnum-deploy --bin magnum)
bin=$root/target/release/magnum
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/work
rm -rf "$work"

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  MAGNUM_BIN=$bin "$root/deploy/local-cluster.sh" down "$work" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT INT TERM

started=$SECONDS
MAGNUM_BIN=$bin MAGNUM_PORT_BASE=$base MAGNUM_SHARDS=$shards MAGNUM_READY_TIMEOUT_S=900 \
  "$root/deploy/local-cluster.sh" up "$work" >/dev/null
ready_s=$((SECONDS - started))
# shellcheck disable=SC1091
source "$work/openrc"

status() { "$bin" manage status --json; }
# CPU seconds (utime + stime) of a pid.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

sleep "$settle"
status > "$out/status-before.json"
declare -A cpu0
for n in 1 2 3; do cpu0[$n]=$(cpu "$(cat "$work/conductor-$n.pid")"); done
sleep "$window"
status > "$out/status-after.json"
cpus=()
for n in 1 2 3; do
  c=$(cpu "$(cat "$work/conductor-$n.pid")")
  cpus+=("\"$n\": $(awk -v a="$c" -v b="${cpu0[$n]}" 'BEGIN {printf "%.2f", a - b}')")
done

python3 - "$shards" "$window" "${MAGNUM_RAFT_ARGS:-}" "{$(IFS=,; echo "${cpus[*]}")}" \
  "$out/status-before.json" "$out/status-after.json" "$ready_s" <<'PY' | tee "$out/idle.json"
import json, sys
shards, window, args, cpu, before, after, ready = sys.argv[1:]
cpu = json.loads(cpu)
# Status of 256 groups is too long for an argument: read from the files.
terms = lambda f: {(g["role"]): g["term"] for g in json.load(open(f))["groups"]}
b, a = terms(before), terms(after)
moved = sorted(k for k in a if a[k] != b.get(k))
print(json.dumps({
    "shards": int(shards), "window_s": int(window), "raft_args": args,
    "up_to_all_led_s": int(ready),
    "cpu_s": cpu, "cpu_pct_of_one_core": round(100 * sum(cpu.values()) / int(window), 1),
    "groups": len(a), "terms_moved": moved,
}))
PY
