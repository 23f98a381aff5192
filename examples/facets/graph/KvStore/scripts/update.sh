#!/bin/bash
# KvStore imports nothing: just log the call.
set -eu
echo "$(date -Is) update: ${ROBOCONF_IMPORT_CHANGED_COMPONENT:-nothing} changed, nothing to do" >> given.log
