#!/bin/bash
# Stop the aggregator found in aggregator.pid; success if it is not running.
set -eu
alive() { grep -qa aggregator.py "/proc/$1/cmdline" 2>/dev/null; }
if [ -s aggregator.pid ] && alive "$(cat aggregator.pid)"; then
	pid=$(cat aggregator.pid)
	kill "$pid"
	for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
	if alive "$pid"; then kill -9 "$pid"; fi
fi
rm -f aggregator.pid
echo "Aggregator stopped"
