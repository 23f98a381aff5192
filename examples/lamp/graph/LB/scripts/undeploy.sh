#!/bin/bash
# Undeploy the load balancer: make sure it is stopped, then remove what it generated.
set -eu
bash scripts/stop.sh
rm -f lb.conf lb.conf.tmp lb.log
echo "LB $ROBOCONF_INSTANCE_PATH undeployed"
