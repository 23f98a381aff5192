#!/bin/bash
# Start the app server on its (random) port in the background; no-op if running.
set -eu
port="${port:?the agent must give the port}"
# Loopback only, as these samples run on one machine; use "${ip:-127.0.0.1}" across machines.
bind=127.0.0.1
alive() { grep -qa app.py "/proc/$1/cmdline" 2>/dev/null; }
bash "$ROBOCONF_FILES_DIR/write-app-conf.sh"
if [ -s app.pid ] && alive "$(cat app.pid)"; then
	echo "App already running (pid $(cat app.pid))"
	exit 0
fi
from=$(($(stat -c %s app.log 2>/dev/null || echo 0) + 1))
setsid nohup python3 "$ROBOCONF_FILES_DIR/app.py" "$bind" "$port" "$PWD/app.conf" >>app.log 2>&1 </dev/null &
echo $! > app.pid
for _ in $(seq 50); do
	# Up when this run's own server says it listens: a connection alone could reach
	# another program holding the port (then this one dies: "Address already in use").
	if tail -c +"$from" app.log | grep -q " listening on "; then
		echo "App started on $bind:$port (pid $(cat app.pid)), $(grep '^db' app.conf || echo 'no db yet')"
		exit 0
	fi
	kill -0 "$(cat app.pid)" 2>/dev/null || break
	sleep 0.1
done
echo "App did not start; end of app.log:" >&2
tail -n 5 app.log >&2
exit 1
