#!/usr/bin/env bash
# Catalog health, end to end: a service with an HTTP check against a real
# HTTP server is found from every agent; when the server answers 503 it
# leaves every lookup, 429 makes it "warning" (only in --all), 200 brings it
# back, a dead server and a killed agent take it out again.
. "$(dirname "$0")/catalog_lib.bash"
start_cluster 5 44
IP=127.0.44.100
PORT=$(free_port $IP)
start_httpd $IP "$PORT"
ALL=(1 2 3 4 5)

ctl 1 register pay --address $IP --port "$PORT" --check-http /health --interval 300ms \
  --timeout 500ms --tag v2 --meta zone=eu-1 >/dev/null || fail "register"
t0=$(date +%s%N)
wait_for 15 "instance visible on all agents" all_see pay 1 "${ALL[@]}"
echo "visible on 5 agents in $(( ($(date +%s%N) - t0) / 1000000 )) ms"

# the JSON shape of a lookup
ctl 5 lookup pay --json | python3 -c '
import json,sys
d=json.load(sys.stdin); x=d[0]
assert x["id"]=="pay" and x["name"]=="pay" and x["node"]=="n1", x
assert x["address"]=="'$IP'" and x["port"]=='"$PORT"' and x["tags"]==["v2"], x
assert x["meta"]=={"zone":"eu-1"} and x["status"]=="passing", x' || fail "lookup json shape"
[ "$(n_inst 3 pay --tag v2)" = 1 ] || fail "tag filter v2"
[ "$(n_inst 3 pay --tag v3)" = 0 ] || fail "tag filter v3"

# a watch on n2 streams every change of the lookup result
ctl 2 watch-service pay --json > "$W/watch.out" 2>&1 & OTHER+=($!)
curl -sf "http://$IP:$PORT/set?code=503" >/dev/null
t0=$(date +%s%N)
wait_for 20 "critical instance out of every lookup" all_see pay 0 "${ALL[@]}"
echo "503 reflected on 5 agents in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
ctl 4 lookup pay --all --json | grep -q '"critical"' || fail "--all does not show the critical instance"

curl -sf "http://$IP:$PORT/set?code=200" >/dev/null
wait_for 20 "recovered instance back in every lookup" all_see pay 1 "${ALL[@]}"

# the watch saw: 1 instance, 0 (critical), 1 again
watch_seen() { python3 -c '
import json,sys
n=[len(json.loads(l)) for l in open(sys.argv[1]) if l.strip()]
sys.exit(0 if n[:3]==[1,0,1] else 1)' "$W/watch.out"; }
wait_for 5 "watch stream of the lookup result" watch_seen
curl -sf "http://$IP:$PORT/set?code=429" >/dev/null
wait_for 20 "warning instance out of default lookups" all_see pay 0 "${ALL[@]}"
ctl 2 lookup pay --all --json | grep -q '"warning"' || fail "--all does not show warning"
curl -sf "http://$IP:$PORT/set?code=200" >/dev/null
wait_for 20 "back from warning" all_see pay 1 "${ALL[@]}"

# a server that hangs: the timeout makes it critical
curl -sf "http://$IP:$PORT/set?code=hang" >/dev/null
wait_for 20 "timed-out check out of lookups" all_see pay 0 "${ALL[@]}"
ctl 1 services | grep -q timeout || fail "services does not show the timeout output"
curl -sf --max-time 2 "http://$IP:$PORT/set?code=200" >/dev/null

# a body that never ends: the probe reads 64 KiB and takes the status
curl -sf "http://$IP:$PORT/set?code=stream" >/dev/null || fail "set stream"
sleep 3
[ "$(n_inst 1 pay)" = 1 ] || fail "a streaming 200 made the instance unhealthy"
ctl 1 services | grep -q "HTTP 200: yyy" || fail "services does not show the streamed status"
curl -sf "http://$IP:$PORT/set?code=200" >/dev/null

# the server dies
kill -9 "$HTTPD_PID"
wait_for 20 "instance of a dead server out of lookups" all_see pay 0 "${ALL[@]}"
start_httpd $IP "$PORT"
wait_for 20 "instance back with its server" all_see pay 1 "${ALL[@]}"

# TCP and TTL checks
ctl 2 register db --address $IP --port "$PORT" --check-tcp --interval 300ms >/dev/null || fail "register tcp"
# A ttl long enough that the passing state is seen everywhere before it expires even when a
# metadata update takes a push-pull period to reach the last agent (docs/membership.md).
ctl 3 register worker --port 9 --check-ttl 15s >/dev/null || fail "register ttl"
wait_for 15 "tcp-checked instance visible" all_see db 1 "${ALL[@]}"
[ "$(n_inst 1 worker)" = 0 ] || fail "a ttl instance must start critical"
ctl 3 check pass worker >/dev/null || fail "check pass"
wait_for 20 "ttl instance passing" all_see worker 1 "${ALL[@]}"
wait_for 35 "ttl expiry takes it out" all_see worker 0 "${ALL[@]}"
ctl 3 check pass worker >/dev/null
wait_for 20 "ttl instance passing again" all_see worker 1 1 5
ctl 3 check fail worker --note "disk full" >/dev/null
t0=$(date +%s%N)
wait_for 20 "ttl fail takes it out" all_see worker 0 1 5
echo "ttl fail reflected on n1 and n5 in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
ctl 3 services | grep -q "disk full" || fail "note not shown"

# catalog summary
ctl 4 catalog --json | python3 -c '
import json,sys
d=json.load(sys.stdin); s={x["name"]:x for x in d["services"]}
assert s["pay"]["passing"]==1 and s["db"]["passing"]==1 and s["worker"]["critical"]==1, s' \
  || fail "catalog counts"

# deregistration
ctl 2 deregister db >/dev/null || fail "deregister"
wait_for 20 "deregistered instance gone" all_see db 0 "${ALL[@]}"

# the owning agent dies: its instances leave every lookup
kill -9 "${PID[1]}"
t0=$(date +%s%N)
wait_for 30 "instances of a dead agent out of lookups" all_see pay 0 2 3 4 5
echo "dead agent reflected in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
# it comes back (same data dir): its set returns with a newer version
printf '%s\n' --join 127.0.44.2:$GPORT >> "$W/args1"
start_node 1
ctl_ready() { ctl 1 services >/dev/null 2>&1; }
wait_for 10 "agent 1 restarted" ctl_ready
ctl 1 register pay --address $IP --port "$PORT" --check-http /health --interval 300ms >/dev/null
wait_for 30 "instance back after the agent restarted" all_see pay 1 "${ALL[@]}"
echo "catalog_health: ok"
