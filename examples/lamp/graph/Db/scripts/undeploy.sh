#!/bin/bash
# Undeploy the database: make sure it is stopped, then delete its data and logs.
set -eu
bash scripts/stop.sh
rm -rf data db.log
echo "Db $ROBOCONF_INSTANCE_PATH undeployed"
