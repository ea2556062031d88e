#!/usr/bin/env bash
# HTTP checks run in the hms-http helper process, end to end: an agent
# without HTTP checks starts no helper; the first HTTP check starts one as a
# child of the agent, which never maps libcurl (/proc/PID/maps) while the
# helper does; the check passes, fails on 503, passes again; the helper
# killed with SIGKILL is replaced and the check keeps running; the helper
# exits when the agent stops; with the helper missing, HTTP checks are
# critical with the reason and the agent keeps serving.
. "$(dirname "$0")/catalog_lib.bash"
start_cluster 1 51
helper_of() { pgrep -P "$1" -x hms-http | head -1; }
rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$1/status"; }
hits() { curl -sf "http://$IP:$PORT/hits"; }

ctl 1 register tcpsvc --address 127.0.51.1 --port "$GPORT" --check-tcp --interval 300ms >/dev/null ||
  fail "register with a tcp check"
wait_for 10 "tcp-checked instance passing" all_see tcpsvc 1 1
[ -z "$(helper_of "${PID[1]}")" ] || fail "a helper started without any HTTP check"
echo "agent without HTTP checks: $(rss "${PID[1]}")"

IP=127.0.51.100
PORT=$(free_port $IP)
start_httpd $IP "$PORT"
ctl 1 register web --address $IP --port "$PORT" --check-http /health --interval 300ms \
  --timeout 500ms >/dev/null || fail "register with an http check"
wait_for 10 "http-checked instance passing" all_see web 1 1
H1=$(helper_of "${PID[1]}")
[ -n "$H1" ] || fail "no hms-http child of the agent after an HTTP check"
grep -q libcurl "/proc/${PID[1]}/maps" && fail "the agent maps libcurl"
grep -q libcurl "/proc/$H1/maps" || fail "the helper does not map libcurl"
[ "$(readlink "/proc/$H1/fd/0")" = "$(readlink "/proc/$H1/fd/1")" ] || fail "helper stdin and stdout differ"
nfd=$(ls "/proc/$H1/fd" | wc -l)
[ "$nfd" -le 8 ] || { ls -l "/proc/$H1/fd"; fail "helper holds $nfd descriptors"; }
echo "after the first HTTP check: agent $(rss "${PID[1]}"), helper $(rss "$H1") (pid $H1)"
ctl 1 services | grep -q "HTTP 200" || fail "services does not show 'HTTP 200'"

curl -sf "http://$IP:$PORT/set?code=503" >/dev/null
wait_for 10 "503 takes the instance out" all_see web 0 1
ctl 1 services | grep -q "HTTP 503" || fail "services does not show 'HTTP 503'"
curl -sf "http://$IP:$PORT/set?code=200" >/dev/null
wait_for 10 "200 brings it back" all_see web 1 1

# the helper killed: a new one takes over and the check keeps running
kill -9 "$H1"
new_helper() { H2=$(helper_of "${PID[1]}"); [ -n "$H2" ] && [ "$H2" != "$H1" ]; }
wait_for 10 "a new helper after SIGKILL" new_helper
h0=$(hits)
more_hits() { [ "$(hits)" -ge $((h0 + 3)) ]; }
wait_for 10 "checks through the new helper" more_hits
wait_for 10 "instance passing after the helper was replaced" all_see web 1 1
grep -q "http helper exited: signal 9" "$W/log1" || fail "the agent did not log the helper's death"
[ -d "/proc/$H1" ] && fail "the killed helper was not reaped"
echo "helper $H1 killed, replaced by $H2"

# the agent stops: its helper exits with it
kill -TERM "${PID[1]}"
gone() { ! kill -0 "$1" 2>/dev/null; }
wait_for 10 "agent stopped" gone "${PID[1]}"
wait_for 5 "helper exited with the agent" gone "$H2"

# no helper: HTTP checks critical with the reason, the agent serves on
export HMS_HTTP_HELPER=/nonexistent/hms-http
start_node 1
unset HMS_HTTP_HELPER
ctl_ready() { ctl 1 services >/dev/null 2>&1; }
wait_for 10 "agent restarted" ctl_ready
ctl 1 register web --address $IP --port "$PORT" --check-http /health --interval 300ms \
  --timeout 500ms >/dev/null || fail "register with the helper missing"
ctl 1 register tcpsvc --address 127.0.51.1 --port "$GPORT" --check-tcp --interval 300ms >/dev/null ||
  fail "register a tcp check with the helper missing"
reason() { ctl 1 services | grep -q "cannot start '/nonexistent/hms-http': No such file or directory"; }
wait_for 10 "the reason in the check output" reason
[ "$(n_inst 1 web)" = 0 ] || fail "an HTTP check without a helper is not critical"
wait_for 10 "tcp checks unaffected" all_see tcpsvc 1 1
ctl 1 members >/dev/null || fail "members with the helper missing"
[ -z "$(helper_of "${PID[1]}")" ] || fail "a helper runs from a missing path"
kill -0 "${PID[1]}" || fail "the agent died"

# the agent killed with SIGKILL: the helper does not outlive it
kill -TERM "${PID[1]}"
wait_for 10 "agent stopped" gone "${PID[1]}"
start_node 1
wait_for 10 "agent restarted" ctl_ready
ctl 1 register web --address $IP --port "$PORT" --check-http /health --interval 300ms \
  --timeout 500ms >/dev/null || fail "register after the restart"
wait_for 10 "http check passing again" all_see web 1 1
H3=$(helper_of "${PID[1]}")
[ -n "$H3" ] || fail "no helper after the restart"
kill -9 "${PID[1]}"
wait_for 5 "helper gone with its SIGKILLed agent" gone "$H3"
echo "http_helper: ok"
