//! `roboconf-core`: the node of Roboconf mesh as a sans-IO state machine (DESIGN §2). It
//! holds the agent's protocol and life-cycle logic (`engine`), the replicated state and
//! its wire format (`mesh`), membership by SWIM (`swim`), the pure checks of admission
//! (`admission`), the operator API's types (`api`) and a seeded random source (`rng`). It
//! never reads a clock, a file, a socket or the OS random source — its manifest has no
//! tokio, sled or libp2p and its `clippy.toml` forbids those calls — so the agent's runtime
//! and the simulator drive the same code.

pub mod admission;
pub mod api;
pub mod autonomic;
pub mod coord;
pub mod engine;
pub mod mesh;
pub mod node;
pub mod rng;
pub mod swim;
