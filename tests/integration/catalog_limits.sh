#!/usr/bin/env bash
# Bad registrations are refused with errors that name what is wrong, and a
# client flooding registrations hits the per-node limit, not the agent's
# memory. Service definition files: loaded at start, read again on SIGHUP.
. "$(dirname "$0")/catalog_lib.bash"
mkdir -p "$W/svc"
cat > "$W/svc/api.json" <<J
{"service": {"name": "api", "port": 7001, "tags": ["v1"], "meta": {"team": "grants"}}}
J
cat > "$W/svc/broken.json" <<J
{"service": {"name": "broken", "port": 7002, "prot": 1}}
J
N1_ARGS=(--services-dir "$W/svc")
OFFSET=40 # 127.0.44.41-42: apart from catalog_health's agents
start_cluster 2 44

refuse() { # refuse NEEDLE ARGS...: register must fail with exit 1 and NEEDLE in the message
  local needle=$1 out code; shift
  out=$(ctl 1 register "$@" 2>&1); code=$?
  [ $code -eq 1 ] || [ $code -eq 2 ] || fail "register $* exited $code, expected 1 or 2 ($out)"
  echo "$out" | grep -q -- "$needle" || fail "register $*: message '$out' lacks '$needle'"
}
refuse "invalid character" "bad name" --port 80
refuse "longer than 63 bytes" "$(printf 'a%.0s' $(seq 1 70))" --port 80
refuse "tags_max" x --port 80 $(for t in $(seq 1 17); do echo --tag "t$t"; done)
refuse "meta_bytes" x --port 80 --meta "a=$(printf 'v%.0s' $(seq 1 500))" --meta "b=$(printf 'v%.0s' $(seq 1 500))" --meta "c=$(printf 'v%.0s' $(seq 1 100))"
refuse "neither a path" x --port 80 --check-http ftp://x/
refuse "not an IP address" x --address db.internal --port 80 --check-tcp
code=0; ctl 1 register x >/dev/null 2>&1 || code=$?
[ $code -eq 2 ] || fail "register without --port exited $code, expected 2"

# files: api registered, broken refused (logged), broken does not exist
wait_for 20 "api from the services dir visible" all_see api 1 1 2
grep -q "broken.json' refused: unknown key 'prot'" "$W/log1" || fail "refused file not logged with its reason"
[ "$(n_inst 2 broken)" = 0 ] || fail "broken registered"
refuse "defined by file" api --port 7001
code=0; out=$(ctl 1 deregister api 2>&1) || code=$?
[ $code -eq 1 ] && echo "$out" | grep -q "defined by file" || fail "deregister of a file service: $out"
# SIGHUP: a new file, a changed file, a removed file
cat > "$W/svc/broken.json" <<J
{"service": {"name": "fixed", "port": 7002}}
J
cat > "$W/svc/api.json" <<J
{"service": {"name": "api", "port": 7009, "tags": ["v2"]}}
J
kill -HUP "${PID[1]}"
wait_for 20 "fixed file registered after SIGHUP" all_see fixed 1 1 2
api_port() { [ "$(ctl 2 lookup api --tag v2 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["port"])' 2>/dev/null)" = 7009 ]; }
wait_for 20 "changed file re-registered" api_port
rm "$W/svc/api.json"
kill -HUP "${PID[1]}"
wait_for 20 "removed file deregistered" all_see api 0 1 2

# flood: far more registrations than the limit, on one connection each
rss() { awk '/VmRSS/ {print $2}' "/proc/${PID[1]}/status"; }
rss0=$(rss)
ok=0; limit=0
for k in $(seq 1 150); do
  out=$(ctl 1 register flood --id "flood-$k" --port 9000 --tag t --meta "k=$(printf 'v%.0s' $(seq 1 200))" 2>&1) && ok=$((ok + 1))
  echo "$out" | grep -q instances_max && limit=$((limit + 1))
done
rss1=$(rss)
echo "flood: $ok accepted, $limit refused at instances_max; agent RSS ${rss0} kB -> ${rss1} kB"
[ $limit -gt 0 ] || fail "no registration refused at the limit"
[ $((ok + limit)) -eq 150 ] || fail "some registrations failed for another reason"
[ $((rss1 - rss0)) -lt 20000 ] || fail "agent memory grew by $((rss1 - rss0)) kB"
ctl 1 services >/dev/null || fail "agent does not answer after the flood"
[ "$(n_inst 1 flood)" = $ok ] || fail "lookup count after flood"
echo "catalog_limits: ok"
