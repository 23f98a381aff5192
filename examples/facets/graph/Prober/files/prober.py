#!/usr/bin/env python3
"""Probes HTTP services and serves what it found.

Usage: prober.py HOST PORT TARGETS_FILE
TARGETS_FILE (re-read every round) has lines
    target <ip:port> <health_path> <metrics_path or -> <instance path>
Every 3 seconds each target's health path (and metrics path, if any) is fetched;
the result goes to status.txt next to TARGETS_FILE and is served at GET /.
"""
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

host, port, targets_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
status_file = os.path.join(os.path.dirname(os.path.abspath(targets_file)), "status.txt")


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, resp.read().decode("utf-8", "replace").strip()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace").strip()
    except OSError as e:
        return None, str(e)


def probe_forever():
    while True:
        lines = [f"probed at {time.strftime('%Y-%m-%dT%H:%M:%S')}"]
        try:
            with open(targets_file) as f:
                targets = [line.split(maxsplit=4) for line in f if line.startswith("target ")]
        except OSError:
            targets = []
        for _, address, health, metrics, name in (t for t in targets if len(t) == 5):
            code, text = fetch(f"http://{address}{health}")
            state = "UP" if code == 200 else "DOWN"
            lines.append(f"{state:<4} {name.strip()} http://{address} health={code or '-'} {text.splitlines()[0] if text else ''}")
            if metrics != "-" and code is not None:
                m_code, m_text = fetch(f"http://{address}{metrics}")
                if m_code == 200:
                    lines.append("       metrics: " + ", ".join(m_text.splitlines()))
        if not targets:
            lines.append("no HTTP service known yet")
        with open(status_file + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(status_file + ".tmp", status_file)
        time.sleep(3)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with open(status_file, "rb") as f:
                data = f.read()
        except OSError:
            data = b"no probe yet\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
threading.Thread(target=probe_forever, daemon=True).start()
server = ThreadingHTTPServer((host, port), Handler)
print(f"prober listening on {host}:{port}, its status at /", flush=True)
server.serve_forever()
