//! SWIM membership (DESIGN §4), with the `foca` crate: each member probes one other per
//! period, asks others to probe indirectly when it gets no answer, suspects, and lets
//! the suspect refute with a higher incarnation before it is declared down; per-node cost
//! does not grow with the mesh. foca is sans-IO: this wrapper collects what it asks for
//! (datagrams to send, timers, membership changes) in an `Outbox` that the runtime carries
//! out — datagrams go on the `/roboconf/swim/1` protocol to admitted peers only. SWIM is
//! what finds members that went silent without closing their connections (a partition, a
//! frozen host); closed connections are the fast path (`core/members.rs`). Down verdicts
//! this node reached while it heard no one are kept out of what it sends (`alone`).

mod alone;

use foca::{
    Codec, Config, Foca, Identity, Incarnation, Member, Message, NoCustomBroadcast, Notification,
    PostcardCodec, Runtime, State, Timer,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::Arc;
use std::time::Duration;

/// A member as SWIM knows it: its peer id, and its life: the wall time (ms) it started
/// at, bumped each time it comes back after being declared down, so that a new life is
/// not mistaken for an old one that others declared down (the later wins).
/// foca finds a member by comparing addresses with every member it holds, for each
/// update it applies: the address is a 64-bit hash of the peer id, computed once, so
/// that a lookup compares integers instead of copying and comparing strings. (It never
/// leaves the process; two peer ids with one hash would need 2⁶⁴ tries to find.) For the
/// same reason two ids are equal when their addresses and lives are: foca compares the
/// member it found with the update's, and reading the peer id's text there was a cache
/// miss per update applied.
#[derive(Debug, Clone, Serialize)]
pub struct SwimId {
    pub peer: Arc<str>,
    pub bump: u64,
    #[serde(skip)]
    addr: u64,
}

impl SwimId {
    pub fn new(peer: &str, bump: u64) -> SwimId {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        peer.hash(&mut h);
        SwimId {
            peer: Arc::from(peer),
            bump,
            addr: h.finish(),
        }
    }
}

impl PartialEq for SwimId {
    fn eq(&self, other: &SwimId) -> bool {
        self.addr == other.addr && self.bump == other.bump
    }
}

impl Eq for SwimId {}

impl std::hash::Hash for SwimId {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.addr.hash(h);
        self.bump.hash(h);
    }
}

impl<'de> Deserialize<'de> for SwimId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<SwimId, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            peer: String,
            bump: u64,
        }
        let w = Wire::deserialize(d)?;
        Ok(SwimId::new(&w.peer, w.bump))
    }
}

impl Identity for SwimId {
    type Addr = u64;

    fn renew(&self) -> Option<Self> {
        Some(SwimId {
            peer: self.peer.clone(),
            bump: self.bump.wrapping_add(1),
            addr: self.addr,
        })
    }

    fn addr(&self) -> u64 {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

/// What foca asked for since the last `take`.
#[derive(Default)]
pub struct Outbox {
    pub sends: Vec<(String, Vec<u8>)>,
    pub timers: Vec<(Timer<SwimId>, Duration)>,
    /// Members found alive (again), by peer id.
    pub up: Vec<String>,
    /// Members declared down, by peer id.
    pub down: Vec<String>,
    /// Members this node came to suspect (each suspicion, refuted or not).
    pub suspected: Vec<String>,
    /// The identities declared down, as `down`.
    downed: Vec<SwimId>,
}

impl Runtime<SwimId> for Outbox {
    fn notify(&mut self, n: Notification<'_, SwimId>) {
        match n {
            Notification::MemberUp(id) => self.up.push(id.peer.to_string()),
            Notification::MemberDown(id) => {
                self.down.push(id.peer.to_string());
                self.downed.push(id.clone());
            }
            Notification::Rename(_, new) => self.up.push(new.peer.to_string()),
            _ => {}
        }
    }

    fn send_to(&mut self, to: SwimId, data: &[u8]) {
        self.sends.push((to.peer.to_string(), data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<SwimId>, after: Duration) {
        // foca starts this timer whenever it comes to suspect a member.
        if let Timer::ChangeSuspectToDown { member_id, .. } = &event {
            self.suspected.push(member_id.peer.to_string());
        }
        self.timers.push((event, after));
    }
}

/// The largest SWIM datagram (the transport refuses larger ones).
pub const MAX_PACKET: usize = 16 * 1024;

/// SWIM settings for a mesh on a LAN: a probe every second, 400 ms for a direct answer,
/// three indirect probes, then `suspect_for` to refute. Membership updates are gossiped
/// while there are any; down members are re-announced to every 5 s so
/// that both sides of a healed partition find each other again.
pub fn config(suspect_for: Duration) -> Config {
    let mut c = Config::simple();
    c.probe_period = Duration::from_secs(1);
    c.probe_rtt = Duration::from_millis(400);
    c.num_indirect_probes = NonZeroUsize::new(5).unwrap_or(NonZeroUsize::MIN);
    c.max_transmissions = NonZeroU8::new(8).unwrap_or(NonZeroU8::MIN);
    // Datagrams travel on a stream, not UDP: a larger packet lets the feed that answers
    // an announce carry a few hundred members, so a node that (re)starts learns a large
    // mesh from the peers it connects to instead of one prober at a time.
    c.max_packet_size = NonZeroUsize::new(MAX_PACKET).unwrap_or(NonZeroUsize::MIN);
    c.suspect_to_down_after = suspect_for;
    c.notify_down_members = true;
    // Updates (joins, suspicions, downs) go to three random members every 200 ms while
    // there are any (nothing is sent otherwise): piggybacking on probes alone takes
    // several probe periods to reach a large mesh.
    c.periodic_gossip = Some(foca::PeriodicParams {
        frequency: Duration::from_millis(200),
        num_members: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
    });
    // No periodic announce to live members: its answer is a feed of every member (a
    // third of an idle 1,000-node mesh's traffic), and what it would repair is repaired
    // from the replicated member records (the engine announces to a member it holds a
    // record of and SWIM does not).
    c.periodic_announce = None;
    c.periodic_announce_to_down_members = Some(foca::PeriodicParams {
        frequency: Duration::from_secs(5),
        num_members: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
    });
    c
}

/// What a SWIM datagram is, for the accounting of traffic: its message's name and how
/// many member identities it carries (sender, receiver, the member a probe is about,
/// and each piggybacked update); `("malformed", 0)` when its header does not decode.
pub fn inspect(data: &[u8]) -> (&'static str, usize) {
    let mut codec = PostcardCodec;
    let mut rest = data;
    let Ok(h) = Codec::<SwimId>::decode_header(&mut codec, &mut rest) else {
        return ("malformed", 0);
    };
    let (kind, about) = match h.message {
        Message::Ping(_) => ("ping", 0),
        Message::Ack(_) => ("ack", 0),
        Message::PingReq { .. } => ("ping-req", 1),
        Message::IndirectPing { .. } => ("indirect-ping", 1),
        Message::IndirectAck { .. } => ("indirect-ack", 1),
        Message::ForwardedAck { .. } => ("forwarded-ack", 1),
        Message::Announce => ("announce", 0),
        Message::Feed => ("feed", 0),
        Message::Gossip => ("gossip", 0),
        Message::Broadcast => ("broadcast", 0),
        Message::TurnUndead => ("turn-undead", 0),
    };
    let updates = match rest {
        [a, b, ..] => usize::from(u16::from_be_bytes([*a, *b])),
        _ => 0,
    };
    (kind, 2 + about + updates)
}

/// How long a member suspected because its connection closed has to refute: two
/// thirds of the configured suspicion, whatever the mesh's size.
pub fn closed_suspect_for(suspect_for: Duration) -> Duration {
    suspect_for * 2 / 3
}

/// How long a member a probe found silent has to refute, in a mesh of `members`: the
/// configured time, times ⅔·log₁₀ of the size once that is more than one (from about 30
/// members: 4 s at 100, 6 s at 1,000 for the configured 3 s; memberlist's and Lifeguard's
/// rule) — the suspicion and the refutation each cross the mesh by gossip, which takes a
/// round more each time the mesh grows tenfold, and on a lossy link a fixed time lets
/// the slowest refutations arrive too late (5% loss, a fixed 3 s: one live member
/// declared dead in two minutes of churn at 100, none with 4 s).
pub fn probe_suspect_for(suspect_for: Duration, members: usize) -> Duration {
    let decades = (members.max(1) as f64).log10();
    suspect_for.mul_f64((decades * 2.0 / 3.0).max(1.0))
}

/// This node's SWIM instance.
pub struct Swim {
    foca: Foca<SwimId, PostcardCodec, StdRng, NoCustomBroadcast>,
    out: Outbox,
    /// foca's current timer token, as its timers carry it (a suspicion started here
    /// needs it for its own down timer).
    token: Option<foca::TimerToken>,
    /// How long a suspect has to refute (see `probe_suspect_for` and `suspect`).
    suspect_for: Duration,
    /// Down timers for suspicions started by closed connections (not foca's own).
    closed_timers: Vec<(Timer<SwimId>, Duration)>,
    /// The suspicions this node holds a down timer for, told to the suspect directly
    /// (`tell_suspect`) until they are refuted or expire.
    told: Vec<(SwimId, Incarnation)>,
    /// Members suspected because their connection closed: once one refutes (alive at a
    /// higher incarnation), it is reported up — the engine took the close for a sign of
    /// death, and with bounded connections no new connection may come to say otherwise.
    watched: Vec<(SwimId, Incarnation)>,
    /// Datagrams foca refused (malformed, too big).
    pub rejected: u64,
    /// Verdicts reached while hearing no one, kept out of what is sent (`swim::alone`).
    alone: alone::Alone,
    /// The driver's clock (ms), and when a datagram last came in.
    now_ms: u64,
    last_heard_ms: u64,
}

impl Swim {
    /// This node's SWIM for the life that started at `bump` (wall ms): a restarted node is
    /// a new identity that wins over the one others may have declared down — nothing on
    /// disk needed, so a node that lost its disk comes back as fast. Its randomness comes
    /// from `seed` (the agent draws it from the OS; the simulator replays runs from one).
    pub fn seeded(me: &str, bump: u64, cfg: Config, seed: u64) -> Swim {
        Swim::with_rng(me, bump, cfg, StdRng::seed_from_u64(seed))
    }

    fn with_rng(me: &str, bump: u64, cfg: Config, rng: StdRng) -> Swim {
        let id = SwimId::new(me, bump);
        Swim {
            suspect_for: cfg.suspect_to_down_after,
            closed_timers: Vec::new(),
            told: Vec::new(),
            token: None,
            foca: Foca::new(id, cfg, rng, PostcardCodec),
            out: Outbox::default(),
            watched: Vec::new(),
            rejected: 0,
            alone: alone::Alone::default(),
            now_ms: 0,
            last_heard_ms: 0,
        }
    }

    /// Tells `peer` (an admitted member) that we are here.
    pub fn announce(&mut self, peer: &str) {
        let dst = SwimId::new(peer, 0);
        let _ = self.foca.announce(dst, &mut self.out);
    }

    /// The connection to `peer` closed: evidence that it may have died, which SWIM
    /// judges at once — the member is suspected now (and the suspicion spread), instead
    /// of when a probe happens to find it silent; an alive member refutes it. A reset
    /// connection is stronger evidence than a probe lost on a lossy link, so this
    /// suspicion runs for two thirds of the probes' (`closed_suspect_for`): the verdict
    /// then still has time to cross a large mesh within the probes' suspicion.
    pub fn suspect(&mut self, peer: &str) {
        let known = self
            .foca
            .iter_members()
            .find(|m| &*m.id().peer == peer && m.state() == foca::State::Alive)
            .map(|m| foca::Member::new(m.id().clone(), m.incarnation(), foca::State::Suspect));
        let Some(m) = known else { return };
        let (id, incarnation) = (m.id().clone(), m.incarnation());
        self.watched.push((id.clone(), incarnation));
        let _ = self
            .foca
            .apply_many(std::iter::once(m), true, &mut self.out);
        // foca starts the down timer only for suspicions of its own probes: start it.
        self.note_token();
        if let Some(token) = self.token {
            self.closed_timers.push((
                Timer::ChangeSuspectToDown {
                    member_id: id.clone(),
                    incarnation,
                    token,
                },
                closed_suspect_for(self.suspect_for),
            ));
            self.hold(id, incarnation);
        }
    }

    /// Notes a suspicion this node holds the down timer for, and tells the suspect.
    fn hold(&mut self, id: SwimId, incarnation: Incarnation) {
        if !self.told.iter().any(|(i, n)| *i == id && *n == incarnation) {
            self.tell_suspect(&id, incarnation);
            self.told.push((id, incarnation));
        }
    }

    /// Tells `suspect` directly that this node suspects it (Lifeguard's "buddy
    /// system"): a ping that carries the suspicion, which the suspect refutes by raising
    /// its incarnation, and whose answer, from the suspect to this node, carries that
    /// refutation straight to the one node that would otherwise declare it down. Without
    /// it the refutation reaches the suspector only by gossip, and in a large lossy mesh
    /// a few in a few hundred do not arrive in time (N = 1,000, 5% loss: 4 live members
    /// declared down in 10 minutes). foca cannot address a ping to a member of our
    /// choosing, so the datagram is built with its codec from the header of an announce
    /// it makes (which has no side effect and is not sent); the answer is an ordinary
    /// ack, which foca takes as proof that the suspect is alive at its new incarnation.
    fn tell_suspect(&mut self, suspect: &SwimId, incarnation: Incarnation) {
        let mut scratch = Outbox::default();
        if self.foca.announce(suspect.clone(), &mut scratch).is_err() {
            return;
        }
        let Some((_, announce)) = scratch.sends.pop() else {
            return;
        };
        let mut codec = PostcardCodec;
        let Ok(mut header) = Codec::<SwimId>::decode_header(&mut codec, &announce[..]) else {
            return;
        };
        header.message = Message::Ping(0);
        let mut data = Vec::with_capacity(announce.len() * 2);
        let claim = Member::new(suspect.clone(), incarnation, State::Suspect);
        if codec.encode_header(&header, &mut data).is_err() {
            return;
        }
        data.extend_from_slice(&1u16.to_be_bytes());
        if codec.encode_member(&claim, &mut data).is_err() {
            return;
        }
        self.out.sends.push((suspect.peer.to_string(), data));
    }

    /// Tells every suspect still under one of this node's suspicions again (once per
    /// probe period: the ping or its answer may be lost), and forgets the others.
    fn retell_suspects(&mut self) {
        if self.told.is_empty() {
            return;
        }
        let mut still = std::mem::take(&mut self.told);
        still.retain(|(id, incarnation)| self.suspected_at(id, *incarnation));
        for (id, incarnation) in &still {
            self.tell_suspect(id, *incarnation);
        }
        self.told = still;
    }

    /// Whether `id` is still a suspect at `incarnation` here (not refuted, not down).
    fn suspected_at(&self, id: &SwimId, incarnation: Incarnation) -> bool {
        self.foca
            .iter_members()
            .any(|m| m.id() == id && m.incarnation() == incarnation && m.state() == State::Suspect)
    }

    /// Keeps the token of the latest timer foca asked for.
    fn note_token(&mut self) {
        for (t, _) in &self.out.timers {
            let token = match t {
                Timer::ProbeRandomMember(k)
                | Timer::PeriodicAnnounce(k)
                | Timer::PeriodicAnnounceDown(k)
                | Timer::PeriodicGossip(k) => Some(*k),
                Timer::SendIndirectProbe { token, .. }
                | Timer::ChangeSuspectToDown { token, .. } => Some(*token),
                Timer::RemoveDown(_) => None,
            };
            if token.is_some() {
                self.token = token;
            }
        }
    }

    /// The driver's clock moved to `now_ms`.
    pub fn clock(&mut self, now_ms: u64) {
        if self.now_ms == 0 {
            self.last_heard_ms = now_ms;
        }
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// A datagram from a member.
    pub fn handle(&mut self, data: &[u8]) {
        match self.foca.handle_data(data, &mut self.out) {
            Ok(()) => self.last_heard_ms = self.now_ms,
            Err(_) => self.rejected += 1,
        }
    }

    /// Updates taken out of datagrams because they carried a verdict reached alone.
    pub fn withheld(&self) -> u64 {
        self.alone.withheld
    }

    /// A timer foca asked for is due. A down timer whose suspicion was refuted is
    /// dropped here: foca 1.0 would still send the member a "you are down" notice for
    /// it (its check of the incarnation does not guard that send), and the live member
    /// would then rejoin under a new identity — a refuted suspicion must change nothing.
    pub fn timer(&mut self, t: Timer<SwimId>) {
        if let Timer::ChangeSuspectToDown {
            member_id,
            incarnation,
            ..
        } = &t
        {
            if !self.suspected_at(member_id, *incarnation) {
                return;
            }
        }
        let probe = matches!(t, Timer::ProbeRandomMember(_));
        // No datagram for a whole suspicion: a verdict now is this node's alone.
        let silent =
            self.now_ms.saturating_sub(self.last_heard_ms) >= self.suspect_for.as_millis() as u64;
        let downed = self.out.downed.len();
        let _ = self.foca.handle_timer(t, &mut self.out);
        if silent {
            self.alone.note(&self.out.downed[downed..]);
        }
        if probe {
            self.retell_suspects();
        }
    }

    /// Whether SWIM holds `peer` as an active member (alive or suspect).
    pub fn knows(&self, peer: &str) -> bool {
        self.foca
            .iter_members()
            .any(|m| m.id().peer.as_ref() == peer)
    }

    /// Announces the departure.
    pub fn leave(&mut self) {
        let _ = self.foca.leave_cluster(&mut self.out);
    }

    /// The members SWIM holds active now.
    pub fn active(&self) -> usize {
        self.foca.num_members()
    }

    /// What foca asked for since the last call; its down timers run for the suspicion
    /// the mesh's size calls for (`probe_suspect_for`).
    pub fn take(&mut self) -> Outbox {
        self.note_token();
        let held: Vec<(SwimId, Incarnation)> = self
            .out
            .timers
            .iter()
            .filter_map(|(t, _)| match t {
                Timer::ChangeSuspectToDown {
                    member_id,
                    incarnation,
                    ..
                } => Some((member_id.clone(), *incarnation)),
                _ => None,
            })
            .collect();
        for (id, incarnation) in held {
            self.hold(id, incarnation);
        }
        // Suspicions of closed connections that were refuted: those members are up.
        let mut watched = std::mem::take(&mut self.watched);
        watched.retain(|(id, incarnation)| {
            let now = self.foca.iter_members().find(|m| m.id() == id);
            match now {
                Some(m) if m.state() == State::Alive && m.incarnation() > *incarnation => {
                    self.out.up.push(id.peer.to_string());
                    false
                }
                Some(m) => m.state() == State::Suspect,
                None => false,
            }
        });
        self.watched = watched;
        let mut out = std::mem::take(&mut self.out);
        let scaled = probe_suspect_for(self.suspect_for, self.foca.num_members() + 1);
        for (t, after) in &mut out.timers {
            if matches!(t, Timer::ChangeSuspectToDown { .. }) {
                *after = scaled;
            }
        }
        out.timers.append(&mut self.closed_timers);
        if self.alone.any() {
            for (_, data) in &mut out.sends {
                if let Some(filtered) = self.alone.filter(data) {
                    *data = filtered;
                }
            }
            if self.foca.updates_backlog() == 0 {
                self.alone.forget();
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
