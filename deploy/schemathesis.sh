#!/usr/bin/env bash
# Property-based API test: schemathesis generates requests from GET /v1/openapi.json and sends
# them, with a real Keystone token (cloud-sim's Keystone), to a running deployment
# (deploy/local-cluster.sh: cloud-sim + 3 conductors + API). Fails on any 5xx answer.
#
#   deploy/schemathesis.sh [DIR]     DIR: where the deployment lives (default: a temporary dir)
#
# Environment: SCHEMATHESIS_MAX_EXAMPLES (per operation, default 15), SCHEMATHESIS_TIME_LIMIT
# (seconds for the whole run, default 600), SCHEMATHESIS_USER (default demo, a member of project
# demo), MAGNUM_PORT_BASE (default 26400), MAGNUM_SHARDS (default 4), MAGNUM_RAFT_ARGS. Installs schemathesis from PyPI into a venv cached at
# ${PEERS_HOME:-~/.cache/magnum-peers}/venvs/schemathesis.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv=${PEERS_HOME:-$HOME/.cache/magnum-peers}/venvs/schemathesis
version=4.32.5
if [ ! -x "$venv/bin/st" ] || ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
  python3 -c 'import ensurepip, venv' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
  echo "== installing schemathesis $version into $venv =="
  python3 -m venv "$venv"
  "$venv/bin/pip" install --no-input -q "schemathesis==$version"
fi

dir=${1:-}
own_dir=0
if [ -z "$dir" ]; then dir=$(mktemp -d); own_dir=1; fi
export MAGNUM_PORT_BASE=${MAGNUM_PORT_BASE:-26400}
# Few shards and patient elections: the run is about the API, and CI machines are busy.
export MAGNUM_SHARDS=${MAGNUM_SHARDS:-4}
export MAGNUM_RAFT_ARGS=${MAGNUM_RAFT_ARGS:---heartbeat-ms 200 --election-min-ms 1000 --election-max-ms 1500}
cleanup() {
  deploy/local-cluster.sh down "$dir" >/dev/null 2>&1 || true
  if [ "$own_dir" = 1 ]; then rm -rf "$dir"; fi
}
trap cleanup EXIT
deploy/local-cluster.sh up "$dir"
# shellcheck disable=SC1091
source "$dir/openrc"
api=http://127.0.0.1:$((MAGNUM_PORT_BASE + 11))
user=${SCHEMATHESIS_USER:-demo}
token=$(curl -sf -D - -o /dev/null -H 'Content-Type: application/json' \
  -d "{\"auth\": {\"identity\": {\"methods\": [\"password\"], \"password\": {\"user\":
      {\"name\": \"$user\", \"domain\": {\"id\": \"default\"}, \"password\": \"secret\"}}},
      \"scope\": {\"project\": {\"name\": \"$user\", \"domain\": {\"id\": \"default\"}}}}}" \
  "$OS_AUTH_URL/auth/tokens" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-subject-token" {print $2}')
[ -n "$token" ] || { echo "no token for $user from $OS_AUTH_URL" >&2; exit 1; }
# Something to find: a template and a cluster, so that generated idents sometimes hit.
curl -sf -o /dev/null -H "X-Auth-Token: $token" -H 'Content-Type: application/json' \
  -d '{"name": "st-tmpl", "coe": "kubernetes", "image_id": "fedora-coreos-40",
       "external_network_id": "public", "flavor_id": "m1.small", "master_flavor_id": "m1.small"}' \
  "$api/v1/clustertemplates"

report=$dir/schemathesis
mkdir -p "$report"
echo "== schemathesis against $api (user $user, ${SCHEMATHESIS_MAX_EXAMPLES:-15} examples per operation) =="
set +e
timeout "${SCHEMATHESIS_TIME_LIMIT:-600}" "$venv/bin/st" --no-color run "$api/v1/openapi.json" \
  --checks not_a_server_error \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-15}" \
  --header "X-Auth-Token: $token" \
  --request-timeout 30 \
  --workers 1 \
  --generation-deterministic \
  --report junit --report-dir "$report" \
  2>&1 | tee "$report/output.txt"
rc=${PIPESTATUS[0]}
set -e
if [ "$rc" = 124 ]; then echo "schemathesis: time limit reached" >&2; fi
exit "$rc"
