//! Inherited values. Kea's config-get repeats a global setting (valid-lifetime,
//! renew-timer, ...) in every shared network and subnet that inherits it, so
//! one global edit shows up once per subnet. A member's change that goes the
//! same way (same kind, same value before and after) as the change of the
//! scope it inherits from follows that change: it is listed under it
//! (`followed_by`), not counted as a change of its own.

use super::{Category, Change, Follower, keys};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A daemon (`Dhcp4`), shared network or subnet being walked.
pub struct Scope<'a> {
    /// The length of its path.
    pub depth: usize,
    pub before: Option<&'a Map<String, Value>>,
    pub after: Option<&'a Map<String, Value>>,
}

impl Scope<'_> {
    fn holds(&self, key: &str) -> bool {
        [self.before, self.after]
            .into_iter()
            .flatten()
            .any(|settings| settings.contains_key(key))
    }
}

/// Whether the entries of a keyed list of `category` are scopes.
pub fn is_scope(category: Category) -> bool {
    matches!(category, Category::Subnet | Category::SharedNetwork)
}

/// A change to a setting of a shared network or subnet, and the scopes it
/// could inherit that setting from.
pub struct Member {
    key: String,
    /// The scopes around it, innermost first: the depth of each, and whether
    /// it holds the setting itself (then the member inherits from there, and
    /// a change further out is none of its business).
    outer: Vec<(usize, bool)>,
}

impl Member {
    /// The setting of the innermost of `scopes` that the change at `path` is
    /// to; none for the daemon's own settings (they inherit from nothing),
    /// for deeper changes and for Kea's lists (options, pools, subnets).
    pub fn of(path: &[String], scopes: &[Scope]) -> Option<Member> {
        let (own, outer) = scopes.split_last()?;
        let key = path.last()?;
        if outer.is_empty()
            || path.len() != own.depth + 1
            || keys::keyed_list(key).is_some()
            || !own.holds(key)
        {
            return None;
        }
        Some(Member {
            key: key.clone(),
            outer: outer
                .iter()
                .rev()
                .map(|s| (s.depth, s.holds(key)))
                .collect(),
        })
    }
}

/// `changes` without the ones that follow another: each is put into the
/// `followed_by` of the change it follows (the outermost, when a subnet
/// follows its shared network that follows the global). `members` has one
/// entry per change.
pub fn fold(changes: Vec<Change>, members: &[Option<Member>]) -> Vec<Change> {
    let index: HashMap<&[String], usize> = changes
        .iter()
        .enumerate()
        .map(|(i, change)| (change.path.as_slice(), i))
        .collect();
    let parents: Vec<Option<usize>> = changes
        .iter()
        .zip(members)
        .map(|(change, member)| followed(change, member.as_ref()?, &changes, &index))
        .collect();
    let root = |mut i: usize| {
        while let Some(parent) = parents[i] {
            i = parent;
        }
        i
    };
    let mut followers: HashMap<usize, Vec<Follower>> = HashMap::new();
    for (i, change) in changes.iter().enumerate() {
        if parents[i].is_some() {
            followers.entry(root(i)).or_default().push(Follower {
                category: change.category,
                path: change.path.clone(),
            });
        }
    }
    changes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| parents[*i].is_none())
        .map(|(i, mut change)| {
            change.followed_by = followers.remove(&i).unwrap_or_default();
            change
        })
        .collect()
}

/// The change that `change` follows: the nearest scope around it that
/// changed the setting, or holds it, decides.
fn followed(
    change: &Change,
    member: &Member,
    changes: &[Change],
    index: &HashMap<&[String], usize>,
) -> Option<usize> {
    for &(depth, holds) in &member.outer {
        let mut path = change.path[..depth].to_vec();
        path.push(member.key.clone());
        if let Some(&i) = index.get(path.as_slice()) {
            let outer = &changes[i];
            let same = outer.kind == change.kind
                && outer.before == change.before
                && outer.after == change.after;
            return same.then_some(i);
        }
        if holds {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::{ChangeKind, Summary, diff_configs, diff_configs_unfolded};
    use super::*;
    use serde_json::json;

    /// Kea 2.x config-get: the global valid-lifetime repeated in every subnet
    /// and shared network; subnet 4 sets its own (3000).
    fn config_get(global: u64, subnet: [u64; 3], own: u64, network: u64, inner: u64) -> Value {
        json!({"Dhcp4": {
            "valid-lifetime": global,
            "renew-timer": 900,
            "subnet4": [
                {"id": 1, "subnet": "192.0.2.0/24", "valid-lifetime": subnet[0], "renew-timer": 900},
                {"id": 2, "subnet": "198.51.100.0/24", "valid-lifetime": subnet[1]},
                {"id": 3, "subnet": "203.0.113.0/24", "valid-lifetime": subnet[2]},
                {"id": 4, "subnet": "10.0.4.0/24", "valid-lifetime": own}
            ],
            "shared-networks": [{"name": "campus", "valid-lifetime": network, "subnet4": [
                {"id": 5, "subnet": "10.0.5.0/24", "valid-lifetime": inner}
            ]}]
        }})
    }

    fn paths(changes: &[Change]) -> Vec<(ChangeKind, String, usize)> {
        changes
            .iter()
            .map(|c| (c.kind, c.path_text(), c.followed_by.len()))
            .collect()
    }

    #[test]
    fn one_global_edit_with_three_subnets_inheriting_is_one_change() {
        let from = json!({"Dhcp4": {"valid-lifetime": 4000, "subnet4": [
            {"id": 1, "subnet": "192.0.2.0/24", "valid-lifetime": 4000},
            {"id": 2, "subnet": "198.51.100.0/24", "valid-lifetime": 4000},
            {"id": 3, "subnet": "203.0.113.0/24", "valid-lifetime": 4000}]}});
        let to = json!({"Dhcp4": {"valid-lifetime": 7200, "subnet4": [
            {"id": 1, "subnet": "192.0.2.0/24", "valid-lifetime": 7200},
            {"id": 2, "subnet": "198.51.100.0/24", "valid-lifetime": 7200},
            {"id": 3, "subnet": "203.0.113.0/24", "valid-lifetime": 7200}]}});
        let changes = diff_configs(&from, &to);
        assert_eq!(
            paths(&changes),
            [(ChangeKind::Changed, "Dhcp4 › valid-lifetime".into(), 3)]
        );
        assert_eq!(
            (changes[0].before.clone(), changes[0].after.clone()),
            (Some(json!(4000)), Some(json!(7200)))
        );
        assert_eq!(
            changes[0].followed_by[1],
            Follower {
                category: Category::Subnet,
                path: vec![
                    "Dhcp4".into(),
                    "subnet4 id=2 (198.51.100.0/24)".into(),
                    "valid-lifetime".into()
                ]
            }
        );
        let summary = Summary::of(&changes);
        assert_eq!(
            (summary.changed, summary.inherited, summary.text()),
            (
                1,
                3,
                "0 added, 0 removed, 1 changed (3 inherited values followed along)".into()
            )
        );
        assert_eq!(
            diff_configs_unfolded(&from, &to).len(),
            4,
            "HA partners compare every copy"
        );
    }

    #[test]
    fn who_follows_and_who_changed_on_its_own() {
        let cases = [
            (
                "all follow, the inner subnet through its shared network",
                config_get(7200, [7200, 7200, 7200], 3000, 7200, 7200),
                vec![(ChangeKind::Changed, "Dhcp4 › valid-lifetime".into(), 5)],
            ),
            (
                "subnet 4's own value (3000) changed to the new global: its own change",
                config_get(7200, [7200, 7200, 7200], 7200, 7200, 7200),
                vec![
                    (ChangeKind::Changed, "Dhcp4 › valid-lifetime".into(), 5),
                    (
                        ChangeKind::Changed,
                        "Dhcp4 › subnet4 id=4 (10.0.4.0/24) › valid-lifetime".into(),
                        0,
                    ),
                ],
            ),
            (
                "subnet 2 went to 5000, not the global's 7200: its own change",
                config_get(7200, [7200, 5000, 7200], 3000, 7200, 7200),
                vec![
                    (ChangeKind::Changed, "Dhcp4 › valid-lifetime".into(), 4),
                    (
                        ChangeKind::Changed,
                        "Dhcp4 › subnet4 id=2 (198.51.100.0/24) › valid-lifetime".into(),
                        0,
                    ),
                ],
            ),
            (
                "only the shared network changed; its subnet follows it",
                config_get(4000, [4000, 4000, 4000], 3000, 600, 600),
                vec![(
                    ChangeKind::Changed,
                    "Dhcp4 › shared-networks campus › valid-lifetime".into(),
                    1,
                )],
            ),
            (
                "the shared network kept its value: its subnet's change is its own",
                config_get(7200, [7200, 7200, 7200], 3000, 4000, 7200),
                vec![
                    (ChangeKind::Changed, "Dhcp4 › valid-lifetime".into(), 3),
                    (
                        ChangeKind::Changed,
                        "Dhcp4 › shared-networks campus › subnet4 id=5 (10.0.5.0/24) › valid-lifetime"
                            .into(),
                        0,
                    ),
                ],
            ),
            (
                "no global change: a subnet's edit is its own",
                config_get(4000, [4000, 60, 4000], 3000, 4000, 4000),
                vec![(
                    ChangeKind::Changed,
                    "Dhcp4 › subnet4 id=2 (198.51.100.0/24) › valid-lifetime".into(),
                    0,
                )],
            ),
        ];
        let from = config_get(4000, [4000, 4000, 4000], 3000, 4000, 4000);
        for (what, to, want) in cases {
            assert_eq!(paths(&diff_configs(&from, &to)), want, "{what}");
        }
    }

    #[test]
    fn removed_with_the_global_follows_and_lists_never_do() {
        let from = config_get(4000, [4000, 4000, 4000], 3000, 4000, 4000);
        let mut to = from.clone();
        let dhcp4 = to["Dhcp4"].as_object_mut().expect("object");
        dhcp4.remove("renew-timer");
        dhcp4.insert(
            "option-data".into(),
            json!([{"code": 3, "data": "192.0.2.1"}]),
        );
        to["Dhcp4"]["subnet4"][0]
            .as_object_mut()
            .expect("object")
            .remove("renew-timer");
        to["Dhcp4"]["subnet4"][1]["option-data"] = json!([{"code": 3, "data": "192.0.2.1"}]);
        assert_eq!(
            paths(&diff_configs(&from, &to)),
            [
                (ChangeKind::Removed, "Dhcp4 › renew-timer".into(), 1),
                (
                    ChangeKind::Added,
                    "Dhcp4 › subnet4 id=2 (198.51.100.0/24) › option-data".into(),
                    0
                ),
                (ChangeKind::Added, "Dhcp4 › option-data".into(), 0),
            ]
        );
    }

    #[test]
    fn a_changed_secret_still_says_only_that_it_changed() {
        let config = |password: &str| {
            json!({"Dhcp4": {"valid-lifetime": 4000,
                "lease-database": {"type": "mysql", "password": password},
                "subnet4": [{"id": 1, "subnet": "192.0.2.0/24", "valid-lifetime": 4000}]}})
        };
        let (mut from, mut to) = (config("old-pw"), config("new-pw"));
        to["Dhcp4"]["valid-lifetime"] = json!(7200);
        to["Dhcp4"]["subnet4"][0]["valid-lifetime"] = json!(7200);
        crate::central::secrets::redact_pair(&mut from, &mut to);
        let changes = diff_configs(&from, &to);
        let text = serde_json::to_string(&changes).expect("json");
        assert!(!text.contains("-pw"), "{text}");
        assert_eq!(
            paths(&changes),
            [
                (ChangeKind::Changed, "Dhcp4 › valid-lifetime".into(), 1),
                (
                    ChangeKind::Changed,
                    "Dhcp4 › lease-database › password".into(),
                    0
                ),
            ]
        );
        assert_eq!(
            (changes[1].before.clone(), changes[1].after.clone()),
            (
                Some(json!("<secret hidden #1>")),
                Some(json!("<secret hidden #2>"))
            )
        );
    }
}
