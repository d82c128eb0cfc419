//! A structural diff of two Kea configs that a person can read: entries of
//! Kea's lists are matched by what identifies them (`keys.rs`), not by
//! position, so inserting a subnet does not "change" every subnet after it.
//! A subnet's inherited copy of a global setting that changed along with it is
//! not a change of its own (`inherit.rs`): config-get repeats inherited values.

mod inherit;
mod keys;
mod load;

pub use load::{DiffError, load_diff};

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// What a change is about: the innermost recognised entry that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    Subnet,
    SharedNetwork,
    Pool,
    Reservation,
    Option,
    Other,
}

impl Category {
    /// Every category, in the order a page shows them.
    pub const ALL: [Category; 6] = [
        Category::Subnet,
        Category::SharedNetwork,
        Category::Pool,
        Category::Reservation,
        Category::Option,
        Category::Other,
    ];

    /// A heading for the category.
    pub fn title(self) -> &'static str {
        match self {
            Category::Subnet => "Subnets",
            Category::SharedNetwork => "Shared networks",
            Category::Pool => "Pools",
            Category::Reservation => "Reservations",
            Category::Option => "Options",
            Category::Other => "Other settings",
        }
    }
}

/// Added, removed or changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeKind {
    Added,
    Removed,
    Changed,
}

/// One difference between two configs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub category: Category,
    pub kind: ChangeKind,
    /// From the top: object keys and entry labels, e.g.
    /// `["Dhcp4", "subnet4 id=1 (192.0.2.0/24)", "reservation hw-address=aa:bb:cc:dd:ee:ff"]`.
    pub path: Vec<String>,
    /// The value before (absent when added).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// The value after (absent when removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    /// The subnets and shared networks whose inherited copy of this setting
    /// changed with it, the same way: not counted as changes of their own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub followed_by: Vec<Follower>,
}

/// A subnet or shared network whose inherited value followed a change of
/// the scope it inherits from (the global, or its shared network).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Follower {
    /// `subnet` or `shared-network`.
    pub category: Category,
    /// The setting's path in that subnet or shared network.
    pub path: Vec<String>,
}

/// How many changes a diff holds, by kind; `inherited` counts the followers,
/// which are in none of the other three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Summary {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub inherited: usize,
}

impl Summary {
    /// The counts of `changes` (as `diff_configs` returns them).
    pub fn of(changes: &[Change]) -> Summary {
        let count = |kind| changes.iter().filter(|c| c.kind == kind).count();
        Summary {
            added: count(ChangeKind::Added),
            removed: count(ChangeKind::Removed),
            changed: count(ChangeKind::Changed),
            inherited: changes.iter().map(|c| c.followed_by.len()).sum(),
        }
    }

    /// In words: `1 added, 0 removed, 1 changed`, and how many inherited
    /// values followed along when there are any.
    pub fn text(&self) -> String {
        let mut text = format!(
            "{} added, {} removed, {} changed",
            self.added, self.removed, self.changed
        );
        if self.inherited > 0 {
            text.push_str(&format!(
                " ({} inherited {} followed along)",
                self.inherited,
                if self.inherited == 1 {
                    "value"
                } else {
                    "values"
                }
            ));
        }
        text
    }
}

impl Change {
    /// The path as one line: `Dhcp4 › subnet4 id=1 (192.0.2.0/24) › valid-lifetime`.
    pub fn path_text(&self) -> String {
        self.path.join(" › ")
    }
}

/// What a person changed from config `from` to config `to` (`{"Dhcp4": {...}}`
/// each): a subnet's inherited value that followed its global is listed in the
/// global change's `followed_by`, not as a change.
pub fn diff_configs(from: &Value, to: &Value) -> Vec<Change> {
    let (changes, members) = walk(from, to);
    inherit::fold(changes, &members)
}

/// Every difference, inherited copies included: what HA partners must share
/// is compared member by member.
pub fn diff_configs_unfolded(from: &Value, to: &Value) -> Vec<Change> {
    walk(from, to).0
}

fn walk<'a>(from: &'a Value, to: &'a Value) -> (Vec<Change>, Vec<Option<inherit::Member>>) {
    let mut walk = Walk {
        changes: Vec::new(),
        members: Vec::new(),
        path: Vec::new(),
        space: String::new(),
        scopes: Vec::new(),
    };
    walk.value(Category::Other, from, to);
    (walk.changes, walk.members)
}

struct Walk<'a> {
    changes: Vec<Change>,
    /// For each change, where it could inherit from (see `inherit::Member`).
    members: Vec<Option<inherit::Member>>,
    path: Vec<String>,
    /// The option space of the daemon being walked (`dhcp4`, `dhcp6`).
    space: String,
    /// The daemon, shared network and subnet being walked, outermost first.
    scopes: Vec<inherit::Scope<'a>>,
}

impl<'a> Walk<'a> {
    fn value(&mut self, category: Category, before: &'a Value, after: &'a Value) {
        match (before, after) {
            (Value::Object(a), Value::Object(b)) => self.object(category, a, b),
            _ if before != after => {
                self.push(category, ChangeKind::Changed, Some(before), Some(after))
            }
            _ => {}
        }
    }

    fn object(
        &mut self,
        category: Category,
        before: &'a Map<String, Value>,
        after: &'a Map<String, Value>,
    ) {
        for (key, old) in before {
            let inner = self.category_under(category, key);
            match after.get(key) {
                None => self.enter(key, |walk| {
                    walk.push(inner, ChangeKind::Removed, Some(old), None)
                }),
                Some(new) => self.field(inner, key, old, new),
            }
        }
        for (key, new) in after.iter().filter(|(key, _)| !before.contains_key(*key)) {
            let inner = self.category_under(category, key);
            self.enter(key, |walk| {
                walk.push(inner, ChangeKind::Added, None, Some(new))
            });
        }
    }

    fn field(&mut self, category: Category, key: &str, before: &'a Value, after: &'a Value) {
        if before == after {
            return;
        }
        let space = match key {
            "Dhcp4" => Some("dhcp4"),
            "Dhcp6" => Some("dhcp6"),
            _ => None,
        };
        let outer_space = space.map(|s| std::mem::replace(&mut self.space, s.to_string()));
        // Entries matched by identity are named by their label alone
        // ("subnet4 id=1 (...)"), which already says which list they are in.
        let matched = match (keys::keyed_list(key), before, after) {
            (Some(entries), Value::Array(a), Value::Array(b)) => {
                self.keyed_list(entries, key, a, b)
            }
            _ => false,
        };
        if !matched {
            self.enter(key, |walk| match space {
                Some(_) => walk.scope(category, before, after),
                None => walk.value(category, before, after),
            });
        }
        if let Some(outer) = outer_space {
            self.space = outer;
        }
    }

    /// Matches entries by identity; false (nothing done) when some entry
    /// cannot be identified, so the list is compared as one value.
    fn keyed_list(
        &mut self,
        category: Category,
        key: &str,
        before: &'a [Value],
        after: &'a [Value],
    ) -> bool {
        let (Some(old), Some(new)) = (self.identify(key, before), self.identify(key, after)) else {
            return false;
        };
        let new_by_identity: HashMap<&str, usize> = new
            .iter()
            .enumerate()
            .map(|(i, k)| (k.identity.as_str(), i))
            .collect();
        let old_identities: HashSet<&str> = old.iter().map(|k| k.identity.as_str()).collect();
        for (entry, entry_key) in before.iter().zip(&old) {
            self.enter(&entry_key.label, |walk| {
                match new_by_identity.get(entry_key.identity.as_str()) {
                    None => walk.push(category, ChangeKind::Removed, Some(entry), None),
                    Some(&i) if inherit::is_scope(category) => {
                        walk.scope(category, entry, &after[i])
                    }
                    Some(&i) => walk.value(category, entry, &after[i]),
                }
            });
        }
        for (entry, entry_key) in after.iter().zip(&new) {
            if !old_identities.contains(entry_key.identity.as_str()) {
                self.enter(&entry_key.label, |walk| {
                    walk.push(category, ChangeKind::Added, None, Some(entry))
                });
            }
        }
        true
    }

    /// Keys of every entry, made unique by occurrence (`#2`) when repeated.
    fn identify(&self, list: &str, entries: &[Value]) -> Option<Vec<keys::EntryKey>> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        entries
            .iter()
            .map(|entry| {
                let mut key = keys::entry_key(list, entry, &self.space)?;
                let count = seen.entry(key.identity.clone()).or_insert(0);
                *count += 1;
                if *count > 1 {
                    key.identity = format!("{}#{count}", key.identity);
                    key.label = format!("{} #{count}", key.label);
                }
                Some(key)
            })
            .collect()
    }

    /// Walks a daemon, shared network or subnet: a scope whose settings
    /// the scopes inside it inherit.
    fn scope(&mut self, category: Category, before: &'a Value, after: &'a Value) {
        self.scopes.push(inherit::Scope {
            depth: self.path.len(),
            before: before.as_object(),
            after: after.as_object(),
        });
        self.value(category, before, after);
        self.scopes.pop();
    }

    fn category_under(&self, outer: Category, key: &str) -> Category {
        match keys::category_of_key(key) {
            Category::Other => outer,
            inner => inner,
        }
    }

    fn enter(&mut self, segment: &str, within: impl FnOnce(&mut Walk<'a>)) {
        self.path.push(segment.to_string());
        within(self);
        self.path.pop();
    }

    fn push(
        &mut self,
        category: Category,
        kind: ChangeKind,
        before: Option<&Value>,
        after: Option<&Value>,
    ) {
        self.members
            .push(inherit::Member::of(&self.path, &self.scopes));
        self.changes.push(Change {
            category,
            kind,
            path: self.path.clone(),
            before: before.cloned(),
            after: after.cloned(),
            followed_by: Vec::new(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({"Dhcp4": {
            "valid-lifetime": 4000,
            "option-data": [{"code": 6, "name": "domain-name-servers", "space": "dhcp4", "data": "192.0.2.1"}],
            "subnet4": [
                {"id": 1, "subnet": "192.0.2.0/24",
                 "pools": [{"pool": "192.0.2.10 - 192.0.2.20"}],
                 "reservations": [
                    {"hw-address": "aa:bb:cc:dd:ee:01", "ip-address": "192.0.2.101"},
                    {"ip-address": "192.0.2.102", "hostname": "printer"}
                 ]},
                {"id": 2, "subnet": "198.51.100.0/24"}
            ]
        }})
    }

    fn edited(edit: impl FnOnce(&mut Value)) -> Vec<Change> {
        let mut to = base();
        edit(&mut to);
        diff_configs(&base(), &to)
    }

    fn summary(changes: &[Change]) -> Vec<(Category, ChangeKind, String)> {
        changes
            .iter()
            .map(|c| (c.category, c.kind, c.path_text()))
            .collect()
    }

    #[test]
    fn identical_configs_have_no_changes() {
        assert!(diff_configs(&base(), &base()).is_empty());
    }

    #[test]
    fn subnets_are_matched_by_id_not_position() {
        let changes = edited(|c| {
            let subnets = c["Dhcp4"]["subnet4"]
                .as_array_mut()
                .expect("should succeed");
            subnets.insert(0, json!({"id": 3, "subnet": "203.0.113.0/24"}));
            subnets.retain(|s| s["id"] != 2);
        });
        assert_eq!(
            summary(&changes),
            [
                (
                    Category::Subnet,
                    ChangeKind::Removed,
                    "Dhcp4 › subnet4 id=2 (198.51.100.0/24)".into()
                ),
                (
                    Category::Subnet,
                    ChangeKind::Added,
                    "Dhcp4 › subnet4 id=3 (203.0.113.0/24)".into()
                ),
            ]
        );
        assert_eq!(
            changes[1].after,
            Some(json!({"id": 3, "subnet": "203.0.113.0/24"}))
        );
    }

    #[test]
    fn reservations_added_removed_changed() {
        let changes = edited(|c| {
            let r = c["Dhcp4"]["subnet4"][0]["reservations"]
                .as_array_mut()
                .expect("should succeed");
            r[0]["ip-address"] = json!("192.0.2.111");
            r.remove(1);
            r.push(json!({"hw-address": "aa:bb:cc:dd:ee:03", "ip-address": "192.0.2.103"}));
        });
        let prefix = "Dhcp4 › subnet4 id=1 (192.0.2.0/24) › ";
        assert_eq!(
            summary(&changes),
            [
                (
                    Category::Reservation,
                    ChangeKind::Changed,
                    format!("{prefix}reservation hw-address=aa:bb:cc:dd:ee:01 › ip-address")
                ),
                (
                    Category::Reservation,
                    ChangeKind::Removed,
                    format!("{prefix}reservation ip-address=192.0.2.102")
                ),
                (
                    Category::Reservation,
                    ChangeKind::Added,
                    format!("{prefix}reservation hw-address=aa:bb:cc:dd:ee:03")
                ),
            ]
        );
        assert_eq!(
            (changes[0].before.clone(), changes[0].after.clone()),
            (Some(json!("192.0.2.101")), Some(json!("192.0.2.111")))
        );
    }

    #[test]
    fn options_pools_and_other_keys() {
        let changes = edited(|c| {
            c["Dhcp4"]["option-data"][0]["data"] = json!("192.0.2.53");
            c["Dhcp4"]["option-data"]
                .as_array_mut()
                .expect("should succeed")
                .push(json!({"code": 15, "name": "domain-name", "data": "example.org"}));
            c["Dhcp4"]["subnet4"][0]["pools"][0]["pool"] = json!("192.0.2.10-192.0.2.30");
            c["Dhcp4"]["valid-lifetime"] = json!(7200);
            c["Dhcp4"]["renew-timer"] = json!(900);
        });
        assert_eq!(
            summary(&changes),
            [
                (
                    Category::Other,
                    ChangeKind::Changed,
                    "Dhcp4 › valid-lifetime".into()
                ),
                (
                    Category::Option,
                    ChangeKind::Changed,
                    "Dhcp4 › option domain-name-servers (code 6, space dhcp4) › data".into()
                ),
                (
                    Category::Option,
                    ChangeKind::Added,
                    "Dhcp4 › option domain-name (code 15, space dhcp4)".into()
                ),
                (
                    Category::Pool,
                    ChangeKind::Removed,
                    "Dhcp4 › subnet4 id=1 (192.0.2.0/24) › pool 192.0.2.10-192.0.2.20".into()
                ),
                (
                    Category::Pool,
                    ChangeKind::Added,
                    "Dhcp4 › subnet4 id=1 (192.0.2.0/24) › pool 192.0.2.10-192.0.2.30".into()
                ),
                (
                    Category::Other,
                    ChangeKind::Added,
                    "Dhcp4 › renew-timer".into()
                ),
            ]
        );
    }

    #[test]
    fn a_subnet_setting_is_a_subnet_change_and_removed_lists_keep_their_category() {
        let changes = edited(|c| {
            c["Dhcp4"]["subnet4"][1]["valid-lifetime"] = json!(60);
            c["Dhcp4"]["subnet4"][0]
                .as_object_mut()
                .expect("should succeed")
                .remove("reservations");
        });
        assert_eq!(
            summary(&changes),
            [
                (
                    Category::Reservation,
                    ChangeKind::Removed,
                    "Dhcp4 › subnet4 id=1 (192.0.2.0/24) › reservations".into()
                ),
                (
                    Category::Subnet,
                    ChangeKind::Added,
                    "Dhcp4 › subnet4 id=2 (198.51.100.0/24) › valid-lifetime".into()
                ),
            ]
        );
    }

    #[test]
    fn unidentifiable_lists_and_repeated_identities() {
        let from = json!({"Dhcp4": {"subnet4": [{"pools": []}], "client-classes": [{"name": "a"}, {"name": "a", "x": 1}]}});
        let to = json!({"Dhcp4": {"subnet4": [{"pools": [], "x": 1}], "client-classes": [{"name": "a"}]}});
        assert_eq!(
            summary(&diff_configs(&from, &to)),
            [
                (
                    Category::Subnet,
                    ChangeKind::Changed,
                    "Dhcp4 › subnet4".into()
                ),
                (
                    Category::Other,
                    ChangeKind::Removed,
                    "Dhcp4 › client-classes a #2".into()
                ),
            ]
        );
    }
}
