#!/bin/bash
# Deploy the analytics sink: check python3 (its configuration needs the aggregator, so start writes it).
set -eu
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
echo "Analytics $ROBOCONF_INSTANCE_PATH deployed in $PWD"
