#!/usr/bin/env bash
# The catalog's socket operations fed malformed and hostile requests straight
# over the Unix socket (no libclient): every one gets an error reply with the
# right code and a message naming the field, pipelined requests are answered
# in order, and the agent keeps serving.
. "$(dirname "$0")/catalog_lib.bash"
OFFSET=60 # 127.0.44.61
start_cluster 1 44
python3 - "$W/s1" <<'PY' || fail "socket API checks"
import socket, struct, sys

def pk(o):
    if o is None: return b"\xc0"
    if o is True: return b"\xc3"
    if o is False: return b"\xc2"
    if isinstance(o, int):
        if 0 <= o < 128: return bytes([o])
        if o < 0: return b"\xd3" + struct.pack(">q", o)
        return b"\xcf" + struct.pack(">Q", o)
    if isinstance(o, str): o = o.encode()
    if isinstance(o, bytes):
        return (b"\xdb" + struct.pack(">I", len(o)) + o)
    if isinstance(o, list):
        return b"\xdd" + struct.pack(">I", len(o)) + b"".join(pk(x) for x in o)
    if isinstance(o, dict):
        return b"\xdf" + struct.pack(">I", len(o)) + b"".join(pk(k) + pk(v) for k, v in o.items())
    raise TypeError(o)

def up(b, i=0):
    t = b[i]
    if t <= 0x7f: return t, i + 1
    if 0xa0 <= t <= 0xbf: n = t & 31; return b[i+1:i+1+n].decode(), i + 1 + n
    if 0x90 <= t <= 0x9f:
        n = t & 15; i += 1; a = []
        for _ in range(n): x, i = up(b, i); a.append(x)
        return a, i
    if 0x80 <= t <= 0x8f:
        n = t & 15; i += 1; d = {}
        for _ in range(n): k, i = up(b, i); v, i = up(b, i); d[k] = v
        return d, i
    if t == 0xc0: return None, i + 1
    if t == 0xc2: return False, i + 1
    if t == 0xc3: return True, i + 1
    if t in (0xcc, 0xcd, 0xce, 0xcf):
        w = {0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8}[t]
        return int.from_bytes(b[i+1:i+1+w], "big"), i + 1 + w
    if t in (0xd9, 0xda, 0xdb):
        w = {0xd9: 1, 0xda: 2, 0xdb: 4}[t]; n = int.from_bytes(b[i+1:i+1+w], "big")
        return b[i+1+w:i+1+w+n].decode(), i + 1 + w + n
    if t in (0xdc, 0xdd, 0xde, 0xdf):
        w = 2 if t in (0xdc, 0xde) else 4; n = int.from_bytes(b[i+1:i+1+w], "big"); i += 1 + w
        if t in (0xdc, 0xdd):
            a = []
            for _ in range(n): x, i = up(b, i); a.append(x)
            return a, i
        d = {}
        for _ in range(n): k, i = up(b, i); v, i = up(b, i); d[k] = v
        return d, i
    raise ValueError("type 0x%x" % t)

s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(10)
buf = b""
def frame(req): p = pk(req); return struct.pack(">I", len(p)) + p
def recv():
    global buf
    while True:
        if len(buf) >= 4:
            n = struct.unpack(">I", buf[:4])[0]
            if len(buf) >= 4 + n:
                m, _ = up(buf[4:4+n]); buf = buf[4+n:]; return m
        d = s.recv(65536)
        if not d: raise SystemExit("agent closed the connection")
        buf += d
rid = 0
def call(op, **a):
    global rid
    rid += 1; req = {"id": rid, "op": op}; req.update(a)
    s.sendall(frame(req)); r = recv()
    assert r["id"] == rid, r
    return r
def refused(code, needle, op, **a):
    r = call(op, **a)
    assert r["ok"] is False, (op, a, r)
    e = r["error"]
    assert e["code"] == code and needle in e["message"], (op, a, e)

refused("bad_request", "'name'", "register", name=7, port=80)
refused("bad_request", "'port'", "register", name="x", port="80")
refused("bad_request", "1-65535", "register", name="x", port=70000)
refused("bad_request", "'tags'", "register", name="x", port=80, tags="v1")
refused("bad_request", "'tags'", "register", name="x", port=80, tags=[1, 2])
refused("bad_request", "'meta'", "register", name="x", port=80, meta=["a", "b"])
refused("bad_request", "'meta'", "register", name="x", port=80, meta={"a": 1})
refused("bad_request", "unknown check field", "register", name="x", port=80, checks=[{"kind": "http", "url": "/"}])
refused("bad_request", "not http, tcp or ttl", "register", name="x", port=80, checks=[{"kind": "icmp"}])
refused("bad_request", "checks_max", "register", name="x", port=80, checks=[{"kind": "ttl", "ttl_ms": 1000}] * 5)
refused("bad_request", "'service_id'", "register", name="x", port=80, service_id="a" * 100)
refused("bad_request", "tag_max", "register", name="x", port=80, tags=["t" * 5000])
refused("bad_request", "NUL", "register", name="x\x00y", port=80)
refused("bad_request", "invalid JSON", "register", definition="{nope")
refused("bad_request", "'definition'", "register", definition=5)
refused("bad_request", "'name'", "lookup")
refused("bad_request", "invalid character", "lookup", name="no spaces")
refused("bad_request", "'all'", "lookup", name="x", all="yes")
refused("bad_request", "'service_id'", "deregister")
refused("not_found", "no instance", "deregister", service_id="nope")
refused("bad_request", "'status'", "check", service_id="x", status="maybe")
refused("bad_request", "'name'", "service.watch", name=["x"])

r = call("register", name="api", port=8080, tags=["b", "a", "a"], meta={"k": "v"})
assert r["ok"] and r["result"]["id"] == "api", r
r = call("lookup", name="api")
assert r["ok"] and len(r["result"]) == 1 and r["result"][0]["tags"] == ["a", "b"], r

# pipelined: 500 lookups written at once, replies in order
reqs = b"".join(frame({"id": 10000 + k, "op": "lookup", "name": "api"}) for k in range(500))
s.sendall(reqs)
for k in range(500):
    m = recv()
    assert m["id"] == 10000 + k and m["ok"] and len(m["result"]) == 1, m
print("socket api checks: ok")
PY
ctl 1 services >/dev/null || fail "agent does not answer after the hostile requests"
echo "catalog_api: ok"
