#!/bin/bash
# Undeploy the analytics sink: make sure it is stopped, then delete its reports.
set -eu
bash scripts/stop.sh
rm -f analytics.conf analytics.conf.tmp analytics.log report.txt report.txt.tmp history.csv
echo "Analytics $ROBOCONF_INSTANCE_PATH undeployed"
