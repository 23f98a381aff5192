#!/bin/bash
# Undeploy the notes API: make sure it is stopped, then remove what it generated.
set -eu
bash scripts/stop.sh
rm -f web.conf web.conf.tmp web.log given.log
echo "$ROBOCONF_COMPONENT_NAME $ROBOCONF_INSTANCE_PATH undeployed"
