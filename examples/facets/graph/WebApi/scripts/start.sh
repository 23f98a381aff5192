#!/bin/bash
# Start the notes API (WebApi or AdminApi) on its port in the background; no-op if running.
set -eu
port="${port:-18080}"
# Loopback only, as these samples run on one machine; use "${ip:-127.0.0.1}" across machines.
bind=127.0.0.1
alive() { grep -qa web.py "/proc/$1/cmdline" 2>/dev/null; }
bash "$ROBOCONF_FILES_DIR/write-web-conf.sh"
if [ -s web.pid ] && alive "$(cat web.pid)"; then
	echo "$ROBOCONF_COMPONENT_NAME already running (pid $(cat web.pid))"
	exit 0
fi
from=$(($(stat -c %s web.log 2>/dev/null || echo 0) + 1))
setsid nohup python3 "$ROBOCONF_FILES_DIR/web.py" "$bind" "$port" "$PWD/web.conf" >>web.log 2>&1 </dev/null &
echo $! > web.pid
for _ in $(seq 50); do
	# Up when this run's own server says it listens: a connection alone could reach
	# another program holding the port (then this one dies: "Address already in use").
	if tail -c +"$from" web.log | grep -q " listening on "; then
		echo "$ROBOCONF_COMPONENT_NAME started on http://$bind:$port/ (pid $(cat web.pid)), $(grep '^kv' web.conf)"
		exit 0
	fi
	kill -0 "$(cat web.pid)" 2>/dev/null || break
	sleep 0.1
done
echo "$ROBOCONF_COMPONENT_NAME did not start; end of web.log:" >&2
tail -n 5 web.log >&2
exit 1
