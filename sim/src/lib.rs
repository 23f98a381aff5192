//! `roboconf-sim`: deterministic simulation of many agents. For now it holds what every
//! large-scale run starts from: the real agent core driven on a virtual clock with fake
//! plug-ins (`engine`), a seeded random source, and generators of big, valid Roboconf
//! applications (hundreds of components and facets, tens of thousands of instances) used
//! by the benchmarks and the fuzzers' seed corpora. The same seed always gives the same
//! run.

pub mod cluster;
pub mod engine;
pub mod invariants;
pub mod metrics;
pub mod net;
pub mod node;
pub mod scenario;
