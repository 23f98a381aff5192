#!/usr/bin/env python3
"""The cloud analytics sink: polls the aggregator and writes reports.

Usage: analytics.py CONF_FILE
CONF_FILE (re-read every round) gives `source` (the aggregator's summary URL) and
`period` (seconds). Each round writes report.txt (per kind: sensors reporting,
mean, min, max of their last values, plus the late or silent ones) and appends
the same figures to history.csv, both next to CONF_FILE.
"""
import json
import os
import signal
import sys
import time
import urllib.request

conf_file = sys.argv[1]
here = os.path.dirname(os.path.abspath(conf_file))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def read_conf():
    conf = {}
    with open(conf_file) as f:
        for line in f:
            key, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith("#"):
                conf[key.strip()] = value.strip()
    return conf


def one_round(source):
    with urllib.request.urlopen(source, timeout=5) as resp:
        summary = json.load(resp)
    kinds = {}
    for row in summary["sensors"]:
        kinds.setdefault(row.get("kind") or "unknown", []).append(row)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    lines = [f"report {stamp} from {source}: {summary['readings']} readings received"]
    csv = []
    for kind, rows in sorted(kinds.items()):
        values = [r["value"] for r in rows if r["status"] == "ok"]
        unit = rows[0].get("unit") or ""
        if values:
            mean = sum(values) / len(values)
            lines.append(f"{kind:>14}: {len(values)}/{len(rows)} reporting, mean {mean:.2f} {unit}, "
                         f"min {min(values)}, max {max(values)}")
            csv.append(f"{stamp},{kind},{len(values)},{mean:.3f},{min(values)},{max(values)}")
        else:
            lines.append(f"{kind:>14}: 0/{len(rows)} reporting")
        for r in rows:
            if r["status"] != "ok":
                lines.append(f"{'':>14}  {r['status']}: {r['sensor']}")
    with open(os.path.join(here, "report.txt.tmp"), "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(os.path.join(here, "report.txt.tmp"), os.path.join(here, "report.txt"))
    with open(os.path.join(here, "history.csv"), "a") as f:
        f.writelines(line + "\n" for line in csv)


while True:
    conf = read_conf()
    try:
        one_round(conf["source"])
    except (OSError, ValueError, KeyError) as e:
        print(f"round failed, will retry: {e!r}", flush=True)
    time.sleep(max(1.0, float(conf.get("period") or 10)))
