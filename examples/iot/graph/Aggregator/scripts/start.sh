#!/bin/bash
# Start the aggregator's HTTP endpoint in the background; no-op if it already runs.
set -eu
port="${port:-17080}"
endpoint="${endpoint:-/readings}"
# Loopback only, as these samples run on one machine; use "${ip:-127.0.0.1}" across machines.
bind=127.0.0.1
alive() { grep -qa aggregator.py "/proc/$1/cmdline" 2>/dev/null; }
mkdir -p data
bash "$ROBOCONF_FILES_DIR/write-sensors-conf.sh"
if [ -s aggregator.pid ] && alive "$(cat aggregator.pid)"; then
	echo "Aggregator already running (pid $(cat aggregator.pid))"
	exit 0
fi
from=$(($(stat -c %s aggregator.log 2>/dev/null || echo 0) + 1))
setsid nohup python3 "$ROBOCONF_FILES_DIR/aggregator.py" "$bind" "$port" "$endpoint" \
	"$PWD/sensors.conf" "$PWD/data/readings.jsonl" >>aggregator.log 2>&1 </dev/null &
echo $! > aggregator.pid
for _ in $(seq 50); do
	# Up when this run's own server says it listens: a connection alone could reach
	# another program holding the port (then this one dies: "Address already in use").
	if tail -c +"$from" aggregator.log | grep -q " listening on "; then
		echo "Aggregator started on http://$bind:$port$endpoint (pid $(cat aggregator.pid))"
		exit 0
	fi
	kill -0 "$(cat aggregator.pid)" 2>/dev/null || break
	sleep 0.1
done
echo "Aggregator did not start; end of aggregator.log:" >&2
tail -n 5 aggregator.log >&2
exit 1
