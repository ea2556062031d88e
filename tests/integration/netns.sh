#!/usr/bin/env bash
# Agents on separate hosts, simulated with network namespaces (root only;
# skipped otherwise): one agent per namespace, veth pairs into a bridge that
# lives in its own namespace, addresses 10.231.1.0/24 that exist only inside
# those namespaces. A partition made with nftables in one namespace isolates
# its agent (the majority declares it dead); once it is lifted the cluster
# heals by itself (dead members are retried) without any command.
set -u
if [ "$(id -u)" != 0 ]; then echo "skip: needs root for network namespaces"; exit 0; fi
command -v ip >/dev/null && command -v nft >/dev/null || { echo "skip: ip or nft missing"; exit 0; }
T=hmst$$
if ! ip netns add "${T}sw" 2>/dev/null; then echo "skip: cannot create network namespaces"; exit 0; fi
. "$(dirname "$0")/cluster_lib.bash"
N=4
NSLIST=("${T}sw")
netns_cleanup() {
  local ns
  cleanup
  for ns in "${NSLIST[@]}"; do ip netns del "$ns" 2>/dev/null; done
}
trap netns_cleanup EXIT
ip -n "${T}sw" link add br0 type bridge || fail "bridge"
ip -n "${T}sw" link set br0 up
ip -n "${T}sw" link set lo up
for i in $(seq 1 $N); do
  ns=${T}n$i
  ip netns add "$ns" || fail "netns $ns"
  NSLIST+=("$ns")
  ip link add "${T}v$i" type veth peer name "${T}p$i" || fail "veth $i"
  ip link set "${T}v$i" netns "$ns"
  ip link set "${T}p$i" netns "${T}sw"
  ip -n "${T}sw" link set "${T}p$i" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "${T}v$i" name eth0
  ip -n "$ns" addr add "10.231.1.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
done

pki $(seq -f 'n%g' 1 $N)
for i in $(seq 1 $N); do
  a=(--node "n$i" --bind "10.231.1.$i:7950" --data-dir "$W/d$i" --socket "$W/s$i" --profile lan
     --ca "$W/pki/ca.pub" --cert "$W/pki/n$i.cert" --node-key "$W/pki/n$i.key")
  [ "$i" -gt 1 ] && a+=(--join 10.231.1.1:7950)
  ip netns exec "${T}n$i" "$AGENT" "${a[@]}" >>"$W/log$i" 2>&1 & PID[$i]=$!
  [ "$i" = 1 ] && wait_for 10 "seed socket" test -S "$W/s1"
done
wait_for 30 "$N agents alive in every namespace" all_see alive $N 1 2 3 4
echo "$N agents in $N namespaces converged"

# partition n4 from everyone: drop all traffic to and from the other hosts
ip netns exec "${T}n4" nft -f - <<NFT || fail "nft"
table inet hmspart {
  chain in { type filter hook input priority 0; policy accept; ip saddr 10.231.1.0/24 ip saddr != 10.231.1.4 drop; }
  chain out { type filter hook output priority 0; policy accept; ip daddr 10.231.1.0/24 ip daddr != 10.231.1.4 drop; }
}
NFT
t0=$(now)
wait_for 30 "n4 declared dead by n1-n3" all_see dead 1 1 2 3
echo "partition detected by the majority in $(elapsed "$t0") s"
# The isolated side's view is the membership core's choice (it may withhold
# accusations when no relay answers at all); it is reported, not asserted.
echo "n4 sees: $(count_status 4 alive) alive, $(count_status 4 suspect) suspect, $(count_status 4 dead) dead"

ip netns exec "${T}n4" nft delete table inet hmspart || fail "lift partition"
t0=$(now)
wait_for 60 "cluster healed after the partition was lifted" all_see alive $N 1 2 3 4
echo "healed in $(elapsed "$t0") s without any command; ok"
