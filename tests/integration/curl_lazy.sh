#!/usr/bin/env bash
# libcurl is loaded by the first HTTP health check, not at start: an agent
# without HTTP checks has no libcurl mapped (/proc/PID/maps), registering a
# service with an HTTP check maps it and the check passes, then fails when
# the server answers 503.
. "$(dirname "$0")/catalog_lib.bash"
start_cluster 1 49
maps_curl() { grep -c 'libcurl' "/proc/${PID[1]}/maps"; }
[ "$(maps_curl)" = 0 ] || fail "libcurl mapped before any HTTP check"
ctl 1 register tcpsvc --address 127.0.49.1 --port "$GPORT" --check-tcp --interval 300ms >/dev/null ||
  fail "register with a tcp check"
wait_for 10 "tcp-checked instance passing" all_see tcpsvc 1 1
[ "$(maps_curl)" = 0 ] || fail "libcurl mapped by a TCP check"
echo "no libcurl mapped: $(grep VmRSS "/proc/${PID[1]}/status")"

IP=127.0.49.100
PORT=$(free_port $IP)
start_httpd $IP "$PORT"
ctl 1 register web --address $IP --port "$PORT" --check-http /health --interval 300ms \
  --timeout 500ms >/dev/null || fail "register with an http check"
wait_for 10 "http-checked instance passing" all_see web 1 1
[ "$(maps_curl)" -gt 0 ] || fail "libcurl not mapped after an HTTP check ran"
echo "libcurl mapped after the first HTTP check: $(grep VmRSS "/proc/${PID[1]}/status")"
curl -sf "http://$IP:$PORT/set?code=503" >/dev/null
wait_for 10 "503 takes the instance out" all_see web 0 1
echo "ok"
