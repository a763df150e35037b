#!/usr/bin/env bash
# Replication benchmark (issue 3): committed ~256-byte writes on 3 local conductors (1 shard and
# all shards) side by side with a 3-member etcd on loopback, with 1/16/64 concurrent clients;
# then SIGKILL of a shard leader under load, 20 times.
#
#   benches/raft-vs-etcd.sh [OUT_DIR] [extra raft_vs_etcd flags...]
#
# OUT_DIR defaults to target/bench/raft-vs-etcd; it receives results.json, results.md,
# throughput.png and logs/. Installs etcd-server and fonts-dejavu-core from Debian if missing,
# builds `magnum` and the bench in release, starts everything on 127.0.0.1 ports
# BENCH_PORT_BASE..+263 (default 31500) and stops all of it on exit, failure included.
# MAGNUM_RAFT_ARGS (e.g. "--election-min-ms 300 --election-max-ms 450") reaches the conductors;
# the report states the timeouts in force. Takes about 6 minutes on 2 cores (plus the build).
# The conductors run mutual TLS as deployed, and etcd does too (between members and to its
# clients); MAGNUM_TLS=0 measures both in plain HTTP, ETCD_TLS=0 etcd alone.
# SHARDS (default 16) is the deployment's shard count: "all shards" spreads writes over them.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Where cargo builds (honours CARGO_TARGET_DIR, so that a second worktree can be benched).
bin=${CARGO_TARGET_DIR:-$root/target}/release
out=$root/target/bench/raft-vs-etcd
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then out=$1; shift; fi
base=${BENCH_PORT_BASE:-31500}
# local-cluster.sh takes base..base+203; etcd lives above that.
etcd_base=$((base + 250))
host=127.0.0.1

need_apt=()
command -v etcd >/dev/null || need_apt+=(etcd-server)
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || need_apt+=(fonts-dejavu-core)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} from Debian" >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
font=$(dpkg -L fonts-dejavu-core | grep '/DejaVuSans\.ttf$' | head -n1)

(cd "$root" && cargo build --release -q -p magnum-deploy --bin magnum -p magnum-benches --bin raft_vs_etcd)

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$out/work
rm -rf "$work"
mkdir -p "$work" "$out/logs"

etcd_pids=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  MAGNUM_BIN="$bin/magnum" "$root/deploy/local-cluster.sh" down "$work/magnum" >/dev/null 2>&1 || true
  for p in "${etcd_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${etcd_pids[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  cp -f "$work"/magnum/logs/*.log "$out/logs/" 2>/dev/null || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT INT TERM

# etcd: 3 members, default timing (heartbeat 100 ms, election 1000 ms), fsync on. Like the
# conductors, it runs mutual TLS between members and to its clients (its own CA, certificates
# made by `magnum manage certs`), unless MAGNUM_TLS=0 or ETCD_TLS=0.
etcd_tls=${ETCD_TLS:-${MAGNUM_TLS:-1}}
scheme=http etcd_tls_args=() bench_etcd_args=() curl_tls=()
if [ "$etcd_tls" != 0 ]; then
  scheme=https
  etls=$work/etcd-tls
  "$bin/magnum" manage certs init --ca-dir "$etls/ca" >/dev/null
  for n in e1 e2 e3 client; do
    role=conductor; [ "$n" = client ] && role=operator
    "$bin/magnum" manage certs issue --ca-dir "$etls/ca" --role "$role" --name "etcd-$n" \
      --out "$etls/$n" --host "$host" --host localhost >/dev/null
  done
  bench_etcd_args=(--etcd-tls-dir "$etls/client")
  curl_tls=(--cacert "$etls/client/ca.crt" --cert "$etls/client/node.crt" --key "$etls/client/node.key")
fi
cluster="" clients=()
for i in 1 2 3; do
  cluster+="${cluster:+,}e$i=$scheme://$host:$((etcd_base + 10 + i))"
  clients+=("$scheme://$host:$((etcd_base + i))")
done
for i in 1 2 3; do
  if [ "$etcd_tls" != 0 ]; then
    d=$etls/e$i
    etcd_tls_args=(--cert-file "$d/node.crt" --key-file "$d/node.key" --trusted-ca-file "$d/ca.crt" --client-cert-auth
      --peer-cert-file "$d/node.crt" --peer-key-file "$d/node.key" --peer-trusted-ca-file "$d/ca.crt" --peer-client-cert-auth)
  fi
  etcd --name "e$i" --data-dir "$work/etcd-$i" \
    --listen-client-urls "$scheme://$host:$((etcd_base + i))" --advertise-client-urls "$scheme://$host:$((etcd_base + i))" \
    --listen-peer-urls "$scheme://$host:$((etcd_base + 10 + i))" --initial-advertise-peer-urls "$scheme://$host:$((etcd_base + 10 + i))" \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token magnum-bench \
    "${etcd_tls_args[@]}" --logger zap --log-outputs stderr >"$out/logs/etcd-$i.log" 2>&1 &
  etcd_pids+=($!)
done
for _ in $(seq 1 100); do
  curl -fsS "${curl_tls[@]}" "${clients[0]}/health" 2>/dev/null | grep -q '"health":"true"' && break
  sleep 0.2
done

# Conductors with their default Raft timing unless MAGNUM_RAFT_ARGS says otherwise.
MAGNUM_BIN="$bin/magnum" MAGNUM_PORT_BASE=$base MAGNUM_SHARDS=${SHARDS:-16} \
  "$root/deploy/local-cluster.sh" up "$work/magnum" >/dev/null

# The conductors run mutual TLS unless MAGNUM_TLS=0: the bench connects as the operator.
[ -d "$work/magnum/tls/operator" ] && export MAGNUM_TLS_DIR=$work/magnum/tls/operator
endpoints=$(IFS=,; echo "${clients[*]}")
"$bin/raft_vs_etcd" \
  --out "$out" --cluster-dir "$work/magnum" --cluster-script "$root/deploy/local-cluster.sh" \
  --etcd "$endpoints" "${bench_etcd_args[@]}" --font "$font" \
  --machine "${BENCH_MACHINE:-$(nproc) cores, shared with other builds}" \
  --command "${MAGNUM_TLS:+MAGNUM_TLS=$MAGNUM_TLS }${ETCD_TLS:+ETCD_TLS=$ETCD_TLS }benches/raft-vs-etcd.sh${*:+ $*}" "$@"
