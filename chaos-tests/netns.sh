#!/usr/bin/env bash
# Private test hosts for the chaos suite: network namespaces joined by a bridge, so that each
# conductor has its own address and a fault can cut or thin the links of one of them.
#
#   chaos-tests/netns.sh up PREFIX SUBNET N     hub PREFIX-hub (SUBNET.1 on bridge br0: cloud-sim,
#                                               the API node and the test run here) and conductor
#                                               hosts PREFIX-c1..cN (SUBNET.(10+i)), each on a veth
#                                               to the bridge, loopback up everywhere
#   chaos-tests/netns.sh down PREFIX            kill whatever runs in PREFIX-*, delete them
#
# SUBNET is the first three octets, e.g. 10.213.7. Needs root, iproute2 and nftables (installed
# from Debian's packages if missing). Nothing outside the namespaces is touched.
set -euo pipefail

ensure_tools() {
  command -v ip >/dev/null && command -v nft >/dev/null && return 0
  apt-get update -qq && apt-get install -y -qq iproute2 nftables >/dev/null
}

spaces() { ip netns list | awk -v p="$1-" 'index($1, p) == 1 { print $1 }'; }

case ${1:-} in
  up)
    prefix=${2:?prefix}; subnet=${3:?subnet}; n=${4:?count}
    ensure_tools
    hub=$prefix-hub
    ip netns add "$hub"
    ip -n "$hub" link set lo up
    ip -n "$hub" link add br0 type bridge
    ip -n "$hub" addr add "$subnet.1/24" dev br0
    ip -n "$hub" link set br0 up
    for i in $(seq 1 "$n"); do
      ns=$prefix-c$i
      ip netns add "$ns"
      ip -n "$ns" link set lo up
      ip link add eth0 netns "$ns" type veth peer name "c$i" netns "$hub"
      ip -n "$ns" addr add "$subnet.$((10 + i))/24" dev eth0
      ip -n "$ns" link set eth0 up
      ip -n "$hub" link set "c$i" master br0
      ip -n "$hub" link set "c$i" up
      # The fault table the chaos suite fills and flushes (chaos/nemesis.rs).
      ip netns exec "$ns" nft -f - <<NFT
table inet chaos {
  chain input { type filter hook input priority 0; policy accept; }
  chain output { type filter hook output priority 0; policy accept; }
}
NFT
    done
    ;;
  down)
    prefix=${2:?prefix}
    for ns in $(spaces "$prefix"); do
      pids=$(ip netns pids "$ns" 2>/dev/null || true)
      [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
    done
    for ns in $(spaces "$prefix"); do ip netns del "$ns" 2>/dev/null || true; done
    ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
