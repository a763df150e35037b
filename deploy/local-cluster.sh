#!/usr/bin/env bash
# The `magnum dev` topology as separate processes, so that any one of them can be killed:
# cloud-sim + 3 conductors + 1 API node on 127.0.0.1.
#
#   deploy/local-cluster.sh up DIR        start (bootstraps on first start), write DIR/cluster.json + DIR/openrc
#   deploy/local-cluster.sh down DIR      stop every process listed in DIR/cluster.json, all at
#                                         once (MAGNUM_STOP_SIGNAL=KILL: no graceful stop)
#   deploy/local-cluster.sh status DIR    running/stopped per process
#   deploy/local-cluster.sh start DIR ROLE [ID]   (re)start one process, e.g. `start DIR conductor 2`
#   deploy/local-cluster.sh stop DIR ROLE [ID] [SIGNAL]   stop one (default SIGTERM; KILL for a crash)
#   deploy/local-cluster.sh add DIR ID    start conductor ID (> 3) and add it with `magnum manage conductor add`
#
# Environment: MAGNUM_BIN (default: the workspace's target/debug/magnum, built if missing),
# MAGNUM_PORT_BASE (default 21000), MAGNUM_SHARDS (default 16), MAGNUM_POLL_MS (Heat poll, default 1000),
# MAGNUM_READY_TIMEOUT_S (how long `up` waits for every group to have a leader, default 60),
# MAGNUM_SIM_TIME_SCALE (cloud-sim latency multiplier, default 1.0), MAGNUM_RAFT_ARGS (extra conductor
# flags, e.g. "--election-min-ms 400 --election-max-ms 800"), MAGNUM_SIM_ARGS (extra cloud-sim flags, e.g.
# "--heat-url http://127.0.0.1:18004/v1/admin" to drive a real Heat), MAGNUM_SIM_STATE (0: cloud-sim
# without a state file, see sim_state_args), RUST_LOG.
# Failpoints (conductor/src/failpoints.rs): MAGNUM_FAILPOINTS reaches the processes this call starts,
# e.g. `MAGNUM_FAILPOINTS=create:StackCreated:after local-cluster.sh start DIR conductor 2` arms only
# conductor 2 (a later plain `start` runs it without). MAGNUM_FAILPOINT_FILES=1 at first `up` makes
# conductor ID read its points from DIR/conductor-ID.failpoints at every site (absent = none), so a
# running leader can be armed and disarmed without a restart.
# Mutual TLS: the first `up` makes a CA and one certificate per process under DIR/tls (magnum manage
# certs), and every internal port runs strict; DIR/openrc points `magnum manage` at the operator's.
# MAGNUM_TLS=0 at first `up` runs the internal plane in plain HTTP instead (`--internal-tls plain`).
# Real Keystone: MAGNUM_KEYSTONE=real at first `up` (kept in DIR/keystone.env for later calls)
# starts Keystone 30 with the peers toolkit (PEERS_TOOLS, default ../shared/tools/peers;
# PEERS_KEYSTONE_PORT, PEERS_ADMIN_PASSWORD), creates there (idempotently) projects service,
# demo, alt_demo, users magnum and cloud-sim (admin on service), demo (member on demo), reader
# (reader on demo), alt_demo (member on alt_demo), all with password `secret`, the trustee domain
# magnum, and the catalog in region local-cluster-BASE (identity, container-infra -> the API,
# orchestration/compute/image/network -> cloud-sim); every process authenticates there, cloud-sim
# validates the services' tokens there, and floating IPs come from MAGNUM_SIM_FLOATING_IP_RANGE
# (default there 127.24.4.0/24, in sim mode cloud-sim's 172.24.4.0/24). `down` removes the
# region's endpoints (Keystone itself keeps running); DIR/openrc-{demo,reader,alt_demo} are the
# test users' credentials.
# Private hosts (chaos-tests/netns.sh): MAGNUM_NETNS=PREFIX and MAGNUM_NETNS_SUBNET=A.B.C at first
# `up` (kept in DIR/netns.env) run conductor ID in namespace PREFIX-cID at A.B.C.(10+ID); cloud-sim
# and the API node listen on A.B.C.1, and every call of this script must run in PREFIX-hub.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
host=127.0.0.1
base=${MAGNUM_PORT_BASE:-21000}
shards=${MAGNUM_SHARDS:-16}
poll_ms=${MAGNUM_POLL_MS:-1000}
time_scale=${MAGNUM_SIM_TIME_SCALE:-1.0}
# The bootstrap voters; conductors added later are found by their command files.
first_nodes=(1 2 3)
nodes=(1 2 3)

usage() { sed -n '2,40p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

# Every conductor of DIR: the first three plus any added one.
load_nodes() {
  local f id
  nodes=("${first_nodes[@]}")
  for f in "$1"/conductor-*.cmd; do
    [ -e "$f" ] || continue
    id=${f##*/conductor-}; id=${id%.cmd}
    [[ " ${nodes[*]} " == *" $id "* ]] || nodes+=("$id")
  done
}

bin() {
  if [ -n "${MAGNUM_BIN:-}" ]; then echo "$MAGNUM_BIN"; return; fi
  local b="$root/target/debug/magnum"
  if [ ! -x "$b" ]; then (cd "$root" && cargo build -q -p magnum-deploy) >&2; fi
  echo "$b"
}

# ---- Private hosts: conductor ID's address and the command prefix that runs it in its namespace.
netns_env() { echo "$1/netns.env"; }
netns_load() {
  [ -f "$(netns_env "$1")" ] || return 0
  # shellcheck disable=SC1090
  . "$(netns_env "$1")"
  host=$NETNS_SUBNET.1
}
node_host() { if [ -n "${NETNS_PREFIX:-}" ]; then echo "$NETNS_SUBNET.$((10 + $1))"; else echo "$host"; fi; }
node_exec() { if [ -n "${NETNS_PREFIX:-}" ]; then echo "ip netns exec $NETNS_PREFIX-c$1 "; fi; }

# TLS is on unless this DIR was brought up with MAGNUM_TLS=0 (or by a release before TLS).
tls_on() { [ -d "$1/tls/ca" ]; }

# The CA and a certificate for NAME (conductor-ID, api, operator), each made once.
ensure_cert() {
  local dir=$1 name=$2 role id
  [ -f "$dir/tls/$name/node.crt" ] && return 0
  [ -f "$dir/tls/ca/ca.key" ] || "$(bin)" manage certs init --ca-dir "$dir/tls/ca" >/dev/null
  local addr=$host
  case $name in
    conductor-*) role=conductor; id=${name#conductor-}; addr=$(node_host "$id") ;;
    *) role=$name; id=local ;;
  esac
  "$(bin)" manage certs issue --ca-dir "$dir/tls/ca" --role "$role" --name "$id" \
    --out "$dir/tls/$name" --host "$addr" --host localhost >/dev/null
}

# The internal-plane flags of process NAME.
tls_args() {
  if tls_on "$1"; then ensure_cert "$1" "$2"; echo "--tls-dir $1/tls/$2"; else echo "--internal-tls plain"; fi
}

# curl of an internal URL (scheme-less host:port/path), with the operator's certificate if TLS is on.
icurl() {
  local dir=$1 target=$2
  if tls_on "$dir"; then
    curl -fsS --cacert "$dir/tls/operator/ca.crt" --cert "$dir/tls/operator/node.crt" \
      --key "$dir/tls/operator/node.key" "https://$target"
  else
    curl -fsS "http://$target"
  fi
}

sim_port() { echo $((base)); }
api_port() { echo $((base + 11)); }
raft_port() { echo $((base + 100 + $1)); }
svc_port() { echo $((base + 200 + $1)); }

# The bootstrap voters, plus the node itself when it joins later.
peers_args() {
  local a=() n self=${1:-}
  for n in "${first_nodes[@]}"; do a+=(--peer "$n=$(node_host "$n"):$(raft_port "$n")@$(node_host "$n"):$(svc_port "$n")"); done
  if [ -n "$self" ] && [[ " ${first_nodes[*]} " != *" $self "* ]]; then
    a+=(--peer "$self=$(node_host "$self"):$(raft_port "$self")@$(node_host "$self"):$(svc_port "$self")")
  fi
  echo "${a[@]}"
}

# ---- Keystone: cloud-sim's own (default), or the real one (MAGNUM_KEYSTONE=real, kept in
# DIR/keystone.env so that later calls on DIR use what `up` chose).
peers_tools() { echo "${PEERS_TOOLS:-$root/../shared/tools/peers}"; }
ks_env() { echo "$1/keystone.env"; }
ks_real() { [ -f "$(ks_env "$1")" ]; }
# VAR from DIR/keystone.env.
ks_get() { sed -n "s/^$2=//p" "$(ks_env "$1")"; }

ks_record() {
  local dir=$1
  {
    echo "url=http://$host:${PEERS_KEYSTONE_PORT:-15000}/v3"
    echo "region=local-cluster-$base"
    echo "floating=${MAGNUM_SIM_FLOATING_IP_RANGE:-127.24.4.0/24}"
  } >"$(ks_env "$dir")"
}

# Keystone 30 from the peers toolkit (installed and started if needed; left running).
ks_start() {
  local dir=$1 t verb
  t=$(peers_tools)
  mkdir -p "$dir/logs"
  for verb in install up; do
    bash "$t/peers.sh" "$verb" keystone >>"$dir/logs/peers.log" 2>&1 || {
      tail -n 20 "$dir/logs/peers.log" >&2
      echo "peers.sh $verb keystone failed (PEERS_TOOLS=$t)" >&2
      return 1
    }
  done
}

# `setup` (idempotent: users, projects, domain, the region's catalog) or `teardown` (the region's
# endpoints and the region) in the real Keystone, with its admin.
ks_catalog() {
  local dir=$1 action=$2
  KS_URL=$(ks_get "$dir" url) KS_REGION=$(ks_get "$dir" region) KS_ACTION=$action \
    KS_ADMIN_PASSWORD=${PEERS_ADMIN_PASSWORD:-secret} KS_SIM=http://$host:$(sim_port) \
    KS_API=http://$host:$(api_port)/v1 python3 - <<'PY'
import json, os, sys, urllib.error, urllib.request

url, region, action = os.environ["KS_URL"].rstrip("/"), os.environ["KS_REGION"], os.environ["KS_ACTION"]
sim, api = os.environ["KS_SIM"], os.environ["KS_API"]
PASSWORD = "secret"

def call(method, path, body=None, token=None, ok=(200, 201, 204)):
    req = urllib.request.Request(url + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            data = r.read()
            return r.status, r.headers, json.loads(data) if data else {}
    except urllib.error.HTTPError as e:
        if e.code in ok:
            return e.code, e.headers, {}
        sys.exit("keystone: %s %s -> %s %s" % (method, path, e.code, e.read()[:300]))
    except OSError as e:
        sys.exit("keystone: %s %s: %s" % (method, url + path, e))

def login(user, password, project=None):
    auth = {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}}}
    if project:
        auth["scope"] = {"project": {"name": project, "domain": {"id": "default"}}}
    status, hdrs, _ = call("POST", "/auth/tokens?nocatalog", {"auth": auth}, ok=(201, 401))
    return hdrs["X-Subject-Token"] if status == 201 else None

tok = login("admin", os.environ["KS_ADMIN_PASSWORD"], "admin")
if not tok:
    sys.exit("keystone: the admin password was refused (PEERS_ADMIN_PASSWORD)")

def one(path, key):
    items = call("GET", path, token=tok)[2][key]
    return items[0] if items else None

if action == "teardown":
    for ep in call("GET", "/endpoints?region_id=" + region, token=tok)[2]["endpoints"]:
        call("DELETE", "/endpoints/" + ep["id"], token=tok, ok=(204, 404))
    call("DELETE", "/regions/" + region, token=tok, ok=(204, 404))
    sys.exit(0)

if call("GET", "/regions/" + region, token=tok, ok=(200, 404))[0] == 404:
    call("POST", "/regions", {"region": {"id": region, "description": "deploy/local-cluster.sh"}}, token=tok)
roles = {r["name"]: r["id"] for r in call("GET", "/roles", token=tok)[2]["roles"]}

def project(name):
    p = one("/projects?domain_id=default&name=" + name, "projects")
    return p or call("POST", "/projects", {"project": {"name": name, "domain_id": "default"}}, token=tok)[2]["project"]

def user(name, grants):
    u = one("/users?domain_id=default&name=" + name, "users")
    if not u:
        u = call("POST", "/users", {"user": {"name": name, "domain_id": "default", "password": PASSWORD}}, token=tok)[2]["user"]
    elif not login(name, PASSWORD):
        # Only when needed: a password change revokes the user's tokens.
        call("PATCH", "/users/" + u["id"], {"user": {"password": PASSWORD}}, token=tok)
    for proj, role in grants:
        call("PUT", "/projects/%s/users/%s/roles/%s" % (proj["id"], u["id"], roles[role]), token=tok)

service, demo, alt = project("service"), project("demo"), project("alt_demo")
user("magnum", [(service, "admin")])
user("cloud-sim", [(service, "admin")])
user("demo", [(demo, "member")])
user("reader", [(demo, "reader")])
user("alt_demo", [(alt, "member")])
if not one("/domains?name=magnum", "domains"):
    call("POST", "/domains", {"domain": {"name": "magnum", "description": "Magnum cluster trustees"}}, token=tok)

names = {"identity": "keystone", "container-infra": "magnum", "orchestration": "heat",
         "compute": "nova", "image": "glance", "network": "neutron"}
catalog = {"identity": url, "container-infra": api,
           "orchestration": sim + "/heat-api/v1/%(tenant_id)s",
           "compute": sim + "/compute/v2.1", "image": sim + "/image", "network": sim + "/networking"}
for stype, target in catalog.items():
    svc = one("/services?type=" + stype, "services")
    if not svc:
        svc = call("POST", "/services", {"service": {"type": stype, "name": names[stype], "enabled": True}}, token=tok)[2]["service"]
    for iface in ("public", "internal"):
        ep = one("/endpoints?service_id=%s&interface=%s&region_id=%s" % (svc["id"], iface, region), "endpoints")
        if not ep:
            call("POST", "/endpoints", {"endpoint": {"service_id": svc["id"], "interface": iface,
                                                     "region_id": region, "url": target}}, token=tok)
        elif ep["url"] != target:
            call("PATCH", "/endpoints/" + ep["id"], {"endpoint": {"url": target}}, token=tok)
print("keystone: %s ready in %s (region %s)" % (action, url, region))
PY
}

auth_args() {
  if ks_real "$1"; then
    echo --auth-url "$(ks_get "$1" url)" --service-user magnum --service-password secret \
      --service-project service --service-domain Default --region "$(ks_get "$1" region)"
    return
  fi
  echo --auth-url "http://$host:$(sim_port)/identity/v3" --service-user magnum --service-password secret \
    --service-project service --service-domain Default
}

# cloud-sim's flags for the real Keystone (its own Keystone otherwise).
sim_ks_args() {
  if ks_real "$1"; then
    echo --keystone-url "$(ks_get "$1" url)" --keystone-user cloud-sim --keystone-password secret \
      --keystone-project service --keystone-domain Default --floating-ip-range "$(ks_get "$1" floating)"
  elif [ -n "${MAGNUM_SIM_FLOATING_IP_RANGE:-}" ]; then
    echo --floating-ip-range "$MAGNUM_SIM_FLOATING_IP_RANGE"
  fi
}

# cloud-sim keeps its state in one JSON file, rewritten after changes: what lets it restart,
# but a cost that grows with every stack. MAGNUM_SIM_STATE=0 at first `up` keeps it in memory
# only (the scale bench: 100,000 stacks, cloud-sim never restarted).
sim_state_args() {
  [ "${MAGNUM_SIM_STATE:-1}" = 0 ] || echo "--state-file $1/cloud-sim/state.json"
}

# Writes DIR/ROLE[-ID].cmd: the exact command line, so a stopped process restarts identically.
write_cmd() {
  local dir=$1 role=$2 id=${3:-} b; b=$(bin)
  local name=$role${id:+-$id}
  case $role in
    cloud-sim)
      echo "$b cloud-sim --listen $host:$(sim_port) --container-infra-url http://$host:$(api_port)/v1 --time-scale $time_scale $(sim_state_args "$dir") $(sim_ks_args "$dir") ${MAGNUM_SIM_ARGS:-}" ;;
    conductor)
      local fp=""
      [ "${MAGNUM_FAILPOINT_FILES:-0}" = 1 ] && fp="env MAGNUM_FAILPOINTS=@$dir/conductor-$id.failpoints "
      echo "$(node_exec "$id")$fp$b conductor --node-id $id --data-dir $dir/conductor-$id --raft-listen $(node_host "$id"):$(raft_port "$id") --service-listen $(node_host "$id"):$(svc_port "$id") $(peers_args "$id") --shards $shards --poll-interval-ms $poll_ms --cert-key-file $dir/cert.key --trustee-domain magnum --cluster-api-url http://$host:$(sim_port)/sim/k8s/{stack_id} $(tls_args "$dir" "conductor-$id") ${MAGNUM_RAFT_ARGS:-} $(auth_args "$dir")" ;;
    api)
      local c=() n
      for n in "${nodes[@]}"; do c+=(--conductor "$(node_host "$n"):$(svc_port "$n")"); done
      echo "$b api --listen $host:$(api_port) --public-url http://$host:$(api_port) ${c[*]} $(tls_args "$dir" api) $(auth_args "$dir")" ;;
  esac >"$dir/$name.cmd"
}

pid_of() { local f="$1/$2.pid"; [ -f "$f" ] && cat "$f" || true; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

start_one() {
  local dir=$1 role=$2 id=${3:-} extra=${4:-}
  local name=$role${id:+-$id}
  alive "$(pid_of "$dir" "$name")" && return 0
  [ -f "$dir/$name.cmd" ] || write_cmd "$dir" "$role" "$id"
  mkdir -p "$dir/logs" "$dir/cloud-sim"
  # The key that seals cluster private keys, shared by every conductor of DIR.
  [ -f "$dir/cert.key" ] || (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/cert.key")
  # shellcheck disable=SC2046
  nohup $(cat "$dir/$name.cmd") $extra >>"$dir/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/$name.pid"
}

stop_one() {
  local dir=$1 role=$2 id=${3:-} sig=${4:-TERM}
  local name=$role${id:+-$id} pid
  pid=$(pid_of "$dir" "$name")
  if alive "$pid"; then
    kill -s "$sig" "$pid" 2>/dev/null || true
    # Up to 10 s for a clean stop (every replica closed) before SIGKILL.
    for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/$name.pid"
}

# Stops several processes at once: SIGTERM (MAGNUM_STOP_SIGNAL) to all, up to 10 s for them
# together, then SIGKILL.
# A conductor's graceful stop hands its leaderships to its peers; when the peers stop too that
# is moot, and stopping one after another waits out each one's hand-off in turn.
stop_all() {
  local dir=$1 name pid pids=() names=()
  shift
  for name in "$@"; do
    pid=$(pid_of "$dir" "$name")
    if alive "$pid"; then
      kill -s "${MAGNUM_STOP_SIGNAL:-TERM}" "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    names+=("$name")
  done
  for _ in $(seq 1 100); do
    local left=0
    for pid in "${pids[@]}"; do alive "$pid" && left=1; done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do alive "$pid" && kill -9 "$pid" 2>/dev/null; done
  for name in "${names[@]}"; do rm -f "$dir/$name.pid"; done
  return 0
}

wait_http() {
  local url=$1 what=$2
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "timed out waiting for $what ($url)" >&2
  return 1
}

# Every group has a leader and the bootstrap record is committed.
wait_ready() {
  local dir=$1 n deadline=$((SECONDS + ${MAGNUM_READY_TIMEOUT_S:-60}))
  while [ $SECONDS -lt $deadline ]; do
    local ok=1
    for n in "${nodes[@]}"; do
      local t
      t=$(icurl "$dir" "$(node_host "$n"):$(svc_port "$n")/internal/v1/topology" 2>/dev/null) || { ok=0; break; }
      echo "$t" | grep -q '"leader":null' && { ok=0; break; }
      # The bootstrap record (shard count, placement) is committed too.
      echo "$t" | grep -q '"shards":0,' && { ok=0; break; }
    done
    [ $ok = 1 ] && return 0
    sleep 0.2
  done
  echo "timed out waiting for raft groups to elect leaders" >&2
  return 1
}

write_json() {
  local dir=$1 first=1 n
  {
    echo '{"processes": ['
    entry() {
      [ $first = 1 ] || echo ','
      first=0
      printf '  {"role": "%s", "node_id": %s, "pid": %s, "addresses": %s}' "$1" "$2" "${3:-null}" "$4"
    }
    entry cloud-sim null "$(pid_of "$dir" cloud-sim)" "{\"http\": \"$host:$(sim_port)\"}"
    for n in "${nodes[@]}"; do
      entry conductor "$n" "$(pid_of "$dir" "conductor-$n")" \
        "{\"raft\": \"$(node_host "$n"):$(raft_port "$n")\", \"service\": \"$(node_host "$n"):$(svc_port "$n")\"}"
    done
    entry api null "$(pid_of "$dir" api)" "{\"http\": \"$host:$(api_port)\"}"
    printf '\n], "dir": "%s", "shards": %s, "openrc": "%s/openrc"}\n' "$dir" "$shards" "$dir"
  } >"$dir/cluster.json"
}

# openrc as USER on PROJECT (PASSWORD) against Keystone AUTH_URL in REGION.
openrc_for() {
  local dir=$1 user=$2 password=$3 project=$4 auth_url=$5 region=$6 c=() n
  for n in "${nodes[@]}"; do c+=("$(node_host "$n"):$(svc_port "$n")"); done
  cat <<RC
export OS_AUTH_TYPE=password
export OS_AUTH_URL=$auth_url
export OS_IDENTITY_API_VERSION=3
export OS_USERNAME=$user
export OS_PASSWORD=$password
export OS_PROJECT_NAME=$project
export OS_USER_DOMAIN_NAME=Default
export OS_PROJECT_DOMAIN_NAME=Default
export OS_REGION_NAME=$region
export MAGNUM_CONDUCTORS=$(IFS=,; echo "${c[*]}")
export MAGNUM_CLOUD_SIM=http://$host:$(sim_port)
export MAGNUM_API=http://$host:$(api_port)/v1
RC
  if tls_on "$dir"; then echo "export MAGNUM_TLS_DIR=$dir/tls/operator"; fi
}

write_openrc() {
  local dir=$1 u p
  if ks_real "$dir"; then
    local url region
    url=$(ks_get "$dir" url); region=$(ks_get "$dir" region)
    openrc_for "$dir" admin "${PEERS_ADMIN_PASSWORD:-secret}" admin "$url" "$region" >"$dir/openrc"
    for u in demo:demo reader:demo alt_demo:alt_demo; do
      openrc_for "$dir" "${u%%:*}" secret "${u##*:}" "$url" "$region" >"$dir/openrc-${u%%:*}"
    done
  else
    openrc_for "$dir" admin secret admin "http://$host:$(sim_port)/identity/v3" RegionOne >"$dir/openrc"
  fi
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || usage
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
load_nodes "$dir"
if [ "$cmd" = up ] && [ -n "${MAGNUM_NETNS:-}" ] && [ ! -f "$dir/cloud-sim.cmd" ]; then
  printf 'NETNS_PREFIX=%s\nNETNS_SUBNET=%s\n' "$MAGNUM_NETNS" "${MAGNUM_NETNS_SUBNET:?MAGNUM_NETNS_SUBNET}" >"$(netns_env "$dir")"
fi
netns_load "$dir"

case $cmd in
  up)
    # A fresh DIR gets TLS unless MAGNUM_TLS=0; an existing one keeps what it had.
    if [ ! -d "$dir/conductor-1" ] && [ "${MAGNUM_TLS:-1}" != 0 ]; then
      mkdir -p "$dir/tls"; ensure_cert "$dir" operator
    fi
    # Likewise the Keystone: chosen at the first `up`.
    if [ ! -d "$dir/conductor-1" ] && [ ! -f "$dir/cloud-sim.cmd" ]; then
      case ${MAGNUM_KEYSTONE:-sim} in
        real) ks_record "$dir" ;;
        sim) rm -f "$(ks_env "$dir")" ;;
        *) echo "MAGNUM_KEYSTONE must be sim or real" >&2; exit 2 ;;
      esac
    elif [ "${MAGNUM_KEYSTONE:-}" = real ] && ! ks_real "$dir"; then
      echo "$dir was first brought up with cloud-sim's Keystone; MAGNUM_KEYSTONE=real needs a new DIR" >&2; exit 2
    fi
    if ks_real "$dir"; then ks_start "$dir"; ks_catalog "$dir" setup; fi
    start_one "$dir" cloud-sim
    wait_http "http://$host:$(sim_port)/sim/health" cloud-sim
    for n in "${nodes[@]}"; do
      boot=""
      [ -d "$dir/conductor-$n/raft" ] || boot="--bootstrap"
      start_one "$dir" conductor "$n" "$boot"
    done
    wait_ready "$dir"
    start_one "$dir" api
    wait_http "http://$host:$(api_port)/" api
    write_json "$dir"; write_openrc "$dir"
    echo "up: $dir/cluster.json; source $dir/openrc"
    ;;
  down)
    stop_all "$dir" api $(printf 'conductor-%s ' "${nodes[@]}") cloud-sim
    # The shared Keystone keeps no endpoint of a stopped deployment.
    if ks_real "$dir"; then ks_catalog "$dir" teardown || true; fi
    ;;
  status)
    for name in cloud-sim $(printf 'conductor-%s ' "${nodes[@]}") api; do
      pid=$(pid_of "$dir" "$name")
      if alive "$pid"; then echo "$name running pid $pid"; else echo "$name stopped"; fi
    done
    ;;
  start) start_one "$dir" "${3:?role}" "${4:-}"; write_json "$dir" ;;
  add)
    id=${3:?id}
    [[ " ${first_nodes[*]} " != *" $id "* ]] || { echo "conductor $id is a bootstrap node" >&2; exit 2; }
    [[ " ${nodes[*]} " == *" $id "* ]] || nodes+=("$id")
    start_one "$dir" conductor "$id"
    for _ in $(seq 1 300); do icurl "$dir" "$(node_host "$id"):$(svc_port "$id")/internal/v1/topology" >/dev/null 2>&1 && break; sleep 0.1; done
    write_json "$dir"; write_openrc "$dir"
    tls_on "$dir" && export MAGNUM_TLS_DIR=$dir/tls/operator
    MAGNUM_CONDUCTORS="$(node_host 1):$(svc_port 1),$(node_host 2):$(svc_port 2),$(node_host 3):$(svc_port 3)" \
      "$(bin)" manage conductor add "$id" --raft "$(node_host "$id"):$(raft_port "$id")" --service "$(node_host "$id"):$(svc_port "$id")"
    ;;
  stop) stop_one "$dir" "${3:?role}" "${4:-}" "${5:-TERM}"; write_json "$dir" ;;
  *) usage ;;
esac
