//! The agent binary carried by the mesh: when a new machine needs a binary this agent
//! does not run (another architecture, or the build a target file pins with
//! `agent.sha256`), the leader asks the members that run it for it by hash, one
//! 1 MiB part at a time over the request-response protocol (`BinaryRequest` /
//! `BinaryPart`), hashes it as it arrives and keeps it in `<data-dir>/binaries/<sha256>`
//! only if it matches. Nothing outside the mesh is needed, so an air-gapped site
//! launches machines of any architecture one of its members runs.

use super::Binaries;
use crate::api::BinaryView;
use crate::binary::{self, Incoming, Local};
use crate::mesh::wire::{decode, encode, Body, Envelope, PROTOCOL_VERSION};
use crate::mesh::NodeId;
use crate::net::Net;
use libp2p::PeerId;
use std::path::PathBuf;
use std::time::Duration;

/// One fetch at a time on this agent (two launches needing the same binary fetch it
/// once).
static FETCHING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How many times a busy peer (its answer workers all taken) is asked again.
const BUSY_RETRIES: u32 = 50;

/// The members' binaries, and how to reach them.
pub struct Carrier {
    pub net: Net,
    pub mesh: String,
    pub me: NodeId,
    pub data_dir: PathBuf,
    /// Live members with the binary each runs.
    pub members: Vec<(PeerId, BinaryView)>,
    pub rt: tokio::runtime::Handle,
}

impl Carrier {
    fn envelope(&self, body: Body) -> Vec<u8> {
        encode(&Envelope {
            version: PROTOCOL_VERSION,
            mesh: self.mesh.clone(),
            sender: self.me.clone(),
            body,
        })
        .unwrap_or_default()
    }

    /// Fetches the binary `sha256` from one of `from`; its path in the store.
    async fn fetch_hash(&self, sha256: &str, from: &[PeerId]) -> Result<PathBuf, String> {
        if let Some(p) = binary::find(&self.data_dir, sha256) {
            return Ok(p);
        }
        let _one = FETCHING.lock().await;
        if let Some(p) = binary::find(&self.data_dir, sha256) {
            return Ok(p);
        }
        let mut why = format!("no live member runs the agent binary {sha256}");
        for peer in from {
            let mut incoming = Incoming::new(&self.data_dir, sha256)?;
            let mut busy = 0;
            loop {
                let req = self.envelope(Body::BinaryRequest {
                    sha256: sha256.to_string(),
                    offset: incoming.received(),
                });
                let answer = match self.net.request(*peer, req).await {
                    Ok(a) => a,
                    Err(e) => {
                        why = format!("{peer}: {e}");
                        break;
                    }
                };
                match decode(&answer, &self.mesh).map(|e| e.body) {
                    Ok(Body::BinaryPart { total, bytes }) if !bytes.is_empty() => {
                        if total > binary::MAX_BINARY {
                            why = format!("{peer}: the binary is {total} bytes, over the limit");
                            break;
                        }
                        if let Err(e) = incoming.push(&bytes) {
                            why = format!("{peer}: {e}");
                            break;
                        }
                        if incoming.received() >= total {
                            let kept = incoming.finish();
                            match kept {
                                Ok(p) => {
                                    tracing::info!(
                                        sha256,
                                        from = %peer,
                                        bytes = total,
                                        "agent binary fetched from the mesh"
                                    );
                                    return Ok(p);
                                }
                                Err(e) => {
                                    why = format!("{peer}: {e}");
                                    break;
                                }
                            }
                        }
                    }
                    Ok(Body::Bundle(b)) if b.is_empty() && busy < BUSY_RETRIES => {
                        // Its answer workers are all taken: ask again shortly.
                        busy += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Ok(_) => {
                        why = format!("{peer} does not hold the agent binary {sha256}");
                        break;
                    }
                    Err(e) => {
                        why = format!("{peer}: {e}");
                        break;
                    }
                }
            }
        }
        Err(why)
    }

    fn local(path: PathBuf, b: &BinaryView) -> Local {
        Local {
            path,
            info: binary::Info {
                sha256: b.sha256.clone(),
                size: b.size,
                arch: b.arch.clone(),
                os: b.os.clone(),
            },
        }
    }
}

impl Binaries for Carrier {
    fn fetch(&self, arch: Option<&str>, sha256: Option<&str>) -> Result<Local, String> {
        // The build wanted: the one pinned, else the one most members of that
        // architecture run.
        let wanted: Option<BinaryView> = match sha256 {
            Some(h) => self
                .members
                .iter()
                .find(|(_, b)| b.sha256 == h)
                .map(|(_, b)| b.clone()),
            None => {
                let mut counts: std::collections::BTreeMap<&str, (usize, &BinaryView)> =
                    Default::default();
                for (_, b) in self
                    .members
                    .iter()
                    .filter(|(_, b)| Some(b.arch.as_str()) == arch)
                {
                    counts.entry(&b.sha256).or_insert((0, b)).0 += 1;
                }
                counts
                    .into_values()
                    .max_by_key(|(n, _)| *n)
                    .map(|(_, b)| b.clone())
            }
        };
        let Some(b) = wanted else {
            // Held here already (fetched before, its members gone since)?
            if let Some(p) = sha256.and_then(|h| binary::find(&self.data_dir, h)) {
                let (sha256, size) = binary::hash_file(&p).map_err(|e| e.to_string())?;
                return Ok(Local {
                    path: p,
                    info: binary::Info {
                        sha256,
                        size,
                        arch: arch.unwrap_or(std::env::consts::ARCH).to_string(),
                        os: std::env::consts::OS.to_string(),
                    },
                });
            }
            return Err(match (sha256, arch) {
                (Some(h), _) => format!("no live member runs the agent binary {h}"),
                (None, Some(a)) => format!("no live member runs an agent built for {a}"),
                (None, None) => "no agent binary wanted".into(),
            });
        };
        let from: Vec<PeerId> = self
            .members
            .iter()
            .filter(|(_, m)| m.sha256 == b.sha256)
            .map(|(p, _)| *p)
            .collect();
        let path = self.rt.block_on(self.fetch_hash(&b.sha256, &from))?;
        Ok(Self::local(path, &b))
    }
}
