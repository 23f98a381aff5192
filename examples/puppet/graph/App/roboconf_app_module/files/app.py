#!/usr/bin/env python3
"""A tiny application server: says who it is and counts visits in the Db.

Usage: app.py HOST PORT CONF_FILE
CONF_FILE holds `name = ...` and `db = ip:port`; it is re-read on every request,
so update.sh can point the app at another database without a restart.
"""
import http.server
import signal
import socket
import sys

host, port, conf_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def read_conf():
    conf = {}
    try:
        with open(conf_file) as f:
            for line in f:
                key, sep, value = line.partition("=")
                if sep and not line.lstrip().startswith("#"):
                    conf[key.strip()] = value.strip()
    except OSError:
        pass
    return conf


def db_call(address, command):
    ip, _, db_port = address.rpartition(":")
    with socket.create_connection((ip, int(db_port)), timeout=2) as s:
        s.sendall((command + "\n").encode())
        return s.makefile().readline().strip()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        conf = read_conf()
        name, db = conf.get("name", "?"), conf.get("db", "")
        if self.path == "/health":
            body = "ok\n"
        elif not db:
            body = f"Hello from {name} on port {port}; no database known yet\n"
        else:
            try:
                visits = db_call(db, "INCR visits")
                body = f"Hello from {name} on port {port}; database {db} counts visit #{visits}\n"
            except (OSError, ValueError) as e:
                body = f"Hello from {name} on port {port}; database {db} unreachable ({e})\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server = http.server.ThreadingHTTPServer((host, port), Handler)
print(f"app listening on {host}:{port}", flush=True)
server.serve_forever()
