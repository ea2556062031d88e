#!/usr/bin/env bash
# The loss-and-pause scenario with real agents (root only; skipped
# otherwise): 16 agents (lan profile) on the loopback of a network namespace
# made here, where nftables drops 10 % of every UDP datagram at random (each
# direction of every link), and one agent at a time is paused (SIGSTOP) for
# 2 s every 30 s. No agent may be declared dead by any other, and at the end
# every agent sees all 16 alive.
# HMS_LOSS_PAUSE_SECONDS sets the length (default 95: three pauses);
# scripts/bench runs it for 10 minutes.
set -u
if [ "$(id -u)" != 0 ]; then echo "skip: needs root for network namespaces"; exit 0; fi
command -v ip >/dev/null && command -v nft >/dev/null || { echo "skip: ip or nft missing"; exit 0; }
NS=hmslp$$
if ! ip netns add "$NS" 2>/dev/null; then echo "skip: cannot create network namespaces"; exit 0; fi
. "$(dirname "$0")/cluster_lib.bash"
ns_cleanup() {
  cleanup
  ip netns del "$NS" 2>/dev/null
}
trap ns_cleanup EXIT
ip -n "$NS" link set lo up
N=16
SECS=${HMS_LOSS_PAUSE_SECONDS:-95}

pki $(seq -f 'n%g' 1 $N)
for i in $(seq 1 $N); do
  a=(--node "n$i" --bind "127.0.70.$i:7950" --data-dir "$W/d$i" --socket "$W/s$i" --profile lan
     --ca "$W/pki/ca.pub" --cert "$W/pki/n$i.cert" --node-key "$W/pki/n$i.key")
  [ "$i" -gt 1 ] && a+=(--join 127.0.70.1:7950)
  ip netns exec "$NS" "$AGENT" "${a[@]}" >>"$W/log$i" 2>&1 & PID[$i]=$!
  [ "$i" = 1 ] && wait_for 10 "seed socket" test -S "$W/s1"
done
wait_for 60 "$N agents alive everywhere" all_see alive $N $(seq 1 $N)
echo "$N agents converged"

# 10 % of UDP datagrams dropped, at random, on the way out (every link:
# sender and receiver are on this loopback); the TCP of push-pull is spared,
# as loss on a real network is mostly absorbed by TCP's retransmissions.
ip netns exec "$NS" nft -f - <<NFT || fail "nft"
table inet hmsloss {
  chain out { type filter hook output priority 0; policy accept; meta l4proto udp numgen random mod 100 < 10 counter drop; }
}
NFT
drops() { ip netns exec "$NS" nft list table inet hmsloss | grep -oE 'packets [0-9]+' | awk '{print $2}'; }
deaths() { cat "$W"/log* | grep -c ' is dead ('; }
d0=$(deaths)
t0=$(now)
k=1
echo "10 % loss; a 2 s pause every 30 s for ${SECS} s"
while [ "$(elapsed "$t0" | cut -d. -f1)" -lt "$SECS" ]; do
  sleep 28
  k=$(( k % N + 1 ))
  kill -STOP "${PID[$k]}"
  sleep 2
  kill -CONT "${PID[$k]}"
  echo "  $(elapsed "$t0") s: paused n$k for 2 s; deaths so far $(( $(deaths) - d0 )), datagrams dropped $(drops)"
done
dropped=$(drops)
ip netns exec "$NS" nft delete table inet hmsloss || fail "lift the loss"
wait_for 30 "all $N alive everywhere after the run" all_see alive $N $(seq 1 $N)
dd=$(( $(deaths) - d0 ))
sus=$(cat "$W"/log* | grep -c ' is suspect (')
echo "after ${SECS} s: $dd deaths declared, $sus suspicions raised (refuted), $dropped datagrams dropped"
[ "$dd" -eq 0 ] || fail "$dd false deaths under 10 % loss and pauses"
echo ok
