//! Commands taken from the queue `<domain>.roboconf.commands`: the JSON shapes accepted
//! (the bridge's own, and Roboconf's `MsgCmdChangeInstanceState`, `MsgCmdAddInstance`,
//! `MsgCmdRemoveInstance` with an added `applicationName`, since one queue serves every
//! application), their parsing into [`Command`], and the JSON reply `{ok, message}`.
//!
//! A body is a JSON object of at most [`MAX_COMMAND_BYTES`] with a `type` (or, failing
//! that, the AMQP `type` property):
//! `{"type":"ChangeState","app":"lamp","path":"/vm/tomcat","state":"DEPLOYED_STARTED"}`,
//! `{"type":"DeployAndStartAll"|"StopAll"|"UndeployAll","app":"lamp","path":"/vm"?}`,
//! `{"type":"CreateInstance","app","parent"?,"name","component"}`,
//! `{"type":"DeleteInstance","app","path"}`, `{"type":"ExecuteCommand","app","command"}`.

use crate::api::State;
use serde::Deserialize;
use serde_json::{json, Value};

/// The largest command body parsed; a bigger one is refused without parsing (the
/// prefetch of 32 deliveries bounds what the client holds).
pub const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// What the agent is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    ChangeState {
        app: String,
        path: String,
        state: State,
    },
    /// Deploy and start every instance of the application (under `path` when given).
    DeployAndStartAll {
        app: String,
        path: Option<String>,
    },
    StopAll {
        app: String,
        path: Option<String>,
    },
    UndeployAll {
        app: String,
        path: Option<String>,
    },
    /// A new instance `name` of `component`, a root when `parent` is `None`.
    CreateInstance {
        app: String,
        parent: Option<String>,
        name: String,
        component: String,
    },
    DeleteInstance {
        app: String,
        path: String,
    },
    /// Run the application's `commands/<command>.commands`.
    ExecuteCommand {
        app: String,
        command: String,
    },
}

/// The agent's answer to a command: a message for the reply either way.
pub type Answer = Result<String, String>;

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Wire {
    ChangeState {
        app: String,
        path: String,
        state: String,
    },
    #[serde(rename_all = "camelCase")]
    MsgCmdChangeInstanceState {
        application_name: Option<String>,
        instance_path: String,
        new_state: String,
    },
    DeployAndStartAll {
        app: String,
        path: Option<String>,
    },
    StopAll {
        app: String,
        path: Option<String>,
    },
    UndeployAll {
        app: String,
        path: Option<String>,
    },
    CreateInstance {
        app: String,
        parent: Option<String>,
        name: String,
        component: String,
    },
    #[serde(rename_all = "camelCase")]
    MsgCmdAddInstance {
        application_name: Option<String>,
        parent_instance_path: Option<String>,
        instance_name: String,
        component_name: String,
    },
    DeleteInstance {
        app: String,
        path: String,
    },
    #[serde(rename_all = "camelCase")]
    MsgCmdRemoveInstance {
        application_name: Option<String>,
        instance_path: String,
    },
    ExecuteCommand {
        app: String,
        command: String,
    },
}

fn app_of(name: Option<String>) -> Result<String, String> {
    name.ok_or_else(|| {
        "applicationName is required: the commands queue serves every application".to_string()
    })
}

fn check(app: &str, paths: &[&str], names: &[&str]) -> Result<(), String> {
    use roboconf_model::limits::{check_instance_path, check_name};
    if app.trim().is_empty() {
        return Err("the application name is empty".into());
    }
    check_name("application", app)?;
    for p in paths {
        if !p.starts_with('/') || p.len() < 2 {
            return Err(format!("`{p}` is not an instance path (`/root/child`)"));
        }
        check_instance_path(p)?;
    }
    for n in names {
        if n.trim().is_empty() || n.contains('/') {
            return Err(format!("`{n}` is not a name"));
        }
        check_name("instance", n)?;
    }
    Ok(())
}

fn state(s: &str) -> Result<State, String> {
    State::parse(s).ok_or_else(|| format!("`{s}` is not an instance state (e.g. DEPLOYED_STARTED)"))
}

/// Parses a command body; `type_property` is the AMQP `type`, used when the body has
/// no `type` field. The error is the message of the error reply.
pub fn parse(body: &[u8], type_property: Option<&str>) -> Result<Command, String> {
    if body.len() > MAX_COMMAND_BYTES {
        return Err(format!(
            "the command is {} bytes; at most {MAX_COMMAND_BYTES} are read",
            body.len()
        ));
    }
    let mut v: Value =
        serde_json::from_slice(body).map_err(|e| format!("the command is not JSON: {e}"))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| "the command is not a JSON object".to_string())?;
    if !obj.contains_key("type") {
        match type_property {
            Some(t) => {
                obj.insert("type".into(), Value::String(t.into()));
            }
            None => return Err("the command has no `type`".into()),
        }
    }
    let wire: Wire =
        serde_json::from_value(v).map_err(|e| format!("the command is not understood: {e}"))?;
    let cmd = match wire {
        Wire::ChangeState {
            app,
            path,
            state: s,
        } => Command::ChangeState {
            state: state(&s)?,
            app,
            path,
        },
        Wire::MsgCmdChangeInstanceState {
            application_name,
            instance_path,
            new_state,
        } => Command::ChangeState {
            app: app_of(application_name)?,
            path: instance_path,
            state: state(&new_state)?,
        },
        Wire::DeployAndStartAll { app, path } => Command::DeployAndStartAll { app, path },
        Wire::StopAll { app, path } => Command::StopAll { app, path },
        Wire::UndeployAll { app, path } => Command::UndeployAll { app, path },
        Wire::CreateInstance {
            app,
            parent,
            name,
            component,
        } => Command::CreateInstance {
            app,
            parent,
            name,
            component,
        },
        Wire::MsgCmdAddInstance {
            application_name,
            parent_instance_path,
            instance_name,
            component_name,
        } => Command::CreateInstance {
            app: app_of(application_name)?,
            parent: parent_instance_path,
            name: instance_name,
            component: component_name,
        },
        Wire::DeleteInstance { app, path } => Command::DeleteInstance { app, path },
        Wire::MsgCmdRemoveInstance {
            application_name,
            instance_path,
        } => Command::DeleteInstance {
            app: app_of(application_name)?,
            path: instance_path,
        },
        Wire::ExecuteCommand { app, command } => Command::ExecuteCommand { app, command },
    };
    match &cmd {
        Command::ChangeState { app, path, .. } | Command::DeleteInstance { app, path } => {
            check(app, &[path.as_str()], &[])?
        }
        Command::DeployAndStartAll { app, path }
        | Command::StopAll { app, path }
        | Command::UndeployAll { app, path } => check(app, path.as_deref().as_slice(), &[])?,
        Command::CreateInstance {
            app,
            parent,
            name,
            component,
        } => check(
            app,
            parent.as_deref().as_slice(),
            &[name.as_str(), component.as_str()],
        )?,
        Command::ExecuteCommand { app, command } => check(app, &[], &[command.as_str()])?,
    }
    Ok(cmd)
}

/// The reply's JSON body: `{"ok": bool, "message": text}`.
pub fn reply_body(answer: &Answer) -> Vec<u8> {
    let (ok, message) = match answer {
        Ok(m) => (true, m),
        Err(m) => (false, m),
    };
    json!({ "ok": ok, "message": message })
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Command {
        parse(body.as_bytes(), None).unwrap_or_else(|e| panic!("{body}: {e}"))
    }

    #[test]
    fn own_shapes() {
        assert_eq!(
            ok(r#"{"type":"ChangeState","app":"lamp","path":"/vm/t","state":"deployed-started"}"#),
            Command::ChangeState {
                app: "lamp".into(),
                path: "/vm/t".into(),
                state: State::DeployedStarted
            }
        );
        assert_eq!(
            ok(r#"{"type":"DeployAndStartAll","app":"lamp"}"#),
            Command::DeployAndStartAll {
                app: "lamp".into(),
                path: None
            }
        );
        assert_eq!(
            ok(r#"{"type":"StopAll","app":"lamp","path":"/vm"}"#),
            Command::StopAll {
                app: "lamp".into(),
                path: Some("/vm".into())
            }
        );
        assert_eq!(
            ok(r#"{"type":"UndeployAll","app":"a"}"#),
            Command::UndeployAll {
                app: "a".into(),
                path: None
            }
        );
        assert_eq!(
            ok(
                r#"{"type":"CreateInstance","app":"a","parent":"/vm","name":"t2","component":"Tomcat"}"#
            ),
            Command::CreateInstance {
                app: "a".into(),
                parent: Some("/vm".into()),
                name: "t2".into(),
                component: "Tomcat".into()
            }
        );
        assert_eq!(
            ok(r#"{"type":"DeleteInstance","app":"a","path":"/vm/t2"}"#),
            Command::DeleteInstance {
                app: "a".into(),
                path: "/vm/t2".into()
            }
        );
        assert_eq!(
            ok(r#"{"type":"ExecuteCommand","app":"a","command":"scale"}"#),
            Command::ExecuteCommand {
                app: "a".into(),
                command: "scale".into()
            }
        );
    }

    #[test]
    fn roboconf_shapes() {
        assert_eq!(
            ok(
                r#"{"type":"MsgCmdChangeInstanceState","applicationName":"lamp","instancePath":"/vm","newState":"DEPLOYED_STOPPED","fileNameToFileContent":{}}"#
            ),
            Command::ChangeState {
                app: "lamp".into(),
                path: "/vm".into(),
                state: State::DeployedStopped
            }
        );
        assert_eq!(
            ok(
                r#"{"type":"MsgCmdAddInstance","applicationName":"a","parentInstancePath":"/vm","instanceName":"x","componentName":"C"}"#
            ),
            Command::CreateInstance {
                app: "a".into(),
                parent: Some("/vm".into()),
                name: "x".into(),
                component: "C".into()
            }
        );
        assert_eq!(
            ok(r#"{"type":"MsgCmdRemoveInstance","applicationName":"a","instancePath":"/vm/x"}"#),
            Command::DeleteInstance {
                app: "a".into(),
                path: "/vm/x".into()
            }
        );
        let e = parse(
            br#"{"type":"MsgCmdChangeInstanceState","instancePath":"/vm","newState":"PROBLEM"}"#,
            None,
        );
        assert!(e.expect_err("no app").contains("applicationName"));
    }

    #[test]
    fn the_type_property_stands_in_for_a_missing_type() {
        let c = parse(br#"{"app":"a"}"#, Some("StopAll")).expect("parsed");
        assert_eq!(
            c,
            Command::StopAll {
                app: "a".into(),
                path: None
            }
        );
        assert!(parse(br#"{"app":"a"}"#, None).is_err());
    }

    #[test]
    fn malformed_commands_are_refused() {
        let big = format!(
            r#"{{"type":"StopAll","app":"{}"}}"#,
            "a".repeat(MAX_COMMAND_BYTES)
        );
        for bad in [
            "not json",
            "[1]",
            r#"{"type":"Reboot","app":"a"}"#,
            r#"{"type":"ChangeState","app":"a","path":"/vm","state":"FLYING"}"#,
            r#"{"type":"ChangeState","app":"a","path":"vm","state":"PROBLEM"}"#,
            r#"{"type":"ChangeState","app":"","path":"/vm","state":"PROBLEM"}"#,
            r#"{"type":"CreateInstance","app":"a","name":"x/y","component":"C"}"#,
            r#"{"type":"DeleteInstance","app":"a"}"#,
            big.as_str(),
        ] {
            assert!(
                parse(bad.as_bytes(), None).is_err(),
                "{}",
                &bad[..bad.len().min(80)]
            );
        }
    }

    #[test]
    fn replies() {
        let v: Value = serde_json::from_slice(&reply_body(&Ok("started".into()))).expect("json");
        assert_eq!(v, json!({"ok": true, "message": "started"}));
        let v: Value = serde_json::from_slice(&reply_body(&Err("no app".into()))).expect("json");
        assert_eq!(v, json!({"ok": false, "message": "no app"}));
    }
}
