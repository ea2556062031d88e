#!/usr/bin/env bash
# Replicas catch up after a restart, and retention deletes an origin's own
# sealed segments only once its R replicas hold them: 4 agents, R=3 (every
# other agent holds n1's log), segments sealed every 200 ms, kept locally
# for 2 s. A replica stopped while n1 writes catches up when it comes back;
# n1's oldest segments disappear from its own disk but stay on every
# replica, n1 restarts on what is left, and its log still verifies from the
# replicas.
. "$(dirname "$0")/cluster_lib.bash"
export HMS_AUDIT_SEAL_MS=200 HMS_AUDIT_RETAIN_S=2 HMS_AUDIT_REPLICAS=3
start_cluster 4 58
wait_for 30 "4 agents alive" all_see alive 4 1 2 3 4
k1=$(ctl 1 member n1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
segs() { ls "$1" 2>/dev/null | grep -c '\.seg$'; }

# a replica misses a stretch of n1's log, then catches up
kill9 4
for i in $(seq 1 30); do ctl 1 audit append --kind work --field "i=$i" >/dev/null; sleep 0.05; done
sleep 0.5
start_node 4
last_n1() { ctl 1 audit status --json | python3 -c 'import json,sys
d=json.load(sys.stdin); print([l for l in d["logs"] if l["own"]][0]["last_sealed_segment"])'; }
caught_up() { [ -f "$W/d4/audit/$k1/$(printf '%020d' "$(last_n1)").seg" ]; }
wait_for 20 "n4 catches up on n1's log after its restart" caught_up
echo "n4 caught up after restart: $(segs "$W/d4/audit/$k1") segments of n1's log"

# retention: n1 keeps appending; old segments leave n1's disk, not the replicas'
for i in $(seq 1 40); do ctl 1 audit append --kind work --field "j=$i" >/dev/null; sleep 0.05; done
first0="$W/d1/audit/$k1/00000000000000000000.seg"
gone() { [ ! -f "$first0" ]; }
wait_for 20 "n1 removes its replicated old segments" gone
for j in 2 3 4; do
  [ -f "$W/d$j/audit/$k1/00000000000000000000.seg" ] || fail "segment 0 of n1 missing on replica n$j"
done
own=$(segs "$W/d1/audit/$k1")
rep=$(segs "$W/d2/audit/$k1")
[ "$own" -lt "$rep" ] || fail "retention removed nothing ($own own, $rep on n2)"
echo "retention: n1 keeps $own of its segments, n2 holds $rep"

# n1 restarts on its trimmed log and its whole log still verifies elsewhere
kill9 1
start_node 1
n1_up() { ctl 1 audit status >/dev/null 2>&1; }
wait_for 10 "n1 restarts on a trimmed log" n1_up
ctl 1 audit verify > "$W/v1" 2>&1 || { cat "$W/v1"; fail "n1's trimmed log does not verify"; }
ctl 1 audit append --kind after.restart >/dev/null || fail "append after restart"
ctl 2 audit verify --node n1 > "$W/v2" 2>&1 || { cat "$W/v2"; fail "n1's log does not verify on n2"; }
n=$(ctl 2 audit export --node n1 | grep -c '"kind":"work"')
[ "$n" -eq 70 ] || fail "n2 holds $n of n1's 70 work entries"
echo "n1 restarted on $own segments; n2 holds all 70 work entries and verifies n1's log"
