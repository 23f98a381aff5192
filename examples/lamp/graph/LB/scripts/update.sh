#!/bin/bash
# An App appeared, changed or left: regenerate lb.conf and make a running LB reload it.
set -eu
echo "update: ${ROBOCONF_IMPORT_CHANGED_COMPONENT:-?} ${ROBOCONF_IMPORT_CHANGED_INSTANCE_PATH:-?} is ${ROBOCONF_UPDATE_STATUS:-?}"
bash "$ROBOCONF_FILES_DIR/write-lb-conf.sh"
if [ -s lb.pid ] && grep -qa lb.py "/proc/$(cat lb.pid)/cmdline" 2>/dev/null; then
	kill -HUP "$(cat lb.pid)"
fi
cat lb.conf
