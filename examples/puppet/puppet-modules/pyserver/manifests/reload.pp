# @summary SIGHUP to the server of pyserver::server `$title` when this resource is
# refreshed (`subscribe`, `notify`) and the server runs; nothing otherwise (a stopped
# server is not started). Only for programs that handle SIGHUP: it kills the others.
#
# @param program The server's python file (as given to pyserver::server).
# @param dir     The folder of its pid file (as given to pyserver::server).
#
# @example
#   pyserver::reload { 'lb':
#     program   => "${dir}/lb.py",
#     dir       => $dir,
#     subscribe => File["${dir}/lb.conf"],
#   }
define pyserver::reload (
  String[1] $program,
  String[1] $dir,
) {
  include pyserver

  $pidfile = "${dir}/${title}.pid"
  $ctl = shellquote('/bin/bash', $pyserver::ctl)
  exec { "pyserver ${title}: reload":
    command     => "${ctl} reload ${shellquote($pidfile, $program)}",
    onlyif      => "${ctl} status ${shellquote($pidfile, $program)}",
    refreshonly => true,
    cwd         => $dir,
    path        => ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'],
    provider    => 'shell',
    logoutput   => true,
  }
}
