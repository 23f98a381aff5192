#!/bin/bash
# Undeploy the aggregator: make sure it is stopped, then delete its data and generated files.
set -eu
bash scripts/stop.sh
rm -rf data sensors.conf sensors.conf.tmp aggregator.log
echo "Aggregator $ROBOCONF_INSTANCE_PATH undeployed"
