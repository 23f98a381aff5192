//! The replica's own tests: convergence, last writer wins, fingerprints, gaps, bounds.

use super::*;

fn node(n: &str) -> NodeId {
    NodeId::new(n)
}

/// The store's form of an entry reads back as the same entry; damaged bytes (cut,
/// trailing, or claiming a huge value) read back as nothing, without a panic.
#[test]
fn stored_entries_read_back_and_damaged_ones_are_skipped() {
    let e = Replica::new(node("a"), 3).write(Kind::Exports, "a", Some(vec![1, 2, 3]), 7, 0);
    let bytes = e.to_stored();
    assert_eq!(Entry::from_stored(&bytes), Some(e));
    assert_eq!(Entry::from_stored(&bytes[..bytes.len() - 1]), None);
    assert_eq!(Entry::from_stored(&[bytes.as_slice(), &[0]].concat()), None);
    assert_eq!(Entry::from_stored(&[0xff; 64]), None);
    assert_eq!(Entry::from_stored(&[]), None);
}

/// The current write of a record any node may write is kept as it changes: a
/// higher term wins over a later clock, a writer's own rewrite at a lower term hands
/// the record to the next writer, and forgetting the current writer's origin too.
#[test]
fn the_current_writer_follows_rewrites_and_forgotten_origins() {
    let mut r = Replica::new(node("r"), 1);
    let mut writers: Vec<Replica> = ["a", "b", "c"]
        .iter()
        .map(|n| Replica::new(node(n), 1))
        .collect();
    let key = "lamp/vm/app";
    let value = |r: &Replica| {
        r.get(Kind::Desired, key)
            .map(|e| e.value.as_deref().map(<[u8]>::to_vec))
    };
    for (i, (w, term)) in writers.iter_mut().zip([5, 3, 0]).enumerate() {
        let e = w.write(
            Kind::Desired,
            key,
            Some(vec![i as u8]),
            100 + i as u64,
            term,
        );
        r.apply(e, 200).unwrap();
    }
    assert_eq!(
        value(&r),
        Some(Some(vec![0])),
        "a's term 5 wins over later clocks"
    );
    let e = writers[0].write(Kind::Desired, key, Some(vec![9]), 300, 0);
    r.apply(e, 300).unwrap();
    assert_eq!(
        value(&r),
        Some(Some(vec![1])),
        "b's term 3 is now the highest"
    );
    r.forget(&writers[1].origin().clone());
    assert_eq!(
        value(&r),
        Some(Some(vec![9])),
        "then a's rewrite, the latest clock"
    );
    r.forget(&writers[0].origin().clone());
    assert_eq!(value(&r), Some(Some(vec![2])));
    r.forget(&writers[2].origin().clone());
    assert_eq!(value(&r), None);
}

#[test]
fn last_writer_wins_across_nodes_and_ties_break_on_the_node() {
    let mut a = Replica::new(node("a"), 1);
    let mut b = Replica::new(node("b"), 1);
    let ea = a.write(
        Kind::Desired,
        "lamp/vm/app",
        Some(b"started".to_vec()),
        100,
        0,
    );
    let eb = b.write(
        Kind::Desired,
        "lamp/vm/app",
        Some(b"stopped".to_vec()),
        200,
        0,
    );
    a.apply(eb.clone(), 200).unwrap();
    b.apply(ea, 200).unwrap();
    assert_eq!(
        a.get(Kind::Desired, "lamp/vm/app")
            .unwrap()
            .value
            .as_deref(),
        Some(&b"stopped"[..])
    );
    assert_eq!(
        a.get(Kind::Desired, "lamp/vm/app"),
        b.get(Kind::Desired, "lamp/vm/app")
    );
    // A delete is a tombstone that wins the same way.
    let del = a.write(Kind::Desired, "lamp/vm/app", None, 300, 0);
    b.apply(del, 300).unwrap();
    assert!(b.get(Kind::Desired, "lamp/vm/app").is_none());
}

/// The fingerprint a replica keeps as it goes is the one of its digest, through
/// writes, entries out of order, deltas, restores and forgotten origins.
#[test]
fn the_kept_fingerprint_is_the_digest_s() {
    let mut a = Replica::new(node("a"), 1);
    let mut b = Replica::new(node("b"), 1);
    let same = |r: &Replica| assert_eq!(r.digest_hash(), digest_hash(&r.digest()));
    same(&a);
    let mut sent = Vec::new();
    for k in 0..5 {
        sent.push(b.write(Kind::Desired, &format!("k{k}"), Some(vec![k]), 10, 0));
        a.write(Kind::Desired, &format!("a{k}"), Some(vec![k]), 10, 0);
        same(&a);
    }
    // Out of order: a gap keeps the watermark where it was.
    a.apply(sent[3].clone(), 20).unwrap();
    same(&a);
    a.apply(sent[0].clone(), 20).unwrap();
    same(&a);
    let delta = b.delta_for(&a.digest(), 100);
    a.apply_delta(delta, 30);
    same(&a);
    assert_eq!(a.digest()[b.origin()], 5);
    let restored = Replica::restore(node("a"), 1, sent.clone());
    same(&restored);
    a.forget(&b.origin().clone());
    same(&a);
    assert_ne!(a.digest_hash(), restored.digest_hash());
}

/// Entries out of order: once the gap fills, the watermark moves past what was
/// already held beyond it (no anti-entropy round needed to say so).
#[test]
fn a_filled_gap_moves_the_watermark_past_what_was_held() {
    let mut a = Replica::new(node("a"), 1);
    let mut b = Replica::new(node("b"), 1);
    let sent: Vec<Entry> = (0..4)
        .map(|k| b.write(Kind::Desired, &format!("k{k}"), Some(vec![k]), 10, 0))
        .collect();
    for i in [1, 3, 2] {
        a.apply(sent[i].clone(), 20).unwrap();
        assert_eq!(a.watermark(b.origin()), 0);
    }
    a.apply(sent[0].clone(), 20).unwrap();
    assert_eq!(a.watermark(b.origin()), 4);
    assert_eq!(a.digest_hash(), b.digest_hash());
}

/// A peer sending ever higher sequence numbers beyond a gap: what is remembered of
/// them stays bounded, and the watermark still moves once the gap fills.
#[test]
fn numbers_held_beyond_a_gap_are_bounded() {
    let mut a = Replica::new(node("a"), 1);
    let mut b = Replica::new(node("b"), 1);
    let first = b.write(Kind::Desired, "k", Some(vec![0]), 10, 0);
    for k in 0..(MAX_ABOVE as u64 + 100) {
        let mut e = b.write(Kind::Desired, "k", Some(vec![1]), 10, 0);
        e.seq = 10 + k;
        a.apply(e, 20).unwrap();
    }
    assert_eq!(a.spaces[b.origin()].above.len(), MAX_ABOVE);
    a.apply(first, 20).unwrap();
    assert_eq!(a.watermark(b.origin()), 1);
    assert_eq!(a.digest_hash(), digest_hash(&a.digest()));
}

/// Sequence numbers at the top of the range (a malformed or hostile peer's) move
/// watermarks without overflowing.
#[test]
fn watermarks_at_the_top_of_the_range_do_not_overflow() {
    let mut a = Replica::new(node("a"), 1);
    let mut b = Replica::new(node("b"), 1);
    let mut e = b.write(Kind::Desired, "k", Some(vec![1]), 10, 0);
    e.seq = u64::MAX;
    a.apply(e.clone(), 20).unwrap();
    let mut delta = Delta::default();
    delta.entries.push(e);
    delta.watermarks.insert(b.origin().clone(), u64::MAX);
    a.apply_delta(delta, 30);
    assert_eq!(a.watermark(b.origin()), u64::MAX);
    assert_eq!(a.digest_hash(), digest_hash(&a.digest()));
}

#[test]
fn owner_records_cannot_be_forged() {
    let mut a = Replica::new(node("a"), 1);
    let mut b = Replica::new(node("b"), 1);
    let forged = b.write(
        Kind::Exports,
        &owner_key(&node("a"), "lamp/vm/db"),
        Some(b"evil".to_vec()),
        10,
        0,
    );
    assert_eq!(a.apply(forged, 10), Err(Refused::NotOwner));
    let own = b.write(
        Kind::Exports,
        &owner_key(&node("b"), "lamp/vm/db"),
        Some(b"ok".to_vec()),
        10,
        0,
    );
    assert_eq!(a.apply(own, 10), Ok(true));
    assert_eq!(a.all(Kind::Exports).len(), 1);
}

#[test]
fn anti_entropy_fills_gaps_left_by_lost_deltas() {
    let mut a = Replica::new(node("a"), 1);
    let mut b = Replica::new(node("b"), 1);
    let mut eager = Vec::new();
    for i in 0..10 {
        eager.push(a.write(
            Kind::Application,
            &format!("app{}", i % 4),
            Some(vec![i]),
            10 + i as u64,
            0,
        ));
    }
    // Only every third delta arrives.
    for e in eager.iter().step_by(3) {
        b.apply(e.clone(), 100).unwrap();
    }
    assert_ne!(a.all(Kind::Application), b.all(Kind::Application));
    let d = a.delta_for(&b.digest(), 1000);
    b.apply_delta(d, 100);
    assert_eq!(a.all(Kind::Application), b.all(Kind::Application));
    assert_eq!(a.digest(), b.digest());
    assert!(
        a.delta_for(&b.digest(), 1000).entries.is_empty(),
        "nothing left to send"
    );
}

#[test]
fn a_new_generation_is_a_new_keyspace() {
    let mut a1 = Replica::new(node("a"), 1);
    let mut b = Replica::new(node("b"), 1);
    b.apply(a1.write(Kind::Member, "a", Some(b"v1".to_vec()), 10, 0), 10)
        .unwrap();
    // `a` lost its disk: its sequence starts again, under a new generation.
    let mut a2 = Replica::new(node("a"), 2);
    let e = a2.write(Kind::Member, "a", Some(b"v2".to_vec()), 20, 0);
    assert_eq!(e.seq, 1);
    b.apply(e, 20).unwrap();
    assert_eq!(
        b.get(Kind::Member, "a").unwrap().value.as_deref(),
        Some(&b"v2"[..])
    );
    b.forget(&Origin {
        node: node("a"),
        generation: 1,
    });
    assert_eq!(b.all(Kind::Member).len(), 1);
}

/// Collection: only deletions that stood long enough are pending; below the floor they
/// go, and late copies — of the tombstone, or of the write it deleted — do not bring
/// anything back; a replica behind the floor gets the origin whole and drops what the
/// sender no longer holds.
#[test]
fn collected_tombstones_stay_gone_and_a_replica_behind_the_floor_is_replaced() {
    let mut a = Replica::new(node("a"), 1);
    let mut b = Replica::new(node("b"), 1);
    let mut late = Replica::new(node("c"), 1);
    let key = owner_key(&node("a"), "app\u{1f}/vm/db");
    let put = a.write(Kind::Exports, &key, Some(b"ip".to_vec()), 100, 0);
    let other = a.write(Kind::Member, "a", Some(b"m".to_vec()), 100, 0);
    late.apply(put.clone(), 100).unwrap();
    late.apply(other.clone(), 100).unwrap();
    let del = a.write(Kind::Exports, &key, None, 200, 0);
    for e in [&put, &other, &del] {
        b.apply((*e).clone(), 200).unwrap();
    }
    assert!(a.pending(199).is_empty(), "too young");
    assert_eq!(a.pending(200).get(a.origin()), Some(&del.seq));
    let origin = a.origin().clone();
    assert_eq!(a.collect(&origin, del.seq).len(), 1);
    assert_eq!(b.collect(&origin, del.seq).len(), 1);
    assert!(b.latest(Kind::Exports, &key).is_none());
    // Late copies.
    assert_eq!(b.apply(put.clone(), 300), Ok(false));
    assert_eq!(b.apply(del.clone(), 300), Ok(false));
    assert!(b.latest(Kind::Exports, &key).is_none());
    // `late` missed the deletion and holds the export: behind the floor, it is sent the
    // origin whole and drops it.
    assert!(late.get(Kind::Exports, &key).is_some());
    let d = b.delta_for(&late.digest(), 100);
    assert_eq!(d.replace, vec![origin.clone()]);
    let applied = late.apply_delta(d, 300);
    assert_eq!(applied.removed.len(), 1);
    assert!(late.latest(Kind::Exports, &key).is_none());
    assert!(late.get(Kind::Member, "a").is_some());
    assert_eq!(late.digest(), b.digest());
}

/// The bucketed exchange: two replicas of a 300-origin mesh that differ in a few
/// origins find just those origins' buckets different, exchange the watermarks of those
/// buckets only, and end with the same digest as a full exchange would give them — an
/// origin the asker lacks entirely included. A peer's short or garbled bucket list
/// makes every bucket it did not send differ.
#[test]
fn only_the_differing_buckets_are_exchanged() {
    let mut writers: Vec<Replica> = (0..300)
        .map(|i| Replica::new(node(&format!("n{i:03}")), 1))
        .collect();
    let mut a = Replica::new(node("a"), 1);
    let mut b = Replica::new(node("b"), 1);
    for w in &mut writers {
        let key = w.origin().node.to_string();
        let e = w.write(Kind::Desired, &key, Some(vec![1]), 10, 0);
        a.apply(e.clone(), 20).unwrap();
        b.apply(e, 20).unwrap();
    }
    assert_eq!(a.buckets(), b.buckets());
    assert_eq!(a.differing(&b.buckets()), 0);
    // b learns three more writes, and one origin a has never heard of.
    let mut fresh = Vec::new();
    for i in [7, 150, 299] {
        let key = writers[i].origin().node.to_string();
        let e = writers[i].write(Kind::Exports, &key, None, 30, 0);
        fresh.push(writers[i].origin().clone());
        b.apply(e, 40).unwrap();
    }
    let mut newcomer = Replica::new(node("newcomer"), 4);
    b.apply(newcomer.write(Kind::Desired, "z", Some(vec![2]), 30, 0), 40)
        .unwrap();
    fresh.push(newcomer.origin().clone());

    let mask = a.differing(&b.buckets());
    let expected = fresh.iter().fold(0u64, |m, o| m | (1 << bucket_of(o)));
    assert_eq!(mask, expected, "exactly the buckets of the changed origins");
    let partial = a.digest_in(mask);
    assert!(
        partial.len() < a.digest().len() / 8,
        "{} origins sent",
        partial.len()
    );
    assert!(partial.keys().all(|o| mask & (1 << bucket_of(o)) != 0));
    let delta = b.delta_in(&partial, 1000, mask);
    assert_eq!(delta.watermarks.len(), fresh.len());
    a.apply_delta(delta, 50);
    assert_eq!(a.digest_hash(), b.digest_hash());
    assert_eq!(a.digest(), b.digest());

    // A peer's bucket list cut short: the buckets it left out differ.
    let cut = &b.buckets()[..10];
    assert_eq!(a.differing(cut), ALL_BUCKETS & !((1 << 10) - 1));
    assert_eq!(a.differing(&[]), ALL_BUCKETS);
    // Every origin lands in a bucket; the fingerprint is still the digest's.
    assert_eq!(a.digest_hash(), digest_hash(&a.digest()));
    assert_eq!(a.digest_in(ALL_BUCKETS), a.digest());
}
