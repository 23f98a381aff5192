#!/bin/bash
# Deploy the store: log what it was given, create its data_dir (from the stateful facet).
set -eu
env | grep -E '^(ROBOCONF_|ip=|port=|transport=|team=|data_dir=)' | sort | sed "s/^/$(date -Is) deploy: /" >> given.log
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }
mkdir -p "${data_dir:-data}"
echo "KvStore $ROBOCONF_INSTANCE_PATH deployed for team ${team:-?}, data in $PWD/${data_dir:-data}"
