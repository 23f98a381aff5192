#!/bin/bash
# Write web.conf from this instance's exports (own and inherited) and the KvStore.* imports.
set -eu
kv=""
if [ "${KvStore_size:-0}" -gt 0 ] && [ -n "${KvStore_0_port:-}" ]; then
	kv="${KvStore_0_ip:-127.0.0.1}:$KvStore_0_port"
fi
cat > web.conf.tmp <<CONF
# generated $(date -Is); re-read by web.py on every request
name = $ROBOCONF_INSTANCE_PATH
greeting = ${greeting:-hello}
team = ${team:-?}
can_clear = ${can_clear:-false}
health_path = ${health_path:-/health}
metrics_path = ${metrics_path:-/metrics}
kv = $kv
CONF
mv web.conf.tmp web.conf
