#!/usr/bin/env bash
# A real partition: two network namespaces joined by a veth pair, three
# agents on each side. While nftables drops everything on the veth, each
# side changes its services and sees only its own; after the heal every
# agent sees every change and the replicated views agree (same view
# digest on all six). Needs root, ip netns and nft; says so and passes
# when they are missing (nothing else in the suite needs them).
. "$(dirname "$0")/catalog_lib.bash"
if [ "$(id -u)" != 0 ] || ! command -v nft >/dev/null || ! command -v ip >/dev/null; then
  echo "skipped: needs root, ip and nft"; exit 0
fi
NSA=hmscatA$$; NSB=hmscatB$$; VA=vca$$; VB=vcb$$
netns_cleanup() { ip netns del "$NSA" 2>/dev/null; ip netns del "$NSB" 2>/dev/null; }
CLEANUP_HOOK=netns_cleanup
ip netns add "$NSA" && ip netns add "$NSB" || { echo "skipped: cannot create network namespaces"; exit 0; }
ip link add "$VA" netns "$NSA" type veth peer name "$VB" netns "$NSB" || fail "veth"
for i in 1 2 3; do ip -n "$NSA" addr add "10.45.0.$i/24" dev "$VA"; done
for i in 4 5 6; do ip -n "$NSB" addr add "10.45.0.$i/24" dev "$VB"; done
for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
ip -n "$NSA" link set "$VA" up; ip -n "$NSB" link set "$VB" up

"$CTL" ca bootstrap --names n1,n2,n3,n4,n5,n6 --out "$W/pki" >/dev/null || fail "ca bootstrap"
for i in 1 2 3 4 5 6; do
  ns=$NSA; [ $i -gt 3 ] && ns=$NSB
  args=(--node "n$i" --bind "10.45.0.$i:7950" --data-dir "$W/d$i" --socket "$W/s$i" --profile local
    --ca "$W/pki/ca.pub" --cert "$W/pki/n$i.cert" --node-key "$W/pki/n$i.key")
  [ $i -gt 1 ] && args+=(--join 10.45.0.1:7950)
  ip netns exec "$ns" "$AGENT" "${args[@]}" >>"$W/log$i" 2>&1 & PID[$i]=$!
  [ $i -eq 1 ] && sleep 0.3
done
ALL=(1 2 3 4 5 6)
count() { ctl "$1" members --json 2>/dev/null | grep -o "\"$2\"" | wc -l; }
seen_status() { local s=$1 k=$2 i; shift 2; for i in "$@"; do [ "$(count "$i" "$s")" = "$k" ] || return 1; done; }
wait_for 30 "six agents alive everywhere" seen_status alive 6 "${ALL[@]}"
for i in "${ALL[@]}"; do ctl "$i" register web --id "web-$i" --port $((8000 + i)) >/dev/null || fail "register n$i"; done
wait_for 20 "six web instances everywhere" all_see web 6 "${ALL[@]}"

partition() {
  ip netns exec "$NSA" nft -f - <<NFT
table inet hmspart {
  chain in { type filter hook input priority 0; iifname "$VA" drop; }
  chain out { type filter hook output priority 0; oifname "$VA" drop; }
}
NFT
}
partition || fail "nft rules"
t0=$(date +%s%N)
wait_for 60 "each side declares the other dead" seen_status dead 3 1 2 3 4 5 6
echo "partition detected in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
wait_for 20 "each side looks up only its own instances" all_see web 3 "${ALL[@]}"

# changes on both sides while cut off
ctl 1 register a-only --port 7001 >/dev/null || fail "register a-only"
ctl 2 deregister web-2 >/dev/null || fail "deregister web-2"
ctl 5 register b-only --port 7002 >/dev/null || fail "register b-only"
ctl 6 register web --id web-6 --port 8006 --tag moved >/dev/null || fail "re-register web-6"
wait_for 20 "side A sees its change" all_see a-only 1 1 2 3
wait_for 20 "side B sees its change" all_see b-only 1 4 5 6
[ "$(n_inst 4 a-only)" = 0 ] && [ "$(n_inst 1 b-only)" = 0 ] || fail "a change crossed the partition"

ip netns exec "$NSA" nft delete table inet hmspart || fail "heal"
t0=$(date +%s%N)
wait_for 90 "all six alive again after the heal" seen_status alive 6 "${ALL[@]}"
echo "membership healed in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
same_digest() {
  local d1 i; d1=$(view_digest 1) || return 1
  for i in "${ALL[@]}"; do [ "$(view_digest "$i")" = "$d1" ] || return 1; done
}
wait_for 60 "views agree after the heal" same_digest
echo "catalogs agree $(( ($(date +%s%N) - t0) / 1000000 )) ms after the heal"
# equal views hold every change made on both sides
wait_for 3 "every change visible everywhere" all_see web 5 "${ALL[@]}"
wait_for 3 "a-only everywhere" all_see a-only 1 "${ALL[@]}"
wait_for 3 "b-only everywhere" all_see b-only 1 "${ALL[@]}"
moved() { local i; for i in "${ALL[@]}"; do [ "$(n_inst "$i" web --tag moved)" = 1 ] || return 1; done; }
wait_for 3 "re-registered web-6 everywhere" moved
echo "catalog_partition: ok"
