//! `roboconf-plugins`: how an agent acts on the software it hosts. The `Plugin` trait has
//! one method per life-cycle action; an `Invocation` gives it everything about the
//! instance (its path, component, recipe files, own exports, ancestors' exports and
//! imports, and for `update` the import that changed). Plug-ins are called by the agent's
//! runtime from a worker, never from the core. `env` builds the Roboconf script
//! environment (DESIGN §6); `script`, `puppet`, `file` and `logger` are the plug-ins for
//! Roboconf's installers of those names; `process` runs their programs with bounds.

pub mod env;
pub mod file;
pub mod logger;
pub mod process;
pub mod puppet;
pub mod script;

use std::collections::BTreeMap;
use std::path::PathBuf;

/// A life-cycle action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Initialize,
    Deploy,
    Start,
    Update,
    Stop,
    Undeploy,
}

impl Action {
    /// The action's name, also the prefix of its script (`deploy.sh`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Initialize => "initialize",
            Action::Deploy => "deploy",
            Action::Start => "start",
            Action::Update => "update",
            Action::Stop => "stop",
            Action::Undeploy => "undeploy",
        }
    }
}

/// One exporter an instance imports from: its path and the variables it gives (full
/// names, e.g. `Db.port`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportedInstance {
    pub path: String,
    pub component: String,
    pub variables: BTreeMap<String, String>,
}

/// The import whose change triggers an `update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedImport {
    /// The exporter's new state (e.g. `DEPLOYED_STARTED`, `DEPLOYED_STOPPED`).
    pub status: String,
    pub import: ImportedInstance,
}

/// An ancestor of the instance (parent first) and what it exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ancestor {
    pub component: String,
    pub exports: BTreeMap<String, String>,
}

/// Everything a plug-in is told about one action on one instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    pub application: String,
    pub instance_name: String,
    pub instance_path: String,
    pub component: String,
    /// The instance's working copy of its component's recipe folder.
    pub recipe_dir: PathBuf,
    /// The application's folder (this agent's copy of its bundle, read only).
    pub application_dir: PathBuf,
    /// Own exports, full names → values.
    pub exports: BTreeMap<String, String>,
    /// Parent first, then its parent, up to the root.
    pub ancestors: Vec<Ancestor>,
    /// Per imported prefix (component or facet name), the exporters.
    pub imports: BTreeMap<String, Vec<ImportedInstance>>,
    /// Every prefix the component imports, whether anyone exports it now or not.
    pub import_prefixes: Vec<String>,
    /// For `update` only.
    pub changed: Option<ChangedImport>,
}

/// What a successful run reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// False when the plug-in had nothing to do (e.g. no script for the action).
    pub ran: bool,
    pub output: String,
    /// The program's exit code when it is not simply 0 for success (`puppet apply`'s 2:
    /// changes made; 6: changes made and some failed).
    pub code: Option<i32>,
    /// It went well, but with something the operator should read (Puppet's exit code 6:
    /// changes made and some failed).
    pub warning: Option<String>,
}

/// Why an action failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} failed with exit code {code}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Failed {
        action: &'static str,
        code: i32,
        /// What the program said went wrong, when it can be picked from its output.
        detail: Option<String>,
        output: String,
    },
    /// The action could not be run as the recipe or the agent stand (no module folder,
    /// a Puppet module nowhere, no `puppet` program): the message names what and where.
    #[error("{action} failed: {message}")]
    Refused {
        action: &'static str,
        message: String,
        output: String,
    },
    #[error("{action} timed out after {seconds} s")]
    TimedOut {
        action: &'static str,
        seconds: u64,
        output: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How the agent acts on the software an instance stands for.
pub trait Plugin: Send + Sync {
    /// The installer name this plug-in serves (`script`, `logger`...).
    fn installer(&self) -> &'static str;

    /// Runs one life-cycle action. Blocking: the runtime calls it from a worker.
    fn run(&self, action: Action, inv: &Invocation) -> Result<Outcome, Error>;
}
