#!/bin/bash
# Stop the notes API found in web.pid; success if it is not running.
set -eu
alive() { grep -qa web.py "/proc/$1/cmdline" 2>/dev/null; }
if [ -s web.pid ] && alive "$(cat web.pid)"; then
	pid=$(cat web.pid)
	kill "$pid"
	for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
	if alive "$pid"; then kill -9 "$pid"; fi
fi
rm -f web.pid
echo "$ROBOCONF_COMPONENT_NAME stopped"
