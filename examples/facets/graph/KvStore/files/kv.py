#!/usr/bin/env python3
"""A tiny key-value store over TCP, one command per line, one answer per line.

Commands: PING, GET k, SET k v, INCR k, RPUSH k v (v = rest of the line),
LRANGE k (a JSON list), DEL k. Everything is saved to a JSON file after each write.
Usage: kv.py HOST PORT DATA_FILE
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
        store = json.load(f)
except (OSError, ValueError):
    store = {}


def save():
    with open(data_file + ".tmp", "w") as f:
        json.dump(store, f)
    os.replace(data_file + ".tmp", data_file)


def run(line):
    cmd, _, rest = line.strip().partition(" ")
    key, _, value = rest.partition(" ")
    cmd = cmd.upper()
    if cmd == "PING":
        return "PONG"
    if not key:
        return "ERR missing key"
    if cmd == "GET":
        return json.dumps(store.get(key))
    if cmd == "LRANGE":
        return json.dumps(store.get(key) or [])
    if cmd == "SET":
        store[key] = value
    elif cmd == "INCR":
        store[key] = int(store.get(key) or 0) + 1
    elif cmd == "RPUSH":
        store.setdefault(key, []).append(value)
    elif cmd == "DEL":
        store.pop(key, None)
    else:
        return "ERR unknown command"
    save()
    return json.dumps(store.get(key))


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        for raw in self.rfile:
            with lock:
                try:
                    answer = run(raw.decode("utf-8", "replace"))
                except (ValueError, TypeError, AttributeError) as e:
                    answer = f"ERR {e}"
            self.wfile.write((answer + "\n").encode())


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with Server((host, port), Handler) as server:
    print(f"kv listening on {host}:{port}, data in {data_file}", flush=True)
    server.serve_forever()
