#!/usr/bin/env bash
# Every test of the project: formatting and lints, unit and integration tests of each crate, and
# the multi-process tests (chaos-tests/) that run real processes, kill and restart them, and drive
# the system with the real `openstack` CLI. Installs what it needs (the CLI venv from PyPI, cached
# outside the repository by ../shared/tools/peers/peers.sh).
set -euo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
peers=${PEERS_TOOLS:-$root/../shared/tools/peers}

if ! command -v curl >/dev/null; then
  apt-get update -qq && apt-get install -y -qq curl >/dev/null
fi
echo "== installing the openstack CLI (python-openstackclient + python-magnumclient) =="
bash "$peers/peers.sh" install osc
echo "== installing real Heat (heat_real and failover_real_heat tests start it with peers.sh up heat) =="
bash "$peers/peers.sh" install heat
export PEERS_TOOLS=$peers

echo "== fmt and clippy =="
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings

echo "== unit and integration tests =="
cargo build -q -p magnum-deploy
cargo test --workspace --exclude magnum-chaos-tests 2>&1 | tee -a "$log"

echo "== multi-process tests (one at a time: each starts 5 processes) =="
cargo test -p magnum-chaos-tests --tests -- --test-threads=1 --nocapture 2>&1 | tee -a "$log"

# One closing line over every test binary above (pipefail already stopped us on a failure).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i; if ($(i+1) ~ /^ignored/) s += $i } }
     END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
