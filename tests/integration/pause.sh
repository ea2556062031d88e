#!/usr/bin/env bash
# A paused agent (SIGSTOP) that comes back (SIGCONT) before the suspicion
# timeout runs out refutes the suspicion: no agent ever declares it dead.
# Uses the lan profile, whose suspicion timeout is at least 2.5 s; each
# pause lasts 1.2 s.
. "$(dirname "$0")/cluster_lib.bash"
PROFILE=lan
start_cluster 5 62
wait_for 30 "5 agents alive" all_see alive 5 1 2 3 4 5
ctl 1 watch --json > "$W/watch1" 2>&1 & OTHER+=($!)
ctl 2 watch --json > "$W/watch2" 2>&1 & OTHER+=($!)
wait_for 5 "watch streams open" grep -q watching "$W/watch2"
for round in 1 2 3; do
  kill -STOP "${PID[5]}"
  sleep 1.2
  kill -CONT "${PID[5]}"
  sleep 2.5
done
wait_for 10 "n5 alive again everywhere" all_see alive 5 1 2 3 4 5
if grep -q '"event": *"dead"' "$W/watch1" "$W/watch2"; then
  fail "a pause shorter than the suspicion timeout was declared dead: $(grep -h dead "$W"/watch*)"
fi
sus=$(grep -ch '"suspect"' "$W/watch1" "$W/watch2" | paste -sd+ | bc)
echo "3 pauses of 1.2 s: $sus suspect events, no death; ok"
