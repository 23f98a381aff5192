# @summary Stop the app server (success when it does not run).
#
# @param runningState `stopped` for stop.
# @param ip           The exported `App.ip`.
# @param port         The exported `App.port`.
# @param db           The `Db` imports.
class roboconf_app_module::stop (
  $runningState = undef,
  $ip = undef,
  $port = undef,
  $db = undef,
) {
  $dir = pyserver::instance_dir($module_name)
  pyserver::server { 'app':
    ensure  => stopped,
    program => "${dir}/app.py",
    dir     => $dir,
  }
}
