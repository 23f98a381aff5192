//! Roboconf's RabbitMQ names, exactly as its code builds them (research note
//! `roboconf-messaging.md` §1.3): the three topic exchanges of a domain, the routing keys
//! of machines and of imports/exports, and the escaping of instance paths. Also the
//! bridge's own names, which Roboconf never had: the durable commands queue and its
//! dead-letter exchange and queue.

/// Exchange type of every Roboconf exchange.
pub const EXCHANGE_KIND: &str = "topic";

/// Where agents notify the DM: `<domain>.roboconf.dm`, routing key `<app>`.
pub fn dm_exchange(domain: &str) -> String {
    format!("{domain}.roboconf.dm")
}

/// The exchange of one application's agents: `<domain>.<app>.agents`.
pub fn agents_exchange(domain: &str, app: &str) -> String {
    format!("{domain}.{app}.agents")
}

/// The exchange of exports shared between applications: `<domain>.roboconf.inter-app`.
pub fn inter_app_exchange(domain: &str) -> String {
    format!("{domain}.roboconf.inter-app")
}

/// The durable queue the bridge takes commands from: `<domain>.roboconf.commands`.
pub fn commands_queue(domain: &str) -> String {
    format!("{domain}.roboconf.commands")
}

/// The (fanout, durable) exchange refused commands are dead-lettered to, and the
/// durable queue bound to it; both named `<domain>.roboconf.commands.dead`.
pub fn dead_letters(domain: &str) -> String {
    format!("{domain}.roboconf.commands.dead")
}

/// Roboconf's `MessagingUtils.escapeInstancePath`: leading and trailing `/` removed,
/// every run of `/` becomes one `.` (`/vm 1/tomcat` → `vm 1.tomcat`).
pub fn escape_path(path: &str) -> String {
    path.split('/')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

/// The key of messages to the agent of a scoped instance: `machine.<escaped path>`.
pub fn machine_key(scoped_path: &str) -> String {
    format!("machine.{}", escape_path(scoped_path))
}

/// The key exporters of a prefix listen on: `those.that.export.<prefix>`.
pub fn export_key(prefix: &str) -> String {
    format!("those.that.export.{prefix}")
}

/// The key importers of a prefix listen on: `those.that.import.<prefix>`.
pub fn import_key(prefix: &str) -> String {
    format!("those.that.import.{prefix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_roboconfs() {
        assert_eq!(dm_exchange("default"), "default.roboconf.dm");
        assert_eq!(agents_exchange("d", "lamp"), "d.lamp.agents");
        assert_eq!(inter_app_exchange("d"), "d.roboconf.inter-app");
        assert_eq!(commands_queue("d"), "d.roboconf.commands");
        assert_eq!(dead_letters("d"), "d.roboconf.commands.dead");
        assert_eq!(export_key("MySql"), "those.that.export.MySql");
        assert_eq!(import_key("MySql"), "those.that.import.MySql");
        assert_eq!(machine_key("/vm 1/tomcat"), "machine.vm 1.tomcat");
    }

    #[test]
    fn paths_escape_like_roboconf() {
        assert_eq!(escape_path("/vm 1/tomcat"), "vm 1.tomcat");
        assert_eq!(escape_path("/vm"), "vm");
        assert_eq!(escape_path("//a///b//"), "a.b");
        assert_eq!(escape_path("a/b"), "a.b");
        assert_eq!(escape_path("/"), "");
        assert_eq!(escape_path(""), "");
    }
}
