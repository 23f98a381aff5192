//! What a scenario's operations do to a node from outside its process: an operator
//! command reaching it, a crash (with or without its disk; its connections reset) and a
//! restart from what the disk kept; and which nodes one can reach now (up, on its side
//! of any partition), against which crashes and deployments are measured. Partitions
//! need no driver here: the scenario sets them on `Partitions`.

use super::{Cluster, Msg};
use roboconf_core::engine::Command;
use roboconf_core::node::Input;

impl Cluster {
    /// Sends an operator command to node `k`; returns its id.
    pub fn command(&mut self, k: usize, command: Command) -> u64 {
        let id = self.next_cmd;
        self.next_cmd += 1;
        let now = self.wall_ms(k);
        self.nodes[k].node.step(now, Input::Command { id, command });
        self.effects(k);
        id
    }

    /// A crash (its connections reset at once, unless it is cut off).
    pub fn crash(&mut self, k: usize, lose_disk: bool) {
        if !self.nodes[k].up {
            return;
        }
        let peers: Vec<usize> = self.nodes[k].conns.iter().copied().collect();
        self.nodes[k].crash(lose_disk);
        if lose_disk {
            // Its persisted term and vote are gone with the disk.
            self.coord.hard.remove(&k);
        }
        self.nodes[k].crashed_at = Some(self.queue.now);
        let survivors = self.reachable_from(k);
        self.metrics.crashed(k, self.queue.now, survivors);
        for j in peers {
            self.nodes[j].mesh.remove(&k);
            self.send(k, j, Msg::Closed, 0);
        }
    }

    /// A restart from what the disk kept.
    pub fn restart(&mut self, k: usize) {
        if self.nodes[k].up {
            return;
        }
        let seed = self.rng.next_u64();
        let now = self.wall_ms(k);
        let apps = self.apps.clone();
        let hosted: Vec<String> = self.nodes[k]
            .hosts
            .iter()
            .map(|(_, root)| format!("{root}/src"))
            .collect();
        self.metrics.restarted(&hosted);
        self.nodes[k].restart(&apps, seed, now);
        self.start_node(k);
    }

    /// The other nodes that are up and on the same side of any partition as `k`.
    pub fn reachable_from(&self, k: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&j| j != k && self.nodes[j].up && self.parts.connected(k, j))
            .collect()
    }
}
