#!/usr/bin/env bash
# API throughput and latency side by side: the peers toolkit's bench_magnum.py (same client, same
# arguments, same run) against upstream Magnum 23 (peers.sh: gunicorn, 1 sync worker, sqlite,
# no-op driver) and against ours (deploy/local-cluster.sh: cloud-sim, 3 conductors, 1 API node,
# release build), then a table of ratios (ours / upstream).
#
# usage: benches/magnum-vs-upstream.sh [OUT_DIR] [bench_magnum.py flags]
#   OUT_DIR defaults to target/bench/magnum-vs-upstream; flags default to -n 200 -c 4 --n-write 40.
# Output: upstream.json, ours.json, results.json (both plus ratios), results.md, logs/.
# Ours listens on 127.0.0.1 ports BENCH_PORT_BASE (default 31800) .. +205.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
peers=${PEERS_TOOLS:-$root/../shared/tools/peers}
out=${1:-target/bench/magnum-vs-upstream}
[ $# -gt 0 ] && shift
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(-n 200 -c 4 --n-write 40)
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
py="${PEERS_HOME:-$HOME/.cache/magnum-peers}/venvs/osc/bin/python"

bash "$peers/peers.sh" install magnum
bash "$peers/peers.sh" up magnum
cargo build --release -q -p magnum-deploy
dir=$(mktemp -d)
export MAGNUM_BIN=${CARGO_TARGET_DIR:-$root/target}/release/magnum MAGNUM_PORT_BASE=${BENCH_PORT_BASE:-31800}
trap 'deploy/local-cluster.sh down "$dir" >/dev/null 2>&1 || true; cp -r "$dir/logs/." "$out/logs/" 2>/dev/null || true; rm -rf "$dir"' EXIT
deploy/local-cluster.sh up "$dir" >"$out/logs/up.txt"
# shellcheck disable=SC1091
source "$dir/openrc"
token=$(curl -fsS -i -H 'Content-Type: application/json' -d '{"auth": {"identity": {"methods": ["password"],
  "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "secret"}}},
  "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}' "$OS_AUTH_URL/auth/tokens" |
  awk 'tolower($1) == "x-subject-token:" { print $2 }' | tr -d '\r')

echo "== upstream Magnum ($(bash "$peers/peers.sh" status | awk '$1 == "magnum-api" { print $4 }')) =="
"$py" "$peers/bench_magnum.py" --url http://127.0.0.1:19511/v1 "${flags[@]}" --json "$out/upstream.json"
echo "== ours ($MAGNUM_API) =="
"$py" "$peers/bench_magnum.py" --url "$MAGNUM_API" --token "$token" --image fedora-coreos-40 \
  "${flags[@]}" --json "$out/ours.json"

"$py" - "$out" "${flags[*]}" <<'EOF'
import json, sys
out, flags = sys.argv[1], sys.argv[2]
up, ours = (json.load(open(f"{out}/{n}.json")) for n in ("upstream", "ours"))

def rows(doc):
    rs = doc["results"]  # bench_magnum.py --json: {"url", "results": [...]}
    return {(r["op"], r["mode"]): r for r in rs}

u, o = rows(up), rows(ours)
table, res = [], []
for key in u:
    if key not in o:
        continue
    a, b = u[key], o[key]
    r = {"operation": key[0], "mode": key[1], "threads": b.get("threads"),
         "upstream_rps": a["req_per_s"], "ours_rps": b["req_per_s"],
         "upstream_p50_ms": a["p50_ms"], "ours_p50_ms": b["p50_ms"],
         "upstream_p99_ms": a["p99_ms"], "ours_p99_ms": b["p99_ms"],
         "rps_ratio": b["req_per_s"] / a["req_per_s"] if a["req_per_s"] else None,
         "p50_ratio": a["p50_ms"] / b["p50_ms"] if b["p50_ms"] else None,
         "errors": (a.get("errors", 0), b.get("errors", 0))}
    res.append(r)
    table.append(f"| {key[0]} | {key[1]} | {r['threads']} | {a['req_per_s']:.1f} | {b['req_per_s']:.1f} | "
                 f"**{r['rps_ratio']:.1f}×** | {a['p50_ms']:.1f} | {b['p50_ms']:.1f} | "
                 f"{a['p99_ms']:.1f} | {b['p99_ms']:.1f} | {r['errors'][0]} / {r['errors'][1]} |")
json.dump({"flags": flags, "rows": res, "upstream": up, "ours": ours},
          open(f"{out}/results.json", "w"), indent=1)
md = ["| operation | mode | threads | upstream req/s | ours req/s | ours / upstream | upstream p50 ms | ours p50 ms | upstream p99 ms | ours p99 ms | errors (up / ours) |",
      "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"] + table
open(f"{out}/results.md", "w").write(f"bench_magnum.py {flags}\n\n" + "\n".join(md) + "\n")
print("\n".join(md))
EOF
