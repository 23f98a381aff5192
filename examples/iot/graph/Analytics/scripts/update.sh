#!/bin/bash
# The aggregator moved (or another one appeared): rewrite analytics.conf, read at the next round.
set -eu
echo "update: ${ROBOCONF_IMPORT_CHANGED_COMPONENT:-?} ${ROBOCONF_IMPORT_CHANGED_INSTANCE_PATH:-?} is ${ROBOCONF_UPDATE_STATUS:-?}"
bash "$ROBOCONF_FILES_DIR/write-analytics-conf.sh"
grep '^source' analytics.conf
