# Helpers for the catalog integration tests (sourced; not a test itself).
# Agents run on 127.0.PREFIX.i with data, sockets and logs in a temp dir;
# everything started here is killed by pid in cleanup.
set -u
B=${HMS_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
AGENT=$B/hms-agent
CTL=$B/hmsctl
SRC=${HMS_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
HTTPD=$SRC/tests/integration/test_httpd.py
[ -x "$AGENT" ] && [ -x "$CTL" ] || { echo "error: no binaries in '$B' (set HMS_BIN)"; exit 1; }
W=$(mktemp -d -t hms-catalog.XXXX)
declare -A PID
OTHER=()
N1_ARGS=()
CLEANUP_HOOK="" # a command run by cleanup after the agents are stopped
OFFSET=${OFFSET:-0} # agent i binds 127.0.PREFIX.(OFFSET+i):GPORT
GPORT=                # chosen by start_cluster: free for UDP and TCP on every address
fail() { echo "FAIL: $*"; for f in "$W"/log*; do [ -f "$f" ] && { echo "--- $f"; tail -15 "$f"; }; done; exit 1; }
cleanup() {
  local code=$? p k bad=0
  for p in "${OTHER[@]}"; do kill -9 "$p" 2>/dev/null; done
  # agents stop gracefully so that a sanitizer build reports leaks
  for p in "${PID[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PID[@]}"; do
    for k in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  wait 2>/dev/null
  for p in "$W"/log*; do
    if [ -f "$p" ] && grep -qE "AddressSanitizer|LeakSanitizer|runtime error" "$p"; then
      echo "FAIL: sanitizer report in $p"; grep -A30 -E "AddressSanitizer|LeakSanitizer|runtime error" "$p" | head -60; bad=1
    fi
  done
  [ -n "${HMS_KEEP_LOGS:-}" ] && mkdir -p "$HMS_KEEP_LOGS" && cp "$W"/log* "$HMS_KEEP_LOGS"/ 2>/dev/null
  rm -rf "$W"
  [ -n "$CLEANUP_HOOK" ] && $CLEANUP_HOOK
  [ $bad -eq 0 ] || exit 1
  exit $code
}
trap cleanup EXIT
ctl() { local i=$1; shift; "$CTL" --socket "$W/s$i" "$@"; }
# start_cluster N PREFIX [extra agent flags...]; N1_ARGS=(...) go to agent 1 only
start_cluster() {
  local n=$1 p=$2 i; shift 2
  N=$n; PREFIX=$p
  # A random port free on all the addresses, so that two runs of the suite
  # at once (two build dirs) do not collide on the same addresses.
  GPORT=$(python3 - "$p" "$OFFSET" "$n" <<'PY'
import random, socket, sys
p, off, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(200):
    port = random.randint(20000, 59999)
    socks = []
    try:
        for i in range(1, n + 1):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind(("127.0.%s.%d" % (p, off + i), port))
        print(port)
        break
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
PY
)
  [ -n "$GPORT" ] || fail "no free port on 127.0.$p.x"
  "$CTL" ca bootstrap --names "$(seq -s, -f 'n%g' 1 "$n")" --out "$W/pki" >/dev/null || fail "ca bootstrap"
  for i in $(seq 1 "$n"); do
    local args=(--node "n$i" --bind "127.0.$p.$((OFFSET + i)):$GPORT" --data-dir "$W/d$i" --socket "$W/s$i"
      --ca "$W/pki/ca.pub" --cert "$W/pki/n$i.cert" --node-key "$W/pki/n$i.key" "$@")
    [ "$i" -gt 1 ] && args+=(--join "127.0.$p.$((OFFSET + 1)):$GPORT")
    [ "$i" -eq 1 ] && args+=(${N1_ARGS[@]+"${N1_ARGS[@]}"})
    printf '%s\n' "${args[@]}" > "$W/args$i"
    start_node "$i"
    [ "$i" -eq 1 ] && sleep 0.3
  done
  wait_for 30 "all $n agents alive on n1 and n$n" all_alive "$n"
}
start_node() { local i=$1 a; mapfile -t a < "$W/args$i"; "$AGENT" "${a[@]}" >>"$W/log$i" 2>&1 & PID[$i]=$!; }
all_alive() {
  local n=$1 i
  for i in 1 "$n"; do
    [ "$(ctl "$i" members --json 2>/dev/null | grep -o '"alive"' | wc -l)" = "$n" ] || return 1
  done
}
# wait_for SECONDS WHAT CMD...: polls CMD every 0.1 s
wait_for() {
  local t=$1 what=$2; shift 2
  local end=$(( $(date +%s%N) + t * 1000000000 ))
  while [ "$(date +%s%N)" -lt "$end" ]; do "$@" && return 0; sleep 0.1; done
  fail "$what: not within ${t} s"
}
# count of instances of NAME seen by agent i (lookup --json); extra args passed on
n_inst() {
  local i=$1 name=$2; shift 2
  ctl "$i" lookup "$name" --json "$@" 2>/dev/null | python3 -c 'import json,sys
try: print(len(json.load(sys.stdin)))
except Exception: print(-1)'
}
# every agent in LIST sees exactly K instances of NAME
all_see() {
  local name=$1 k=$2 i; shift 2
  for i in "$@"; do [ "$(n_inst "$i" "$name")" = "$k" ] || return 1; done
}
start_httpd() { # start_httpd IP PORT -> HTTPD_PID
  python3 "$HTTPD" --bind "$1" --port "$2" & HTTPD_PID=$!; OTHER+=("$HTTPD_PID")
  local s; for s in $(seq 1 50); do curl -sf "http://$1:$2/hits" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "test http server on $1:$2 did not start"
}
free_port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
view_digest() { ctl "$1" catalog --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["view_digest"])'; }
