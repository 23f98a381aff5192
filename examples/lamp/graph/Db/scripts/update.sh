#!/bin/bash
# Db imports nothing, so there is nothing to reconfigure; just record the call.
set -eu
echo "$(date -Is) update (${ROBOCONF_IMPORT_CHANGED_COMPONENT:-none}): nothing to do" >> db.log
