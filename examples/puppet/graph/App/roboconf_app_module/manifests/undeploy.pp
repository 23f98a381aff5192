# @summary Undeploy the app server: stopped, then what deploy and start wrote removed.
#
# @param runningState undef for undeploy.
# @param ip           The exported `App.ip`.
# @param port         The exported `App.port`.
# @param db           The `Db` imports.
class roboconf_app_module::undeploy (
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
  file { ["${dir}/app.py", "${dir}/app.conf", "${dir}/app.log"]:
    ensure  => absent,
    require => Pyserver::Server['app'],
  }
}
