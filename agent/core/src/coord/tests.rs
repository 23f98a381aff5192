//! A Raft group of a few nodes wired in memory: voters are added one at a time, a
//! leader is elected again when the leader stops, and a restart reads back the state.

use super::*;
use std::collections::{BTreeMap, VecDeque};

struct Net {
    groups: BTreeMap<NodeId, Group>,
    stores: BTreeMap<NodeId, BTreeMap<Vec<u8>, Vec<u8>>>,
    queue: VecDeque<(NodeId, NodeId, Vec<u8>)>,
    down: Vec<NodeId>,
}

fn id(n: &str) -> NodeId {
    NodeId::new(n)
}

impl Net {
    fn absorb(&mut self, from: &NodeId, out: Out) {
        let store = self.stores.entry(from.clone()).or_default();
        for w in out.writes {
            match w {
                Write::Put { key, value, .. } => {
                    store.insert(key, value);
                }
                Write::Delete { key, .. } => {
                    store.remove(&key);
                }
                Write::DeletePrefix { prefix, .. } => store.retain(|k, _| !k.starts_with(&prefix)),
                Write::Peer { .. } => {}
            }
        }
        for (to, data) in out.sends {
            self.queue.push_back((from.clone(), to, data));
        }
    }

    fn deliver(&mut self) {
        while let Some((from, to, data)) = self.queue.pop_front() {
            if self.down.contains(&to) || self.down.contains(&from) {
                continue;
            }
            let s = Settings::default();
            let g = self
                .groups
                .entry(to.clone())
                .or_insert_with(|| Group::joiner(to.clone(), &s, 9));
            let mut out = Out::default();
            let _ = g.step(&from, &data, &mut out);
            self.absorb(&to, out);
        }
    }

    fn tick(&mut self, n: usize) {
        for _ in 0..n {
            let ids: Vec<NodeId> = self.groups.keys().cloned().collect();
            for i in ids {
                if self.down.contains(&i) {
                    continue;
                }
                let mut out = Out::default();
                if let Some(g) = self.groups.get_mut(&i) {
                    g.tick(&mut out);
                }
                self.absorb(&i, out);
            }
            self.deliver();
        }
    }

    fn leaders(&self) -> Vec<NodeId> {
        self.groups
            .iter()
            .filter(|(i, g)| !self.down.contains(i) && g.is_leader())
            .map(|(i, _)| i.clone())
            .collect()
    }
}

#[test]
fn voters_join_one_at_a_time_and_a_new_leader_follows_a_dead_one() {
    let s = Settings::default();
    let mut net = Net {
        groups: BTreeMap::new(),
        stores: BTreeMap::new(),
        queue: VecDeque::new(),
        down: Vec::new(),
    };
    let mut out = Out::default();
    let a = Group::found(id("a"), &s, 1, &mut out);
    assert!(a.is_leader(), "the founder leads at once");
    net.groups.insert(id("a"), a);
    net.absorb(&id("a"), out);
    for n in ["b", "c"] {
        // First a learner; a voter once it holds the log.
        let mut out = Out::default();
        let g = net.groups.get_mut(&id("a")).expect("a");
        g.propose_voter(&id(n), true, &mut out).expect("proposed");
        net.absorb(&id("a"), out);
        net.deliver();
        net.tick(30);
        assert!(net.groups[&id("a")].caught_up(&id(n)), "{n} caught up");
        assert!(!net.groups.get(&id(n)).is_some_and(|g| g.is_voter()));
        let mut out = Out::default();
        let g = net.groups.get_mut(&id("a")).expect("a");
        g.propose_voter(&id(n), true, &mut out).expect("promoted");
        net.absorb(&id("a"), out);
        net.deliver();
        net.tick(30);
        assert!(
            net.groups.get(&id(n)).is_some_and(|g| g.is_voter()),
            "{n} voter"
        );
    }
    assert_eq!(net.groups[&id("a")].voters().len(), 3);
    // A launch intent commits on all three.
    let key = MachineKey {
        app: "app".into(),
        root: "/vm".into(),
        generation: 1,
    };
    let mut out = Out::default();
    let cmd = Command::Launch {
        key: key.clone(),
        target: TargetSpec {
            id: "local".into(),
            handler: "local".into(),
            properties: Default::default(),
        },
        desired_stamp: (1, 0),
    };
    assert!(net
        .groups
        .get_mut(&id("a"))
        .expect("a")
        .propose(&cmd, &mut out));
    net.absorb(&id("a"), out);
    net.tick(5);
    for n in ["a", "b", "c"] {
        assert!(
            net.groups[&id(n)].machine().intent("app", "/vm").is_some(),
            "{n}"
        );
    }
    // The leader stops: one of the two others leads within a few election timeouts.
    net.down.push(id("a"));
    net.tick(60);
    let leaders = net.leaders();
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    let term = net.groups[&leaders[0]].term();
    assert!(term > 1);
    // A restart of b from its store comes back with the same state and term.
    let stored: Vec<(Vec<u8>, Vec<u8>)> = net.stores[&id("b")].clone().into_iter().collect();
    let log = log::Log::restore(&stored).expect("read").expect("held");
    let b = Group::restore(id("b"), &s, 5, log).expect("restore");
    assert!(b.term() >= net.groups[&id("b")].term().min(term));
    assert!(b.machine().intent("app", "/vm").is_some());
    assert!(b.is_voter());
}

#[test]
fn a_forged_or_malformed_raft_message_changes_nothing() {
    let s = Settings::default();
    let mut out = Out::default();
    let mut a = Group::found(id("a"), &s, 1, &mut out);
    let term = a.term();
    let forged = |from: &str, to: &str, commit: u64, term: u64| {
        let m = Message {
            msg_type: raft::eraftpb::MessageType::MsgHeartbeat,
            from: raft_id(&id(from)),
            to: raft_id(&id(to)),
            commit,
            term,
            ..Default::default()
        };
        m.write_to_bytes().expect("encode")
    };
    let mut out = Out::default();
    // Committing past the log's end (raft-rs would panic): refused.
    let big = forged("b", "a", 1_000, term + 5);
    assert_eq!(a.step(&id("b"), &big, &mut out), Err(Refused::Forged));
    // A sender that is not the peer it claims to be: refused.
    let other = forged("c", "a", 0, term + 5);
    assert_eq!(a.step(&id("b"), &other, &mut out), Err(Refused::Forged));
    assert_eq!(
        a.step(&id("b"), b"\xff\xff\x00", &mut out),
        Err(Refused::Malformed)
    );
    assert_eq!((a.term(), a.is_leader(), a.refused), (term, true, 3));
    assert!(out.writes.is_empty() && out.sends.is_empty());
}
