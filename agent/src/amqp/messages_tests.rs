use super::*;
use lapin::types::AMQPValue;

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The event's message in domain `d`: exchange, key, type and parsed body.
fn wire(e: &Event) -> (String, String, String, Value) {
    let m = e
        .to_message("d", "node-a:7", 1_700_000_000_123)
        .expect("message");
    assert_eq!(m.message_id, "node-a:7");
    let body = serde_json::from_slice(&m.body).expect("json body");
    (m.exchange, m.routing_key, m.kind, body)
}

#[test]
fn instance_changed() {
    let imports = BTreeMap::from([(
        "Db".to_string(),
        vec![Import {
            instance_path: "/vm2/db".into(),
            component_name: "MySql".into(),
            exported_vars: map(&[("Db.port", "3306")]),
        }],
    )]);
    let e = Event::InstanceChanged {
        app: "lamp".into(),
        path: "/vm/tomcat".into(),
        state: State::WaitingForAncestor,
        imports,
    };
    let (x, k, t, b) = wire(&e);
    assert_eq!(
        (x.as_str(), k.as_str(), t.as_str()),
        ("d.roboconf.dm", "lamp", "MsgNotifInstanceChanged")
    );
    assert_eq!(
        b,
        json!({"applicationName": "lamp", "instancePath": "/vm/tomcat",
               "newStatus": "WAITING_FOR_ANCESTOR",
               "newImports": {"Db": [{"instancePath": "/vm2/db", "componentName": "MySql",
                                      "exportedVars": {"Db.port": "3306"}}]}})
    );
    for (s, w) in [
        (State::NotDeployed, "NOT_DEPLOYED"),
        (State::Deploying, "DEPLOYING"),
        (State::DeployedStopped, "DEPLOYED_STOPPED"),
        (State::Unresolved, "UNRESOLVED"),
        (State::Starting, "STARTING"),
        (State::DeployedStarted, "DEPLOYED_STARTED"),
        (State::Stopping, "STOPPING"),
        (State::Undeploying, "UNDEPLOYING"),
        (State::Problem, "PROBLEM"),
    ] {
        let e = Event::InstanceChanged {
            app: "a".into(),
            path: "/p".into(),
            state: s,
            imports: BTreeMap::new(),
        };
        assert_eq!(e.body()["newStatus"], w);
    }
}

#[test]
fn exports_between_agents() {
    let add = Event::ExportsAdded {
        app: "lamp".into(),
        component: "MySql".into(),
        path: "/vm/db".into(),
        variables: map(&[("MySql.port", "3306"), ("MySql.ip", "10.0.0.2")]),
    };
    let (x, k, t, b) = wire(&add);
    assert_eq!(
        (x.as_str(), k.as_str(), t.as_str()),
        (
            "d.lamp.agents",
            "those.that.import.MySql",
            "MsgCmdAddImport"
        )
    );
    assert_eq!(
        b,
        json!({"applicationOrContextName": "lamp", "componentOrFacetName": "MySql",
               "addedInstancePath": "/vm/db",
               "exportedVariables": {"MySql.port": "3306", "MySql.ip": "10.0.0.2"}})
    );
    let rm = Event::ExportsRemoved {
        app: "lamp".into(),
        component: "MySql".into(),
        path: "/vm/db".into(),
    };
    let (x, k, t, b) = wire(&rm);
    assert_eq!(
        (x.as_str(), k.as_str(), t.as_str()),
        (
            "d.lamp.agents",
            "those.that.import.MySql",
            "MsgCmdRemoveImport"
        )
    );
    assert_eq!(
        b,
        json!({"applicationOrContextName": "lamp", "componentOrFacetName": "MySql",
               "removedInstancePath": "/vm/db"})
    );
}

#[test]
fn external_exports_go_inter_app_renamed() {
    let add = Event::ExternalExportsAdded {
        app: "lamp".into(),
        prefix: "Lamp".into(),
        path: "/vm/apache".into(),
        variables: map(&[("lb_ip", "10.0.0.9"), ("Lamp.port", "80")]),
    };
    let (x, k, t, b) = wire(&add);
    assert_eq!(
        (x.as_str(), k.as_str(), t.as_str()),
        (
            "d.roboconf.inter-app",
            "those.that.import.Lamp",
            "MsgCmdAddImport"
        )
    );
    assert_eq!(
        b["exportedVariables"],
        json!({"Lamp.lb_ip": "10.0.0.9", "Lamp.port": "80"})
    );
    assert_eq!(b["componentOrFacetName"], "Lamp");
    let rm = Event::ExternalExportsRemoved {
        app: "lamp".into(),
        prefix: "Lamp".into(),
        path: "/vm/apache".into(),
    };
    let (x, k, t, b) = wire(&rm);
    assert_eq!(
        (x.as_str(), k.as_str(), t.as_str()),
        (
            "d.roboconf.inter-app",
            "those.that.import.Lamp",
            "MsgCmdRemoveImport"
        )
    );
    assert_eq!(b["removedInstancePath"], "/vm/apache");
    assert_eq!(external_name("Lamp", "Lampion"), "Lamp.Lampion");
}

#[test]
fn notifications_to_the_dm() {
    let cases = [
        (
            Event::MachineDown {
                app: "lamp".into(),
                root: "/vm".into(),
            },
            "MsgNotifMachineDown",
            json!({"applicationName": "lamp", "scopedInstancePath": "/vm"}),
        ),
        (
            Event::Heartbeat {
                app: "lamp".into(),
                root: "/vm".into(),
                ip: "10.0.0.1".into(),
            },
            "MsgNotifHeartbeat",
            json!({"applicationName": "lamp", "scopedInstancePath": "/vm",
                   "ipAddress": "10.0.0.1", "modelRequired": false}),
        ),
        (
            Event::Autonomic {
                app: "lamp".into(),
                root: "/vm".into(),
                event_name: "load".into(),
                event_info: "cpu 93".into(),
            },
            "MsgNotifAutonomic",
            json!({"applicationName": "lamp", "scopedInstancePath": "/vm",
                   "eventName": "load", "eventInfo": "cpu 93"}),
        ),
        (
            Event::CommandExecuted {
                app: "lamp".into(),
                command: "scale".into(),
                origin: "rule up".into(),
                result: "ok".into(),
                start_ms: 5,
                duration_ms: 7,
            },
            "MeshNotifCommandExecuted",
            json!({"applicationName": "lamp", "commandName": "scale", "origin": "rule up",
                   "result": "ok", "startMs": 5, "durationMs": 7}),
        ),
    ];
    for (e, kind, body) in cases {
        let (x, k, t, b) = wire(&e);
        assert_eq!(
            (x.as_str(), k.as_str(), t.as_str()),
            ("d.roboconf.dm", "lamp", kind)
        );
        assert_eq!(b, body);
    }
}

#[test]
fn mesh_notifications() {
    let (x, k, t, b) = wire(&Event::MemberChanged {
        node: "12D3".into(),
        name: "web1".into(),
        state: MemberState::Dead,
    });
    assert_eq!(
        (x.as_str(), k.as_str(), t.as_str()),
        ("d.roboconf.dm", MEMBERS_KEY, "MeshNotifMemberChanged")
    );
    assert_eq!(b, json!({"node": "12D3", "name": "web1", "state": "dead"}));
    let (x, k, t, b) = wire(&Event::CoordinatorChanged {
        leader: None,
        term: 4,
    });
    assert_eq!(
        (x.as_str(), k.as_str(), t.as_str()),
        (
            "d.roboconf.dm",
            COORDINATOR_KEY,
            "MeshNotifCoordinatorChanged"
        )
    );
    assert_eq!(b, json!({"leader": null, "term": 4}));
}

#[test]
fn properties_carry_type_id_and_time() {
    let m = Event::MachineDown {
        app: "a".into(),
        root: "/vm".into(),
    }
    .to_message("d", "n:1", 1_700_000_000_123)
    .expect("message");
    let p = m.properties();
    assert_eq!(
        p.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(
        p.kind().as_ref().map(|s| s.as_str()),
        Some("MsgNotifMachineDown")
    );
    assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some("n:1"));
    assert_eq!(*p.timestamp(), Some(1_700_000_000));
    let h = p.headers().as_ref().expect("headers");
    assert!(
        matches!(h.inner().get("type"), Some(AMQPValue::LongString(s)) if s.as_bytes() == b"MsgNotifMachineDown")
    );
}

#[test]
fn names_longer_than_amqp_allows_are_refused() {
    let e = Event::MachineDown {
        app: "a".repeat(300),
        root: "/vm".into(),
    };
    assert!(matches!(
        e.to_message("d", "n:1", 0),
        Err(Error::Message { .. })
    ));
    assert_eq!(short(&"é".repeat(200)).as_str().len(), 254);
}
