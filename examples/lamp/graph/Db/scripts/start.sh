#!/bin/bash
# Start the database server in the background (no-op if it already runs).
set -eu
port="${port:-15432}"
# Loopback only, as these samples run on one machine; use "${ip:-127.0.0.1}" across machines.
bind=127.0.0.1
alive() { grep -qa db.py "/proc/$1/cmdline" 2>/dev/null; }
if [ -s db.pid ] && alive "$(cat db.pid)"; then
	echo "Db already running (pid $(cat db.pid))"
	exit 0
fi
mkdir -p data
from=$(($(stat -c %s db.log 2>/dev/null || echo 0) + 1))
setsid nohup python3 "$ROBOCONF_FILES_DIR/db.py" "$bind" "$port" "$PWD/data/counters.json" >>db.log 2>&1 </dev/null &
echo $! > db.pid
for _ in $(seq 50); do
	# Up when this run's own server says it listens: a connection alone could reach
	# another program holding the port (then this one dies: "Address already in use").
	if tail -c +"$from" db.log | grep -q " listening on "; then
		echo "Db started on $bind:$port (pid $(cat db.pid))"
		exit 0
	fi
	kill -0 "$(cat db.pid)" 2>/dev/null || break
	sleep 0.1
done
echo "Db did not start; end of db.log:" >&2
tail -n 5 db.log >&2
exit 1
