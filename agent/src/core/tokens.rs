//! Join tokens in the replicated state: issuing one records the hash of its secret and
//! its expiry under its id (an operator record, so any member can check it); redeeming
//! it records who it admitted, so the same token admits no one else anywhere in the mesh
//! once that record has spread.

use super::Core;
use crate::admission::TokenRecord;
use crate::api::Response;
use crate::mesh::replica::Kind;

impl Core {
    pub(super) fn token_issue(&mut self, id: &str, hash: String, expires_ms: u64) -> Response {
        if self.replica.get(Kind::Token, id).is_some() {
            return Response::error("a token with this id exists already");
        }
        let rec = TokenRecord {
            hash,
            expires_ms,
            used_by: None,
        };
        self.put(Kind::Token, id, serde_json::to_vec(&rec).ok());
        Response::ok(format!("token {id} valid until {expires_ms}"))
    }

    pub(super) fn token_redeem(&mut self, id: &str, hash: &str, node: &str) -> Response {
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
        rec.used_by = Some(node.to_string());
        self.put(Kind::Token, id, serde_json::to_vec(&rec).ok());
        Response::ok("token redeemed")
    }
}

#[cfg(test)]
mod tests {
    use crate::api::Response;
    use crate::core::{Command, Config, Core, Input};

    fn ask(core: &mut Core, command: Command) -> Response {
        core.step(Input::Command { id: 1, command });
        core.take_outputs()
            .into_iter()
            .find_map(|o| match o {
                crate::core::Output::Reply { response, .. } => Some(response),
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
            },
        );
        match r {
            Response::Error { message, .. } => assert!(message.contains("expired"), "{message}"),
            r => panic!("{r:?}"),
        }
    }
}
