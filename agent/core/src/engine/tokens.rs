//! Join tokens in the replicated state: issuing one records the hash of its secret and
//! its expiry under its id (an operator record, so any member can check it); redeeming
//! it records who it admitted, so the same token admits no one else anywhere in the mesh
//! once that record has spread. No token lives longer than `MAX_TOKEN_TTL_MS`: one
//! that would expire later is neither issued nor redeemed (any member can write token
//! records, so the redeeming member checks too).

use super::Core;
use crate::admission::{TokenRecord, MAX_TOKEN_TTL_MS};
use crate::api::Response;
use crate::mesh::replica::Kind;

/// How far past `MAX_TOKEN_TTL_MS` from now a token's expiry may be: the runtime reads
/// the clock again to compute the expiry, and the issuing member's clock may be ahead
/// of the redeeming member's.
pub const TOKEN_EXPIRY_SLACK_MS: u64 = 5 * 60 * 1000;

impl Core {
    /// Whether an expiry is further away than any token may live.
    fn too_far(&self, expires_ms: u64) -> bool {
        expires_ms
            > self
                .now_ms
                .saturating_add(MAX_TOKEN_TTL_MS)
                .saturating_add(TOKEN_EXPIRY_SLACK_MS)
    }

    pub(super) fn token_issue(&mut self, id: &str, hash: String, expires_ms: u64) -> Response {
        if self.replica.get(Kind::Token, id).is_some() {
            return Response::error("a token with this id exists already");
        }
        if self.too_far(expires_ms) {
            return Response::error(format!(
                "a join token lives at most 7 days: expiry {expires_ms} is past {}",
                self.now_ms.saturating_add(MAX_TOKEN_TTL_MS)
            ));
        }
        let rec = TokenRecord {
            hash,
            expires_ms,
            used_by: None,
        };
        self.put(Kind::Token, id, serde_json::to_vec(&rec).ok());
        Response::ok(format!("token {id} valid until {expires_ms}"))
    }

    pub(super) fn token_redeem(
        &mut self,
        id: &str,
        hash: &str,
        node: &str,
        name: &str,
    ) -> Response {
        let rec = self
            .replica
            .get(Kind::Token, id)
            .and_then(|e| e.value.as_deref())
            .and_then(|v| serde_json::from_slice::<TokenRecord>(v).ok());
        let Some(mut rec) = rec.filter(|r| r.hash == hash) else {
            return Response::error("unknown token");
        };
        match &rec.used_by {
            Some(n) if n == node => return Response::ok("token already redeemed by this node"),
            Some(_) => return Response::error("token already used"),
            None => {}
        }
        if self.now_ms >= rec.expires_ms {
            return Response::error("token expired");
        }
        if self.too_far(rec.expires_ms) {
            return Response::error("token refused: it would live longer than 7 days");
        }
        // Checked before the token is spent: the node may try again under another name.
        if name.trim().is_empty() {
            return Response::error("the joining node gave no name");
        }
        if let Err(e) = roboconf_model::limits::check_name("node", name) {
            return Response::error(e);
        }
        if let Some(holder) = self.live_namesake(name, node) {
            return Response::error(format!(
                "a live member is already named `{}` (id {holder}): start the joining agent \
                 with another --node",
                roboconf_model::limits::preview(name)
            ));
        }
        rec.used_by = Some(node.to_string());
        self.put(Kind::Token, id, serde_json::to_vec(&rec).ok());
        Response::ok("token redeemed")
    }
}

#[cfg(test)]
mod tests {
    use super::TOKEN_EXPIRY_SLACK_MS;
    use crate::admission::{TokenRecord, MAX_TOKEN_TTL_MS};
    use crate::api::Response;
    use crate::engine::{Command, Config, Core, Input};
    use crate::mesh::replica::Kind;

    fn ask(core: &mut Core, command: Command) -> Response {
        core.step(Input::Command { id: 1, command });
        core.take_outputs()
            .into_iter()
            .find_map(|o| match o {
                crate::engine::Output::Reply { response, .. } => Some(response),
                _ => None,
            })
            .expect("a reply")
    }

    fn redeem(core: &mut Core, hash: &str, node: &str) -> Response {
        ask(
            core,
            Command::TokenRedeem {
                id: "t1".into(),
                hash: hash.into(),
                node: node.into(),
                name: format!("host-{node}"),
            },
        )
    }

    #[test]
    fn a_token_admits_one_node_once_before_it_expires() {
        let mut core = Core::restore_with(Config::default(), Vec::new(), Vec::new(), Vec::new());
        core.step(Input::Now(1_000));
        let issued = ask(
            &mut core,
            Command::TokenIssue {
                id: "t1".into(),
                hash: "h".into(),
                expires_ms: 5_000,
            },
        );
        assert!(matches!(issued, Response::Ok { .. }), "{issued:?}");
        assert!(matches!(
            redeem(&mut core, "wrong", "a"),
            Response::Error { .. }
        ));
        assert!(matches!(redeem(&mut core, "h", "a"), Response::Ok { .. }));
        // The same node asking again (its answer was lost) is fine; anyone else is not.
        assert!(matches!(redeem(&mut core, "h", "a"), Response::Ok { .. }));
        match redeem(&mut core, "h", "b") {
            Response::Error { message, .. } => assert!(message.contains("used"), "{message}"),
            r => panic!("{r:?}"),
        }
        // Expiry.
        ask(
            &mut core,
            Command::TokenIssue {
                id: "t2".into(),
                hash: "h2".into(),
                expires_ms: 2_000,
            },
        );
        core.step(Input::Now(2_000));
        let r = ask(
            &mut core,
            Command::TokenRedeem {
                id: "t2".into(),
                hash: "h2".into(),
                node: "c".into(),
                name: "host-c".into(),
            },
        );
        match r {
            Response::Error { message, .. } => assert!(message.contains("expired"), "{message}"),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn no_token_lives_longer_than_seven_days() {
        let mut core = Core::restore_with(Config::default(), Vec::new(), Vec::new(), Vec::new());
        let now = 1_000_000;
        core.step(Input::Now(now));
        let issue = |core: &mut Core, id: &str, expires_ms: u64| {
            ask(
                core,
                Command::TokenIssue {
                    id: id.into(),
                    hash: "h".into(),
                    expires_ms,
                },
            )
        };
        let longest = now + MAX_TOKEN_TTL_MS;
        for (id, expires_ms) in [
            ("ten-years", now + 3650 * 86_400_000),
            ("max", u64::MAX),
            ("just-past", longest + TOKEN_EXPIRY_SLACK_MS + 1),
        ] {
            match issue(&mut core, id, expires_ms) {
                Response::Error { message, .. } => {
                    assert!(message.contains("at most 7 days"), "{message}")
                }
                r => panic!("{id}: {r:?}"),
            }
            assert!(core.replica.get(Kind::Token, id).is_none(), "{id} recorded");
        }
        let r = issue(&mut core, "seven-days", longest);
        assert!(matches!(r, Response::Ok { .. }), "{r:?}");
        // A record written by another member (not through `token_issue`) is checked
        // when redeemed.
        let rec = TokenRecord {
            hash: "h".into(),
            expires_ms: now + 3650 * 86_400_000,
            used_by: None,
        };
        core.put(Kind::Token, "planted", serde_json::to_vec(&rec).ok());
        let r = ask(
            &mut core,
            Command::TokenRedeem {
                id: "planted".into(),
                hash: "h".into(),
                node: "n".into(),
                name: "host-n".into(),
            },
        );
        match r {
            Response::Error { message, .. } => assert!(message.contains("7 days"), "{message}"),
            r => panic!("{r:?}"),
        }
        assert!(matches!(
            redeem_id(&mut core, "seven-days"),
            Response::Ok { .. }
        ));
    }

    fn redeem_id(core: &mut Core, id: &str) -> Response {
        ask(
            core,
            Command::TokenRedeem {
                id: id.into(),
                hash: "h".into(),
                node: "n".into(),
                name: "host-n".into(),
            },
        )
    }

    /// A node asking to join under the name of a live member is refused, and its token
    /// is not spent: it may come back under another name, or once that member is gone.
    #[test]
    fn a_second_live_member_of_one_name_is_refused() {
        use crate::mesh::NodeId;
        let t0 = 1_767_225_600_000;
        let mut core = Core::new(Config {
            node: "me".into(),
            node_id: NodeId::new("me"),
            ..Config::default()
        });
        core.step(Input::Now(t0));
        crate::engine::names::tests::member(&mut core, "old", "web1", t0);
        core.step(Input::PeerUp(NodeId::new("old")));
        ask(
            &mut core,
            Command::TokenIssue {
                id: "t1".into(),
                hash: "h".into(),
                expires_ms: t0 + 60_000,
            },
        );
        let join = |core: &mut Core, name: &str| {
            ask(
                core,
                Command::TokenRedeem {
                    id: "t1".into(),
                    hash: "h".into(),
                    node: "new".into(),
                    name: name.into(),
                },
            )
        };
        for (name, why) in [
            ("web1", "already named `web1` (id old)"),
            ("me", "already named `me` (id me)"),
            ("  ", "gave no name"),
        ] {
            match join(&mut core, name) {
                Response::Error { message, .. } => assert!(message.contains(why), "{message}"),
                r => panic!("{name}: {r:?}"),
            }
        }
        let long = "x".repeat(roboconf_model::limits::MAX_NAME_BYTES + 1);
        assert!(matches!(join(&mut core, &long), Response::Error { .. }));
        // The member of that name dies (no word for 1.5 s): its name is free again (a
        // machine rebuilt with a new identity takes it over).
        core.step(Input::PeerDown(NodeId::new("old")));
        core.step(Input::Now(t0 + 2_000));
        let r = join(&mut core, "web1");
        assert!(matches!(r, Response::Ok { .. }), "{r:?}");
    }
}
