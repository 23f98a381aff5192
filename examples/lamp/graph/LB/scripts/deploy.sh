#!/bin/bash
# Deploy the load balancer: check python3 and write a first lb.conf.
set -eu
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
bash "$ROBOCONF_FILES_DIR/write-lb-conf.sh"
echo "LB $ROBOCONF_INSTANCE_PATH deployed in $PWD"
