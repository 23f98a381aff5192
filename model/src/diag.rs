//! Diagnostics: the stable error codes (Roboconf's own names, so an operator can look
//! them up in Roboconf's documentation), their severities, and the `Diagnostic` type every
//! parser and validator of this crate reports with a file, a line and a column.

use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

/// How bad a diagnostic is. Only errors make an application invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

macro_rules! codes {
    ($($(#[$doc:meta])* $name:ident => $sev:ident,)*) => {
        /// Every diagnostic code, named as in Roboconf (`ErrorCode`), plus this project's own.
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($(#[$doc])* $name,)*
        }

        impl Code {
            /// All codes, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$name,)*];

            /// The code's name, e.g. `P_INVALID_PROPERTY`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$name => stringify!($name),)*
                }
            }

            /// The code's default severity.
            pub fn severity(self) -> Severity {
                match self {
                    $(Code::$name => Severity::$sev,)*
                }
            }
        }
    };
}

codes! {
    P_IO_ERROR => Error,
    P_ONE_BLOCK_PER_LINE => Error,
    P_PROPERTY_ENDS_WITH_SEMI_COLON => Error,
    P_IMPORT_ENDS_WITH_SEMI_COLON => Error,
    P_O_C_BRACKET_EXTRA_CHARACTERS => Error,
    P_C_C_BRACKET_EXTRA_CHARACTERS => Error,
    P_O_C_BRACKET_MISSING => Error,
    P_C_C_BRACKET_MISSING => Error,
    P_UNRECOGNIZED_BLOCK => Error,
    P_INVALID_PROPERTY => Error,
    P_INVALID_PROPERTY_OR_INSTANCE => Error,
    P_INVALID_FILE_TYPE => Error,
    P_EMPTY_FILE => Warning,
    PM_INVALID_BLOCK_TYPE => Error,
    PM_UNKNOWN_PROPERTY_NAME => Warning,
    PM_FORBIDDEN_NAME => Error,
    PM_EMPTY_PROPERTY_VALUE => Error,
    PM_EMPTY_IMPORT_LOCATION => Error,
    PM_EMPTY_FACET_NAME => Error,
    PM_EMPTY_REFERENCED_NAME => Error,
    PM_EMPTY_COMPONENT_NAME => Error,
    PM_EMPTY_VARIABLE_NAME => Error,
    PM_INVALID_CHILD_NAME => Error,
    PM_INVALID_NAME => Error,
    PM_INVALID_EXPORT_COMPLEX_VALUE => Error,
    PM_INVALID_EXPORTED_VAR_NAME => Error,
    PM_EXTERNAL_IS_KEYWORD_FOR_IMPORTS => Error,
    PM_INVALID_IMPORTED_VAR_NAME => Error,
    PM_INVALID_INSTALLER_NAME => Error,
    PM_INVALID_INSTANCE_ELEMENT => Error,
    PM_INVALID_INSTANCE_COUNT => Error,
    PM_USELESS_INSTANCE_COUNT => Warning,
    PM_PROPERTY_NOT_APPLIABLE => Error,
    PM_DUPLICATE_PROPERTY => Error,
    PM_MISSING_INSTANCE_NAME => Error,
    PM_INVALID_INSTANCE_NAME => Error,
    PM_DOT_IS_NOT_ALLOWED => Error,
    PM_INCOMPLETE_IMPORTED_VAR_NAME => Error,
    PM_MALFORMED_COMMENT => Warning,
    PM_MALFORMED_BLANK => Warning,
    CO_NOT_A_GRAPH => Error,
    CO_NOT_INSTANCES => Error,
    CO_UNREACHABLE_FILE => Error,
    CO_ALREADY_DEFINED_FACET => Error,
    CO_ALREADY_DEFINED_COMPONENT => Error,
    CO_CYCLE_IN_COMPONENTS_INHERITANCE => Error,
    CO_ALREADY_DEFINED_INSTANCE => Error,
    CO_CONFLICTING_INFERRED_INSTANCE => Error,
    CO_INEXISTING_CHILD => Error,
    CO_INEXISTING_COMPONENT => Error,
    CO_INEXISTING_FACET => Error,
    CO_CONFLICTING_NAME => Error,
    CO_GRAPH_COULD_NOT_BE_BUILT => Error,
    RM_MISSING_APPLICATION_NAME => Error,
    RM_INVALID_APPLICATION_NAME => Error,
    RM_MISSING_APPLICATION_DSL_ID => Warning,
    RM_MISSING_APPLICATION_VERSION => Error,
    RM_MISSING_APPLICATION_GEP => Error,
    RM_MISSING_APPLICATION_GRAPHS => Error,
    RM_MISSING_APPLICATION_EXPORT_PREFIX => Error,
    RM_INVALID_APPLICATION_VERSION => Error,
    RM_DOT_IS_NOT_ALLOWED => Error,
    RM_EMPTY_COMPONENT_NAME => Error,
    RM_EMPTY_FACET_NAME => Error,
    RM_INVALID_COMPONENT_NAME => Error,
    RM_INVALID_FACET_NAME => Error,
    RM_EMPTY_COMPONENT_INSTALLER => Error,
    RM_INVALID_COMPONENT_INSTALLER => Error,
    RM_COMPONENT_IMPORTS_EXPORTS => Error,
    RM_ROOT_INSTALLER_MUST_BE_TARGET => Error,
    RM_EMPTY_VARIABLE_NAME => Error,
    RM_INVALID_VARIABLE_NAME => Error,
    RM_INVALID_APPLICATION_EXPORT_PREFIX => Error,
    RM_MAGIC_INSTANCE_VARIABLE => Warning,
    RM_MISSING_VARIABLE_VALUE => Error,
    RM_AMBIGUOUS_OVERRIDING => Warning,
    RM_INVALID_EXTERNAL_EXPORT => Error,
    RM_ALREADY_DEFINED_EXTERNAL_EXPORT => Error,
    RM_INVALID_RANDOM_KIND => Error,
    RM_NO_VALUE_FOR_RANDOM => Error,
    RM_CYCLE_IN_COMPONENTS => Error,
    RM_CYCLE_IN_COMPONENTS_INHERITANCE => Error,
    RM_CYCLE_IN_FACETS_INHERITANCE => Error,
    RM_NO_ROOT_COMPONENT => Error,
    RM_NOT_A_ROOT_COMPONENT => Error,
    RM_UNRESOLVABLE_VARIABLE => Error,
    RM_UNRESOLVABLE_FACET_VARIABLE => Error,
    RM_EMPTY_INSTANCE_NAME => Error,
    RM_INVALID_INSTANCE_NAME => Error,
    RM_EMPTY_INSTANCE_COMPONENT => Error,
    RM_MISSING_INSTANCE_PARENT => Error,
    RM_INVALID_INSTANCE_PARENT => Error,
    RM_UNREACHABLE_COMPONENT => Error,
    RM_ORPHAN_FACET => Warning,
    RM_ORPHAN_FACET_WITH_CHILDREN => Warning,
    PROJ_NO_GRAPH_DIR => Error,
    PROJ_NO_DESC_DIR => Error,
    PROJ_NO_DESC_FILE => Error,
    PROJ_MISSING_GRAPH_EP => Error,
    PROJ_MISSING_INSTANCE_EP => Error,
    PROJ_EXTRACT_TEMP => Error,
    PROJ_EXTRACT_ZIP => Error,
    PROJ_DELETE_TEMP => Warning,
    PROJ_READ_DESC_FILE => Error,
    PROJ_INVALID_EXTERNAL_EXPORTS => Error,
    PROJ_NO_RESOURCE_DIRECTORY => Warning,
    PROJ_APPLICATION_TEMPLATE_NOT_FOUND => Error,
    PROJ_INVALID_COMMAND_EXT => Error,
    PROJ_INVALID_RULE_EXT => Error,
    PROJ_UNREACHABLE_FILE => Warning,
    PROJ_INVALID_FILE_LOCATION => Warning,
    REC_PUPPET_DISLIKES_WILDCARD_IMPORTS => Warning,
    REC_PUPPET_HAS_NO_RBCF_MODULE => Error,
    REC_PUPPET_HAS_TOO_MANY_RBCF_MODULES => Error,
    REC_PUPPET_MISSING_PARAM_IMPORT_DIFF => Error,
    REC_PUPPET_MISSING_PARAM_RUNNING_STATE => Error,
    REC_PUPPET_MISSING_PARAM_FROM_IMPORT => Warning,
    REC_PUPPET_SYNTAX_ERROR => Error,
    REC_SCRIPT_NO_SCRIPTS_DIR => Error,
    REC_ARTIFACT_ID_IN_LOWER_CASE => Warning,
    REC_MISSING_README => Warning,
    REC_OFFICIAL_GROUP_ID => Warning,
    REC_NON_MATCHING_ARTIFACT_ID => Warning,
    REC_AVOID_INSTANCES => Warning,
    REC_TARGET_NO_ID => Error,
    REC_TARGET_NO_HANDLER => Error,
    REC_TARGET_INVALID_FILE_OR_CONTENT => Error,
    REC_TARGET_CONFLICTING_ID => Error,
    REC_TARGET_NO_NAME => Warning,
    REC_TARGET_NO_PROPERTIES => Error,
    CMD_INVALID_TARGET_ID => Error,
    CMD_NO_MATCHING_INSTANCE => Error,
    CMD_NOT_AN_ACCEPTABLE_PARENT => Error,
    CMD_CANNOT_HAVE_ANY_PARENT => Error,
    CMD_NOT_A_SCOPED_INSTANCE => Error,
    CMD_NOT_A_ROOT_INSTANCE => Error,
    CMD_UNRECOGNIZED_INSTRUCTION => Error,
    CMD_INVALID_INSTANCE_STATUS => Error,
    CMD_INSTABLE_INSTANCE_STATUS => Error,
    CMD_EMPTY_VARIABLE_NAME => Error,
    CMD_MISSING_INSTANCE_NAME => Error,
    CMD_INVALID_INSTANCE_NAME => Error,
    CMD_MISSING_COMPONENT_NAME => Error,
    CMD_INEXISTING_COMPONENT => Error,
    CMD_MISSING_PARENT_INSTANCE => Error,
    CMD_CONFLICTING_INSTANCE_NAME => Error,
    CMD_EMAIL_NO_MESSAGE => Error,
    CMD_NO_INSTRUCTION => Warning,
    CMD_UNRESOLVED_VARIABLE => Error,
    CMD_INVALID_SYNTAX => Error,
    CMD_MISSING_TARGET_FILE => Error,
    CMD_MISSING_COMMAND_NAME => Error,
    CMD_INEXISTING_COMMAND => Error,
    CMD_INEXISTING_COMMAND_FILE => Error,
    CMD_LOOPING_COMMAND => Error,
    CMD_NASTY_LOOPING_COMMAND => Error,
    CMD_INVALID_DATE_PATTERN => Error,
    CMD_NO_MIX_FOR_PATTERNS => Error,
    CMD_INVALID_INDEX_PATTERN => Error,
    RULE_IO_ERROR => Error,
    RULE_EMPTY_NAME => Error,
    RULE_INVALID_SYNTAX => Error,
    RULE_EMPTY_WHEN => Error,
    RULE_EMPTY_THEN => Error,
    RULE_UNKNOWN_COMMAND => Error,
    REST_TARGET_CONTAINS_ERROR => Error,
    REST_TARGET_ASSOCIATION_ERROR => Error,
    REST_TARGET_HINT_ERROR => Error,
    REST_AUTH_NO_MNGR => Error,
    REST_AUTH_FAILED => Error,
    REST_SCHEDULER_IS_UNAVAILABLE => Error,
    REST_INEXISTING => Error,
    REST_MISSING_PROPERTY => Error,
    REST_DELETION_ERROR => Error,
    REST_IO_ERROR => Error,
    REST_UNDETAILED_ERROR => Error,
    REST_MESSAGING_ERROR => Error,
    REST_SAVE_ERROR => Error,
    REST_MNGMT_ZIP_ERROR => Error,
    REST_MNGMT_INVALID_TPL => Error,
    REST_MNGMT_INVALID_URL => Error,
    REST_MNGMT_CONFLICT => Error,
    REST_MNGMT_APP_SHUTDOWN_ERROR => Error,
    REST_MNGMT_INVALID_IMAGE => Error,
    REST_APP_EXEC_ERROR => Error,
    REST_DEBUG_AGENT_KO => Error,
    REST_DEBUG_MSG_SENT => Error,
    // This project's own codes (not in Roboconf).
    /// Nesting deeper than a bound (`instance of` blocks, inheritance chains).
    X_NESTING_TOO_DEEP => Error,
    /// A file larger than the bound on input size.
    X_INPUT_TOO_LARGE => Error,
    /// More instances than the bound, after `count:`.
    X_TOO_MANY_INSTANCES => Error,
    /// A name longer than `limits::MAX_NAME_BYTES`.
    X_NAME_TOO_LONG => Error,
    /// An instance path longer than `limits::MAX_PATH_BYTES`.
    X_INSTANCE_PATH_TOO_LONG => Error,
    /// An entry point or an import that leaves its folder (`graph/`, `instances/`).
    X_FILE_OUTSIDE_FOLDER => Error,
    /// A file or folder the model must read is a symbolic link: it is not followed.
    X_SYMLINK_REFUSED => Error,
    /// A symbolic link in the application folder: it is not part of the application.
    X_SYMLINK_IGNORED => Warning,
    /// A target file names a handler no one knows (neither this mesh nor Roboconf). A
    /// warning, as in Roboconf, whose loader accepts any handler (its own test
    /// applications use `test`): deploying such a root fails.
    X_TARGET_UNKNOWN_HANDLER => Warning,
    /// A target handler of Roboconf's that this mesh cannot launch machines with (yet):
    /// deploying such a root fails with this reason.
    X_TARGET_HANDLER_NOT_SUPPORTED => Warning,
    /// A key of a known handler that it does not have, or a value it cannot use.
    X_TARGET_INVALID_PROPERTY => Error,
    /// A key of Roboconf's for a handler this mesh launches with, that it reads nothing
    /// from (`docker.user`, `docker.run.exec` ...): a warning saying why.
    X_TARGET_IGNORED_PROPERTY => Warning,
    /// The `roboconf_*` module folder of a Puppet recipe is not named `[a-z][a-z0-9_]*`:
    /// Puppet 7 ignores such folders on its module path, so every action would fail. A
    /// warning: Roboconf accepts any name that starts with `roboconf_` (any case).
    X_PUPPET_INVALID_MODULE_NAME => Warning,
    /// The `roboconf_*` module has neither `manifests/init.pp` nor a manifest per action
    /// (`deploy.pp`, `start.pp`, `stop.pp`, `update.pp`, `undeploy.pp`): every action
    /// does nothing (as in Roboconf, which only logs it).
    X_PUPPET_NO_MANIFEST => Warning,
    /// An exported variable or an import prefix whose name is not a Puppet parameter
    /// name as it is (`port-ajp`, `9x`, `name`): the Puppet plug-in passes it under a
    /// repaired name (`port_ajp`) or not at all (`crate::puppet::param_name`).
    X_PUPPET_PARAMETER_NAME => Warning,
    /// Two different exported variables (or import prefixes) passed to the class under
    /// one name (`Db.port` and `Web.port`, `portAJP` and `portajp`): Roboconf passes it
    /// twice, which Puppet 7 refuses; the plug-in passes one.
    X_PUPPET_DUPLICATE_PARAMETER => Warning,
    /// The class of `init.pp` or of a per-action manifest does not declare a parameter
    /// for one of the component's exported variables, which the plug-in passes (as
    /// Roboconf does): Puppet refuses the catalog ("has no parameter named"). A warning,
    /// as Roboconf does not check it.
    X_PUPPET_UNDECLARED_PARAMETER => Warning,
    /// A line of `modules.properties` (beside the `roboconf_*` module) that `puppet
    /// module install` cannot use: a key that is not `author-name` or `author/name`, a
    /// value that is neither empty nor a version or version range, two modules installed
    /// into one folder. Deploying fails there.
    X_PUPPET_INVALID_MODULES_FILE => Error,
    /// A `modules.properties` inside the `roboconf_*` module (where Roboconf's
    /// documentation puts it): the plug-in only reads the one beside the module, so
    /// this one installs nothing.
    X_PUPPET_IGNORED_MODULES_FILE => Warning,
    /// A probe file (`probes/*.measures`) that does not read: text before the first
    /// `[EVENT handler name]`, a malformed header, a section whose body its handler
    /// cannot use.
    PROBE_INVALID_SYNTAX => Error,
    /// A probe section of a handler no agent has: reported and skipped (as Roboconf).
    PROBE_UNKNOWN_HANDLER => Warning,
    /// A `{{ key }}` that the `.measures.properties` file does not define: left as is.
    PROBE_UNKNOWN_PROPERTY => Warning,
    /// A probe file of a component the graph does not have, or a file of `probes/`
    /// that is not a probe file.
    PROBE_UNKNOWN_COMPONENT => Warning,
}

impl Code {
    /// Parses a code's name.
    pub fn from_name(name: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|c| c.as_str() == name)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One finding of a parser or validator.
///
/// `line` and `col` are 1-based; `line == 0` means "the file as a whole" (Roboconf uses
/// line 0 for unreachable files and unrecognised blocks), and `file` is empty when the
/// finding is about no file in particular.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic with the code's default severity.
    pub fn new(
        code: Code,
        file: &Path,
        line: usize,
        col: usize,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            severity: code.severity(),
            file: file.to_path_buf(),
            line,
            col,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.file.as_os_str().is_empty() {
            write!(f, "{sev}[{}]: {}", self.code, self.message)
        } else {
            let line = self.line.max(1);
            let col = self.col.max(1);
            write!(
                f,
                "{}:{line}:{col}: {sev}[{}]: {}",
                self.file.display(),
                self.code,
                self.message
            )
        }
    }
}

/// True when any diagnostic is an error.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}

/// Orders diagnostics for people: errors before warnings, then by file, line and column.
/// The sort is stable, so findings on one line keep the order they were found in.
pub fn sort_for_display(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (a.severity, &a.file, a.line, a.col).cmp(&(b.severity, &b.file, b.line, b.col))
    });
}
