#!/bin/bash
# Deploy the prober: log what it was given and write a first targets.conf.
set -eu
env | grep -E '^(ROBOCONF_|http_service_|monitored_|ip=|port=|team=)' | sort | sed "s/^/$(date -Is) deploy: /" >> given.log
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
bash "$ROBOCONF_FILES_DIR/write-targets.sh"
echo "Prober $ROBOCONF_INSTANCE_PATH deployed in $PWD"
