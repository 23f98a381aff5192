#!/bin/bash
# Deploy the aggregator: check python3, create its data directory and sensor list.
set -eu
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
mkdir -p data
bash "$ROBOCONF_FILES_DIR/write-sensors-conf.sh"
echo "Aggregator $ROBOCONF_INSTANCE_PATH deployed in $PWD"
