#!/bin/bash
# Undeploy the app server: make sure it is stopped, then remove what it generated.
set -eu
bash scripts/stop.sh
rm -f app.conf app.conf.tmp app.log
echo "App $ROBOCONF_INSTANCE_PATH undeployed"
