#!/usr/bin/env bash
# Tests of the Helm chart in deploy/helm/magnum (what they check: deploy/helm/README.md, "Tests").
# No Kubernetes cluster and no `helm` binary are needed: the chart is rendered by Helm's own Go
# SDK, which the PyPI package helm-python-sdk carries as a shared library, and every object is
# validated against Kubernetes' OpenAPI schemas by kubernetes-validate (PyPI), in strict mode.
# Both are installed into a venv cached outside the repository, at
# ${PEERS_HOME:-~/.cache/magnum-peers}/venvs/helm-chart (about 400 MB: Helm and the schemas of
# every Kubernetes version). The magnum binary checks each pod's rendered configuration files;
# `cargo build -p magnum-deploy` brings it up to date first (a no-op after deploy/test.sh's).
#
# usage: deploy/helm/test.sh      (a few seconds once the venv and the binary exist)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

venv=${PEERS_HOME:-$HOME/.cache/magnum-peers}/venvs/helm-chart
pins="helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 jsonschema==4.26.0 referencing==0.37.0 PyYAML==6.0.4"
if [ "$(cat "$venv/.pins" 2>/dev/null)" != "$pins" ]; then
  python3 -c 'import ensurepip, venv' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null; }
  echo "== installing $pins into $venv =="
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086 # one argument per pin
  timeout 600 "$venv/bin/pip" install --no-input -q $pins
  echo "$pins" >"$venv/.pins"
fi

cargo build -q -p magnum-deploy
timeout 300 "$venv/bin/python" deploy/helm/check_chart.py --magnum "$root/target/debug/magnum"
