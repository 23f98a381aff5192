#!/usr/bin/env python3
"""The notes API (WebApi and AdminApi share it).

Usage: web.py HOST PORT CONF_FILE
CONF_FILE (re-read on every request) holds name, greeting, team, can_clear,
health_path, metrics_path and kv (ip:port of the KvStore).
  GET /            greeting and the notes
  POST /           add the request body as a note
  DELETE /         clear the notes, only when can_clear is true
  GET health_path  200 ok when the store answers, 503 otherwise
  GET metrics_path request and error counters
"""
import json
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

host, port, conf_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
counters = {"requests_total": 0, "kv_errors_total": 0}
lock = threading.Lock()


def read_conf():
    conf = {}
    with open(conf_file) as f:
        for line in f:
            key, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#"):
                conf[key.strip()] = value.strip()
    return conf


def kv(conf, command):
    ip, _, kv_port = conf.get("kv", "").rpartition(":")
    try:
        with socket.create_connection((ip, int(kv_port)), timeout=2) as s:
            s.sendall((command.replace("\n", " ") + "\n").encode())
            answer = s.makefile(encoding="utf-8").readline().strip()
    except (OSError, ValueError) as e:
        with lock:
            counters["kv_errors_total"] += 1
        raise OSError(f"key-value store {conf.get('kv') or '(none)'} unreachable: {e}") from e
    if answer.startswith("ERR"):
        raise OSError(answer)
    return answer if command == "PING" else json.loads(answer)


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, text):
        data = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_one(self, method):
        with lock:
            counters["requests_total"] += 1
        conf = read_conf()
        path = self.path.split("?")[0]
        try:
            if method == "GET" and path == conf.get("health_path", "/health"):
                kv(conf, "PING")
                return self.reply(200, "ok\n")
            if method == "GET" and path == conf.get("metrics_path", "/metrics"):
                with lock:
                    text = "".join(f"{k} {v}\n" for k, v in counters.items())
                return self.reply(200, text)
            if path != "/":
                return self.reply(404, "not found\n")
            if method == "POST":
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
                kv(conf, f"RPUSH notes {body.strip()}")
                return self.reply(201, "noted\n")
            if method == "DELETE":
                if conf.get("can_clear") != "true":
                    return self.reply(403, f"{conf.get('name')} may not clear the notes\n")
                kv(conf, "DEL notes")
                return self.reply(200, "cleared\n")
            notes = kv(conf, "LRANGE notes")
            lines = [f"{conf.get('greeting', 'hello')} from {conf.get('name')} (team {conf.get('team')})",
                     f"{len(notes)} note(s) in {conf.get('kv')}:"] + [f" - {n}" for n in notes]
            return self.reply(200, "\n".join(lines) + "\n")
        except (OSError, ValueError) as e:
            return self.reply(503, f"{e}\n")

    def do_GET(self):
        self.handle_one("GET")

    def do_POST(self):
        self.handle_one("POST")

    def do_DELETE(self):
        self.handle_one("DELETE")


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server = ThreadingHTTPServer((host, port), Handler)
print(f"notes API listening on {host}:{port}", flush=True)
server.serve_forever()
