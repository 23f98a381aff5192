#!/bin/bash
# Stop the sensor loop found in sensor.pid; success if it is not running.
set -eu
alive() { grep -qa sensor.py "/proc/$1/cmdline" 2>/dev/null; }
if [ -s sensor.pid ] && alive "$(cat sensor.pid)"; then
	pid=$(cat sensor.pid)
	kill "$pid"
	for _ in $(seq 50); do alive "$pid" || break; sleep 0.1; done
	if alive "$pid"; then kill -9 "$pid"; fi
fi
rm -f sensor.pid
echo "Sensor stopped"
