#!/bin/bash
# Point the analytics loop at the aggregator and start it in the background; no-op if running.
set -eu
alive() { grep -qa analytics.py "/proc/$1/cmdline" 2>/dev/null; }
bash "$ROBOCONF_FILES_DIR/write-analytics-conf.sh"
if [ -s analytics.pid ] && alive "$(cat analytics.pid)"; then
	echo "Analytics already running (pid $(cat analytics.pid))"
	exit 0
fi
setsid nohup python3 "$ROBOCONF_FILES_DIR/analytics.py" "$PWD/analytics.conf" >>analytics.log 2>&1 </dev/null &
echo $! > analytics.pid
sleep 0.5
if ! kill -0 "$(cat analytics.pid)" 2>/dev/null; then
	echo "Analytics exited at once; end of analytics.log:" >&2
	tail -n 5 analytics.log >&2
	exit 1
fi
echo "Analytics started (pid $(cat analytics.pid)), $(grep '^source' analytics.conf)"
