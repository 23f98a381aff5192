use super::*;

#[test]
fn defaults_and_url_parsing() {
    let c = Config::default();
    c.validate().expect("defaults are valid");
    assert_eq!(c.domain, "default");
    assert_eq!(
        (c.outbox_max, c.in_flight, c.commands),
        (100_000, 1_000, false)
    );
    let u = c.effective_url().expect("url");
    assert_eq!(
        (
            u.host.as_str(),
            u.port,
            u.username.as_str(),
            u.password.as_str(),
            u.vhost.as_str()
        ),
        ("localhost", 5672, "guest", "guest", "/")
    );
    let u =
        BrokerUrl::parse("amqps://bob:p%40ss@10.1.2.3:5999/prod%2Fa?heartbeat=5").expect("parse");
    assert!(u.tls);
    assert_eq!(u.password, "p@ss");
    assert_eq!(u.host, "10.1.2.3", "an IP host stays an IP");
    assert_eq!(
        (u.port, u.vhost.as_str(), u.heartbeat),
        (5999, "prod/a", Some(5))
    );
    assert_eq!(u.to_uri().authority.host, "10.1.2.3");
    let u = BrokerUrl::parse("amqp://[::1]").expect("v6");
    assert_eq!(
        (u.host.as_str(), u.port, u.vhost.as_str()),
        ("::1", 5672, "/")
    );
    assert_eq!(BrokerUrl::parse("amqp://h/").expect("bare /").vhost, "/");
    for bad in [
        "http://h",
        "amqp://",
        "amqp://h:0",
        "amqp://h:x",
        "amqp://h?frame=1",
        "amqp://a:b:c",
    ] {
        assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_password_is_never_printed() {
    let c = Config {
        url: Some("amqp://u:s3cret@h:1/v".into()),
        ..Config::default()
    };
    let u = c.effective_url().expect("url");
    for text in [u.to_string(), format!("{u:?}"), format!("{c:?}")] {
        assert!(!text.contains("s3cret"), "{text}");
    }
    assert_eq!(u.to_string(), "amqp://u:***@h:1/v");
    let c = Config {
        server_password: Some("s3cret".into()),
        ..Config::default()
    };
    assert!(!format!("{c:?}").contains("s3cret"));
}

#[test]
fn roboconf_keys_build_the_url() {
    let toml = r#"
        domain = "prod"
        commands = true
        "net.roboconf.messaging.rabbitmq.server.ip" = "mq.example:5673"
        "net.roboconf.messaging.rabbitmq.server.username" = "rbc"
        "net.roboconf.messaging.rabbitmq.server.password" = "pw"
        "net.roboconf.messaging.rabbitmq.ssl.use" = "false"
        "net.roboconf.messaging.rabbitmq.ssl.protocol" = "TLSv1.2"
    "#;
    let c: Config = toml::from_str(toml).expect("parse");
    c.validate().expect("valid");
    assert!(c.commands);
    assert_eq!(
        c.effective_url().expect("url").to_string(),
        "amqp://rbc:***@mq.example:5673/%2f"
    );
    let c = Config {
        ssl_use: Some(true),
        server_ip: Some("mq".into()),
        ..Config::default()
    };
    let u = c.effective_url().expect("url");
    assert!(u.tls);
    assert_eq!(u.port, 5671);
    assert!(toml::from_str::<Config>("nonsense = 1").is_err());
    assert!(
        toml::from_str::<Config>("\"net.roboconf.messaging.rabbitmq.ssl.use\" = \"yes\"").is_err()
    );
}

#[test]
fn validation_refuses_what_cannot_work() {
    let bad = [
        Config {
            domain: "".into(),
            ..Config::default()
        },
        Config {
            domain: "a b".into(),
            ..Config::default()
        },
        Config {
            outbox_max: 0,
            ..Config::default()
        },
        Config {
            in_flight: 0,
            ..Config::default()
        },
        Config {
            in_flight: 70_000,
            ..Config::default()
        },
        Config {
            url: Some("amqp://h".into()),
            server_ip: Some("h".into()),
            ..Config::default()
        },
        Config {
            url: Some("nope".into()),
            ..Config::default()
        },
        Config {
            ssl_trust_store_path: Some("/ca.pem".into()),
            ..Config::default()
        },
        Config {
            ssl_use: Some(true),
            ssl_trust_store_type: Some("JKS".into()),
            ..Config::default()
        },
    ];
    for c in bad {
        assert!(c.validate().is_err(), "{c:?}");
    }
    let tls = Config {
        url: Some("amqps://h".into()),
        ssl_key_store_path: Some("/nonexistent.p12".into()),
        ..Config::default()
    };
    tls.validate().expect("files are read at connect time");
    assert!(matches!(tls.tls_config(), Err(Error::Tls { .. })));
}
