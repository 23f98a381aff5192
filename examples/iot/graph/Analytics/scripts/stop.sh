#!/bin/bash
# Stop the analytics loop found in analytics.pid; success if it is not running.
set -eu
alive() { grep -qa analytics.py "/proc/$1/cmdline" 2>/dev/null; }
if [ -s analytics.pid ] && alive "$(cat analytics.pid)"; then
	pid=$(cat analytics.pid)
	kill "$pid"
	for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
	if alive "$pid"; then kill -9 "$pid"; fi
fi
rm -f analytics.pid
echo "Analytics stopped"
