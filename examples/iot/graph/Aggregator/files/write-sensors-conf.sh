#!/bin/bash
# Regenerate sensors.conf (the sensors to expect) from the optional Sensor imports.
set -eu
{
	echo "# generated $(date -Is) from ${Sensor_size:-0} Sensor import(s)"
	for (( i = 0; i < ${Sensor_size:-0}; i++ )); do
		name_var="Sensor_${i}_name" kind_var="Sensor_${i}_kind" unit_var="Sensor_${i}_unit" every_var="Sensor_${i}_interval"
		echo "sensor ${!kind_var:-unknown} ${!unit_var:-none} ${!every_var:-60} ${!name_var:-sensor-$i}"
	done
} > sensors.conf.tmp
mv sensors.conf.tmp sensors.conf
