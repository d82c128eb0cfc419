//! What a re-read agent config (SIGHUP) changes, as a pure function of the
//! old and the new one (rathole's `calculate_events`): a service whose table
//! is the same keeps running untouched (its Kea pid, a validation in flight,
//! its retry counters), and the pusher restarts only for a new upstream.

use super::{AgentConfig, ConfigError, ServiceConfig};
use crate::kea::Service;

/// What happens to one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceChange {
    /// New in the config: start it.
    Added(ServiceConfig),
    /// Gone from the config: stop it.
    Removed(Service),
    /// Its table differs: start it again with the new one.
    Changed(ServiceConfig),
    /// Same table: leave it be.
    Unchanged(Service),
}

/// Everything a re-read config changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconfiguration {
    /// Removed services first, then the new config's in its order.
    pub services: Vec<ServiceChange>,
    /// `[upstream]` or `[[hook]]` changed: deliver with new sinks.
    pub sinks: bool,
    /// The outbox's bounds changed.
    pub outbox_limits: bool,
    /// `settle_ms` or `check_interval_s` changed.
    pub timing: bool,
}

impl Reconfiguration {
    /// Whether anything at all changes.
    pub fn is_empty(&self) -> bool {
        !self.sinks
            && !self.outbox_limits
            && !self.timing
            && self
                .services
                .iter()
                .all(|c| matches!(c, ServiceChange::Unchanged(_)))
    }
}

/// The changes from `old` to `new`; a new state dir is refused (the
/// running agent holds the old one's lock and outbox).
pub fn reconfiguration(
    old: &AgentConfig,
    new: &AgentConfig,
) -> Result<Reconfiguration, ConfigError> {
    if old.agent.state_dir != new.agent.state_dir {
        return Err(ConfigError::StateDirChanged {
            source_config: new.source.clone(),
            from: old.agent.state_dir.clone(),
            to: new.agent.state_dir.clone(),
        });
    }
    let mut services: Vec<ServiceChange> = old
        .services
        .iter()
        .filter(|s| new.service(s.service).is_none())
        .map(|s| ServiceChange::Removed(s.service))
        .collect();
    services.extend(new.services.iter().map(|s| match old.service(s.service) {
        None => ServiceChange::Added(s.clone()),
        Some(before) if before == s => ServiceChange::Unchanged(s.service),
        Some(_) => ServiceChange::Changed(s.clone()),
    }));
    Ok(Reconfiguration {
        services,
        sinks: old.upstream != new.upstream || old.hooks != new.hooks,
        outbox_limits: old.outbox != new.outbox,
        timing: old.agent.settle != new.agent.settle
            || old.agent.check_interval != new.agent.check_interval,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> AgentConfig {
        AgentConfig::parse(text, Path::new("/etc/kea-sync-agent/agent.toml")).expect("valid")
    }

    const BASE: &str = "[agent]\nstate_dir = \"/var/lib/a\"\n\n\
        [[service]]\nname = \"dhcp4\"\nconfig_file = \"/etc/kea/kea-dhcp4.conf\"\n\n\
        [[service]]\nname = \"dhcp6\"\nconfig_file = \"/etc/kea/kea-dhcp6.conf\"\n";

    #[test]
    fn the_same_config_changes_nothing() {
        let plan = reconfiguration(&parse(BASE), &parse(BASE)).expect("plan");
        assert!(plan.is_empty(), "{plan:?}");
        assert_eq!(
            plan.services,
            [
                ServiceChange::Unchanged(Service::Dhcp4),
                ServiceChange::Unchanged(Service::Dhcp6)
            ]
        );
    }

    #[test]
    fn services_are_added_removed_and_changed_one_by_one() {
        let new = "[agent]\nstate_dir = \"/var/lib/a\"\n\n\
            [[service]]\nname = \"dhcp4\"\nconfig_file = \"/etc/kea/kea-dhcp4.conf\"\ntimeout_s = 5\n\n\
            [[service]]\nname = \"d2\"\nconfig_file = \"/etc/kea/kea-dhcp-ddns.conf\"\n";
        let (old, new) = (parse(BASE), parse(new));
        let plan = reconfiguration(&old, &new).expect("plan");
        let d4 = new.service(Service::Dhcp4).expect("dhcp4").clone();
        let d2 = new.service(Service::D2).expect("d2").clone();
        assert_eq!(
            plan.services,
            [
                ServiceChange::Removed(Service::Dhcp6),
                ServiceChange::Changed(d4),
                ServiceChange::Added(d2)
            ]
        );
        assert!(!plan.sinks && !plan.timing && !plan.outbox_limits);
    }

    #[test]
    fn upstream_timing_and_bounds_are_told_apart() {
        let new = format!(
            "{}\n[upstream]\nurl = \"https://central.example.net/v1/events\"\nmax_outbox_events = 5\n",
            BASE.replacen("[agent]\n", "[agent]\nsettle_ms = 200\n", 1)
        );
        let plan = reconfiguration(&parse(BASE), &parse(&new)).expect("plan");
        assert!(plan.sinks && plan.timing && plan.outbox_limits, "{plan:?}");
        assert!(
            plan.services
                .iter()
                .all(|c| matches!(c, ServiceChange::Unchanged(_)))
        );
    }

    #[test]
    fn a_new_state_dir_is_refused() {
        let new = BASE.replace("/var/lib/a", "/var/lib/b");
        let error = reconfiguration(&parse(BASE), &parse(&new)).expect_err("refused");
        let text = error.to_string();
        assert!(
            text.contains("/var/lib/a") && text.contains("/var/lib/b"),
            "{text}"
        );
    }
}
