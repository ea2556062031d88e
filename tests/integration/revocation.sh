#!/usr/bin/env bash
# Revocation end to end: a CA-signed record handed to one agent (`hmsctl
# revoke`) is checked, stored and gossiped; every agent expels the revoked
# node (dead in its member list, its packets dropped as revoked), keeps the
# record across a restart, and a forged record is refused.
. "$(dirname "$0")/cluster_lib.bash"
PROFILE=lan # the production timings: no false suspicion under a loaded CI machine
start_cluster 4 67
wait_for 30 "4 agents alive" all_see alive 4 1 2 3 4
"$CTL" ca revoke --ca "$W/pki" --cert "$W/pki/n4.cert" --out "$W/n4.rev" >/dev/null || fail "ca revoke"

# a record with a flipped byte does not verify
python3 - "$W/n4.rev" "$W/forged.rev" <<'P'
import sys
b = bytearray(open(sys.argv[1], 'rb').read()); b[20] ^= 1; open(sys.argv[2], 'wb').write(b)
P
out=$(ctl 1 revoke "$W/forged.rev" 2>&1) && fail "a forged revocation was accepted: $out"

ctl 1 revoke "$W/n4.rev" >/dev/null || fail "hmsctl revoke"
wait_for 5 "revocation in n1's audit log" sh -c "'$CTL' --socket '$W/s1' audit tail --json | grep -q '\"kind\":\"admin.revoke\"'"
t0=$(now)
wait_for 20 "n4 expelled by n1-n3" all_see dead 1 1 2 3
echo "n4 expelled everywhere $(elapsed "$t0") s after the record was given to n1"
for i in 1 2 3; do [ "$(status_of "$i" n4)" = dead ] || fail "n$i does not see n4 dead"; done
# n4 still runs and still sends: its packets are dropped as revoked
revoked_drops() { local i s=0; for i in 1 2 3; do s=$((s + $(stat_of "$i" udp.drops.revoked))); done; echo $s; }
revoked_seen() { [ "$(revoked_drops)" -ge 1 ]; }
wait_for 10 "packets from n4 dropped as revoked" revoked_seen
[ -s "$W/d2/revocations.bin" ] || fail "n2 did not store the gossiped record"
wait_for 10 "n1-n3 still alive" all_see alive 3 1 2 3

# restarted, n2 still refuses n4
kill -TERM "${PID[2]}"; wait "${PID[2]}" 2>/dev/null
start_node 2
wait_for 20 "n2 back" all_see alive 3 1 2 3
[ "$(status_of 2 n4)" != alive ] || fail "n2 admitted the revoked n4 after a restart"
echo "ok"
