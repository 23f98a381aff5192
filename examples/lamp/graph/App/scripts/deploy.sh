#!/bin/bash
# Deploy the app server: check python3 and write its first configuration.
set -eu
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
bash "$ROBOCONF_FILES_DIR/write-app-conf.sh"
echo "App $ROBOCONF_INSTANCE_PATH deployed in $PWD"
