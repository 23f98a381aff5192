#!/bin/bash
# A Db appeared, changed or left: rewrite app.conf (the server re-reads it per request).
set -eu
echo "update: ${ROBOCONF_IMPORT_CHANGED_COMPONENT:-?} ${ROBOCONF_IMPORT_CHANGED_INSTANCE_PATH:-?} is ${ROBOCONF_UPDATE_STATUS:-?}"
bash "$ROBOCONF_FILES_DIR/write-app-conf.sh"
cat app.conf
