#!/bin/bash
# Regenerate lb.conf from the App imports: one `server <name> <ip>:<port>` line per App.
set -eu
{
	echo "# generated $(date -Is) for $ROBOCONF_INSTANCE_PATH from ${App_size:-0} App import(s)"
	for (( i = 0; i < ${App_size:-0}; i++ )); do
		name_var="App_${i}_name" ip_var="App_${i}_ip" port_var="App_${i}_port"
		[ -n "${!port_var:-}" ] || continue
		# Instance paths may hold spaces: lb.py takes the last word as the address.
		echo "server ${!name_var:-app-$i} ${!ip_var:-127.0.0.1}:${!port_var}"
	done
} > lb.conf.tmp
mv lb.conf.tmp lb.conf
