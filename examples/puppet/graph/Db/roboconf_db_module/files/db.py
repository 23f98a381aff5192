#!/usr/bin/env python3
"""A tiny counter database: one TCP line protocol, counters kept in a JSON file.

Commands (one per line): PING, GET <key>, INCR <key>. Answers one line each.
Usage: db.py HOST PORT DATA_FILE
"""
import json
import os
import signal
import socketserver
import sys
import threading

host, port, data_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
try:
    with open(data_file) as f:
        counters = json.load(f)
except (OSError, ValueError):
    counters = {}


def save():
    tmp = data_file + ".tmp"
    with open(tmp, "w") as f:
        json.dump(counters, f)
    os.replace(tmp, data_file)


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for raw in self.rfile:
            words = raw.decode("utf-8", "replace").split()
            if not words:
                continue
            cmd, args = words[0].upper(), words[1:]
            with lock:
                if cmd == "PING":
                    answer = "PONG"
                elif cmd == "GET" and len(args) == 1:
                    answer = str(counters.get(args[0], 0))
                elif cmd == "INCR" and len(args) == 1:
                    counters[args[0]] = counters.get(args[0], 0) + 1
                    save()
                    answer = str(counters[args[0]])
                else:
                    answer = "ERR unknown command"
            self.wfile.write((answer + "\n").encode())


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with Server((host, port), Handler) as server:
    print(f"db listening on {host}:{port}, data in {data_file}", flush=True)
    server.serve_forever()
