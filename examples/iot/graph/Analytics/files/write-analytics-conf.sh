#!/bin/bash
# Write analytics.conf: the URL of the (mandatory) Aggregator's summary.
set -eu
cat > analytics.conf.tmp <<CONF
# generated $(date -Is) from the Aggregator import ${Aggregator_0_name:-?}
source = http://${Aggregator_0_ip:-127.0.0.1}:${Aggregator_0_port:?no Aggregator import}${Aggregator_0_endpoint:-/readings}
period = 10
CONF
mv analytics.conf.tmp analytics.conf
