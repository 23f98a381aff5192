#!/bin/bash
# An HTTP service came, changed or went: log it and regenerate targets.conf (read every round).
set -eu
env | grep -E '^(ROBOCONF_UPDATE_STATUS|ROBOCONF_IMPORT_CHANGED_)' | sort | sed "s/^/$(date -Is) update: /" >> given.log
bash "$ROBOCONF_FILES_DIR/write-targets.sh"
cat targets.conf
