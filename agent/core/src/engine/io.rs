//! What goes into the core and what comes out of it: operator commands, the inputs a
//! runtime steps it with (plug-in results among them), the plug-in runs it asks for, the
//! events observers are told, and the outputs a runtime carries out in order.

use crate::api::{Desired, Response};
use roboconf_plugins::{Action, Invocation};

use super::{records, Coordination, LoadedApp, Write};

/// An operator command, once the runtime has done its I/O part (reading an application).
#[derive(Debug, Clone)]
pub enum Command {
    AppAdd {
        app: Box<LoadedApp>,
        start: bool,
    },
    AppRemove {
        name: String,
    },
    AppList,
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
    Members,
    /// Stop what this node hosts, announce the departure; answered once done.
    Leave,
    /// Which node hosts a root instance (a node name or id).
    Bind {
        app: String,
        root: String,
        node: String,
    },
    /// The target file a root's machine is launched with (`instance target`).
    Target {
        app: String,
        root: String,
        target: String,
    },
    /// Records a new join token (its secret stays with the runtime and the operator).
    TokenIssue {
        id: String,
        hash: String,
        expires_ms: u64,
    },
    /// `roboconf exec`: a request (by id) the coordinator's leader takes.
    Exec {
        id: String,
        app: String,
        command: String,
    },
    /// `roboconf job add` (the id is new for each addition).
    JobAdd(crate::autonomic::records::JobSpec),
    JobRemove {
        app: String,
        name: String,
    },
    /// Redeems a join token for `node`, which will be known as `name`: answered `Ok`
    /// once, for an unexpired token whose secret hashes to `hash`, when no other live
    /// member carries that name.
    TokenRedeem {
        id: String,
        hash: String,
        node: String,
        name: String,
    },
}

/// The result of a plug-in run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunResult {
    pub ok: bool,
    pub code: Option<i32>,
    pub error: Option<String>,
    pub output: String,
    /// When it ended, milliseconds since the Unix epoch (from the runtime's clock).
    pub at_ms: u64,
    /// The failure was the agent's environment's (the working folder could not be made,
    /// the script could not be started), not the script's: the action is tried again
    /// later by itself (`records::Retry`).
    pub retry: bool,
}

/// What drives the core.
#[derive(Debug, Clone)]
pub enum Input {
    Command {
        id: u64,
        command: Command,
    },
    PluginDone {
        run: u64,
        result: RunResult,
    },
    /// Records from a peer (gossip), at the runtime's wall time.
    Remote {
        entries: Vec<crate::mesh::replica::Entry>,
        at_ms: u64,
    },
    /// A peer's answer to our digest.
    RemoteDelta {
        delta: crate::mesh::replica::Delta,
        at_ms: u64,
    },
    /// A peer's digest of the origins in the buckets of `mask`: answer with
    /// `Output::Delta { id, .. }`.
    Digest {
        id: u64,
        mask: u64,
        digest: crate::mesh::replica::Digest,
    },
    /// A peer's digest fingerprint: answer with an empty delta when ours is the same,
    /// else with `Output::Differs`.
    DigestHash {
        id: u64,
        hash: String,
    },
    /// The wall time, so that writes are stamped right (and suspects expire).
    Now(u64),
    /// The network's view: a peer connected, or its last connection closed.
    PeerUp(crate::mesh::NodeId),
    PeerDown(crate::mesh::NodeId),
    /// The connection closed, and the peer said it would (the connection policy): no
    /// sign of a crash.
    PeerClosed(crate::mesh::NodeId),
    /// SWIM's verdict on a member: declared down (after suspicion), or alive again.
    SwimDown(crate::mesh::NodeId),
    SwimUp(crate::mesh::NodeId),
    /// The addresses this node listens on (published in its member record).
    Addresses(Vec<String>),
    /// The binary this node runs (published in its member record).
    Binary(crate::api::BinaryView),
    /// A bundle asked for by `Output::Fetch` arrived and was read (`None`: it failed).
    Fetched {
        name: String,
        app: Option<Box<LoadedApp>>,
    },
    /// What the coordinator's leader writes through the engine.
    Coordination(Coordination),
    /// A probe of an instance hosted here hit.
    Autonomic(crate::autonomic::records::EventRecord),
    /// External exports of an application outside this mesh (carried by a bridge):
    /// `source` names the exporting instance (`<application>:<path>`), `vars` are
    /// `<prefix>.<alias>` → value (`None`: withdrawn).
    External {
        source: String,
        prefix: String,
        vars: Option<records::Vars>,
    },
}

/// A plug-in run the runtime must start (after persisting what came before it).
#[derive(Debug, Clone)]
pub struct PluginRun {
    pub run: u64,
    pub app: String,
    pub path: String,
    pub action: Action,
    pub installer: String,
    /// The component whose recipe the working copy is made from (first along `extends`
    /// that has a recipe folder, in `invocation.application_dir`, is the runtime's
    /// business).
    pub components: Vec<String>,
    /// True when the working copy must be made anew (deploy).
    pub fresh_copy: bool,
    pub invocation: Invocation,
}

/// Something observers may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Exports of an instance run elsewhere arrived (`present`) or went.
    RemoteExports {
        app: String,
        path: String,
        present: bool,
    },
    StateChanged {
        app: String,
        path: String,
        state: crate::api::State,
    },
    /// An application was registered here (`present`) or removed.
    Application { name: String, present: bool },
    /// What another node reports of an instance it hosts (its state, the host's name).
    RemoteState {
        app: String,
        path: String,
        state: crate::api::State,
        node: String,
    },
    /// A member's records stop counting (`dead`: it is dead or down) or count again.
    Liveness {
        node: crate::mesh::NodeId,
        dead: bool,
    },
}

/// What the core asks of its runtime, in order.
#[derive(Debug, Clone)]
pub enum Output {
    Persist(Vec<Write>),
    /// Records to spread to peers (after they are persisted).
    Broadcast(Vec<crate::mesh::replica::Entry>),
    /// What a peer that sent a digest lacks.
    Delta {
        id: u64,
        delta: crate::mesh::replica::Delta,
    },
    Run(Box<PluginRun>),
    Reply {
        id: u64,
        response: Response,
    },
    Event(Event),
    /// The node has left the mesh: the runtime stops once the outputs before are done.
    Left,
    /// A member this node knows of but has never reached (no connection, no word from
    /// SWIM): have SWIM announce itself to it, so that its answer vouches for it.
    Announce(crate::mesh::NodeId),
    /// Our digest differs from the peer's fingerprint: send it our buckets'
    /// fingerprints, so that it sends the digest of the buckets that differ.
    Differs {
        id: u64,
    },
    /// Fetch the bundle `hash` of application `name` from `from` (or any peer), check
    /// it, and register the application here (`Input::Fetched`).
    Fetch {
        name: String,
        hash: String,
        from: crate::mesh::NodeId,
    },
}
