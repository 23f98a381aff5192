//! The network task with real libp2p nodes on loopback: members gossip and answer
//! requests; a stranger (another CA, or no credentials) gets nothing and changes
//! nothing; a joining node is admitted once its token is accepted; an admitted peer that
//! floods garbage is dropped and counted while the node stays responsive.

use super::*;
use crate::admission::{Credentials, Grant};
use crate::mesh::wire::{encode, Body, Envelope, PROTOCOL_VERSION};
use crate::mesh::NodeId;
use libp2p::identity::Keypair;
use std::time::{Duration, Instant};

fn listen() -> Vec<Multiaddr> {
    vec!["/ip4/127.0.0.1/tcp/0".parse().expect("addr")]
}

fn start(key: Keypair, creds: Option<&Credentials>) -> (Net, mpsc::Receiver<Event>) {
    let cfg = Config {
        listen: listen(),
        verifier: creds.map(Credentials::verifier),
        mdns: false,
        gossip: Default::default(),
    };
    spawn(key, cfg).expect("network")
}

/// `n` members of one new mesh (the first made it).
fn members(n: usize) -> (Credentials, Vec<(Net, mpsc::Receiver<Event>)>) {
    let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate_ed25519()).collect();
    let first = Credentials::init(&keys[0].public().to_peer_id()).expect("init");
    let nodes = keys
        .into_iter()
        .map(|k| {
            let creds = Credentials {
                cert: first.issue(&k.public().to_peer_id()).expect("issue"),
                ..first.clone()
            };
            start(k, Some(&creds))
        })
        .collect();
    (first, nodes)
}

async fn listening(n: &Net) -> Multiaddr {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(a) = n.listening().await.expect("net").into_iter().next() {
            return a;
        }
        assert!(Instant::now() < deadline, "never listened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A valid gossip message; each one different (gossip ids are content hashes, so the
/// same bytes twice would be a duplicate).
fn message(mesh: &str) -> Vec<u8> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    encode(&Envelope {
        version: PROTOCOL_VERSION,
        mesh: mesh.into(),
        sender: NodeId::new(format!("a{n}")),
        body: Body::Entries(Vec::new()),
    })
    .expect("encode")
}

async fn until(what: &str, secs: u64, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(Instant::now() < deadline, "{what}: not in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn next_gossip(events: &mut mpsc::Receiver<Event>) -> (PeerId, Vec<u8>) {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Some(Event::Gossip { from, envelope }) => {
                    return (from, crate::mesh::wire::encode(&envelope).expect("encode"))
                }
                Some(_) => continue,
                None => panic!("events ended"),
            }
        }
    })
    .await
    .expect("gossip in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_gossip_and_request() {
    let (creds, mut nodes) = members(2);
    let (b, mut b_events) = nodes.pop().expect("b");
    let (a, mut a_events) = nodes.pop().expect("a");
    b.dial(listening(&a).await).await.expect("dial");
    until("admission", 20, async || {
        a.peers().await.unwrap_or_default().contains(&b.peer_id)
    })
    .await;
    // Gossip: publishing needs the peer's subscription; retry until the deadline.
    let mut sent = Vec::new();
    until("a gossip peer", 20, async || {
        sent = message(&creds.mesh);
        a.publish(sent.clone()).await.is_ok()
    })
    .await;
    let got = next_gossip(&mut b_events).await;
    assert_eq!(got.0, a.peer_id);
    assert_eq!(got.1, sent);
    // A message of another mesh is rejected and counted, not delivered.
    a.publish(message("other")).await.expect("publish");
    until("the foreign message counted", 20, async || {
        b.dropped.total() > 0
    })
    .await;
    // Request-response: b asks a, a answers.
    let asker = tokio::spawn({
        let b = b.clone();
        let a_id = a.peer_id;
        async move { b.request(a_id, b"ping".to_vec()).await }
    });
    let (id, data) = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some(Event::Request { id, data, .. }) = a_events.recv().await {
                return (id, data);
            }
        }
    })
    .await
    .expect("request in time");
    assert_eq!(data, b"ping");
    a.respond(id, b"pong".to_vec()).await.expect("respond");
    assert_eq!(asker.await.expect("join").expect("answer"), b"pong");
    assert_eq!(a.refused_count(), 0);
}

/// A node of another mesh (its own CA) that knows this mesh's id and forges gossip for
/// it: refused, logged and counted, never sent our gossip, and nothing it sends reaches
/// the agent — neither gossip nor requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_gets_nothing_and_changes_nothing() {
    let (creds, mut nodes) = members(2);
    let (b, _b_events) = nodes.pop().expect("b");
    let (a, mut a_events) = nodes.pop().expect("a");
    let rogue_key = Keypair::generate_ed25519();
    let rogue_creds = Credentials {
        mesh: creds.mesh.clone(),
        ..Credentials::init(&rogue_key.public().to_peer_id()).expect("init")
    };
    let (rogue, mut rogue_events) = start(rogue_key, Some(&rogue_creds));
    let a_addr = listening(&a).await;
    b.dial(a_addr.clone()).await.expect("dial");
    rogue.dial(a_addr).await.expect("dial");
    until("the rogue refused", 20, async || a.refused_count() > 0).await;
    // The rogue tries anyway: forged gossip in this mesh's envelope, and a request.
    for _ in 0..20 {
        let _ = rogue.publish(message(&creds.mesh)).await;
    }
    assert!(rogue.request(a.peer_id, b"digest".to_vec()).await.is_err());
    // Members still talk: a publishes until b has it; the rogue hears none of it.
    until("a gossip peer", 20, async || {
        a.publish(message(&creds.mesh)).await.is_ok()
    })
    .await;
    until("the rogue disconnected", 20, async || {
        !a.peers().await.unwrap_or_default().contains(&rogue.peer_id)
    })
    .await;
    while let Ok(ev) = rogue_events.try_recv() {
        assert!(!matches!(ev, Event::Gossip { .. }), "the rogue got gossip");
    }
    // A quieter stranger: it connects, subscribes to the mesh's topic and says nothing.
    // For as long as it is connected (until the admission timeout) it hears nothing.
    let (quiet, mut quiet_events) = start(Keypair::generate_ed25519(), None);
    quiet.dial(listening(&a).await).await.expect("dial");
    until("the stranger connected", 20, async || {
        a.connected()
            .await
            .unwrap_or_default()
            .contains(&quiet.peer_id)
    })
    .await;
    quiet
        .set_credentials(rogue_creds.verifier())
        .await
        .expect("subscribe");
    for _ in 0..20 {
        a.publish(message(&creds.mesh)).await.expect("publish to b");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while let Ok(ev) = quiet_events.try_recv() {
        assert!(
            !matches!(ev, Event::Gossip { .. }),
            "the stranger got gossip"
        );
    }
    while let Ok(ev) = a_events.try_recv() {
        match ev {
            Event::Gossip { from, .. } | Event::Request { from, .. } => {
                assert_ne!(from, rogue.peer_id, "the rogue reached the agent")
            }
            Event::Connected(p) => assert_ne!(p, rogue.peer_id, "the rogue was admitted"),
            _ => {}
        }
    }
}

/// A node without credentials presents a token: the member's runtime rules on it; an
/// accepted token makes it a member, a refused one leaves it outside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joins_with_an_accepted_token_only() {
    let (creds, mut nodes) = members(1);
    let (a, mut a_events) = nodes.pop().expect("a");
    let addr = listening(&a).await;
    let answer_next = async |events: &mut mpsc::Receiver<Event>, accept: bool| {
        let (from, id, token) = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if let Some(Event::JoinRequest {
                    from, id, token, ..
                }) = events.recv().await
                {
                    return (from, id, token);
                }
            }
        })
        .await
        .expect("a join request");
        assert_eq!(token, "tok");
        let verdict = if accept {
            Ok(Grant {
                creds: Credentials {
                    cert: creds.issue(&from).expect("issue"),
                    ..creds.clone()
                },
                issuer_cert: creds.cert.clone(),
            })
        } else {
            Err("token already used".to_string())
        };
        a.join_answer(id, verdict);
    };
    let (j, _j_events) = start(Keypair::generate_ed25519(), None);
    let joining = tokio::spawn({
        let (j, addr) = (j.clone(), addr.clone());
        async move { j.join(addr, "tok".into(), "j".into()).await }
    });
    answer_next(&mut a_events, true).await;
    let grant = joining.await.expect("task").expect("joined");
    assert_eq!(grant.creds.mesh, creds.mesh);
    until("both admitted", 20, async || {
        j.peers().await.unwrap_or_default().contains(&a.peer_id)
            && a.peers().await.unwrap_or_default().contains(&j.peer_id)
    })
    .await;
    until("gossip from the new member", 20, async || {
        j.publish(message(&creds.mesh)).await.is_ok()
    })
    .await;
    // A second node with a refused token stays outside.
    let (k, _k_events) = start(Keypair::generate_ed25519(), None);
    let joining = tokio::spawn({
        let k = k.clone();
        async move { k.join(addr, "tok".into(), "k".into()).await }
    });
    answer_next(&mut a_events, false).await;
    let refused = joining.await.expect("task").expect_err("refused");
    assert!(refused.to_string().contains("already used"), "{refused}");
    assert!(a.refused_count() >= 1);
    assert!(!a.peers().await.unwrap_or_default().contains(&k.peer_id));
}

/// An admitted peer that floods garbage: every message is rejected and counted, none
/// reaches the agent, queues stay bounded, and the node still answers requests promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_member_is_dropped_and_counted() {
    let (_, mut nodes) = members(2);
    let (rogue, _rogue_events) = nodes.pop().expect("rogue");
    let (target, mut target_events) = nodes.pop().expect("target");
    rogue.dial(listening(&target).await).await.expect("dial");
    until("a gossip peer", 20, async || {
        rogue.publish(b"warm-up garbage".to_vec()).await.is_ok()
    })
    .await;
    let mut sent = 0u64;
    for i in 0..5_000u32 {
        let mut junk = i.to_be_bytes().to_vec();
        junk.extend_from_slice(&[0xff; 200]);
        if rogue.publish(junk).await.is_ok() {
            sent += 1;
        }
    }
    assert!(sent > 0);
    until("the garbage counted", 30, async || {
        target.dropped.total() >= sent / 2
    })
    .await;
    // Nothing of it reached the agent.
    while let Ok(ev) = target_events.try_recv() {
        assert!(!matches!(ev, Event::Gossip { .. }), "garbage was delivered");
    }
    // Still responsive: a request is answered at once.
    let asker = tokio::spawn({
        let rogue = rogue.clone();
        let id = target.peer_id;
        async move { rogue.request(id, b"ping".to_vec()).await }
    });
    let t = Instant::now();
    let (id, _) = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(Event::Request { id, data, .. }) = target_events.recv().await {
                return (id, data);
            }
        }
    })
    .await
    .expect("the request arrives");
    target.respond(id, b"pong".to_vec()).await.expect("respond");
    assert_eq!(asker.await.expect("join").expect("answer"), b"pong");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}
