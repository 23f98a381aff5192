//! The operator API: typed requests and replies exchanged with a running agent over its
//! control socket (`<data-dir>/control.sock`), one JSON object per line. The CLI speaks
//! it; later the mesh serves the same API for the whole mesh.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What an operator wants an instance (or every instance of an application) to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Desired {
    NotDeployed,
    Deployed,
    Started,
}

/// Roboconf's instance states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum State {
    NotDeployed,
    Deploying,
    DeployedStopped,
    Starting,
    DeployedStarted,
    Stopping,
    Undeploying,
    Unresolved,
    WaitingForAncestor,
    Problem,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::NotDeployed => "NOT_DEPLOYED",
            State::Deploying => "DEPLOYING",
            State::DeployedStopped => "DEPLOYED_STOPPED",
            State::Starting => "STARTING",
            State::DeployedStarted => "DEPLOYED_STARTED",
            State::Stopping => "STOPPING",
            State::Undeploying => "UNDEPLOYING",
            State::Unresolved => "UNRESOLVED",
            State::WaitingForAncestor => "WAITING_FOR_ANCESTOR",
            State::Problem => "PROBLEM",
        }
    }

    /// Parses `DEPLOYED_STARTED` (any case, `-` or `_`).
    pub fn parse(s: &str) -> Option<State> {
        let norm = s.trim().to_ascii_uppercase().replace('-', "_");
        [
            State::NotDeployed,
            State::Deploying,
            State::DeployedStopped,
            State::Starting,
            State::DeployedStarted,
            State::Stopping,
            State::Undeploying,
            State::Unresolved,
            State::WaitingForAncestor,
            State::Problem,
        ]
        .into_iter()
        .find(|st| st.as_str() == norm)
    }

    /// A state with a script running.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            State::Deploying | State::Starting | State::Stopping | State::Undeploying
        )
    }

    /// Deployed, whether started or not (and not in the middle of an action).
    pub fn is_deployed(self) -> bool {
        matches!(
            self,
            State::DeployedStopped
                | State::DeployedStarted
                | State::Unresolved
                | State::WaitingForAncestor
        )
    }
}

/// A request to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Register the application in folder `path` (validated first), optionally start all.
    AppAdd {
        path: PathBuf,
        name: Option<String>,
        start: bool,
    },
    AppList,
    AppRemove {
        name: String,
    },
    /// Set every instance of the application to `target`.
    AppSet {
        name: String,
        target: Desired,
    },
    InstanceCreate {
        app: String,
        path: String,
        component: String,
    },
    InstanceDelete {
        app: String,
        path: String,
    },
    InstanceSet {
        app: String,
        path: String,
        target: Desired,
    },
    Status {
        app: Option<String>,
    },
    Logs {
        app: String,
        path: String,
    },
    Members,
    /// This agent's counters (connections, anti-entropy rounds, datagrams, drops).
    Stats,
    /// Stop what this agent hosts, announce the departure, then stop the agent.
    Leave,
    /// Which node hosts a root instance.
    InstanceBind {
        app: String,
        root: String,
        node: String,
    },
    /// The target file a root's machine is launched with (a component with several).
    InstanceTarget {
        app: String,
        root: String,
        target: String,
    },
    /// Make a new mesh with this agent as its first member (and the coordinator's first
    /// voter; the mesh wants `voters` of them, 3 by default).
    MeshInit {
        #[serde(default)]
        voters: Option<u32>,
        /// Most machines the coordinator keeps at once in the mesh, and per application
        /// (Roboconf's `autonomic.maximum.vm.number`; 64 each by default).
        #[serde(default)]
        max_machines: Option<u32>,
        #[serde(default)]
        max_machines_per_app: Option<u32>,
    },
    /// The coordinator: its leader, term and voters.
    Coordinator,
    /// Add a member to the coordinator's voters, or remove one (one change at a time).
    MeshVoters {
        node: String,
        add: bool,
    },
    /// Issue a join token valid for `ttl_ms`.
    MeshToken {
        ttl_ms: u64,
    },
    /// Join the mesh of the member at `addr` with `token`; answered once admitted.
    Join {
        addr: String,
        token: String,
    },
    /// Run a commands file through the coordinator (answered with the request id; the
    /// execution shows in `history`).
    Exec {
        app: String,
        command: String,
    },
    /// The executions of commands files (of one application).
    History {
        app: Option<String>,
    },
    /// Schedule a commands file (a Quartz cron expression, with seconds, in UTC).
    JobAdd {
        app: String,
        name: String,
        command: String,
        cron: String,
    },
    JobList {
        app: Option<String>,
    },
    JobRemove {
        app: String,
        name: String,
    },
    /// `roboconf amqp status`: the AMQP bridge of this agent.
    AmqpStatus,
    /// This agent's metrics in Prometheus' text format (what `/metrics` serves).
    Metrics,
    /// The components of an application and what each may hold.
    Components {
        app: String,
    },
    /// The names of an application's commands files.
    Commands {
        app: String,
    },
    /// Each instance's imports and whether they are satisfied.
    Diagnose {
        app: String,
    },
    /// Copy a root instance with its children under a new root name (not deployed).
    InstanceReplicate {
        app: String,
        path: String,
        name: String,
    },
    /// A bearer token for the HTTP API, valid `ttl_ms` (read-only ones change nothing).
    HttpToken {
        ttl_ms: u64,
        read_only: bool,
    },
}

impl Request {
    /// Checks the names and paths the request carries against the bounds every operator
    /// entry point keeps (`roboconf_model::limits`): an application or node name of at
    /// most 128 bytes, an instance path of at most 1,024.
    pub fn check_bounds(&self) -> Result<(), String> {
        use roboconf_model::limits::{check_instance_path, check_name};
        let app = |a: &str| check_name("application", a);
        match self {
            Request::AppAdd { name, .. } => name.as_deref().map_or(Ok(()), app),
            Request::AppRemove { name } | Request::AppSet { name, .. } => app(name),
            Request::InstanceCreate {
                app: a,
                path,
                component,
            } => app(a)
                .and_then(|()| check_instance_path(path))
                .and_then(|()| check_name("component", component)),
            Request::InstanceDelete { app: a, path }
            | Request::InstanceSet { app: a, path, .. }
            | Request::Logs { app: a, path } => app(a).and_then(|()| check_instance_path(path)),
            Request::InstanceBind { app: a, root, node } => app(a)
                .and_then(|()| check_instance_path(root))
                .and_then(|()| check_name("node", node)),
            Request::Status { app: a } => a.as_deref().map_or(Ok(()), app),
            Request::MeshVoters { node, .. } => check_name("node", node),
            Request::Exec { app: a, command } => {
                app(a).and_then(|()| check_name("commands file", command))
            }
            Request::History { app: a } | Request::JobList { app: a } => {
                a.as_deref().map_or(Ok(()), app)
            }
            Request::JobAdd {
                app: a,
                name,
                command,
                cron,
            } => app(a)
                .and_then(|()| check_name("job", name))
                .and_then(|()| check_name("commands file", command))
                .and_then(|()| match cron.len() <= 256 {
                    true => Ok(()),
                    false => Err("a cron expression has at most 256 bytes".to_string()),
                }),
            Request::JobRemove { app: a, name } => app(a).and_then(|()| check_name("job", name)),
            Request::InstanceTarget {
                app: a,
                root,
                target,
            } => app(a)
                .and_then(|()| check_instance_path(root))
                .and_then(|()| check_name("target", target)),
            Request::AppList
            | Request::Members
            | Request::Stats
            | Request::Leave
            | Request::MeshInit { .. }
            | Request::Coordinator
            | Request::MeshToken { .. }
            | Request::Join { .. }
            | Request::AmqpStatus
            | Request::Metrics
            | Request::HttpToken { .. } => Ok(()),
            Request::Components { app: a }
            | Request::Commands { app: a }
            | Request::Diagnose { app: a } => app(a),
            Request::InstanceReplicate { app: a, path, name } => app(a)
                .and_then(|()| check_instance_path(path))
                .and_then(|()| check_name("instance", name)),
        }
    }
}

/// The agent binary a member runs: content-addressed, so the mesh can carry it to new
/// machines (a member of that architecture serves it by hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryView {
    /// SHA-256 of the executable, hex.
    pub sha256: String,
    pub size: u64,
    pub arch: String,
    pub os: String,
}

/// One member of the mesh, as `members` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub id: String,
    pub name: String,
    pub addresses: Vec<String>,
    /// `alive`, `suspect`, `dead` or `left`.
    pub state: String,
    pub roots: Vec<String>,
    pub version: String,
    /// Its binary (absent until it has hashed it, or from an older agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<BinaryView>,
    /// Its version or build is not the one most live members run.
    #[serde(default)]
    pub differs: bool,
}

/// One instance as `status` shows it (DESIGN §11).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    pub path: String,
    pub component: String,
    pub state: State,
    pub desired: Desired,
    pub node: Option<String>,
    pub exports: BTreeMap<String, String>,
    pub last_error: Option<String>,
    /// After a failure of the agent's environment: the attempt that failed last and when
    /// the next one is due (it is tried again by itself).
    #[serde(default)]
    pub retry: Option<crate::engine::Retry>,
    /// A root launched by the coordinator: its machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<MachineView>,
}

/// The machine of a root, as the coordinator's leader publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineView {
    /// The target file's id and handler.
    pub target: String,
    pub handler: String,
    pub generation: u64,
    /// The target's id of the machine (empty until created).
    pub id: String,
    pub address: String,
    /// The member its agent is (empty until created).
    pub node: String,
    /// `launching`, `running`, `problem`, `failed` or `terminating`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One voter of the coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoterView {
    pub id: String,
    pub name: String,
    /// The member's liveness (`alive`, `suspect`, `dead`, `left`...).
    pub state: String,
}

/// The coordinator (DESIGN §11): `roboconf coordinator --json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CoordinatorView {
    /// The leader's member id, when there is one.
    pub leader: Option<String>,
    pub term: u64,
    pub voters: Vec<VoterView>,
}

/// An application's instances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppStatus {
    pub app: String,
    pub instances: Vec<InstanceView>,
}

/// A registered application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppSummary {
    pub name: String,
    pub version: String,
    pub instances: usize,
    pub started: usize,
}

/// One script run, as `logs` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunView {
    pub seq: u64,
    pub action: String,
    /// Milliseconds since the Unix epoch, when the run ended.
    pub at_ms: u64,
    pub ok: bool,
    /// The exit code, when the script ran to its end.
    pub code: Option<i32>,
    pub error: Option<String>,
    pub output: String,
}

/// The agent's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    Ok {
        message: String,
    },
    Error {
        message: String,
        details: Vec<String>,
    },
    Apps {
        apps: Vec<AppSummary>,
    },
    Status {
        apps: Vec<AppStatus>,
    },
    Logs {
        runs: Vec<RunView>,
    },
    Members {
        members: Vec<MemberView>,
    },
    /// Named counters, in a stable order.
    Stats {
        counters: Vec<(String, u64)>,
    },
    Coordinator(CoordinatorView),
    History {
        items: Vec<crate::coord::autonomic::HistoryItem>,
    },
    Jobs {
        jobs: Vec<JobView>,
    },
    /// The AMQP bridge's report (`None`: this agent runs none).
    Amqp {
        status: Option<serde_json::Value>,
    },
    /// Prometheus' text exposition format.
    Metrics {
        text: String,
    },
    Components {
        components: Vec<ComponentView>,
    },
    Names {
        names: Vec<String>,
    },
    Diagnosis {
        instances: Vec<Diagnosis>,
    },
}

/// A component and the components its instances may hold (`name` empty: the roots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentView {
    pub name: String,
    pub installer: Option<String>,
    pub children: Vec<String>,
}

/// One instance's imports (Roboconf's `diagnose-application`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub path: String,
    pub component: String,
    pub state: State,
    pub dependencies: Vec<Dependency>,
}

/// An imported prefix (a component or facet name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    pub prefix: String,
    pub optional: bool,
    pub resolved: bool,
}

/// A scheduled job, as `job list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub app: String,
    pub name: String,
    pub command: String,
    pub cron: String,
    /// Its next instant (ms since the Unix epoch), if it has one.
    pub next_ms: Option<u64>,
}

impl Response {
    pub fn ok(m: impl Into<String>) -> Response {
        Response::Ok { message: m.into() }
    }

    pub fn error(m: impl Into<String>) -> Response {
        Response::Error {
            message: m.into(),
            details: Vec::new(),
        }
    }
}
