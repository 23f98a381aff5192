//! The events the mesh reports, and how each becomes an AMQP message: its exchange and
//! routing key on Roboconf's topology, its `type` name (Roboconf's message class name
//! where Roboconf has the message, `Mesh…` for what it never had), its JSON body with
//! Roboconf's field names, and the AMQP properties every message carries.
//!
//! | event | type | exchange | key |
//! |---|---|---|---|
//! | instance changed | `MsgNotifInstanceChanged` | `<d>.roboconf.dm` | `<app>` |
//! | exports added / removed | `MsgCmdAddImport` / `MsgCmdRemoveImport` | `<d>.<app>.agents` | `those.that.import.<Component>` |
//! | external exports added / removed | same | `<d>.roboconf.inter-app` | `those.that.import.<prefix>` |
//! | machine down, heartbeat, autonomic | `MsgNotifMachineDown`, `MsgNotifHeartbeat`, `MsgNotifAutonomic` | `<d>.roboconf.dm` | `<app>` |
//! | command executed | `MeshNotifCommandExecuted` | `<d>.roboconf.dm` | `<app>` |
//! | member changed | `MeshNotifMemberChanged` | `<d>.roboconf.dm` | `mesh.members` |
//! | coordinator changed | `MeshNotifCoordinatorChanged` | `<d>.roboconf.dm` | `mesh.coordinator` |
//!
//! Unlike Roboconf, messages to the DM exchange get no 500 ms expiration: a monitoring
//! queue keeps them until it reads them.

use super::topology::{agents_exchange, dm_exchange, import_key, inter_app_exchange};
use super::Error;
use crate::api::State;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The routing key of membership events on the DM exchange.
pub const MEMBERS_KEY: &str = "mesh.members";
/// The routing key of coordinator events on the DM exchange.
pub const COORDINATOR_KEY: &str = "mesh.coordinator";
/// The `app_id` property of every message the bridge publishes.
pub const APP_ID: &str = "roboconf-mesh";

/// Roboconf's `Import`: an instance's exports as an importer sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Import {
    pub instance_path: String,
    pub component_name: String,
    pub exported_vars: BTreeMap<String, String>,
}

/// A member's change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    Joined,
    Left,
    Dead,
}

/// What the mesh reports through the bridge.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// An instance's state or imports changed.
    InstanceChanged {
        app: String,
        path: String,
        state: State,
        /// Imports by component (or facet) name.
        imports: BTreeMap<String, Vec<Import>>,
    },
    /// An instance exports these variables (fully prefixed names: `Db.port`), under
    /// `component` (its component or facet name, the importers' prefix).
    ExportsAdded {
        app: String,
        component: String,
        path: String,
        variables: BTreeMap<String, String>,
    },
    /// An instance withdrew its exports of `component`.
    ExportsRemoved {
        app: String,
        component: String,
        path: String,
    },
    /// An instance's external exports (`exports-prefix`): `variables` by alias, renamed
    /// `<prefix>.<alias>` on the wire.
    ExternalExportsAdded {
        app: String,
        prefix: String,
        path: String,
        variables: BTreeMap<String, String>,
    },
    ExternalExportsRemoved {
        app: String,
        prefix: String,
        path: String,
    },
    /// The machine of a root (scoped) instance is gone.
    MachineDown { app: String, root: String },
    /// The agent of a root instance is alive.
    Heartbeat {
        app: String,
        root: String,
        ip: String,
    },
    /// A probe fired an autonomic event.
    Autonomic {
        app: String,
        root: String,
        event_name: String,
        event_info: String,
    },
    /// A mesh member joined, left or was declared dead.
    MemberChanged {
        node: String,
        name: String,
        state: MemberState,
    },
    /// The coordinator's leader changed (`None`: no leader in this term).
    CoordinatorChanged { leader: Option<String>, term: u64 },
    /// A `commands/NAME.commands` file ran.
    CommandExecuted {
        app: String,
        command: String,
        origin: String,
        result: String,
        start_ms: u64,
        duration_ms: u64,
    },
}

/// A message ready to publish (what the outbox keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub exchange: String,
    pub routing_key: String,
    /// The `type` property and header.
    pub kind: String,
    pub message_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// JSON.
    pub body: Vec<u8>,
}

impl Event {
    /// The message's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::InstanceChanged { .. } => "MsgNotifInstanceChanged",
            Event::ExportsAdded { .. } | Event::ExternalExportsAdded { .. } => "MsgCmdAddImport",
            Event::ExportsRemoved { .. } | Event::ExternalExportsRemoved { .. } => {
                "MsgCmdRemoveImport"
            }
            Event::MachineDown { .. } => "MsgNotifMachineDown",
            Event::Heartbeat { .. } => "MsgNotifHeartbeat",
            Event::Autonomic { .. } => "MsgNotifAutonomic",
            Event::MemberChanged { .. } => "MeshNotifMemberChanged",
            Event::CoordinatorChanged { .. } => "MeshNotifCoordinatorChanged",
            Event::CommandExecuted { .. } => "MeshNotifCommandExecuted",
        }
    }

    /// The exchange and routing key, in a domain.
    pub fn route(&self, domain: &str) -> (String, String) {
        match self {
            Event::InstanceChanged { app, .. }
            | Event::MachineDown { app, .. }
            | Event::Heartbeat { app, .. }
            | Event::Autonomic { app, .. }
            | Event::CommandExecuted { app, .. } => (dm_exchange(domain), app.clone()),
            Event::ExportsAdded { app, component, .. }
            | Event::ExportsRemoved { app, component, .. } => {
                (agents_exchange(domain, app), import_key(component))
            }
            Event::ExternalExportsAdded { prefix, .. }
            | Event::ExternalExportsRemoved { prefix, .. } => {
                (inter_app_exchange(domain), import_key(prefix))
            }
            Event::MemberChanged { .. } => (dm_exchange(domain), MEMBERS_KEY.into()),
            Event::CoordinatorChanged { .. } => (dm_exchange(domain), COORDINATOR_KEY.into()),
        }
    }

    /// The JSON body, with Roboconf's field names.
    pub fn body(&self) -> Value {
        match self {
            Event::InstanceChanged {
                app,
                path,
                state,
                imports,
            } => json!({
                "applicationName": app, "instancePath": path,
                "newStatus": state.as_str(), "newImports": imports,
            }),
            Event::ExportsAdded {
                app,
                component,
                path,
                variables,
            } => json!({
                "applicationOrContextName": app, "componentOrFacetName": component,
                "addedInstancePath": path, "exportedVariables": variables,
            }),
            Event::ExternalExportsAdded {
                app,
                prefix,
                path,
                variables,
            } => {
                let renamed: BTreeMap<String, &String> = variables
                    .iter()
                    .map(|(alias, v)| (external_name(prefix, alias), v))
                    .collect();
                json!({
                    "applicationOrContextName": app, "componentOrFacetName": prefix,
                    "addedInstancePath": path, "exportedVariables": renamed,
                })
            }
            Event::ExportsRemoved {
                app,
                component: prefix,
                path,
            }
            | Event::ExternalExportsRemoved { app, prefix, path } => json!({
                "applicationOrContextName": app, "componentOrFacetName": prefix,
                "removedInstancePath": path,
            }),
            Event::MachineDown { app, root } => {
                json!({ "applicationName": app, "scopedInstancePath": root })
            }
            Event::Heartbeat { app, root, ip } => json!({
                "applicationName": app, "scopedInstancePath": root,
                "ipAddress": ip, "modelRequired": false,
            }),
            Event::Autonomic {
                app,
                root,
                event_name,
                event_info,
            } => json!({
                "applicationName": app, "scopedInstancePath": root,
                "eventName": event_name, "eventInfo": event_info,
            }),
            Event::MemberChanged { node, name, state } => {
                json!({ "node": node, "name": name, "state": state })
            }
            Event::CoordinatorChanged { leader, term } => {
                json!({ "leader": leader, "term": term })
            }
            Event::CommandExecuted {
                app,
                command,
                origin,
                result,
                start_ms,
                duration_ms,
            } => json!({
                "applicationName": app, "commandName": command, "origin": origin,
                "result": result, "startMs": start_ms, "durationMs": duration_ms,
            }),
        }
    }

    /// The message of this event in a domain, with the caller's stable id (the
    /// event's `origin:sequence`). Fails when a name exceeds AMQP's 255 bytes.
    pub fn to_message(
        &self,
        domain: &str,
        message_id: &str,
        timestamp_ms: u64,
    ) -> Result<Message, Error> {
        let (exchange, routing_key) = self.route(domain);
        for (what, s) in [
            ("exchange", &exchange),
            ("routing key", &routing_key),
            ("message id", &message_id.to_string()),
        ] {
            if s.len() > 255 {
                return Err(Error::Message {
                    what: format!("{} {message_id}", self.kind()),
                    why: format!("its {what} is {} bytes long (AMQP's limit: 255)", s.len()),
                });
            }
        }
        Ok(Message {
            exchange,
            routing_key,
            kind: self.kind().to_string(),
            message_id: message_id.to_string(),
            timestamp_ms,
            body: self.body().to_string().into_bytes(),
        })
    }
}

/// `<prefix>.<alias>`, as Roboconf renames external exports (an alias already carrying
/// the prefix is kept).
pub fn external_name(prefix: &str, alias: &str) -> String {
    match alias.strip_prefix(prefix) {
        Some(rest) if rest.starts_with('.') => alias.to_string(),
        _ => format!("{prefix}.{alias}"),
    }
}

impl Message {
    /// The AMQP properties: JSON content type, `type` (property and header), message id,
    /// timestamp (seconds, plus a `timestamp_in_ms` header), persistent, `app_id`.
    pub fn properties(&self) -> BasicProperties {
        let mut headers = FieldTable::default();
        headers.insert(
            short("type"),
            AMQPValue::LongString(LongString::from(self.kind.as_str())),
        );
        headers.insert(
            short("timestamp_in_ms"),
            AMQPValue::LongLongInt(i64::try_from(self.timestamp_ms).unwrap_or(i64::MAX)),
        );
        BasicProperties::default()
            .with_content_type(short("application/json"))
            .with_type(short(&self.kind))
            .with_message_id(short(&self.message_id))
            .with_timestamp(self.timestamp_ms / 1000)
            .with_delivery_mode(2)
            .with_app_id(short(APP_ID))
            .with_headers(headers)
    }
}

/// A short string, cut to AMQP's 255 bytes (on a character boundary) rather than
/// panicking as lapin's `From` does.
pub fn short(s: &str) -> ShortString {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    ShortString::try_new(&s[..end]).unwrap_or_default()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
