# @summary The counter database, one class for every action (Roboconf's `init.pp` form).
#
# Roboconf applies `class{'roboconf_db_module': runningState => …, ip => …, port => …}`
# for deploy and stop (`stopped`), start (`running`), undeploy and update (`undef`;
# update also gives `importDiff`, but Db imports nothing, so only undeploy comes here
# with `undef`).
#
# @param runningState `running`, `stopped` or undef (see above).
# @param importDiff   Unused: Db imports nothing (declared because Roboconf requires it).
# @param ip           The exported `Db.ip` (the machine's address).
# @param port         The exported `Db.port`.
class roboconf_db_module (
  $runningState = undef,
  $importDiff = undef,
  $ip = undef,
  $port = '15432',
) {
  # The instance's folder (Puppet gets no Roboconf environment variable): the parent of
  # this module's folder, i.e. the module path entry the plug-in gave.
  $dir = pyserver::instance_dir($module_name)
  # Loopback only, as these samples run on one machine; use $ip across machines.
  $bind = '127.0.0.1'

  case $runningState {
    'running', 'stopped': {
      # Deploy, start and stop: the software installed, the server as asked.
      file { "${dir}/db.py":
        ensure => file,
        source => "puppet:///modules/${module_name}/db.py",
        mode   => '0755',
      }
      file { "${dir}/data":
        ensure => directory,
      }
      exec { 'db: empty counters':
        command  => "echo '{}' > ${shellquote("${dir}/data/counters.json")}",
        creates  => "${dir}/data/counters.json",
        provider => 'shell',
        require  => File["${dir}/data"],
      }
      pyserver::server { 'db':
        ensure  => $runningState,
        program => "${dir}/db.py",
        dir     => $dir,
        args    => [$bind, $port, "${dir}/data/counters.json"],
        port    => $port,
        bind    => $bind,
        require => [File["${dir}/db.py"], Exec['db: empty counters']],
      }
    }
    default: {
      # Undeploy: stopped, then everything it installed or wrote removed.
      pyserver::server { 'db':
        ensure  => stopped,
        program => "${dir}/db.py",
        dir     => $dir,
      }
      file { ["${dir}/db.py", "${dir}/data", "${dir}/db.log"]:
        ensure  => absent,
        force   => true,
        require => Pyserver::Server['db'],
      }
    }
  }
}
