# @summary Where the control script of pyserver::server is (no resources).
#
# The module is found on the module path wherever it was put (the Roboconf plug-in
# links it into each instance's folder, the module path), so its own folder comes from
# `module_directory()`, a Puppet core function since 5.4.
class pyserver {
  $ctl = "${module_directory('pyserver')}/files/pyserver.sh"
}
