#!/bin/bash
# Start the prober on its random port in the background; no-op if it already runs.
set -eu
port="${port:?the agent must give the random port}"
# Loopback only, as these samples run on one machine; use "${ip:-127.0.0.1}" across machines.
bind=127.0.0.1
alive() { grep -qa prober.py "/proc/$1/cmdline" 2>/dev/null; }
bash "$ROBOCONF_FILES_DIR/write-targets.sh"
if [ -s prober.pid ] && alive "$(cat prober.pid)"; then
	echo "Prober already running (pid $(cat prober.pid))"
	exit 0
fi
from=$(($(stat -c %s prober.log 2>/dev/null || echo 0) + 1))
setsid nohup python3 "$ROBOCONF_FILES_DIR/prober.py" "$bind" "$port" "$PWD/targets.conf" >>prober.log 2>&1 </dev/null &
echo $! > prober.pid
for _ in $(seq 50); do
	# Up when this run's own server says it listens: a connection alone could reach
	# another program holding the port (then this one dies: "Address already in use").
	if tail -c +"$from" prober.log | grep -q " listening on "; then
		echo "Prober started, status on http://$bind:$port/ (pid $(cat prober.pid))"
		exit 0
	fi
	kill -0 "$(cat prober.pid)" 2>/dev/null || break
	sleep 0.1
done
echo "Prober did not start; end of prober.log:" >&2
tail -n 5 prober.log >&2
exit 1
