# @summary Deploy the app server (Roboconf's per-action form: one class per action):
# install app.py and write a first app.conf; nothing runs yet.
#
# @param runningState `stopped` for deploy.
# @param ip           The exported `App.ip`.
# @param port         The exported `App.port` (a random port the agent picked).
# @param db           The `Db` imports: `{ '/vm/db' => { ip => '…', port => '…' } }` or undef.
class roboconf_app_module::deploy (
  $runningState = undef,
  $ip = undef,
  $port = undef,
  $db = undef,
) {
  $dir = pyserver::instance_dir($module_name)
  file { "${dir}/app.py":
    ensure => file,
    source => "puppet:///modules/${module_name}/app.py",
    mode   => '0755',
  }
  roboconf_app_module::conf { 'app': dir => $dir, db => $db }
}
