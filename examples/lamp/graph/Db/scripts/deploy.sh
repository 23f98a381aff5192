#!/bin/bash
# Deploy the database: check python3 and create the data directory.
set -eu
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
mkdir -p data
[ -f data/counters.json ] || echo '{}' > data/counters.json
echo "Db $ROBOCONF_INSTANCE_PATH deployed in $PWD"
