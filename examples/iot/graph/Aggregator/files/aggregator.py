#!/usr/bin/env python3
"""The gateway's aggregator: an HTTP endpoint that sensors push readings to.

Usage: aggregator.py HOST PORT ENDPOINT SENSORS_CONF DATA_FILE
- POST ENDPOINT with a JSON reading or list of readings: stored in DATA_FILE.
- GET ENDPOINT: JSON summary, one entry per sensor: the expected ones listed in
  SENSORS_CONF (re-read on every request) and any other that pushed readings,
  with the last value and a status: ok, stale (late), silent (never heard of).
- GET /health: ok.
"""
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

host, port, endpoint, sensors_conf, data_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
lock = threading.Lock()
latest = {}
counts = {"total": 0}


def expected_sensors():
    """Lines `sensor <kind> <unit> <interval> <instance path>`; the path may hold spaces."""
    sensors = {}
    try:
        with open(sensors_conf) as f:
            for line in f:
                words = line.split(maxsplit=4)
                if len(words) == 5 and words[0] == "sensor":
                    sensors[words[4].strip()] = {"kind": words[1], "unit": words[2], "interval": float(words[3])}
    except OSError:
        pass
    return sensors


def summary():
    now = time.time()
    expected = expected_sensors()
    rows = []
    with lock:
        for name in sorted(set(expected) | set(latest)):
            info = expected.get(name, {})
            last = latest.get(name)
            row = {"sensor": name, "registered": name in expected,
                   "kind": info.get("kind") or (last or {}).get("kind"),
                   "unit": info.get("unit") or (last or {}).get("unit")}
            if last is None:
                row["status"] = "silent"
            else:
                age = now - last["time"]
                row.update(value=last["value"], site=last.get("site"), age=round(age, 1),
                           status="ok" if age <= 3 * info.get("interval", 60) + 5 else "stale")
            rows.append(row)
        return {"readings": counts["total"], "sensors": rows}


class Handler(BaseHTTPRequestHandler):
    def reply(self, code, obj):
        data = (json.dumps(obj, indent=1) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            return self.reply(200, {"status": "ok"})
        if self.path != endpoint:
            return self.reply(404, {"error": "not found"})
        self.reply(200, summary())

    def do_POST(self):
        if self.path != endpoint:
            return self.reply(404, {"error": "not found"})
        try:
            payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            readings = payload if isinstance(payload, list) else [payload]
            readings = [r for r in readings if isinstance(r, dict) and r.get("sensor") and "time" in r]
        except ValueError:
            return self.reply(400, {"error": "expected JSON"})
        with lock:
            with open(data_file, "a") as f:
                for r in readings:
                    f.write(json.dumps(r) + "\n")
                    if r["time"] >= latest.get(r["sensor"], {}).get("time", 0):
                        latest[r["sensor"]] = r
            counts["total"] += len(readings)
        self.reply(200, {"accepted": len(readings)})

    def log_message(self, *args):
        pass  # one line per push would flood the log


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
server = ThreadingHTTPServer((host, port), Handler)
print(f"aggregator listening on http://{host}:{port}{endpoint}", flush=True)
server.serve_forever()
