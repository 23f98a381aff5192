//! Verdicts reached alone: the members this node declared down while it heard from no
//! one for a whole suspicion, and the filter that keeps them out of what it sends. A
//! node cut off by itself suspects and then declares down every member it probes, with
//! no one to tell; foca keeps those verdicts in its backlog of updates (it gossips only
//! to active members, and a node alone soon has none), so once the link is back its
//! first datagrams would carry them. Each member that heard one before the member
//! refuted it (by a new identity) would withdraw a live member's exports: every importer
//! re-configured or stopped, mesh-wide, for one node's cut. Locally the verdicts stand
//! (the node's own importers react to what it cannot reach); they are only not spread.
//! They are forgotten once foca's backlog is empty: nothing older can be sent then.

use super::SwimId;
use foca::{Codec, Member, Message, PostcardCodec, State};

/// The members declared down alone, and how much was withheld.
#[derive(Default)]
pub(super) struct Alone {
    verdicts: Vec<SwimId>,
    /// Updates taken out of datagrams so far.
    pub(super) withheld: u64,
}

impl Alone {
    /// Notes members declared down by a timer of this node while it heard no one.
    pub(super) fn note(&mut self, ids: &[SwimId]) {
        for id in ids {
            if !self.verdicts.contains(id) {
                self.verdicts.push(id.clone());
            }
        }
    }

    /// Whether any verdict is withheld.
    pub(super) fn any(&self) -> bool {
        !self.verdicts.is_empty()
    }

    /// foca's backlog is empty: no datagram can carry a verdict of before.
    pub(super) fn forget(&mut self) {
        self.verdicts.clear();
    }

    /// `data` without the updates that declare down a member this node declared down
    /// alone; `None` when it carries none (or does not decode: foca made it, so that
    /// does not happen, and it is sent as it is). The datagram's layout is foca's: a
    /// header, then for the messages that piggyback, a big-endian count of members and
    /// the members, then whatever follows (custom broadcasts: none here).
    pub(super) fn filter(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let mut codec = PostcardCodec;
        let mut rest = data;
        let header = Codec::<SwimId>::decode_header(&mut codec, &mut rest).ok()?;
        if matches!(
            header.message,
            Message::Announce | Message::TurnUndead | Message::Broadcast
        ) {
            return None;
        }
        let (count, mut body) = match rest {
            [a, b, body @ ..] => (u16::from_be_bytes([*a, *b]), body),
            _ => return None,
        };
        let mut kept: Vec<&[u8]> = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let before = body;
            let member: Member<SwimId> = codec.decode_member(&mut body).ok()?;
            let raw = &before[..before.len() - body.len()];
            let withheld =
                member.state() == State::Down && self.verdicts.iter().any(|v| v == member.id());
            if !withheld {
                kept.push(raw);
            }
        }
        let dropped = usize::from(count) - kept.len();
        if dropped == 0 {
            return None;
        }
        self.withheld += dropped as u64;
        let head = data.len() - rest.len();
        let mut out = Vec::with_capacity(data.len());
        out.extend_from_slice(&data[..head]);
        out.extend_from_slice(&(kept.len() as u16).to_be_bytes());
        for raw in kept {
            out.extend_from_slice(raw);
        }
        out.extend_from_slice(body);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::{Header, Incarnation};

    fn datagram(message: Message<SwimId>, members: &[Member<SwimId>]) -> Vec<u8> {
        let mut codec = PostcardCodec;
        let header = Header {
            src: SwimId::new("a", 1),
            src_incarnation: 0,
            dst: SwimId::new("b", 1),
            message,
        };
        let mut data = Vec::new();
        codec.encode_header(&header, &mut data).expect("header");
        data.extend_from_slice(&(members.len() as u16).to_be_bytes());
        for m in members {
            codec.encode_member(m, &mut data).expect("member");
        }
        data
    }

    fn member(peer: &str, bump: u64, incarnation: Incarnation, state: State) -> Member<SwimId> {
        Member::new(SwimId::new(peer, bump), incarnation, state)
    }

    /// Only the down verdicts reached alone are taken out: another life of the same
    /// member, another state, another member stay, in their order.
    #[test]
    fn only_verdicts_reached_alone_are_taken_out() {
        let mut alone = Alone::default();
        alone.note(&[SwimId::new("c", 7)]);
        let all = [
            member("c", 7, 2, State::Down),
            member("c", 8, 0, State::Down),
            member("d", 1, 0, State::Down),
            member("c", 7, 3, State::Suspect),
        ];
        let filtered = alone
            .filter(&datagram(Message::Gossip, &all))
            .expect("one taken out");
        assert_eq!(filtered, datagram(Message::Gossip, &all[1..]));
        assert_eq!(alone.withheld, 1);
        assert_eq!(alone.filter(&datagram(Message::Ping(3), &all[1..])), None);
        assert_eq!(alone.filter(&datagram(Message::Announce, &[])), None);
        assert_eq!(alone.filter(b"\xff\xff"), None, "not foca's: as it is");
        alone.forget();
        assert!(!alone.any());
    }
}
