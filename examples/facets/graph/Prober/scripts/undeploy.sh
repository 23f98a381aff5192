#!/bin/bash
# Undeploy the prober: make sure it is stopped, then remove what it generated.
set -eu
bash scripts/stop.sh
rm -f targets.conf targets.conf.tmp status.txt status.txt.tmp prober.log given.log
echo "Prober $ROBOCONF_INSTANCE_PATH undeployed"
