#!/usr/bin/env python3
"""HTTP server for catalog health-check tests, told what to answer.

    test_httpd.py --bind 127.0.44.1 --port 18080 [--pidfile F]

GET /health answers with the current code (200 at start); GET /set?code=N
sets it (N: an HTTP status, "hang" to answer only after 30 s, which a
check sees as a timeout, or "stream" for a 200 whose body never ends); GET /hits returns how many /health requests came.
Binds only where told; exits on SIGTERM.
"""
import argparse
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

state = {"code": 200, "hits": 0}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/set":
            code = parse_qs(url.query).get("code", ["200"])[0]
            with lock:
                state["code"] = code if code in ("hang", "stream") else int(code)
            self.reply(200, "ok\n")
        elif url.path == "/hits":
            with lock:
                self.reply(200, "%d\n" % state["hits"])
        else:
            with lock:
                state["hits"] += 1
                code = state["code"]
            if code == "hang":
                time.sleep(30)
                code = 200
            if code == "stream":
                # 200 with a body that does not end (for 30 s at most)
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                chunk = b"y" * 65536
                end = time.time() + 30
                try:
                    while time.time() < end:
                        self.wfile.write(chunk)
                except OSError:
                    pass
                return
            self.reply(code, "status %s\n" % code)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pidfile")
    a = ap.parse_args()
    srv = ThreadingHTTPServer((a.bind, a.port), Handler)
    srv.daemon_threads = True
    if a.pidfile:
        with open(a.pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    srv.serve_forever()


if __name__ == "__main__":
    main()
