#!/usr/bin/env bash
# Audit replication across a partition, with real agents: n4 is cut off
# from n1..n3 by nftables on the loopback while both sides keep appending;
# after the partition is lifted (no command to the agents) each side's
# replicas catch up with the segments sealed on the other side, and every
# log verifies everywhere. Needs root and nft; skipped otherwise.
. "$(dirname "$0")/cluster_lib.bash"
if [ "$(id -u)" -ne 0 ] || ! command -v nft >/dev/null; then
  echo "audit_partition: skipped (needs root and nft)"; exit 0
fi
export HMS_AUDIT_SEAL_MS=300
TABLE=hms_audit_part_$$
heal() { nft delete table inet "$TABLE" 2>/dev/null || true; }
trap 'heal; cleanup' EXIT
start_cluster 4 57
wait_for 30 "4 agents alive" all_see alive 4 1 2 3 4
key_of() { ctl 1 member "n$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'; }
declare -A KEY
for i in 1 2 3 4; do KEY[$i]=$(key_of "$i"); [ -n "${KEY[$i]}" ] || fail "no key for n$i"; done
# last sealed segment of log i as agent j holds it (-1: none)
sealed_on() { ctl "$2" audit status --json | python3 -c 'import json,sys
k=sys.argv[1]
d=json.load(sys.stdin)
print(next((l["last_sealed_segment"] for l in d["logs"] if l["key"]==k and l["last_sealed_segment"] is not None), -1))' "${KEY[$1]}"; }
own_sealed() { sealed_on "$1" "$1"; }
caught_up() { local i=$1 j=$2; [ "$(sealed_on "$i" "$j")" -ge "$(own_sealed "$i")" ] 2>/dev/null; }
for j in 2 3 4; do wait_for 20 "n1's log on n$j" caught_up 1 "$j"; done

# --- partition: n4 alone ----------------------------------------------------
nft -f - <<NFT || fail "nft"
table inet $TABLE {
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr 127.0.57.4 ip daddr { 127.0.57.1, 127.0.57.2, 127.0.57.3 } drop
    ip daddr 127.0.57.4 ip saddr { 127.0.57.1, 127.0.57.2, 127.0.57.3 } drop
  }
}
NFT
before1=$(sealed_on 1 4); before4=$(sealed_on 4 1)
for k in $(seq 1 40); do
  ctl 1 audit append --kind partition.majority --field k="$k" >/dev/null || fail "append on n1"
  ctl 4 audit append --kind partition.minority --field k="$k" >/dev/null || fail "append on n4"
  sleep 0.1
done
sleep 2
[ "$(own_sealed 1)" -gt "$before1" ] || fail "n1 sealed nothing during the partition"
[ "$(own_sealed 4)" -gt "$before4" ] || fail "n4 sealed nothing during the partition"
[ "$(sealed_on 1 4)" -lt "$(own_sealed 1)" ] || fail "n4 received n1's segments through the partition"
echo "partition: n1 sealed up to $(own_sealed 1) (n4 holds $(sealed_on 1 4)), n4 sealed up to $(own_sealed 4) (n1 holds $(sealed_on 4 1))"

# --- heal: nothing but the network changes ------------------------------------
heal
wait_for 60 "4 agents alive after the heal" all_see alive 4 1 2 3 4
wait_for 60 "n4 caught up with n1's log" caught_up 1 4
for j in 1 2 3; do wait_for 60 "n$j caught up with n4's log" caught_up 4 "$j"; done
for i in 1 2 3 4; do
  ctl "$i" audit verify --all > "$W/v$i" 2>&1 || { cat "$W/v$i"; fail "verify --all on n$i after the heal"; }
done
echo "audit_partition: replicas caught up on both sides after the heal; every log verifies; ok"
