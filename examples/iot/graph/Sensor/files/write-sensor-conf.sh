#!/bin/bash
# Write sensor.conf from this sensor's exports, its Edge's site and the Aggregator imports.
set -eu
target=""
if [ "${Aggregator_size:-0}" -gt 0 ] && [ -n "${Aggregator_0_port:-}" ]; then
	target="http://${Aggregator_0_ip:-127.0.0.1}:${Aggregator_0_port}${Aggregator_0_endpoint:-/readings}"
fi
cat > sensor.conf.tmp <<CONF
# generated $(date -Is); re-read by sensor.py at every tick
id = $ROBOCONF_INSTANCE_PATH
site = ${ANCESTOR_Edge_site:-unknown}
kind = ${kind:-temperature}
unit = ${unit:-celsius}
interval = ${interval:-5}
target = $target
CONF
mv sensor.conf.tmp sensor.conf
