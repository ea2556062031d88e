#!/usr/bin/env bash
# Audit replication on 5 real agents: every node's log reaches its R=3
# replicas; a request that crosses hosts is traced from a third host; every
# log verifies everywhere; after kill -9 of a node its log is read and
# verified from every other agent. With a node's key in hand the test then
# makes a fork (a copy of the node's data dir that goes its own way) and a
# forgery (another node's segment offered as this node's, and a tampered
# copy): the fork is kept as proof and fails verify, the forgeries are
# refused and counted.
. "$(dirname "$0")/cluster_lib.bash"
export HMS_AUDIT_SEAL_MS=300
start_cluster 5 56
wait_for 30 "5 agents alive" all_see alive 5 1 2 3 4 5
key_of() { ctl 1 member "n$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])'; }
declare -A KEY
for i in 1 2 3 4 5; do KEY[$i]=$(key_of "$i"); [ -n "${KEY[$i]}" ] || fail "no key for n$i"; done

ctl 1 audit append --kind call.out --request-id req-4711 --field target=n2 >/dev/null || fail "append on n1"
ctl 2 audit append --kind call.in --request-id req-4711 --field from=n1 >/dev/null || fail "append on n2"

# R=3 replicas of every log (5 nodes: 3 of the 4 others)
holders() {
  local i=$1 j c=0
  for j in 1 2 3 4 5; do
    [ "$j" = "$i" ] && continue
    ls "$W/d$j/audit/${KEY[$i]}/"*.seg >/dev/null 2>&1 && c=$((c + 1))
  done
  echo "$c"
}
has_replicas() { [ "$(holders "$1")" -ge 3 ]; }
for i in 1 2 3 4 5; do wait_for 20 "n$i's log on 3 replicas" has_replicas "$i"; done
echo "replicas: $(for i in 1 2 3 4 5; do printf 'n%s:%s ' "$i" "$(holders "$i")"; done)"

# the trace of one request across hosts, from a third host
has_trace() { [ "$(ctl 3 audit trace req-4711 --json | grep -c .)" -eq 2 ]; }
wait_for 10 "trace of req-4711 from n3" has_trace
ctl 3 audit trace req-4711 --json | grep -q '"node":"n1"' || fail "trace lacks n1's hop"
ctl 3 audit trace req-4711 --json | grep -q '"node":"n2"' || fail "trace lacks n2's hop"

for i in 1 2 3 4 5; do
  ctl "$i" audit verify --all > "$W/v$i" 2>&1 || { cat "$W/v$i"; fail "verify --all on n$i"; }
done
echo "trace across hosts ok; every log verifies on every agent"

# a dead node's log stays readable and verifiable
kill9 1
sleep 1
for i in 2 3 4 5; do
  n=$(ctl "$i" audit tail --node n1 -n 1000 --json | grep -c .)
  [ "$n" -ge 3 ] || fail "n1's log not readable from n$i ($n lines)"
  ctl "$i" audit verify --node n1 > "$W/vn1" 2>&1 || { cat "$W/vn1"; fail "n1's log does not verify on n$i"; }
done
echo "n1 killed: its log is read and verified from n2..n5"

# fork: n5's data dir copied while n5 is down, both copies go on
kill9 5
cp -a "$W/d5" "$W/d5fork"
start_node 5
"$AGENT" --node n5 --bind 127.0.56.9:7950 --data-dir "$W/d5fork" --socket "$W/sfork" \
  --profile local --ca "$W/pki/ca.pub" --cert "$W/pki/n5.cert" --node-key "$W/pki/n5.key" \
  >> "$W/logfork" 2>&1 &
OTHER+=($!)
fork_up() { "$CTL" --socket "$W/sfork" audit status >/dev/null 2>&1; }
wait_for 10 "forked copy answers" fork_up
"$CTL" --socket "$W/sfork" audit append --kind forged.history --field rewritten=true >/dev/null ||
  fail "append on the forked copy"
sleep 1
kill -9 "${OTHER[-1]}"
wait "${OTHER[-1]}" 2>/dev/null
forkseg=$(ls "$W/d5fork/audit/${KEY[5]}/"*.seg | sort | tail -1)
segname=$(basename "$forkseg")
# n2 holds the real segment with that number (verify --node fetches it)
real_seg() { ctl 2 audit verify --node n5 >/dev/null 2>&1 && [ -f "$W/d2/audit/${KEY[5]}/$segname" ]; }
wait_for 20 "n2 holds n5's real segment $segname" real_seg
cmp -s "$forkseg" "$W/d2/audit/${KEY[5]}/$segname" && fail "fork and real segment are equal"
v=$(ctl 2 audit import "$forkseg" --node n5) || fail "import of the forked segment refused: $v"
echo "$v" | grep -q fork || fail "forked segment not recognised as a fork: $v"
ctl 2 audit verify --node n5 > "$W/vfork" 2>&1 && { cat "$W/vfork"; fail "verify passes on a forked log"; }
grep -q 'fork' "$W/vfork" || fail "verify does not name the fork"
fork_kept() { ls "$W/d2/audit/${KEY[5]}/" | grep -q fork; }
wait_for 5 "fork proof kept on disk" fork_kept
grep -q 'alert: fork' "$W/log2" || fail "no fork alert in n2's log"
echo "verify on n2: $(grep -m1 fork "$W/vfork" | sed 's/^ *//')"

# forgeries: n4's segment offered as n5's, and a tampered copy of n5's
forged=$(ls "$W/d4/audit/${KEY[4]}/"*.seg | head -1)
ctl 3 audit import "$forged" --node n5 > "$W/imp1" 2>&1 && fail "another node's segment accepted as n5's"
grep -q refused "$W/imp1" || fail "forged import not refused: $(cat "$W/imp1")"
cp "$W/d2/audit/${KEY[5]}/$segname" "$W/tampered.seg"
python3 - "$W/tampered.seg" <<'P'
import sys
p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 0x04; open(p, 'wb').write(b)
P
ctl 3 audit import "$W/tampered.seg" --node n5 > "$W/imp2" 2>&1 && fail "tampered segment accepted"
refused=$(ctl 3 audit status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["refused_segments"])')
[ "$refused" -ge 2 ] || fail "refused segments not counted ($refused)"
echo "forged and tampered segments refused ($refused counted on n3)"
echo "replication, dead-node reads, trace, fork and forgery detection hold on 5 agents"
