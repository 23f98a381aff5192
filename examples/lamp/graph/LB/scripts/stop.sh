#!/bin/bash
# Stop the load balancer found in lb.pid; success if it is not running.
set -eu
alive() { grep -qa lb.py "/proc/$1/cmdline" 2>/dev/null; }
if [ -s lb.pid ] && alive "$(cat lb.pid)"; then
	pid=$(cat lb.pid)
	kill "$pid"
	for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
	if alive "$pid"; then kill -9 "$pid"; fi
fi
rm -f lb.pid
echo "LB stopped"
