#!/bin/bash
# Regenerate targets.conf from the http_service.* imports, with metrics paths from monitored.*.
set -eu
{
	echo "# generated $(date -Is) from ${http_service_size:-0} http_service and ${monitored_size:-0} monitored import(s)"
	for (( i = 0; i < ${http_service_size:-0}; i++ )); do
		name_var="http_service_${i}_name" ip_var="http_service_${i}_ip"
		port_var="http_service_${i}_port" health_var="http_service_${i}_health_path"
		[ -n "${!port_var:-}" ] || continue
		# The two import groups are separate lists: match them by instance path.
		metrics="-"
		for (( j = 0; j < ${monitored_size:-0}; j++ )); do
			m_name_var="monitored_${j}_name" m_path_var="monitored_${j}_metrics_path"
			if [ "${!m_name_var:-}" = "${!name_var:-}" ]; then metrics="${!m_path_var:--}"; fi
		done
		echo "target ${!ip_var:-127.0.0.1}:${!port_var} ${!health_var:-/health} $metrics ${!name_var:-service-$i}"
	done
} > targets.conf.tmp
mv targets.conf.tmp targets.conf
