# @summary The folder of the Roboconf instance whose recipe module `$module` is.
#
# Puppet gets no Roboconf environment variable, but the Roboconf plug-in runs
# `puppet apply --modulepath [$MODULEPATH:]<instance folder>` with the recipe's
# `roboconf_*` module inside that folder: the instance's folder is the parent of the
# module's own folder, which the core function `module_directory()` (Puppet >= 5.4)
# finds on the module path.
#
# @param module The recipe module's name (`$module_name` inside its classes).
# @return The instance's folder, without a trailing `/`.
# @example
#   $dir = pyserver::instance_dir($module_name)
function pyserver::instance_dir(String[1] $module) >> String[1] {
  $found = module_directory($module)
  if $found =~ Undef {
    fail("module ${module} is not on the module path")
  }
  regsubst($found, '/[^/]+/?$', '')
}
