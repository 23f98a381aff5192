#!/bin/bash
# The aggregator appeared, moved or left: rewrite sensor.conf (read at the next tick).
set -eu
echo "update: ${ROBOCONF_IMPORT_CHANGED_COMPONENT:-?} ${ROBOCONF_IMPORT_CHANGED_INSTANCE_PATH:-?} is ${ROBOCONF_UPDATE_STATUS:-?}"
bash "$ROBOCONF_FILES_DIR/write-sensor-conf.sh"
grep '^target' sensor.conf
