# @summary A python3 server kept running (or stopped) in the background, its pid in a file.
#
# @param ensure
#   `running`: started when it does not run, then Puppet waits until `bind:port`
#   answers; `stopped`: SIGTERM (SIGKILL after 5 s) when it runs.
# @param program
#   The python file to run; also how the process is recognised (its command line).
# @param dir
#   Where `<title>.pid` and `<title>.log` go (the instance's folder) and the process runs.
# @param args
#   The program's arguments.
# @param port
#   The port to wait for on start (none: no wait).
# @param bind
#   The address to wait on.
# @example
#   pyserver::server { 'db':
#     ensure  => running,
#     program => "${dir}/db.py",
#     dir     => $dir,
#     args    => ['127.0.0.1', $port, "${dir}/data/counters.json"],
#     port    => $port,
#   }
define pyserver::server (
  Enum['running', 'stopped'] $ensure,
  String[1] $program,
  String[1] $dir,
  Array[Variant[String, Integer]] $args = [],
  Optional[Variant[String, Integer]] $port = undef,
  String[1] $bind = '127.0.0.1',
) {
  include pyserver

  $pidfile = "${dir}/${title}.pid"
  $logfile = "${dir}/${title}.log"
  $ctl = shellquote('/bin/bash', $pyserver::ctl)
  $status = "${ctl} status ${shellquote($pidfile, $program)}"
  $defaults = {
    cwd       => $dir,
    path      => ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'],
    provider  => 'shell',
    logoutput => true,
    timeout   => 60,
  }

  if $ensure == 'running' {
    $start_args = [$pidfile, $logfile, $bind, "${port}", $program] + $args.map |$a| { "${a}" }
    exec {
      default: * => $defaults;
      "pyserver ${title}: start":
        command => "${ctl} start ${shellquote($start_args)}",
        # Also on a refresh (Puppet checks `unless` again): never a second one.
        unless  => $status,
      ;
    }
  } else {
    exec {
      default: * => $defaults;
      "pyserver ${title}: stop":
        command => "${ctl} stop ${shellquote($pidfile, $program)}",
        onlyif  => $status,
      ;
    }
  }
}
