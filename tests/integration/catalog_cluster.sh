#!/usr/bin/env bash
# Catalog replication across 16 agents: every agent registers instances and
# every agent sees all of them; the replicated views agree (same view
# digest everywhere); an agent that was paused (cut off) while others
# changed their sets catches up and agrees again; a killed agent's
# instances leave every lookup.
. "$(dirname "$0")/catalog_lib.bash"
N=16
start_cluster $N 45
ALL=($(seq 1 $N))
wait_for 30 "all $N agents alive everywhere" all_alive $N

t0=$(date +%s%N)
for i in "${ALL[@]}"; do
  ctl "$i" register web --id "web-$i" --port $((8000 + i)) --tag "n$i" >/dev/null || fail "register on n$i"
done
ctl 7 register cache --port 6379 >/dev/null || fail "register cache"
wait_for 30 "16 web instances visible on every agent" all_see web $N "${ALL[@]}"
echo "16 registrations visible on 16 agents in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
[ "$(n_inst 12 cache)" = 1 ] || fail "cache not visible on n12"
# the local instance comes first
[ "$(ctl 9 lookup web --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["node"])')" = n9 ] \
  || fail "local instance not first"
[ "$(n_inst 3 web --tag n11)" = 1 ] || fail "tag lookup"

same_digest() {
  local d1 i; d1=$(view_digest 1) || return 1
  [ -n "$d1" ] || return 1
  for i in "$@"; do [ "$(view_digest "$i")" = "$d1" ] || return 1; done
}
wait_for 20 "views agree on all agents" same_digest "${ALL[@]}"

# cut n2 off (paused), change sets elsewhere, let it come back
kill -STOP "${PID[2]}"
sleep 1
for i in 3 4 5; do ctl "$i" deregister "web-$i" >/dev/null || fail "deregister on n$i"; done
ctl 6 register api --port 7000 >/dev/null
kill -CONT "${PID[2]}"
wait_for 30 "the paused agent caught up" all_see web $((N - 3)) 2
wait_for 30 "views agree after the heal" same_digest "${ALL[@]}"
[ "$(n_inst 2 api)" = 1 ] || fail "n2 misses api after the heal"

# a killed agent takes its instances out of every lookup
kill -9 "${PID[16]}"
others=($(seq 1 15))
wait_for 30 "killed agent's instance out of every lookup" all_see web $((N - 4)) "${others[@]}"
echo "catalog_cluster: ok"
