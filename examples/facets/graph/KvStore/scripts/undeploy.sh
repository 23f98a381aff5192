#!/bin/bash
# Undeploy the store: make sure it is stopped, then delete its data and logs.
set -eu
data="${data_dir:-data}"
case "$data" in /* | *..* | . | "") echo "refusing to delete data_dir '$data'" >&2; exit 1 ;; esac
bash scripts/stop.sh
rm -rf "$data" kv.log given.log
echo "KvStore $ROBOCONF_INSTANCE_PATH undeployed"
