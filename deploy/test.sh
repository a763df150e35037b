#!/usr/bin/env bash
# Every test of the project: formatting and lints, unit and integration tests of each crate, and
# the multi-process tests (chaos-tests/) that run real processes, kill and restart them, and drive
# the system with the real `openstack` CLI, and the differential test against upstream Magnum.
# Installs what it needs (venvs from PyPI for the CLI, Keystone, Heat and upstream Magnum, cached
# outside the repository, and Debian's rabbitmq-server, by ../shared/tools/peers/peers.sh).
set -euo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
peers=${PEERS_TOOLS:-$root/../shared/tools/peers}
# api/tests/keystone_real.rs starts the real Keystone through the same toolkit.
export PEERS_TOOLS=$peers

if ! command -v curl >/dev/null; then
  apt-get update -qq && apt-get install -y -qq curl >/dev/null
fi
# deploy/tests/systemd_units.rs runs `systemd-analyze verify` on deploy/systemd/.
if ! command -v systemd-analyze >/dev/null; then
  apt-get update -qq && apt-get install -y -qq systemd >/dev/null
fi
# Each step's wall time, printed at the end: the run has a 60-minute budget (README).
steps=()
step_name=""
step_at=$(date +%s)
step() {
  local now
  now=$(date +%s)
  if [[ -n $step_name ]]; then steps+=("$(printf '%5d s  %s' $((now - step_at)) "$step_name")"); fi
  step_name=$1
  step_at=$now
  [[ -z $1 ]] || echo "== $1 =="
}
step "installing the openstack CLI and the real peers (Keystone, Heat, upstream Magnum)"
bash "$peers/peers.sh" install all
# Tests start the peers they need (idempotent `peers.sh up`); stop at exit whatever was not
# already running before this run.
running_before=$(bash "$peers/peers.sh" status | awk '$2 == "running" { print $1 }' | tr '\n' ' ')
stop_peers() {
  for what in magnum heat keystone; do
    case " $running_before " in
      *" $what "* | *" $what-api "*) ;;
      *) bash "$peers/peers.sh" down "$what" >/dev/null 2>&1 || true ;;
    esac
  done
}
trap 'stop_peers; rm -f "$log"' EXIT

step "fmt and clippy"
cargo fmt --all -- --check
# With the decode entry points the fuzz targets use (feature `fuzzing`, which only adds a module).
cargo clippy --workspace --all-targets --features magnum-raft/fuzzing -q -- -D warnings

step "unit and integration tests"
cargo build -q -p magnum-deploy
cargo test --workspace --exclude magnum-chaos-tests 2>&1 | tee -a "$log"
cargo test -p magnum-raft --features fuzzing --lib fuzzing 2>&1 | tee -a "$log"

step "Helm chart: rendered by Helm's engine, every object checked against Kubernetes' schemas"
bash deploy/helm/test.sh 2>&1 | grep -v '^ok '

step "the previous release, built from git history for the upgrade test"
bash deploy/upgrade/build-previous.sh >/dev/null

step "multi-process tests (one at a time: each starts 5 processes)"
cargo test -p magnum-chaos-tests --tests --no-fail-fast -- --test-threads=1 --nocapture 2>&1 | tee -a "$log"

step "chaos suite, bounded: a recorded workload under kills, pauses, partitions, restarts and Heat faults; every checker (chaos-tests/README.md)"
chaos_out=$(mktemp -d)
bash chaos-tests/run.sh --bounded "$chaos_out" 2>&1 | tail -n 40
echo "chaos summary: $chaos_out/summary.json"

step "fuzzing: every cargo-fuzz target briefly, and the regression inputs (fuzz/README.md)"
# An unoptimised instrumented build: the build, not the seconds of fuzzing, is what costs here.
MAGNUM_FUZZ_PROFILE=${MAGNUM_FUZZ_PROFILE:-dev} MAGNUM_FUZZ_SECONDS=${MAGNUM_FUZZ_SECONDS:-10} \
  bash deploy/fuzz.sh 2>&1 | tail -n 20

step "property-based API run (schemathesis: zero 5xx over generated requests)"
bash deploy/schemathesis.sh 2>&1 | tail -n 25

# One closing line over every test binary above (pipefail already stopped us on a failure).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
step ""
echo "== wall time per step =="
printf '%s\n' "${steps[@]}"
