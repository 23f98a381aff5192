//! `roboconf-agent`: the Roboconf mesh agent and the `roboconf` command-line tool. For
//! now it holds the command line and its first command, `validate`; the agent core, its
//! runtime, the store and the network come with the engine and mesh work.

pub mod cli;
