#!/usr/bin/env bash
# Membership on loopback: 16 agents join through one seed; a kill -9 is
# seen as dead by every other agent; a graceful leave (`hmsctl leave`) and a
# SIGTERM are seen as left, and the stopped agents exit 0; an agent
# restarted with the same name and data dir comes back alive with a higher
# incarnation.
. "$(dirname "$0")/cluster_lib.bash"
PROFILE=lan # the production timings: no false suspicion under a loaded CI machine
start_cluster 16 61
ALL=$(seq 1 16)
t0=$(now)
wait_for 30 "16 agents alive on every agent" all_see alive 16 $ALL
echo "converged in $(elapsed "$t0") s"

inc_before=$(incarnation_of 1 n16)
kill9 16; t0=$(now)
wait_for 30 "kill -9 of n16 seen as dead by all" all_see dead 1 $(seq 1 15)
echo "n16 dead everywhere after $(elapsed "$t0") s"

ctl 15 leave >/dev/null || fail "hmsctl leave"
wait_for 15 "n15 left seen by all" all_see left 1 $(seq 1 14)
wait "${PID[15]}"; rc=$?
[ "$rc" = 0 ] || fail "n15 exited with $rc after leave"
unset 'PID[15]'

kill -TERM "${PID[14]}"
wait_for 15 "SIGTERM of n14 seen as left" all_see left 2 $(seq 1 13)
wait "${PID[14]}"; rc=$?
[ "$rc" = 0 ] || fail "n14 exited with $rc after SIGTERM"
unset 'PID[14]'
grep -q "leave propagated\|leave timed out" "$W/log14" || fail "no leave line in n14's log"

# restart n16 with its data dir: same name, a higher incarnation
start_node 16
wait_for 30 "restarted n16 alive on all" all_see alive 14 $(seq 1 13) 16
inc_after=$(incarnation_of 1 n16)
[ "$inc_after" -gt "$inc_before" ] || fail "incarnation did not rise on restart ($inc_before -> $inc_after)"
echo "n16 rejoined with incarnation $inc_before -> $inc_after"
[ "$(cat "$W/d16/incarnation")" -ge "$inc_after" ] || fail "incarnation file behind the live value"
echo "ok"
