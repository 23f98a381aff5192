# @summary app.conf in the instance's folder, from the Db imports (the app re-reads it on
# every request, so a new Db needs no restart).
#
# @param dir The instance's folder (the title is free).
# @param db  The `Db` imports as Roboconf passes them, or undef.
define roboconf_app_module::conf (
  String[1] $dir,
  Optional[Hash] $db = undef,
) {
  # Puppet knows no instance path: the app is named after its folder.
  $app_name = regsubst($dir, '^.*/', '')
  file { "${dir}/app.conf":
    ensure  => file,
    content => epp('roboconf_app_module/app.conf.epp', { 'app_name' => $app_name, 'db' => $db }),
  }
}
