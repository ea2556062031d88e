#!/usr/bin/env bash
# A running agent whose disk fails (ENOSPC injected through the audit file
# I/O seam for a stretch of writes, then EIO on fsync) keeps serving: durable
# appends made while the disk fails are refused (never acknowledged), the
# entries are kept in memory and written when the disk recovers, audit
# status shows the failure, and afterwards the log holds every entry and
# verifies.
. "$(dirname "$0")/cluster_lib.bash"
# 127.0.55.21: apart from audit_crash (127.0.55.1), so both can run at once
node_args() {
  printf '%s\n' --node "n$1" --bind "127.0.$2.$(($1 + 20)):7950" --data-dir "$W/d$1" \
    --socket "$W/s$1" --profile "$PROFILE" --ca "$W/pki/ca.pub" --cert "$W/pki/n$1.cert" \
    --node-key "$W/pki/n$1.key"
}
export HMS_AUDIT_SEAL_MS=200
export HMS_AUDIT_FAULT=write:12:ENOSPC:6
start_cluster 1 55
up() { ctl 1 audit status >/dev/null 2>&1; }
wait_for 10 "agent answers" up
ok=0; refused=0
for i in $(seq 1 40); do
  if ctl 1 audit append --kind disk.test --field "i=$i" --durable >/dev/null 2>&1; then
    ok=$((ok + 1))
  else
    refused=$((refused + 1))
  fi
done
[ "$refused" -ge 1 ] || fail "no durable append was refused while writes failed"
ctl 1 members >/dev/null || fail "agent stopped serving while its disk failed"
errs=$(ctl 1 audit status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["write_errors"])')
[ "$errs" -ge 1 ] || fail "write errors not reported by audit status"
recovered() {
  ctl 1 audit status --json | python3 -c 'import json,sys
d=json.load(sys.stdin); sys.exit(0 if d["durable_seq"] == d["next_seq"] and not d["disk_failed"] else 1)'
}
wait_for 30 "the log catches up once the disk works again" recovered
n=$(ctl 1 audit export | grep -c '"kind":"disk.test"')
[ "$n" -eq 40 ] || fail "$n of 40 entries in the log after recovery"
ctl 1 audit verify > "$W/v" 2>&1 || { cat "$W/v"; fail "log does not verify after the disk failure"; }
kill9 1
start_node 1
wait_for 10 "agent restarts" up
ctl 1 audit verify > "$W/v" 2>&1 || { cat "$W/v"; fail "log does not verify after restart"; }
n=$(ctl 1 audit export | grep -c '"kind":"disk.test"')
[ "$n" -eq 40 ] || fail "$n of 40 entries after restart"
echo "disk failure: $refused durable appends refused, $ok acknowledged, $errs write errors; all 40 entries written after recovery, log verifies"
