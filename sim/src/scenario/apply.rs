//! Playing one operation of a scenario on the simulated cluster: operator commands
//! from a node, crashes and restarts (with or without the disk), partitions and heals,
//! membership changes.

use super::{Op, APP};
use crate::cluster::{Cluster, Ev};
use roboconf_core::api::Desired;
use roboconf_core::engine::Command;

/// Carries out one operation.
pub fn apply(c: &mut Cluster, op: Op) {
    c.trace(&format!("{op:?}"));
    match op {
        Op::Toggle {
            from,
            exporter,
            start,
        } => {
            if !c.nodes[from].up {
                return;
            }
            let target = if start {
                Desired::Started
            } else {
                Desired::Deployed
            };
            let path = format!("/vm{exporter}/src");
            let id = c.command(
                from,
                Command::InstanceSet {
                    app: APP.into(),
                    path: path.clone(),
                    target,
                },
            );
            c.intents.insert(id, (path, target));
        }
        Op::Scale {
            from,
            host,
            name,
            out,
        } => {
            if !c.nodes[from].up {
                return;
            }
            let path = format!("/vm{host}/{name}");
            if out {
                c.command(
                    from,
                    Command::InstanceCreate {
                        app: APP.into(),
                        path: path.clone(),
                        component: "Src".into(),
                    },
                );
                c.command(
                    from,
                    Command::InstanceSet {
                        app: APP.into(),
                        path,
                        target: Desired::Started,
                    },
                );
            } else {
                c.command(
                    from,
                    Command::InstanceSet {
                        app: APP.into(),
                        path: path.clone(),
                        target: Desired::NotDeployed,
                    },
                );
                c.command(
                    from,
                    Command::InstanceDelete {
                        app: APP.into(),
                        path,
                    },
                );
            }
        }
        Op::Leave { node } => {
            if c.nodes[node].up {
                c.command(node, Command::Leave);
            }
        }
        Op::Crash { node, lose_disk } => c.crash(node, lose_disk),
        Op::Restart { node } => c.restart(node),
        Op::Split { side } => {
            c.parts.isolate(&side, 1);
        }
        Op::Heal => c.heal(),
        Op::CrashLeader { after } => {
            let leader = (0..c.nodes.len())
                .find(|&k| c.nodes[k].up && c.nodes[k].node.group().is_some_and(|g| g.is_leader()));
            if let Some(k) = leader {
                let term = c.nodes[k].node.group().map_or(0, |g| g.term());
                // Failover is measured on a whole network (split, a side may have no
                // majority: then no leader, by design).
                if c.parts.is_whole() {
                    c.coord.leader_crashes.push((c.queue.now, term));
                }
                c.crash(k, false);
                c.queue.after(after, Ev::Op(Op::Restart { node: k }));
            }
        }
        Op::Box { from, k, deploy } => {
            if !c.nodes[from].up {
                return;
            }
            let target = if deploy {
                Desired::Started
            } else {
                Desired::NotDeployed
            };
            c.command(
                from,
                Command::InstanceSet {
                    app: APP.into(),
                    path: format!("/box{k}"),
                    target,
                },
            );
        }
        Op::Event { from, event } => c.probe_event(from, event),
        Op::Exec { from, command } => {
            if c.nodes[from].up {
                let id = format!("sim-{}", c.queue.now);
                c.command(
                    from,
                    Command::Exec {
                        id,
                        app: APP.into(),
                        command: command.into(),
                    },
                );
            }
        }
        Op::Job { from } => {
            if c.nodes[from].up {
                let spec = roboconf_core::autonomic::records::JobSpec {
                    id: "job-1".into(),
                    app: APP.into(),
                    name: "ticks".into(),
                    command: "tick".into(),
                    cron: "*/5 * * * * ?".into(),
                    created_ms: 0,
                };
                c.command(from, Command::JobAdd(spec));
            }
        }
        Op::Calm => {
            if !c.parts.is_whole() {
                c.heal();
            }
            for k in 0..c.nodes.len() {
                c.restart(k);
            }
        }
    }
}
