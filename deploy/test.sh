#!/usr/bin/env bash
# Every test of the project: formatting and lints, unit and integration tests of each crate, and
# the multi-process tests (chaos-tests/) that run real processes, kill and restart them, and drive
# the system with the real `openstack` CLI. Installs what it needs (the CLI venv from PyPI, cached
# outside the repository by ../shared/tools/peers/peers.sh).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
peers=${PEERS_TOOLS:-$root/../shared/tools/peers}

if ! command -v curl >/dev/null; then
  apt-get update -qq && apt-get install -y -qq curl >/dev/null
fi
echo "== installing the openstack CLI (python-openstackclient + python-magnumclient) =="
bash "$peers/peers.sh" install osc

echo "== fmt and clippy =="
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings

echo "== unit and integration tests =="
cargo build -q -p magnum-deploy
cargo test --workspace --exclude magnum-chaos-tests

echo "== multi-process tests (one at a time: each starts 5 processes) =="
cargo test -p magnum-chaos-tests -- --test-threads=1 --nocapture
