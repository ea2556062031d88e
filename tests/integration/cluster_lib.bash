# Helpers for the membership integration tests (sourced; not a test itself).
# Agents n1..nN run on 127.0.PREFIX.i:7950 with data dirs, sockets and logs
# in one temp dir and certificates from `hmsctl ca bootstrap`. Everything
# started here is killed by pid on exit; nothing else is touched.
set -u
B=${HMS_BIN:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
AGENT=$B/hms-agent
CTL=$B/hmsctl
[ -x "$AGENT" ] && [ -x "$CTL" ] || { echo "error: no binaries in '$B' (set HMS_BIN)"; exit 1; }
W=$(mktemp -d)
declare -A PID
OTHER=()
N=0
PREFIX=0
PROFILE=local
fail() {
  echo "FAIL: $*"
  local f
  for f in "$W"/log*; do [ -f "$f" ] && { echo "--- $f"; tail -12 "$f"; }; done
  exit 1
}
cleanup() {
  local p
  for p in "${PID[@]}" "${OTHER[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
ctl() { local i=$1; shift; "$CTL" --socket "$W/s$i" "$@"; }
# pki NAMES...: one CA and a certificate per name in $W/pki
pki() { "$CTL" ca bootstrap --names "$(IFS=,; echo "$*")" --out "$W/pki" >/dev/null || fail "ca bootstrap"; }
# node_args i PREFIX: the flags of agent i (seed: n1)
node_args() {
  local i=$1 p=$2
  printf '%s\n' --node "n$i" --bind "127.0.$p.$i:7950" --data-dir "$W/d$i" --socket "$W/s$i" \
    --profile "$PROFILE" --ca "$W/pki/ca.pub" --cert "$W/pki/n$i.cert" --node-key "$W/pki/n$i.key"
  [ "$i" -gt 1 ] && printf '%s\n' --join "127.0.$p.1:7950"
  return 0
}
# kill9 i: SIGKILL agent i and reap it quietly
kill9() { kill -9 "${PID[$1]}" 2>/dev/null; wait "${PID[$1]}" 2>/dev/null; }
start_node() { local i=$1 a; mapfile -t a < "$W/args$i"; "$AGENT" "${a[@]}" >>"$W/log$i" 2>&1 & PID[$i]=$!; }
# start_cluster N PREFIX: n1 first (the seed), then the others
start_cluster() {
  local n=$1 p=$2 i
  N=$n; PREFIX=$p
  pki $(seq -f 'n%g' 1 "$n")
  for i in $(seq 1 "$n"); do
    node_args "$i" "$p" > "$W/args$i"
    start_node "$i"
    [ "$i" -eq 1 ] && wait_for 10 "seed socket" test -S "$W/s1"
  done
}
# count_status i STATUS: members with that status seen by agent i (-1: no answer)
count_status() {
  local out
  out=$(ctl "$1" members --json 2>/dev/null) || { echo -1; return; }
  printf '%s' "$out" | grep -oE '"status"[[:space:]]*:[[:space:]]*"'"$2"'"' | wc -l
}
# status_of i NAME: NAME's status as agent i sees it ("" when unknown)
status_of() { ctl "$1" member "$2" --json 2>/dev/null | python3 -c 'import json,sys
try: print(json.load(sys.stdin)["status"])
except Exception: print("")'; }
incarnation_of() { ctl "$1" member "$2" --json 2>/dev/null | python3 -c 'import json,sys
try: print(json.load(sys.stdin)["incarnation"])
except Exception: print(-1)'; }
# all_see STATUS K NODES...: every agent listed sees exactly K members with STATUS
all_see() {
  local st=$1 k=$2 i; shift 2
  for i in "$@"; do [ "$(count_status "$i" "$st")" = "$k" ] || return 1; done
}
# all_see_at_least STATUS K NODES...
all_see_at_least() {
  local st=$1 k=$2 i c; shift 2
  for i in "$@"; do c=$(count_status "$i" "$st"); [ "$c" -ge "$k" ] 2>/dev/null || return 1; done
}
# wait_for SECONDS WHAT CMD...: polls CMD every 0.1 s
wait_for() {
  local t=$1 what=$2; shift 2
  local end=$(( $(date +%s%N) + t * 1000000000 ))
  while [ "$(date +%s%N)" -lt "$end" ]; do "$@" && return 0; sleep 0.1; done
  fail "$what: not within ${t} s"
}
now() { date +%s.%N; }
elapsed() { python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now)"; }
# stat_of i PATH: one counter from `stats --json` (dotted path)
stat_of() { ctl "$1" stats --json 2>/dev/null | python3 -c 'import json,sys
d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[k]
print(d)' "$2"; }
