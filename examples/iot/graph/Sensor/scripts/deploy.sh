#!/bin/bash
# Deploy a sensor: check python3 and write its first configuration.
set -eu
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
bash "$ROBOCONF_FILES_DIR/write-sensor-conf.sh"
echo "Sensor $ROBOCONF_INSTANCE_PATH (${kind:-?} in ${unit:-?}) deployed in $PWD"
