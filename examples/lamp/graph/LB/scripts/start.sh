#!/bin/bash
# Regenerate lb.conf, then start the load balancer in the background; no-op if running.
set -eu
port="${port:-18080}"
# Loopback only, as these samples run on one machine; use "${ip:-127.0.0.1}" across machines.
bind=127.0.0.1
alive() { grep -qa lb.py "/proc/$1/cmdline" 2>/dev/null; }
bash "$ROBOCONF_FILES_DIR/write-lb-conf.sh"
if [ -s lb.pid ] && alive "$(cat lb.pid)"; then
	kill -HUP "$(cat lb.pid)"
	echo "LB already running (pid $(cat lb.pid)); told it to reload lb.conf"
	exit 0
fi
from=$(($(stat -c %s lb.log 2>/dev/null || echo 0) + 1))
setsid nohup python3 "$ROBOCONF_FILES_DIR/lb.py" "$bind" "$port" "$PWD/lb.conf" >>lb.log 2>&1 </dev/null &
echo $! > lb.pid
for _ in $(seq 50); do
	# Up when this run's own server says it listens: a connection alone could reach
	# another program holding the port (then this one dies: "Address already in use").
	if tail -c +"$from" lb.log | grep -q " listening on "; then
		echo "LB started on $bind:$port (pid $(cat lb.pid)) with $(grep -c '^server' lb.conf || true) backend(s)"
		exit 0
	fi
	kill -0 "$(cat lb.pid)" 2>/dev/null || break
	sleep 0.1
done
echo "LB did not start; end of lb.log:" >&2
tail -n 5 lb.log >&2
exit 1
