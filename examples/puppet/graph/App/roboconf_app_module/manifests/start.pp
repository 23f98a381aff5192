# @summary Start the app server: app.conf rewritten from the current Db imports, then the
# server running on its port (a no-op when it runs).
#
# @param runningState `running` for start.
# @param ip           The exported `App.ip`.
# @param port         The exported `App.port`.
# @param db           The `Db` imports.
class roboconf_app_module::start (
  $runningState = undef,
  $ip = undef,
  $port = undef,
  $db = undef,
) {
  $dir = pyserver::instance_dir($module_name)
  # Loopback only, as these samples run on one machine; use $ip across machines.
  $bind = '127.0.0.1'
  if $port =~ Undef {
    fail('App.port is not known: the agent must give it')
  }
  file { "${dir}/app.py":
    ensure => file,
    source => "puppet:///modules/${module_name}/app.py",
    mode   => '0755',
  }
  roboconf_app_module::conf { 'app': dir => $dir, db => $db }
  pyserver::server { 'app':
    ensure  => running,
    program => "${dir}/app.py",
    dir     => $dir,
    args    => [$bind, $port, "${dir}/app.conf"],
    port    => $port,
    bind    => $bind,
    require => [File["${dir}/app.py"], Roboconf_app_module::Conf['app']],
  }
}
