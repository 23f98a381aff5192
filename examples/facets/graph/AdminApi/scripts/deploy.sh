#!/bin/bash
# Deploy the notes API (WebApi or AdminApi): log what it was given, write web.conf.
set -eu
env | grep -E '^(ROBOCONF_|KvStore_|ip=|port=|transport=|team=|health_path=|metrics_path=|greeting=|can_clear=)' \
	| sort | sed "s/^/$(date -Is) deploy: /" >> given.log
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
bash "$ROBOCONF_FILES_DIR/write-web-conf.sh"
echo "$ROBOCONF_COMPONENT_NAME $ROBOCONF_INSTANCE_PATH deployed in $PWD"
