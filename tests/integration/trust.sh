#!/usr/bin/env bash
# Trust end to end with real agents: a node whose certificate comes from
# another CA is never admitted; a node key readable by others stops the
# agent at start; a revocation given to one agent expels the node on every
# agent, is persisted, survives a restart and is recognised when repeated.
. "$(dirname "$0")/cluster_lib.bash"
start_cluster 3 71
wait_for 30 "3 agents alive" all_see alive 3 1 2 3

# --- a node certified by another CA ------------------------------------------
# n4 trusts both CAs, so it accepts n1's certificate and shows its own,
# which n1 must refuse.
"$CTL" ca bootstrap --names n4 --out "$W/rogue" >/dev/null || fail "rogue bootstrap"
printf '%s\n' --node n4 --bind 127.0.71.4:7950 --data-dir "$W/d4" --socket "$W/s4" \
  --profile "$PROFILE" --ca "$W/rogue/ca.pub" --ca "$W/pki/ca.pub" --cert "$W/rogue/n4.cert" \
  --node-key "$W/rogue/n4.key" --join 127.0.71.1:7950 > "$W/args4"
start_node 4
wait_for 10 "rogue socket" test -S "$W/s4"
refused() { [ "$(stat_of 1 chan.refused_untrusted)" -ge 1 ] 2>/dev/null; }
wait_for 15 "rogue join refused by n1" refused
sleep 2
[ "$(status_of 1 n4)" = "" ] || fail "n4 (other CA) was admitted by n1"
[ "$(status_of 2 n4)" = "" ] || fail "n4 (other CA) was admitted by n2"
all_see alive 3 1 2 3 || fail "members changed after the rogue join"
kill9 4
echo "trust: a node certified by another CA is refused"

# --- key file permissions ---------------------------------------------------
cp "$W/pki/n3.key" "$W/open.key" && chmod 644 "$W/open.key"
out=$(timeout 10 "$AGENT" --node n3 --bind 127.0.71.9:7950 --data-dir "$W/d9" --socket "$W/s9" \
  --ca "$W/pki/ca.pub" --cert "$W/pki/n3.cert" --node-key "$W/open.key" 2>&1)
rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "agent started with a world-readable key (rc $rc)"
printf '%s' "$out" | grep -q "accessible by group or others" || fail "no clear key-mode error: $out"
echo "trust: a key file readable by others is refused: $(printf '%s' "$out" | grep -m1 accessible)"

# --- revocation -------------------------------------------------------------
"$CTL" ca revoke --ca "$W/pki" --cert "$W/pki/n3.cert" --out "$W/n3.revoke" >/dev/null ||
  fail "ca revoke"
out=$(ctl 1 revoke "$W/n3.revoke") || fail "revoke refused: $out"
printf '%s' "$out" | grep -q accepted || fail "revoke: unexpected answer '$out'"
not_alive() { local s; s=$(status_of "$1" n3); [ "$s" != "alive" ] && [ "$s" != "suspect" ]; }
wait_for 20 "n3 expelled by n1" not_alive 1
wait_for 20 "n3 expelled by n2 (gossip)" not_alive 2
persisted() { [ -f "$W/d2/revocations.bin" ] && [ "$(stat -c %s "$W/d2/revocations.bin")" -eq 123 ]; }
wait_for 10 "revocation persisted by n2" persisted
dropped() { [ "$(stat_of 1 udp.drops.revoked)" -ge 1 ] 2>/dev/null || [ "$(stat_of 2 udp.drops.revoked)" -ge 1 ] 2>/dev/null; }
wait_for 15 "packets of n3 dropped as revoked" dropped
out=$(ctl 2 revoke "$W/n3.revoke") || fail "repeat revoke failed: $out"
printf '%s' "$out" | grep -q "already known" || fail "repeat revoke: '$out'"
echo "trust: revocation applied by every agent, persisted, n3 packets dropped"

# --- the revocation survives a restart -------------------------------------
kill9 2
start_node 2
wait_for 10 "n2 socket" test -S "$W/s2"
wait_for 20 "n2 back" all_see alive 2 1 2
out=$(ctl 2 revoke "$W/n3.revoke") || fail "revoke after restart failed: $out"
printf '%s' "$out" | grep -q "already known" || fail "revocation lost by restart: '$out'"
[ "$(status_of 2 n3)" != "alive" ] || fail "n3 alive again at n2 after restart"
echo "trust: revocation reloaded after restart"
echo "PASS"
