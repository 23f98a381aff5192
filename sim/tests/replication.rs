//! Replicas converge: many nodes write records, eager deltas are lost, duplicated and
//! reordered, anti-entropy between random pairs repairs the rest; once faults stop,
//! every replica holds the same records. Deterministic from a seed, over many seeds.

use roboconf_core::mesh::replica::{owner_key, Digest, Entry, Kind, Replica};
use roboconf_core::mesh::NodeId;
use roboconf_core::rng::Rng;

fn run(seed: u64, nodes: usize, steps: usize, loss: f64) -> bool {
    let mut rng = Rng::new(seed);
    let mut reps: Vec<Replica> = (0..nodes)
        .map(|i| Replica::new(NodeId::new(format!("n{i}")), 1))
        .collect();
    let mut in_flight: Vec<(usize, Entry)> = Vec::new();
    let kinds = [
        Kind::Application,
        Kind::Desired,
        Kind::Binding,
        Kind::Exports,
        Kind::Member,
    ];
    for step in 0..steps {
        let now = 1_000 + step as u64 * 10 + rng.below(5) as u64;
        // A write somewhere.
        let w = rng.below(nodes);
        let kind = kinds[rng.below(kinds.len())];
        let key = if kind.owned() {
            owner_key(&NodeId::new(format!("n{w}")), &format!("k{}", rng.below(5)))
        } else {
            format!("k{}", rng.below(8))
        };
        let value = if rng.chance(0.1) {
            None
        } else {
            Some(vec![rng.below(256) as u8])
        };
        let e = reps[w].write(kind, &key, value, now, 0);
        for to in 0..nodes {
            if to != w && !rng.chance(loss) {
                in_flight.push((to, e.clone()));
                if rng.chance(0.05) {
                    in_flight.push((to, e.clone()));
                }
            }
        }
        // Deliver some messages, in any order.
        for _ in 0..rng.below(in_flight.len() + 1) {
            let i = rng.below(in_flight.len());
            let (to, e) = in_flight.swap_remove(i);
            let _ = reps[to].apply(e, now);
        }
        // Anti-entropy between a random pair now and then.
        if rng.chance(0.2) {
            let (a, b) = (rng.below(nodes), rng.below(nodes));
            if a != b {
                let d = reps[a].delta_for(&reps[b].digest(), 50);
                reps[b].apply_delta(d, now);
            }
        }
    }
    // Faults stop: rounds of anti-entropy between every pair.
    for _ in 0..3 {
        for a in 0..nodes {
            for b in 0..nodes {
                if a != b {
                    let theirs: Digest = reps[b].digest();
                    let d = reps[a].delta_for(&theirs, usize::MAX);
                    reps[b].apply_delta(d, 1_000_000);
                }
            }
        }
    }
    let view = |r: &Replica| {
        kinds
            .iter()
            .map(|k| {
                r.all(*k)
                    .into_iter()
                    .map(|(k, e)| (k.to_string(), e.value.clone()))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let first = view(&reps[0]);
    reps.iter().all(|r| view(r) == first)
}

#[test]
fn replicas_converge_over_many_seeds() {
    let mut failed = Vec::new();
    for seed in 0..200 {
        if !run(seed, 6, 200, 0.3) {
            failed.push(seed);
        }
    }
    assert!(failed.is_empty(), "seeds that did not converge: {failed:?}");
}

/// Tombstones are collected while one replica is away, and it comes back: the origins
/// collected meanwhile reach it whole, and no record it held that was deleted meanwhile
/// comes back — every replica ends with exactly what each owner holds of its own.
fn run_with_collection(seed: u64, nodes: usize, steps: usize) -> Result<(), String> {
    let mut rng = Rng::new(seed);
    let mut reps: Vec<Replica> = (0..nodes)
        .map(|i| Replica::new(NodeId::new(format!("n{i}")), 1))
        .collect();
    let away = nodes - 1;
    let mut collected = 0;
    for step in 0..steps {
        let now = 1_000 + step as u64 * 10;
        let offline = (steps / 4..steps * 3 / 4).contains(&step);
        // Owners write and withdraw their exports.
        let w = rng.below(nodes);
        if !(offline && w == away) {
            let key = owner_key(&NodeId::new(format!("n{w}")), &format!("k{}", rng.below(4)));
            let value = (!rng.chance(0.4)).then(|| vec![rng.below(256) as u8]);
            let e = reps[w].write(Kind::Exports, &key, value, now, 0);
            for (to, r) in reps.iter_mut().enumerate() {
                if to != w && !(offline && to == away) && rng.chance(0.7) {
                    let _ = r.apply(e.clone(), now);
                }
            }
        }
        // Anti-entropy among those present.
        let (a, b) = (rng.below(nodes), rng.below(nodes));
        if a != b && !(offline && (a == away || b == away)) {
            let d = reps[a].delta_for(&reps[b].digest(), 50);
            reps[b].apply_delta(d, now);
        }
        // Now and then an origin collects what every present replica holds of it (what
        // its live members acknowledged), and they all learn its floor.
        if step % 20 == 19 {
            for o in 0..nodes {
                if offline && o == away {
                    continue;
                }
                let origin = reps[o].origin().clone();
                let Some(&top) = reps[o].pending(u64::MAX).get(&origin) else {
                    continue;
                };
                let floor = (0..nodes)
                    .filter(|&m| !(offline && m == away))
                    .map(|m| reps[m].watermark(&origin))
                    .min()
                    .unwrap_or(0)
                    .min(top);
                for (m, r) in reps.iter_mut().enumerate() {
                    if !(offline && m == away) {
                        collected += r.collect(&origin, floor).len();
                    }
                }
            }
        }
    }
    // Everyone is back; anti-entropy between every pair until nothing moves.
    for _ in 0..4 {
        for a in 0..nodes {
            for b in 0..nodes {
                if a != b {
                    let d = reps[a].delta_for(&reps[b].digest(), usize::MAX);
                    reps[b].apply_delta(d, 1_000_000);
                }
            }
        }
    }
    if collected == 0 {
        return Err("nothing was collected".into());
    }
    let truth: Vec<(String, Option<Vec<u8>>)> = (0..nodes)
        .flat_map(|o| {
            let id = NodeId::new(format!("n{o}"));
            reps[o]
                .owned_by(Kind::Exports, &id)
                .into_iter()
                .map(|(k, e)| (k.to_string(), e.value.as_deref().map(<[u8]>::to_vec)))
                .collect::<Vec<_>>()
        })
        .collect();
    for (i, r) in reps.iter().enumerate() {
        let held: Vec<(String, Option<Vec<u8>>)> = r
            .all(Kind::Exports)
            .into_iter()
            .map(|(k, e)| (k.to_string(), e.value.as_deref().map(<[u8]>::to_vec)))
            .collect();
        let mut want = truth.clone();
        want.sort();
        if held != want {
            return Err(format!("n{i} holds {held:?}, the owners {want:?}"));
        }
    }
    Ok(())
}

#[test]
fn a_replica_away_across_a_collection_never_resurrects_a_deletion() {
    let failed: Vec<String> = (0..200)
        .filter_map(|seed| {
            run_with_collection(seed, 5, 400)
                .err()
                .map(|e| format!("seed {seed}: {e}"))
        })
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}
