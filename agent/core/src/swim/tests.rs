//! SWIM on a hand-driven network with a virtual clock: suspicion, refutation, a silent
//! member declared down and back, a member cut off alone rejoining.

use super::*;
use std::collections::BTreeMap;

#[test]
fn a_probes_suspicion_grows_with_the_log_of_the_mesh_and_a_closed_ones_does_not() {
    let base = Duration::from_secs(3);
    let ms = |n| probe_suspect_for(base, n).as_millis();
    assert_eq!((ms(0), ms(10), ms(30)), (3_000, 3_000, 3_000));
    assert_eq!((ms(100), ms(1_000), ms(10_000)), (4_000, 6_000, 8_000));
    assert_eq!(closed_suspect_for(base).as_millis(), 2_000);
}

type Nodes = BTreeMap<&'static str, Swim>;

/// Timers due: when, on which node, which.
type Timers = Vec<(u64, &'static str, Timer<SwimId>)>;

/// What one node reported while driven: `(node, peer, "up" | "down" | "suspect")`.
type Reports = Vec<(&'static str, String, &'static str)>;

/// Runs `nodes` on a hand-driven network with a virtual clock from `now` to `end`,
/// losing what `cut(from, to)` says.
fn drive(
    nodes: &mut Nodes,
    timers: &mut Timers,
    now: &mut u64,
    end: u64,
    cut: &dyn Fn(&str, &str) -> bool,
) -> Reports {
    let names: Vec<&'static str> = nodes.keys().copied().collect();
    let mut reports = Vec::new();
    loop {
        let mut moved = true;
        while moved {
            moved = false;
            for &n in &names {
                let out = nodes.get_mut(n).expect("node").take();
                for (to, data) in out.sends {
                    moved = true;
                    if !cut(n, &to) {
                        if let Some(dst) = nodes.get_mut(to.as_str()) {
                            dst.handle(&data);
                        }
                    }
                }
                for (t, after) in out.timers {
                    timers.push((*now + after.as_millis() as u64, n, t));
                }
                for (peers, what) in [(out.up, "up"), (out.down, "down")] {
                    reports.extend(peers.into_iter().map(|p| (n, p, what)));
                }
                reports.extend(out.suspected.into_iter().map(|p| (n, p, "suspect")));
            }
        }
        timers.sort_by_key(|(at, _, _)| *at);
        if timers.first().is_none_or(|(at, _, _)| *at > end) {
            *now = end;
            return reports;
        }
        let (at, n, t) = timers.remove(0);
        *now = at;
        for swim in nodes.values_mut() {
            swim.clock(*now);
        }
        nodes.get_mut(n).expect("node").timer(t);
    }
}

/// Three members that found each other, at 5 s.
fn three(suspect_for: Duration) -> (Nodes, Timers, u64) {
    let mut nodes: Nodes = ["a", "b", "c"]
        .into_iter()
        .zip(1u64..)
        .map(|(n, seed)| (n, Swim::seeded(n, 0, config(suspect_for), seed)))
        .collect();
    let (mut timers, mut now) = (Vec::new(), 0u64);
    nodes.get_mut("b").expect("b").announce("a");
    nodes.get_mut("c").expect("c").announce("a");
    drive(&mut nodes, &mut timers, &mut now, 5_000, &|_, _| false);
    for (n, swim) in &nodes {
        assert_eq!(swim.active(), 2, "{n} knows the two others");
    }
    (nodes, timers, now)
}

fn said(reports: &Reports, node: &str, peer: &str, what: &str) -> bool {
    reports
        .iter()
        .any(|(n, p, w)| *n == node && p == peer && *w == what)
}

/// How `node` sees `peer`: its life, incarnation and state.
fn view(nodes: &Nodes, node: &str, peer: &str) -> Option<(u64, Incarnation, State)> {
    nodes[node]
        .foca
        .iter_members()
        .find(|m| &*m.id().peer == peer)
        .map(|m| (m.id().bump, m.incarnation(), m.state()))
}

/// A suspicion is told to the suspect at once, on the one path from the suspector to
/// it, and its answer refutes the suspicion at the suspector: nothing else is
/// delivered (no gossip, no third member). When the down timer later fires for the
/// refuted suspicion, the live member is left as it is (no new identity).
#[test]
fn a_suspect_refutes_straight_to_its_suspector() {
    let (mut nodes, mut timers, mut now) = three(Duration::from_secs(3));
    let b = nodes.get_mut("b").expect("b");
    b.suspect("c");
    assert_eq!(view(&nodes, "b", "c"), Some((0, 0, State::Suspect)));
    let out = nodes.get_mut("b").expect("b").take();
    let told: Vec<_> = out.sends.iter().filter(|(to, _)| to == "c").collect();
    assert_eq!(told.len(), 1, "the suspect is told at once");
    nodes.get_mut("c").expect("c").handle(&told[0].1);
    let answer = nodes.get_mut("c").expect("c").take();
    for (_, data) in answer.sends.iter().filter(|(to, _)| to == "b") {
        nodes.get_mut("b").expect("b").handle(data);
    }
    assert_eq!(
        view(&nodes, "b", "c"),
        Some((0, 1, State::Alive)),
        "refuted"
    );
    for (t, after) in out.timers {
        timers.push((now + after.as_millis() as u64, "b", t));
    }
    let reports = drive(&mut nodes, &mut timers, &mut now, 12_000, &|_, _| false);
    assert!(!said(&reports, "b", "c", "down"), "{reports:?}");
    assert_eq!(
        view(&nodes, "a", "c"),
        Some((0, 1, State::Alive)),
        "same life"
    );
    assert_eq!(
        view(&nodes, "b", "c"),
        Some((0, 1, State::Alive)),
        "same life"
    );
}

/// Three SWIM instances: one goes silent and the others declare it down after
/// suspecting it; when it talks again it comes back under a renewed identity.
#[test]
fn a_silent_member_is_declared_down_and_comes_back() {
    let (mut nodes, mut timers, mut now) = three(Duration::from_secs(2));
    let silent = |f: &str, t: &str| f == "c" || t == "c";
    let reports = drive(&mut nodes, &mut timers, &mut now, 15_000, &silent);
    for n in ["a", "b"] {
        assert!(said(&reports, n, "c", "down"), "{n}: {reports:?}");
        assert!(!said(&reports, n, if n == "a" { "b" } else { "a" }, "down"));
    }
    let reports = drive(&mut nodes, &mut timers, &mut now, 40_000, &|_, _| false);
    for n in ["a", "b"] {
        assert!(said(&reports, n, "c", "up"), "{n}: {reports:?}");
        assert_eq!(nodes[n].active(), 2);
        assert!(
            !reports.iter().any(|(_, _, w)| *w == "suspect"),
            "{reports:?}"
        );
    }
}

/// Five members; one is cut off until it and the others declare each other down.
/// When the link is back, it rejoins under a new identity and every member holds the
/// five alive again — and none of its verdicts from the cut (the four others down)
/// reaches the others: no live member is declared down by anyone.
#[test]
fn a_member_cut_off_alone_rejoins_without_taking_the_others_down() {
    let names = ["a", "b", "c", "d", "e"];
    let mut nodes: Nodes = names
        .into_iter()
        .zip(1u64..)
        .map(|(n, seed)| (n, Swim::seeded(n, 0, config(Duration::from_secs(2)), seed)))
        .collect();
    let (mut timers, mut now) = (Vec::new(), 0u64);
    for n in &names[1..] {
        nodes.get_mut(n).expect("node").announce("a");
    }
    drive(&mut nodes, &mut timers, &mut now, 5_000, &|_, _| false);
    for (n, swim) in &nodes {
        assert_eq!(swim.active(), 4, "{n} knows the four others");
    }
    let cut = |f: &str, t: &str| f == "e" || t == "e";
    let reports = drive(&mut nodes, &mut timers, &mut now, 20_000, &cut);
    for n in ["a", "b", "c", "d"] {
        assert!(said(&reports, n, "e", "down"), "{n}: {reports:?}");
        assert!(said(&reports, "e", n, "down"), "e on {n}: {reports:?}");
    }
    let reports = drive(&mut nodes, &mut timers, &mut now, 60_000, &|_, _| false);
    let wrong: Vec<_> = reports
        .iter()
        .filter(|(_, p, w)| *w == "down" && p != "e")
        .collect();
    assert!(wrong.is_empty(), "live members declared down: {wrong:?}");
    for n in ["a", "b", "c", "d"] {
        assert!(said(&reports, n, "e", "up"), "{n}: {reports:?}");
        assert_eq!(nodes[n].withheld(), 0, "{n} was never alone");
    }
    assert!(nodes["e"].withheld() > 0, "e's verdicts were taken out");
    for (n, swim) in &nodes {
        assert_eq!(swim.active(), 4, "{n} knows the four others again");
    }
}
