//! Who may use the HTTP API: bearer tokens (full and read-only, valid on every agent of
//! their mesh and on no other; expired, forged and foreign ones refused and counted,
//! never logged), and TLS on any address other than loopback (a certificate from the
//! mesh's CA, or one given). Real processes and `curl` for TLS.

use roboconf_tests::http::{base_url, request};
use roboconf_tests::Agent;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LISTEN: [&str; 2] = ["--listen", "/ip4/127.0.0.1/tcp/0"];

fn token(agent: &Agent, args: &[&str]) -> String {
    let o = agent.cli(&[&["http", "token"], args].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string()
}

fn error(r: &roboconf_tests::http::Reply) -> String {
    r.json()["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn tokens_guard_the_api() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    let a = Agent::start(
        &root.join("a"),
        &[
            &LISTEN[..],
            &["--http", "127.0.0.1:0", "--http-require-token"],
        ]
        .concat(),
        &[],
    );
    a.init_mesh();
    let b = Agent::start(&root.join("b"), &LISTEN, &[]);
    b.join(&a);
    // Another mesh.
    let c = Agent::start(&root.join("c"), &LISTEN, &[]);
    c.init_mesh();
    let url = base_url(&a);
    let apps = "/roboconf-dm/applications";

    let r = request(&url, "GET", apps, None, None);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(error(&r).contains("no bearer token"), "{}", r.body);
    assert!(r
        .header("www-authenticate")
        .is_some_and(|h| h.starts_with("Bearer")));

    let full = token(&a, &["--ttl", "10m"]);
    let read_only = token(&a, &["--ttl", "10m", "--read-only"]);
    let from_b = token(&b, &["--ttl", "10m"]);
    let foreign = token(&c, &["--ttl", "10m"]);
    let short = token(&a, &["--ttl", "1s"]);

    assert_eq!(request(&url, "GET", apps, None, Some(&full)).status, 200);
    let r = request(&url, "GET", apps, None, Some(&from_b));
    assert_eq!(
        r.status, 200,
        "a token of the same mesh, from another agent: {}",
        r.body
    );
    let r = request(
        &url,
        "GET",
        &format!("{apps}?access_token={full}"),
        None,
        None,
    );
    assert_eq!(
        r.status, 200,
        "the token in the query (WebSocket, EventSource): {}",
        r.body
    );

    // Read-only: reads, and is refused any change.
    assert_eq!(
        request(&url, "GET", apps, None, Some(&read_only)).status,
        200
    );
    let change = "/roboconf-dm/app/shop/deploy-all";
    let r = request(&url, "POST", change, None, Some(&read_only));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(error(&r).contains("read-only"), "{}", r.body);
    let r = request(&url, "POST", change, None, Some(&full));
    assert_eq!(
        r.status, 404,
        "past the gate, no such application: {}",
        r.body
    );

    // Foreign, forged, malformed and expired tokens.
    let r = request(&url, "GET", apps, None, Some(&foreign));
    assert_eq!(r.status, 401);
    assert!(error(&r).contains("another mesh"), "{}", r.body);
    let mut forged = full.clone().into_bytes();
    let at = forged.len() - 10;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    let r = request(&url, "GET", apps, None, Some(&forged));
    assert_eq!(r.status, 401);
    assert!(error(&r).contains("signature"), "{}", r.body);
    let r = request(&url, "GET", apps, None, Some("rbh1.garbage"));
    assert!(error(&r).contains("malformed"), "{}", r.body);
    roboconf_tests::wait("the short token expires", Duration::from_secs(10), || {
        error(&request(&url, "GET", apps, None, Some(&short))).contains("expired")
    });

    // Counted, and no token ever written to the log.
    let metrics = request(&url, "GET", "/metrics", None, Some(&full)).body;
    let failed: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("roboconf_http_auth_failed_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the counter");
    assert!(failed >= 5, "{failed}");
    for agent in [&a, &b, &c] {
        let log = agent.log_text();
        for t in [&full, &read_only, &from_b, &foreign, &short, &forged] {
            assert!(
                !log.contains(t.as_str()),
                "a token is in {}",
                agent.log.display()
            );
        }
    }
    assert!(a.log_text().contains("authentication failed"));
}

fn curl(args: &[&str]) -> (u16, String) {
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl (Debian's curl package)");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn port(url: &str) -> String {
    url.rsplit(':').next().unwrap_or_default().to_string()
}

#[test]
fn other_addresses_need_tls() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    // Outside any mesh and without a certificate, the agent refuses to serve 0.0.0.0.
    let o = roboconf_tests::roboconf(&[
        "--data-dir",
        root.join("alone").to_str().expect("path"),
        "agent",
        "--http",
        "0.0.0.0:0",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("needs TLS"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A member serves 0.0.0.0 with a certificate from its mesh's CA.
    let dir = root.join("a");
    let mut a = Agent::start(&dir, &LISTEN, &[]);
    a.init_mesh();
    a.kill9();
    let a = Agent::start(&dir, &[&LISTEN[..], &["--http", "0.0.0.0:0"]].concat(), &[]);
    let url = base_url(&a);
    assert!(url.starts_with("https://"), "{url}");
    let t = token(&a, &["--ttl", "10m"]);
    let ca = dir.join("http").join("ca.pem");
    let target = format!("https://localhost:{}/roboconf-dm/applications", port(&url));
    let auth = format!("Authorization: Bearer {t}");
    let (code, body) = curl(&["--cacert", ca.to_str().expect("path"), "-H", &auth, &target]);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body.trim(), "[]");
    let (code, _) = curl(&["--cacert", ca.to_str().expect("path"), &target]);
    assert_eq!(code, 401, "a token is needed there");
    let (code, _) = curl(&[&target]);
    assert_eq!(code, 0, "an unknown CA is refused by the client");
    let (code, _) = curl(&[&format!(
        "http://localhost:{}/roboconf-dm/applications",
        port(&url)
    )]);
    assert_ne!(code, 200, "no plain HTTP there");

    // A certificate given by the operator.
    let (cert, key) = (root.join("cert.pem"), root.join("key.pem"));
    self_signed(&cert, &key);
    let g = Agent::start(
        &root.join("g"),
        &[
            "--http",
            "127.0.0.1:0",
            "--http-cert",
            cert.to_str().unwrap(),
            "--http-key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    let url = base_url(&g);
    assert!(url.starts_with("https://"), "{url}");
    let target = format!("https://localhost:{}/roboconf-dm/applications", port(&url));
    let (code, body) = curl(&["--cacert", cert.to_str().unwrap(), &target]);
    assert_eq!(code, 200, "loopback with TLS, no token asked: {body}");
}

fn self_signed(cert: &Path, key: &Path) {
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(key)
        .arg("-out")
        .arg(cert)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
