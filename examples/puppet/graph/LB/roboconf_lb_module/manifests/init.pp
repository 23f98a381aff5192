# @summary The round-robin load balancer, one class for every action (Roboconf's
# `init.pp` form), which tells the actions apart by what it is given:
#
# | action            | runningState | importDiff |
# |-------------------|--------------|------------|
# | deploy, stop      | stopped      | undef      |
# | start             | running      | undef      |
# | update            | undef        | a Hash     |
# | undeploy          | undef        | undef      |
#
# (An update without a changed import, which Roboconf may send, would look like an
# undeploy; a component with imports that must survive one should use per-action
# manifests, as roboconf_app_module does.)
#
# Every action but undeploy writes lb.conf from the App imports; when it changes, a
# running balancer is sent SIGHUP and reloads it (it also notices a changed file on its
# next request); update never starts nor stops it. `GET /lb-status` lists the backends.
#
# @param runningState See above.
# @param importDiff   `{added => {'<path>' => {ip => …, port => …}}, removed => undef,
#                     component => 'App'}` or the other way round.
# @param ip           The exported `LB.ip`.
# @param port         The exported `LB.port`.
# @param app          The `App` imports as they are now, or undef.
class roboconf_lb_module (
  $runningState = undef,
  $importDiff = undef,
  $ip = undef,
  $port = '18080',
  $app = undef,
) {
  $dir = pyserver::instance_dir($module_name)
  # Loopback only, as these samples run on one machine; use $ip across machines.
  $bind = '127.0.0.1'

  if $runningState =~ Undef and $importDiff =~ Undef {
    # Undeploy: stopped, then what the other actions wrote removed.
    pyserver::server { 'lb':
      ensure  => stopped,
      program => "${dir}/lb.py",
      dir     => $dir,
    }
    file { ["${dir}/lb.py", "${dir}/lb.conf", "${dir}/lb.log"]:
      ensure  => absent,
      require => Pyserver::Server['lb'],
    }
  } else {
    if $importDiff =~ Hash {
      $added = $importDiff['added'] ? { Hash => $importDiff['added'].keys, default => [] }
      $removed = $importDiff['removed'] ? { Hash => $importDiff['removed'].keys, default => [] }
      notice("LB update: ${importDiff['component']} added ${added} removed ${removed}")
    }
    file { "${dir}/lb.py":
      ensure => file,
      source => "puppet:///modules/${module_name}/lb.py",
      mode   => '0755',
    }
    file { "${dir}/lb.conf":
      ensure  => file,
      content => template("${module_name}/lb.conf.erb"),
    }
    case $runningState {
      'running': {
        pyserver::server { 'lb':
          ensure  => running,
          program => "${dir}/lb.py",
          dir     => $dir,
          args    => [$bind, $port, "${dir}/lb.conf"],
          port    => $port,
          bind    => $bind,
          require => File["${dir}/lb.py", "${dir}/lb.conf"],
        }
        # Already running with another lb.conf: reload it.
        pyserver::reload { 'lb':
          program   => "${dir}/lb.py",
          dir       => $dir,
          subscribe => File["${dir}/lb.conf"],
          require   => Pyserver::Server['lb'],
        }
      }
      'stopped': {
        pyserver::server { 'lb':
          ensure  => stopped,
          program => "${dir}/lb.py",
          dir     => $dir,
        }
      }
      default: {
        # Update: never starts nor stops it; reloads it if it runs and lb.conf changed.
        pyserver::reload { 'lb':
          program   => "${dir}/lb.py",
          dir       => $dir,
          subscribe => File["${dir}/lb.conf"],
        }
      }
    }
  }
}
