#!/bin/bash
# Write app.conf from the Db imports (used by start.sh and update.sh).
set -eu
db_ip="${Db_0_ip:-}"
db_port="${Db_0_port:-}"
{
	echo "# generated $(date -Is) from the Db imports (${Db_size:-0} known)"
	echo "name = $ROBOCONF_INSTANCE_PATH"
	if [ -n "$db_port" ]; then echo "db = ${db_ip:-127.0.0.1}:$db_port"; fi
} > app.conf.tmp
mv app.conf.tmp app.conf
