#!/bin/bash
# Start the sensor loop in the background (no-op if it already runs).
set -eu
alive() { grep -qa sensor.py "/proc/$1/cmdline" 2>/dev/null; }
bash "$ROBOCONF_FILES_DIR/write-sensor-conf.sh"
if [ -s sensor.pid ] && alive "$(cat sensor.pid)"; then
	echo "Sensor already running (pid $(cat sensor.pid))"
	exit 0
fi
setsid nohup python3 "$ROBOCONF_FILES_DIR/sensor.py" "$PWD/sensor.conf" >>sensor.log 2>&1 </dev/null &
echo $! > sensor.pid
sleep 0.5
if ! kill -0 "$(cat sensor.pid)" 2>/dev/null; then
	echo "Sensor exited at once; end of sensor.log:" >&2
	tail -n 5 sensor.log >&2
	exit 1
fi
echo "Sensor started (pid $(cat sensor.pid)), $(grep '^target' sensor.conf)"
