#!/bin/bash
# Stop the database server found in db.pid; success if it is not running.
set -eu
alive() { grep -qa db.py "/proc/$1/cmdline" 2>/dev/null; }
if [ -s db.pid ] && alive "$(cat db.pid)"; then
	pid=$(cat db.pid)
	kill "$pid"
	for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
	if alive "$pid"; then kill -9 "$pid"; fi
fi
rm -f db.pid
echo "Db stopped"
