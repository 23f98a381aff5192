#!/bin/bash
# The KvStore moved or another appeared: log the change and rewrite web.conf (re-read per request).
set -eu
env | grep -E '^(ROBOCONF_UPDATE_STATUS|ROBOCONF_IMPORT_CHANGED_|KvStore_)' | sort | sed "s/^/$(date -Is) update: /" >> given.log
bash "$ROBOCONF_FILES_DIR/write-web-conf.sh"
grep '^kv' web.conf
