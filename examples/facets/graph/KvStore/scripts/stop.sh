#!/bin/bash
# Stop the key-value store found in kv.pid; success if it is not running.
set -eu
alive() { grep -qa kv.py "/proc/$1/cmdline" 2>/dev/null; }
if [ -s kv.pid ] && alive "$(cat kv.pid)"; then
	pid=$(cat kv.pid)
	kill "$pid"
	for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
	if alive "$pid"; then kill -9 "$pid"; fi
fi
rm -f kv.pid
echo "KvStore stopped"
