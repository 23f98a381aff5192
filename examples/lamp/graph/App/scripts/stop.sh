#!/bin/bash
# Stop the app server found in app.pid; success if it is not running.
set -eu
alive() { grep -qa app.py "/proc/$1/cmdline" 2>/dev/null; }
if [ -s app.pid ] && alive "$(cat app.pid)"; then
	pid=$(cat app.pid)
	kill "$pid"
	for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
	if alive "$pid"; then kill -9 "$pid"; fi
fi
rm -f app.pid
echo "App stopped"
