#!/usr/bin/env bash
# Bad input never stops an agent: garbage UDP datagrams, garbage TCP on the
# channel port, garbage, oversized and cut-off frames on the socket are
# dropped or refused and counted while the cluster keeps working; a join
# toward an address where nothing listens is an error, not a crash; bad
# flags, a busy port, an unusable or locked data dir and a missing
# certificate stop the agent at start with a clear message.
. "$(dirname "$0")/cluster_lib.bash"
PROFILE=lan # the production timings: no false suspicion under a loaded CI machine
start_cluster 3 63
wait_for 30 "3 agents alive" all_see alive 3 1 2 3

# --- UDP garbage -----------------------------------------------------------
python3 - 127.0.63.1 7950 <<'P' || fail "udp sender"
import os, random, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst = (sys.argv[1], int(sys.argv[2]))
rnd = random.Random(7)
for i in range(3000):
    n = rnd.choice([0, 1, 10, 57, 73, 200, 1400])
    b = bytes(rnd.getrandbits(8) for _ in range(n))
    if i % 3 == 0 and n > 0:
        b = b'\x01' + b[1:]          # a plausible version byte
    s.sendto(b, dst)
s.sendto(os.urandom(65000), dst)
P
sleep 0.5
drops=$(ctl 1 stats --json | python3 -c 'import json,sys; print(sum(json.load(sys.stdin)["udp"]["drops"].values()))')
[ "$drops" -ge 2900 ] || fail "garbage UDP not counted as drops ($drops)"
echo "udp: $drops garbage datagrams dropped and counted"

# --- TCP garbage on the channel port ----------------------------------------
python3 - 127.0.63.1 7950 <<'P' || fail "tcp sender"
import os, socket, sys
for junk in [os.urandom(100), b'\x00\x20' + os.urandom(32), b'\xff\xff' + os.urandom(70000), b'GET / HTTP/1.0\r\n\r\n']:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
    try:
        c.sendall(junk)
        c.settimeout(2)
        c.recv(100000)
    except Exception:
        pass
    c.close()
P
sleep 0.3
hf=$(stat_of 1 chan.handshake_failures)
[ "$hf" -ge 3 ] || fail "garbage TCP not counted as handshake failures ($hf)"
echo "tcp: $hf failed handshakes counted"

# --- socket garbage ----------------------------------------------------------
python3 - "$W/s1" <<'P' || fail "socket garbage"
import socket, struct, sys
def frames(c):
    buf = b''
    while True:
        while len(buf) >= 4:
            n = struct.unpack('>I', buf[:4])[0]
            if len(buf) < 4 + n: break
            yield buf[4:4 + n]; buf = buf[4 + n:]
        d = c.recv(65536)
        if not d: return
        buf += d
def req(i, op):  # {id: i, op: op} in msgpack
    return bytes([0x82, 0xa2]) + b'id' + bytes([i]) + bytes([0xa2]) + b'op' + bytes([0xa0 | len(op)]) + op.encode()
c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1]); c.settimeout(5)
f = frames(c)
c.sendall(struct.pack('>I', 5) + b'\xc1\xc1\xc1\xc1\xc1')
r = next(f); assert b'bad_frame' in r, r
c.sendall(struct.pack('>I', 2 << 20)); r = next(f); assert b'frame_too_large' in r, r
c.sendall(b'\0' * (2 << 20))
p = req(9, 'stats'); c.sendall(struct.pack('>I', len(p)) + p)
r = next(f); assert b'packets_in' in r, r
p = req(10, 'nosuchop'); c.sendall(struct.pack('>I', len(p)) + p)
r = next(f); assert b'unknown_op' in r, r
c.sendall(b'GET / HTTP/1.1\r\n\r\n'); r = next(f); assert b'frame_too_large' in r, r
assert next(f, None) is None  # closed by the agent
c.close()
c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1])
c.sendall(struct.pack('>I', 100) + b'\x82\xa2'); c.close()   # cut off mid-frame
P
ctl 1 members >/dev/null || fail "agent 1 stopped answering after socket garbage"
[ "$(stat_of 1 api.bad_frames)" -ge 1 ] || fail "bad frame not counted"
[ "$(stat_of 1 api.oversized_frames)" -ge 2 ] || fail "oversized frames not counted"
echo "socket: garbage, oversized and cut-off frames refused and counted"

# --- join toward nothing -----------------------------------------------------
out=$(ctl 2 join 127.0.63.99:7950 2>&1); rc=$?
[ "$rc" = 1 ] || fail "join to a dead address: exit $rc ($out)"
echo "$out" | grep -q "cannot reach" || fail "join error unclear: $out"
[ "$(stat_of 2 chan.call_errors)" -ge 1 ] || fail "failed join not counted"
kill -0 "${PID[2]}" || fail "agent 2 died after a failed join"
ctl 2 audit tail --json 2>/dev/null | grep -q '"kind":"admin.join"' || fail "join not in n2's audit log"

# --- the cluster is unharmed ------------------------------------------------
wait_for 10 "3 agents still alive everywhere" all_see alive 3 1 2 3

# --- start-up errors -------------------------------------------------------
expect_start_error() { # CODE NEEDLE ARGS...
  local code=$1 needle=$2 out rc; shift 2
  out=$(timeout 10 "$AGENT" "$@" 2>&1); rc=$?
  [ "$rc" = "$code" ] || fail "hms-agent $*: exit $rc, expected $code ($out)"
  echo "$out" | grep -q -- "$needle" || fail "hms-agent $*: message lacks '$needle': $out"
}
pkiargs=(--ca "$W/pki/ca.pub" --cert "$W/pki/n3.cert" --node-key "$W/pki/n3.key")
expect_start_error 2 "unknown option '--bogus'" --bogus
expect_start_error 2 "invalid --bind address 'x.y'" --bind x.y
expect_start_error 1 "cannot bind UDP 127.0.63.3:7950" --node n3 --bind 127.0.63.3:7950 \
  --data-dir "$W/busy" --socket "$W/busy.sock" "${pkiargs[@]}"
: > "$W/afile"
expect_start_error 1 "data dir '$W/afile'" --node n3 --bind 127.0.63.30 --data-dir "$W/afile" \
  --socket "$W/x.sock" "${pkiargs[@]}"
expect_start_error 1 "in use by another agent" --node n3 --bind 127.0.63.30 --data-dir "$W/d3" \
  --socket "$W/x.sock" "${pkiargs[@]}"
expect_start_error 1 "no certificate for node 'n9'" --node n9 --bind 127.0.63.30 \
  --data-dir "$W/d9" --socket "$W/x.sock" --ca "$W/pki/ca.pub"
expect_start_error 1 "another agent is serving it" --node n3 --bind 127.0.63.30 \
  --data-dir "$W/d30" --socket "$W/s1" "${pkiargs[@]}"

# --- hmsctl exit codes -------------------------------------------------------
"$CTL" --socket "$W/nothing.sock" members >/dev/null 2>&1; [ $? = 3 ] || fail "no agent: exit code not 3"
"$CTL" --socket "$W/s1" bogus >/dev/null 2>&1; [ $? = 2 ] || fail "unknown command: exit code not 2"
ctl 1 member nosuch >/dev/null 2>&1; [ $? = 1 ] || fail "unknown member: exit code not 1"
ctl 1 members --help >/dev/null 2>&1 || fail "members --help did not exit 0"
kill -0 "${PID[1]}" && kill -0 "${PID[2]}" && kill -0 "${PID[3]}" || fail "an agent died"
echo "ok"
