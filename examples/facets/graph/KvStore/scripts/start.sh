#!/bin/bash
# Start the key-value store on its port in the background; no-op if it already runs.
set -eu
port="${port:-16379}"
data="${data_dir:-data}"
# Loopback only, as these samples run on one machine; use "${ip:-127.0.0.1}" across machines.
bind=127.0.0.1
alive() { grep -qa kv.py "/proc/$1/cmdline" 2>/dev/null; }
env | grep -E '^(ip|port)=' | sort | sed "s/^/$(date -Is) start: /" >> given.log
if [ -s kv.pid ] && alive "$(cat kv.pid)"; then
	echo "KvStore already running (pid $(cat kv.pid))"
	exit 0
fi
mkdir -p "$data"
from=$(($(stat -c %s kv.log 2>/dev/null || echo 0) + 1))
setsid nohup python3 "$ROBOCONF_FILES_DIR/kv.py" "$bind" "$port" "$PWD/$data/store.json" >>kv.log 2>&1 </dev/null &
echo $! > kv.pid
for _ in $(seq 50); do
	# Up when this run's own server says it listens: a connection alone could reach
	# another program holding the port (then this one dies: "Address already in use").
	if tail -c +"$from" kv.log | grep -q " listening on "; then
		echo "KvStore started on $bind:$port (pid $(cat kv.pid))"
		exit 0
	fi
	kill -0 "$(cat kv.pid)" 2>/dev/null || break
	sleep 0.1
done
echo "KvStore did not start; end of kv.log:" >&2
tail -n 5 kv.log >&2
exit 1
