# @summary A Db came, changed or went: rewrite app.conf (the app re-reads it on every
# request, no restart).
#
# @param runningState undef for update.
# @param importDiff   What changed: `{added => {'<path>' => {…}}, removed => undef,
#                     component => 'Db'}` or the other way round; undef when the agent
#                     updates without a changed import.
# @param ip           The exported `App.ip`.
# @param port         The exported `App.port`.
# @param db           The `Db` imports as they are now.
class roboconf_app_module::update (
  $runningState = undef,
  $importDiff = undef,
  $ip = undef,
  $port = undef,
  $db = undef,
) {
  $dir = pyserver::instance_dir($module_name)
  if $importDiff =~ Hash {
    $added = $importDiff['added'] ? { Hash => $importDiff['added'].keys, default => [] }
    $removed = $importDiff['removed'] ? { Hash => $importDiff['removed'].keys, default => [] }
    notice("App update: ${importDiff['component']} added ${added} removed ${removed}")
  }
  roboconf_app_module::conf { 'app': dir => $dir, db => $db }
}
