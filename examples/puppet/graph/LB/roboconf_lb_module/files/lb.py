#!/usr/bin/env python3
"""A tiny round-robin HTTP load balancer.

Usage: lb.py HOST PORT CONF_FILE
CONF_FILE has one `server <name> <ip>:<port>` line per backend. It is re-read
when it changes (checked on each request) and on SIGHUP. GET /lb-status lists
the backends; GET /lb-load answers the load as JSON, one `key: value` per line
(`load`: requests per second per backend over the last 10 s); every other
request is forwarded to the next backend in turn, skipping backends that refuse
the connection.
"""
import collections
import http.client
import time
import http.server
import itertools
import os
import signal
import sys
import threading

host, port, conf_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
state = {"mtime": None, "servers": [], "turn": itertools.count()}
lock = threading.Lock()
WINDOW = 10.0
recent = collections.deque(maxlen=100000)


def load(backends):
    now = time.monotonic()
    with lock:
        while recent and recent[0] < now - WINDOW:
            recent.popleft()
        n = len(recent)
    per_s = n / WINDOW
    return per_s / max(1, backends), per_s


def servers():
    with lock:
        try:
            mtime = os.stat(conf_file).st_mtime_ns
        except OSError:
            mtime = None
        if mtime != state["mtime"]:
            found = []
            if mtime is not None:
                with open(conf_file) as f:
                    for line in f:
                        words = line.split()
                        if len(words) >= 3 and words[0] == "server":
                            ip, _, p = words[-1].rpartition(":")
                            found.append((" ".join(words[1:-1]), ip, int(p)))
            state["mtime"], state["servers"] = mtime, found
            print(f"loaded {len(found)} backend(s) from {conf_file}", flush=True)
        return list(state["servers"]), next(state["turn"])


def reload(*_):
    with lock:
        state["mtime"] = None


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, code, body, headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def forward(self):
        backends, turn = servers()
        if self.path == "/lb-status":
            text = "".join(f"server {n} {ip}:{p}\n" for n, ip, p in backends)
            return self.reply(200, (text or "no backend\n").encode())
        if self.path == "/lb-load":
            per_backend, per_s = load(len(backends))
            text = (f'{{\n"load": {per_backend:.2f},\n"requests-per-second": {per_s:.2f},\n'
                    f'"backends": {len(backends)}\n}}\n')
            return self.reply(200, text.encode(), [("Content-Type", "application/json")])
        with lock:
            recent.append(time.monotonic())
        length = int(self.headers.get("Content-Length") or 0)
        payload = self.rfile.read(length) if length else None
        for i in range(len(backends)):
            name, ip, p = backends[(turn + i) % len(backends)]
            try:
                conn = http.client.HTTPConnection(ip, p, timeout=5)
                conn.request(self.command, self.path, body=payload,
                             headers={k: v for k, v in self.headers.items() if k.lower() != "connection"})
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
            except OSError:
                continue
            keep = [(k, v) for k, v in resp.getheaders()
                    if k.lower() not in ("content-length", "connection", "transfer-encoding")]
            return self.reply(resp.status, body, keep + [("X-Backend", name)])
        self.reply(503, b"no backend available\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = forward


signal.signal(signal.SIGHUP, reload)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server = http.server.ThreadingHTTPServer((host, port), Handler)
print(f"lb listening on {host}:{port}, config {conf_file}", flush=True)
server.serve_forever()
