#!/bin/bash
# A sensor appeared, changed or left: regenerate sensors.conf (the server re-reads it).
set -eu
echo "update: ${ROBOCONF_IMPORT_CHANGED_COMPONENT:-?} ${ROBOCONF_IMPORT_CHANGED_INSTANCE_PATH:-?} is ${ROBOCONF_UPDATE_STATUS:-?}"
bash "$ROBOCONF_FILES_DIR/write-sensors-conf.sh"
cat sensors.conf
