//! One `kea-sync-agent run` managing kea-dhcp4, kea-dhcp6 and kea-dhcp-ddns at once,
//! against the real daemons (2.2): three `[[service]]` tables of name and config file,
//! the rest at the agent's defaults (control socket read from each Kea config, validator
//! from PATH), which is what discovery makes on a stock host with all three files.
//!
//! For dhcp6 and d2, the write-pattern cases of tests/common/write_patterns that
//! agent_e2e runs for dhcp4, and an invalid edit; every check of every case also asserts
//! that the two daemons whose files were not touched did not reload and kept their
//! config. Then edits of several services' files.

mod common;

use common::write_patterns::{FIRST, Fleet};
use kea_sync_agent::kea::Service;
use std::fs;

/// Module `$module`: every case with `$service`'s file edited, the other two beside it.
macro_rules! edited_beside_the_others {
    ($module:ident, $service:expr) => {
        mod $module {
            use super::*;

            crate::write_pattern_tests!(Fleet::all($service));

            #[test]
            fn invalid_edit_is_rejected_without_reload() {
                common::write_patterns::cases::invalid_edit_is_rejected_without_reload(
                    &Fleet::all($service),
                );
            }
        }
    };
}

edited_beside_the_others!(dhcp6, Service::Dhcp6);
edited_beside_the_others!(d2, Service::D2);

/// Each daemon's file edited in turn: only that daemon reloads, once.
#[test]
fn each_edit_reloads_only_its_own_daemon() {
    let f = Fleet::all(Service::Dhcp4).start();
    for (step, service) in Service::ALL.into_iter().enumerate() {
        let value = 4100 + 100 * u32::try_from(step).expect("three steps");
        let kea = f.kea_of(service);
        fs::write(&kea.config_path, f.text_of(service, value)).expect("edit");
        f.expect(&[(service, value, 1)]);
    }
}

/// All three files saved at once (a deployment tool): each daemon reloads once.
#[test]
fn edits_of_all_three_files_at_once_reload_each_once() {
    let f = Fleet::all(Service::Dhcp4).start();
    for service in Service::ALL {
        let kea = f.kea_of(service);
        fs::write(&kea.config_path, f.text_of(service, 4100)).expect("edit");
    }
    let all: Vec<(Service, u32, usize)> = Service::ALL.map(|s| (s, 4100, 1)).to_vec();
    f.expect(&all);
}

/// A D2 file Kea refuses, saved with a good dhcp6 edit: dhcp6 goes live, D2 keeps its
/// config and is not reloaded.
#[test]
fn a_refused_d2_edit_does_not_hold_up_a_dhcp6_edit() {
    let f = Fleet::all(Service::D2).start();
    let (body, kea_says) = f.template().invalid(4100);
    fs::write(f.path(), f.text_with(&body)).expect("invalid D2 edit");
    let dhcp6 = f.kea_of(Service::Dhcp6);
    fs::write(&dhcp6.config_path, f.text_of(Service::Dhcp6, 4100)).expect("dhcp6 edit");
    f.expect(&[(Service::Dhcp6, 4100, 1)]);
    let rejected = f.events("Rejected");
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert!(rejected[0].contains(kea_says), "{}", rejected[0]);
    assert_eq!(f.value(), Some(u64::from(FIRST)), "D2 keeps its config");
}
