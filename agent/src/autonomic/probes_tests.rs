//! Tests of the probe handlers against servers and stand-in programs they start
//! themselves (ports given by the OS, folders in temporary directories).

use super::*;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const T: Duration = Duration::from_secs(10);

/// A one-connection HTTP server: reads the request's head, writes `parts` (one write
/// each), then closes, or (`close` false) holds the connection until the client closes
/// it. Its task returns the request's head.
async fn serve(parts: Vec<Vec<u8>>, close: bool) -> (String, JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1024];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 64 * 1024 {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&b[..n]),
            }
        }
        for p in parts {
            if s.write_all(&p).await.is_err() {
                break;
            }
        }
        if !close {
            while matches!(s.read(&mut b).await, Ok(n) if n > 0) {}
        }
        String::from_utf8_lossy(&head).into_owned()
    });
    (base, task)
}

/// A server that accepts one connection and holds it, answering nothing, until `release`.
async fn silent() -> (u16, tokio::sync::oneshot::Sender<()>, JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let held = l.accept().await;
        let _ = released.await;
        drop(held);
    });
    (port, release, task)
}

fn parts(p: &[&[u8]]) -> Vec<Vec<u8>> {
    p.iter().map(|p| p.to_vec()).collect()
}

#[tokio::test]
async fn file_kinds() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("flag");
    let check = |k| file_check(k, &p);
    assert_eq!(check(FileKind::NotifyIfExists).await.unwrap(), None);
    assert_eq!(check(FileKind::DeleteIfExists).await.unwrap(), None);
    assert_eq!(
        check(FileKind::NotifyIfNotExists).await.unwrap(),
        Some(format!("{} does not exist.", p.display()))
    );
    std::fs::create_dir_all(p.join("inner")).unwrap();
    std::fs::write(p.join("inner/f"), "x").unwrap();
    assert_eq!(check(FileKind::NotifyIfNotExists).await.unwrap(), None);
    assert_eq!(
        check(FileKind::NotifyIfExists).await.unwrap(),
        Some(format!("{} was checked.", p.display()))
    );
    assert!(p.exists(), "notifying deletes nothing");
    assert_eq!(
        check(FileKind::DeleteIfExists).await.unwrap(),
        Some(format!("{} was deleted.", p.display()))
    );
    assert!(!p.exists());
    // A plain file; and a path under a file, which cannot exist.
    std::fs::write(&p, "x").unwrap();
    assert!(check(FileKind::DeleteIfExists).await.unwrap().is_some());
    assert!(!p.exists());
    std::fs::write(&p, "x").unwrap();
    let under = p.join("below");
    assert!(file_check(FileKind::NotifyIfNotExists, &under)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test]
async fn deleting_a_link_keeps_its_target() {
    let d = tempfile::tempdir().unwrap();
    let target = d.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("keep"), "x").unwrap();
    let link = d.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let hit = file_check(FileKind::DeleteIfExists, &link).await.unwrap();
    assert!(hit.is_some());
    assert!(!link.exists() && target.join("keep").exists());
}

#[test]
fn urls() {
    let u = |s| Url::parse(s).map(|u| (u.host.clone(), u.port, u.target.clone(), u.host_header()));
    assert_eq!(
        u("http://lb:8080/load?x=1#f").unwrap(),
        ("lb".into(), 8080, "/load?x=1".into(), "lb:8080".into())
    );
    assert_eq!(
        u("HTTP://10.0.0.1").unwrap(),
        ("10.0.0.1".into(), 80, "/".into(), "10.0.0.1".into())
    );
    assert_eq!(
        u("http://h?q=1").unwrap(),
        ("h".into(), 80, "/?q=1".into(), "h".into())
    );
    assert_eq!(
        u("http://[::1]:81/a").unwrap(),
        ("::1".into(), 81, "/a".into(), "[::1]:81".into())
    );
    assert_eq!(u("http://[fe80::1]/").unwrap().3, "[fe80::1]");
    for bad in [
        "lb:80/x",
        "ftp://h/",
        "http://",
        "http://h:0/",
        "http://h:99999/",
        "http://h:x/",
        "http://[::1/",
        "http://u:p@h/",
        "http://h/a b",
        "http://h/a\r\nX: y",
    ] {
        assert!(matches!(Url::parse(bad), Err(Error::Invalid(_))), "{bad}");
    }
}

#[tokio::test]
async fn https_is_unsupported_and_says_what_to_do() {
    let e = rest_get("https://lb/load", T).await.unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("local http endpoint"), "{e}");
}

#[tokio::test]
async fn rest_sends_roboconfs_headers_and_reads_a_content_length() {
    // The server keeps the connection open: the body's length ends the read.
    let (base, server) = serve(
        parts(&[b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"load\":3}\nextra"]),
        false,
    )
    .await;
    let body = rest_get(&format!("{base}/lb-load?w=1"), T).await.unwrap();
    assert_eq!(body, "{\"load\":3}\n");
    let head = server.await.unwrap();
    let port = base.rsplit(':').next().unwrap();
    assert!(head.starts_with("GET /lb-load?w=1 HTTP/1.1\r\n"), "{head}");
    for h in [
        format!("Host: 127.0.0.1:{port}\r\n"),
        "User-Agent: Mozilla/34.0\r\n".into(),
        "Accept: */*\r\n".into(),
        "Connection: close\r\n".into(),
    ] {
        assert!(head.contains(&h), "{h} in {head}");
    }
}

#[tokio::test]
async fn rest_reads_chunks_interim_answers_and_to_the_end() {
    let (base, server) = serve(
        parts(&[
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nlo",
            b"ad\r\n3;ext=1\r\n: 1\r\n",
            b"0\r\n\r\n",
        ]),
        false,
    )
    .await;
    assert_eq!(rest_get(&base, T).await.unwrap(), "load: 1");
    server.await.unwrap();
    let (base, server) = serve(parts(&[b"HTTP/1.0 200 OK\r\n\r\nall ", b"of it"]), true).await;
    assert_eq!(rest_get(&base, T).await.unwrap(), "all of it");
    server.await.unwrap();
}

#[tokio::test]
async fn rest_names_a_bad_status() {
    let (base, server) = serve(
        parts(&[b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"]),
        true,
    )
    .await;
    let e = rest_get(&format!("{base}/x"), T).await.unwrap_err();
    assert!(matches!(&e, Error::Status { status, .. } if status == "HTTP/1.1 404 Not Found"));
    assert!(e.to_string().contains("404 Not Found"), "{e}");
    server.await.unwrap();
    let (base, server) = serve(parts(&[b"SSH-2.0-OpenSSH\r\n\r\n"]), true).await;
    let e = rest_get(&base, T).await.unwrap_err();
    assert!(matches!(e, Error::Protocol(_)), "{e}");
    server.await.unwrap();
}

#[tokio::test]
async fn rest_refuses_oversized_bodies() {
    let big = vec![b'x'; MAX_ANSWER + 1];
    let declared = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
        MAX_ANSWER + 1
    );
    let chunk = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        MAX_ANSWER + 1
    );
    for answer in [
        vec![declared.into_bytes()],
        vec![b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), big.clone()],
        vec![chunk.into_bytes(), big],
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec()],
    ] {
        let (base, server) = serve(answer, true).await;
        let e = rest_get(&base, T).await.unwrap_err();
        assert!(
            matches!(
                e,
                Error::TooLarge {
                    limit: MAX_ANSWER,
                    ..
                }
            ),
            "{e}"
        );
        server.abort();
        let _ = server.await;
    }
    // A body of exactly the limit is read.
    let mut ok = format!("HTTP/1.1 200 OK\r\nContent-Length: {MAX_ANSWER}\r\n\r\n").into_bytes();
    ok.extend(vec![b'y'; MAX_ANSWER]);
    let (base, server) = serve(vec![ok], true).await;
    assert_eq!(rest_get(&base, T).await.unwrap().len(), MAX_ANSWER);
    server.await.unwrap();
}

#[tokio::test]
async fn a_silent_server_times_out_within_the_bound() {
    let (port, release, server) = silent().await;
    let started = Instant::now();
    let e = rest_get(
        &format!("http://127.0.0.1:{port}/"),
        Duration::from_millis(300),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().contains("no answer within 300 ms"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let _ = release.send(());
    server.await.unwrap();
}

#[tokio::test]
async fn a_closed_port_is_a_connection_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let e = rest_get(&format!("http://127.0.0.1:{port}/"), T)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot connect to 127.0.0.1"), "{e}");
}

#[tokio::test]
async fn rest_over_ipv6_when_the_host_has_it() {
    let Ok(l) = TcpListener::bind("[::1]:0").await else {
        eprintln!("SKIPPED: no IPv6 loopback");
        return;
    };
    let port = l.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut b = [0u8; 4096];
        let n = s.read(&mut b).await.unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6")
            .await
            .unwrap();
        String::from_utf8_lossy(&b[..n]).into_owned()
    });
    let body = rest_get(&format!("http://[::1]:{port}/"), T).await.unwrap();
    assert_eq!(body, "v6");
    assert!(server
        .await
        .unwrap()
        .contains(&format!("Host: [::1]:{port}\r\n")));
}

#[tokio::test]
async fn nagios_sends_the_query_then_a_blank_line_and_reads_the_answer() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut q = String::new();
        // The client closes its writing half: the query ends.
        s.read_to_string(&mut q).await.unwrap();
        s.write_all(b"host1;1;0\nhost2;0;1\n").await.unwrap();
        q
    });
    let a = nagios_query("127.0.0.1", port, "GET hosts\r\nColumns: a b\n\n", T)
        .await
        .unwrap();
    assert_eq!(a, "host1;1;0\nhost2;0;1\n");
    assert_eq!(server.await.unwrap(), "GET hosts\nColumns: a b\n\n");
}

#[tokio::test]
async fn nagios_bounds_time_and_size() {
    let (port, release, server) = silent().await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let big_port = l.local_addr().unwrap().port();
    let big = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut q = Vec::new();
        s.read_to_end(&mut q).await.unwrap();
        let _ = s.write_all(&vec![b'x'; MAX_ANSWER + 10]).await;
    });
    let e = nagios_query("127.0.0.1", port, "GET hosts", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.to_string().starts_with("LiveStatus 127.0.0.1:"), "{e}");
    let _ = release.send(());
    server.await.unwrap();
    let e = nagios_query("127.0.0.1", big_port, "GET hosts", T)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e}");
    let _ = big.await;
}

/// A stand-in for `docker` (a shell script run by `sh`, never executed itself).
fn fake_docker(dir: &Path, script: &str) -> std::path::PathBuf {
    let p = dir.join("docker.sh");
    std::fs::write(&p, script).unwrap();
    p
}

async fn fake(dir: &Path, script: &str, timeout: Duration) -> Result<bool, Error> {
    let p = fake_docker(dir, script);
    docker_running_with(OsStr::new("sh"), &[p.as_os_str()], "web-1", timeout).await
}

#[tokio::test]
async fn docker_answers_running_stopped_and_absent() {
    let d = tempfile::tempdir().unwrap();
    let check = r#"[ "$*" = "inspect -f {{.State.Running}} web-1" ] || { echo "bad args: $*" >&2; exit 3; }"#;
    let running = format!("{check}\necho true\n");
    assert!(fake(d.path(), &running, T).await.unwrap());
    let stopped = format!("{check}\necho false\n");
    assert!(!fake(d.path(), &stopped, T).await.unwrap());
    let absent = "echo 'Error: No such object: web-1' >&2\nexit 1\n";
    assert!(!fake(d.path(), absent, T).await.unwrap());
    let absent = "echo 'Error response from daemon: No such container: web-1' >&2\nexit 1\n";
    assert!(!fake(d.path(), absent, T).await.unwrap());
}

#[tokio::test]
async fn docker_failures_are_errors_an_operator_can_read() {
    let d = tempfile::tempdir().unwrap();
    // The binary is missing (an empty folder in place of PATH).
    let missing = d.path().join("docker");
    let e = docker_running_with(missing.as_os_str(), &[], "web-1", T)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("is Docker installed"), "{e}");
    let down = "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2\nexit 1\n";
    let e = fake(d.path(), down, T).await.unwrap_err();
    assert!(
        e.to_string().contains("the Docker engine does not answer"),
        "{e}"
    );
    let e = fake(d.path(), "exit 5\n", T).await.unwrap_err();
    assert!(e.to_string().contains("exit status: 5"), "{e}");
    // A stuck engine: the timeout ends it (and `kill_on_drop` the process).
    let started = Instant::now();
    let e = fake(d.path(), "exec sleep 30\n", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(
        docker_running("--help", T).await,
        Err(Error::Invalid(_))
    ));
}

#[tokio::test]
async fn docker_output_is_bounded() {
    let d = tempfile::tempdir().unwrap();
    // 4 MiB on stdout: read and dropped beyond the bound, and not "true".
    let script = "head -c 4194304 /dev/zero\n";
    assert!(!fake(d.path(), script, T).await.unwrap());
}
