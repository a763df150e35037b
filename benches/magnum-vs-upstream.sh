#!/usr/bin/env bash
# API throughput and latency side by side, same clients, same arguments, same run, against
# upstream Magnum 23 (peers.sh: gunicorn, 1 sync worker, sqlite, no-op driver) and against ours
# (deploy/local-cluster.sh: cloud-sim, 3 conductors, 1 API node, release build):
#   - the peers toolkit's bench_magnum.py: cluster templates (list, get, post, delete);
#   - benches/bench_clusters.py, its counterpart for cluster-list and cluster-show (seeds 10
#     clusters, waits for CREATE_COMPLETE, measures, deletes them).
# Each runs with a new TCP connection per request, and the reads once more with --keepalive.
# Then a table of ratios (ours / upstream).
#
# usage: benches/magnum-vs-upstream.sh [OUT_DIR] [-n N] [-c C] [--n-write W]
#   OUT_DIR defaults to target/bench/magnum-vs-upstream; flags default to -n 200 -c 4 --n-write 40
#   (-n and -c also go to bench_clusters.py).
# Output: upstream.json, ours.json, results.json (ratios), results.md, the raw *-*.json, logs/.
# Ours listens on 127.0.0.1 ports BENCH_PORT_BASE (default 31800) .. +205.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
peers=${PEERS_TOOLS:-$root/../shared/tools/peers}
out=${1:-target/bench/magnum-vs-upstream}
[ $# -gt 0 ] && shift
flags=("$@")
[ ${#flags[@]} -gt 0 ] || flags=(-n 200 -c 4 --n-write 40)
# bench_clusters.py takes -n and -c only.
cflags=()
for ((i = 0; i < ${#flags[@]}; i++)); do
  case ${flags[i]} in -n | -c) cflags+=("${flags[i]}" "${flags[i + 1]}") ;; esac
done
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
py="${PEERS_HOME:-$HOME/.cache/magnum-peers}/venvs/osc/bin/python"

bash "$peers/peers.sh" install magnum
# Upstream starts from an empty database, as ours does: its no-op driver can leave rows of an
# earlier run behind (deletes that never finish), which would count against the quota and
# slow its lists.
bash "$peers/peers.sh" down magnum >/dev/null 2>&1 || true
rm -f "${PEERS_HOME:-$HOME/.cache/magnum-peers}"/magnum/magnum.db*
bash "$peers/peers.sh" up magnum
cargo build --release -q -p magnum-deploy
dir=$(mktemp -d)
export MAGNUM_BIN=${CARGO_TARGET_DIR:-$root/target}/release/magnum MAGNUM_PORT_BASE=${BENCH_PORT_BASE:-31800}
trap 'deploy/local-cluster.sh down "$dir" >/dev/null 2>&1 || true; cp -r "$dir/logs/." "$out/logs/" 2>/dev/null || true; rm -rf "$dir"' EXIT
deploy/local-cluster.sh up "$dir" >"$out/logs/up.txt"
# shellcheck disable=SC1091
source "$dir/openrc"
# After a fresh start the placement controller still moves shard leaders for a while; each move
# costs the API a redirect. Measure once every group has had the same leader for 5 s (≤ 90 s).
"$py" - "$(awk -F'"service": "' 'NF > 1 { split($2, a, "\""); print a[1]; exit }' "$dir/cluster.json")" <<'EOF'
import json, sys, time, urllib.request
url, last, since, end = f"http://{sys.argv[1]}/internal/v1/topology", None, time.monotonic(), time.monotonic() + 90
while time.monotonic() < end:
    t = json.load(urllib.request.urlopen(url, timeout=5))
    leaders = [g.get("leader") for g in t["groups"]]
    if leaders != last or None in leaders:
        last, since = leaders, time.monotonic()
    elif time.monotonic() - since >= 5:
        break
    time.sleep(0.5)
print("shard leaders settled:", last)
EOF
token=$(curl -fsS -i -H 'Content-Type: application/json' -d '{"auth": {"identity": {"methods": ["password"],
  "password": {"user": {"name": "admin", "domain": {"name": "Default"}, "password": "secret"}}},
  "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}}' "$OS_AUTH_URL/auth/tokens" |
  awk 'tolower($1) == "x-subject-token:" { print $2 }' | tr -d '\r')

# bench NAME URL [client flags]: both clients, both connection modes, into $out/NAME-*.json.
bench() {
  local name=$1 url=$2
  shift 2
  "$py" "$peers/bench_magnum.py" --url "$url" "$@" "${flags[@]}" --json "$out/$name-templates.json"
  "$py" "$peers/bench_magnum.py" --url "$url" "$@" "${flags[@]}" --ops list,get --keepalive \
    --json "$out/$name-templates-ka.json"
  # One seeding for both connection modes: upstream's no-op driver may never finish deleting
  # seeds, and a second seeding would then list more clusters there than here.
  "$py" benches/bench_clusters.py --url "$url" "$@" "${cflags[@]}" --connections new,keepalive \
    --json "$out/$name-clusters.json"
}

echo "== upstream Magnum ($(bash "$peers/peers.sh" status | awk '$1 == "magnum-api" { print $4 }')) =="
bench upstream http://127.0.0.1:19511/v1
echo "== ours ($MAGNUM_API) =="
bench ours "$MAGNUM_API" --token "$token" --image fedora-coreos-40

"$py" - "$out" "${flags[*]}" <<'EOF'
import json, sys
out, flags = sys.argv[1], sys.argv[2]
PARTS = (("templates", False), ("templates-ka", True), ("clusters", None))

def rows(name):
    by = {}
    for part, ka in PARTS:
        for r in json.load(open(f"{out}/{name}-{part}.json"))["results"]:
            ka_r = r["keepalive"] if ka is None else ka
            by[(r["op"], r["mode"], ka_r)] = dict(r, keepalive=ka_r)
    json.dump({"results": list(by.values())}, open(f"{out}/{name}.json", "w"), indent=1)
    return by

u, o = rows("upstream"), rows("ours")
table, res = [], []
for key in u:
    if key not in o:
        continue
    a, b = u[key], o[key]
    r = {"operation": key[0], "mode": key[1], "keepalive": key[2], "threads": b.get("threads"),
         "upstream_rps": a["req_per_s"], "ours_rps": b["req_per_s"],
         "upstream_p50_ms": a["p50_ms"], "ours_p50_ms": b["p50_ms"],
         "upstream_p99_ms": a["p99_ms"], "ours_p99_ms": b["p99_ms"],
         "rps_ratio": b["req_per_s"] / a["req_per_s"] if a["req_per_s"] else None,
         "p50_ratio": a["p50_ms"] / b["p50_ms"] if b["p50_ms"] else None,
         "errors": (a.get("errors", 0), b.get("errors", 0))}
    res.append(r)
    table.append(f"| {key[0]} | {key[1]} | {'keep-alive' if key[2] else 'new'} | {r['threads']} | "
                 f"{a['req_per_s']:.1f} | {b['req_per_s']:.1f} | **{r['rps_ratio']:.1f}×** | "
                 f"{a['p50_ms']:.2f} | {b['p50_ms']:.2f} | {a['p99_ms']:.1f} | {b['p99_ms']:.1f} | "
                 f"{r['errors'][0]} / {r['errors'][1]} |")
json.dump({"flags": flags, "rows": res}, open(f"{out}/results.json", "w"), indent=1)
md = ["| operation | mode | connection | threads | upstream req/s | ours req/s | ours / upstream "
      "| upstream p50 ms | ours p50 ms | upstream p99 ms | ours p99 ms | errors (up / ours) |",
      "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"] + table
open(f"{out}/results.md", "w").write(f"flags: {flags}\n\n" + "\n".join(md) + "\n")
print("\n".join(md))
EOF
