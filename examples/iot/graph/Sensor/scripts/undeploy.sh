#!/bin/bash
# Undeploy a sensor: make sure it is stopped, then drop its configuration and buffered readings.
set -eu
bash scripts/stop.sh
rm -f sensor.conf sensor.conf.tmp sensor.log readings.jsonl sent.offset
echo "Sensor $ROBOCONF_INSTANCE_PATH undeployed"
