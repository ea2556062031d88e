#!/usr/bin/env bash
# One agent's life: started from a JSON config file with JSON logs, it tells
# systemd it is ready (NOTIFY_SOCKET), serves a 0660 socket, persists its
# incarnation and seal epoch, stops with exit 0 on SIGTERM (STOPPING=1
# first), and comes back with both counters raised.
. "$(dirname "$0")/cluster_lib.bash"
pki n1
cat > "$W/agent.json" <<JSON
{"node": "n1", "bind": "127.0.65.1:7950", "data_dir": "$W/d1", "socket": "$W/s1",
 "profile": "local", "ca": ["$W/pki/ca.pub"], "cert": "$W/pki/n1.cert",
 "node_key": "$W/pki/n1.key", "log_format": "json", "log_level": "debug"}
JSON
python3 - "$W/notify" > "$W/notified" <<'P' & OTHER+=($!)
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.bind(sys.argv[1]); s.settimeout(30)
for _ in range(2):
    print(s.recv(4096).decode(), flush=True)
P
wait_for 5 "notify socket" test -S "$W/notify"
NOTIFY_SOCKET=$W/notify "$AGENT" --config "$W/agent.json" >"$W/log1" 2>&1 & PID[1]=$!
wait_for 10 "READY=1 sent to NOTIFY_SOCKET" grep -q "READY=1" "$W/notified"
[ "$(stat -c %a "$W/s1")" = 660 ] || fail "socket mode $(stat -c %a "$W/s1"), expected 660"
[ "$(stat -c %a "$W/d1")" = 700 ] || fail "data dir mode $(stat -c %a "$W/d1"), expected 700"
[ "$(status_of 1 n1)" = alive ] || fail "n1 does not see itself alive"
inc1=$(cat "$W/d1/incarnation"); ep1=$(cat "$W/d1/epoch")
kill -TERM "${PID[1]}"
wait "${PID[1]}"; rc=$?
[ "$rc" = 0 ] || fail "exit code $rc after SIGTERM"
wait_for 5 "STOPPING=1 sent" grep -q "STOPPING=1" "$W/notified"
python3 - "$W/log1" <<'P' || fail "log lines are not all JSON with ts, level and msg"
import json, sys
n = 0
for line in open(sys.argv[1]):
    d = json.loads(line)
    assert set(d) == {"ts", "level", "msg"}, d
    assert d["level"] in ("error", "warn", "info", "debug"), d
    n += 1
assert n >= 3
P
grep -q '"level":"info","msg":"agent n1: stopped"' "$W/log1" || fail "no stop line in the log"
[ -S "$W/s1" ] && fail "socket file left behind after a clean stop"

"$AGENT" --config "$W/agent.json" --log-format text >"$W/log1b" 2>&1 & PID[1]=$!
wait_for 10 "restarted agent serving" test -S "$W/s1"
inc2=$(cat "$W/d1/incarnation"); ep2=$(cat "$W/d1/epoch")
[ "$inc2" -gt "$inc1" ] || fail "incarnation not raised across restart ($inc1 -> $inc2)"
[ "$ep2" -gt "$ep1" ] || fail "epoch not raised across restart ($ep1 -> $ep2)"
grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z info ' "$W/log1b" || fail "text log lines lack timestamps"
echo "incarnation $inc1 -> $inc2, epoch $ep1 -> $ep2; ok"
