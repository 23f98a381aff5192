#!/bin/bash
# Stop the prober found in prober.pid; success if it is not running.
set -eu
alive() { grep -qa prober.py "/proc/$1/cmdline" 2>/dev/null; }
if [ -s prober.pid ] && alive "$(cat prober.pid)"; then
	pid=$(cat prober.pid)
	kill "$pid"
	for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
	if alive "$pid"; then kill -9 "$pid"; fi
fi
rm -f prober.pid
echo "Prober stopped"
