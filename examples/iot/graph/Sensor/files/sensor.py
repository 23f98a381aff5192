#!/usr/bin/env python3
"""A simulated sensor with store-and-forward.

Usage: sensor.py CONF_FILE
Every `interval` seconds it appends one JSON reading to readings.jsonl (next to
CONF_FILE), then POSTs the readings not sent yet to `target` when one is set.
`sent.offset` remembers how far it got, so readings taken while no aggregator
was known are delivered later. CONF_FILE is re-read at every tick.
"""
import json
import os
import random
import signal
import sys
import time
import urllib.request

conf_file = sys.argv[1]
here = os.path.dirname(os.path.abspath(conf_file))
readings_file = os.path.join(here, "readings.jsonl")
offset_file = os.path.join(here, "sent.offset")
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def read_conf():
    conf = {}
    with open(conf_file) as f:
        for line in f:
            key, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#"):
                conf[key.strip()] = value.strip()
    return conf


def next_value(kind, previous):
    if kind == "door":
        previous = previous or 0
        return 1 - previous if random.random() < 0.1 else previous
    start, step, low, high = {
        "temperature": (20.0, 0.3, -20, 45),
        "humidity": (50.0, 1.0, 0, 100),
        "soil_moisture": (40.0, 0.5, 0, 100),
    }.get(kind, (50.0, 2.0, 0, 100))
    value = start if previous is None else previous + random.uniform(-step, step)
    return round(min(high, max(low, value)), 2)


def push(target):
    offset = 0
    if os.path.exists(offset_file):
        with open(offset_file) as f:
            offset = int(f.read() or 0)
    with open(readings_file) as f:
        f.seek(offset)
        lines = [f.readline() for _ in range(200)]
    lines = [line for line in lines if line.endswith("\n")]
    if not lines:
        return
    body = ("[" + ",".join(line.strip() for line in lines) + "]").encode()
    request = urllib.request.Request(target, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as resp:
        resp.read()
    with open(offset_file, "w") as f:
        f.write(str(offset + sum(len(line.encode()) for line in lines)))


value = None
while True:
    conf = read_conf()
    value = next_value(conf.get("kind", ""), value)
    reading = {"sensor": conf.get("id"), "site": conf.get("site"), "kind": conf.get("kind"),
               "unit": conf.get("unit"), "value": value, "time": round(time.time(), 3)}
    with open(readings_file, "a") as f:
        f.write(json.dumps(reading) + "\n")
    if conf.get("target"):
        try:
            push(conf["target"])
        except OSError as e:
            print(f"push to {conf['target']} failed, will retry: {e}", flush=True)
    time.sleep(max(1.0, float(conf.get("interval") or 5)))
