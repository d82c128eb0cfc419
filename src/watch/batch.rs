//! Deciding what a burst of notify events means for the watched files (pure).

use super::WatchSignal;
use super::set::WatchSet;
use notify::Event;
use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind, RenameMode};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What one event says about whether the writer is done with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hint {
    /// Closed after writing or renamed into place: the writer is done with this version.
    Done,
    /// Created: the write is likely done, though its content may still be on its way.
    Strong,
    /// Written to, removed or renamed away: more is probably coming.
    Weak,
    /// Attributes only (chmod, touch): does not undo an earlier strong hint.
    Meta,
}

/// How `kind` bears on the `index`-th path of its event; `None` if it cannot change content.
fn hint(kind: &EventKind, index: usize) -> Option<Hint> {
    match kind {
        EventKind::Create(_) => Some(Hint::Strong),
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Hint::Done),
        // Reads, including the agent's and Kea's own, must not wake anybody.
        EventKind::Access(_) => None,
        EventKind::Remove(_) => Some(Hint::Weak),
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => Some(Hint::Weak),
        // Paths of a paired rename are [from, to].
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if index == 0 => Some(Hint::Weak),
        EventKind::Modify(ModifyKind::Name(_)) => Some(Hint::Done),
        EventKind::Modify(ModifyKind::Metadata(_)) => Some(Hint::Meta),
        EventKind::Modify(_) | EventKind::Any => Some(Hint::Weak),
        EventKind::Other => None,
    }
}

/// The watched files an event touches, each with its hint; empty if it touches none.
///
/// An event counts when its path is a hop of a watched file (the file, a symlink on its way,
/// its final target), or when it removes or moves a watched directory itself.
pub fn relevant(kind: &EventKind, paths: &[PathBuf], set: &WatchSet) -> Vec<(PathBuf, Hint)> {
    let mut touched = Vec::new();
    for (index, path) in paths.iter().enumerate() {
        let Some(hint) = hint(kind, index) else {
            continue;
        };
        if let Some(owners) = set.owners(path) {
            touched.extend(owners.iter().map(|file| (file.clone(), hint)));
        } else if dir_gone(kind, path, set) {
            touched.extend(
                set.owners_in(path)
                    .into_iter()
                    .map(|file| (file, Hint::Weak)),
            );
        }
    }
    touched
}

fn dir_gone(kind: &EventKind, path: &Path, set: &WatchSet) -> bool {
    matches!(
        kind,
        EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
    ) && set.is_dir(path)
}

/// Watched directories an event removes, moves away or replaces: their inotify watch is gone
/// or follows the old inode, so the next sync must add it again.
pub fn lost_dirs(kind: &EventKind, paths: &[PathBuf], set: &WatchSet) -> Vec<PathBuf> {
    paths
        .iter()
        .filter(|path| dir_gone(kind, path, set))
        .cloned()
        .collect()
}

/// The events of one burst, folded into the signal for the agent.
#[derive(Debug, Default)]
pub struct Batch {
    /// Watched file -> the hint its latest events leave it with.
    files: BTreeMap<PathBuf, Hint>,
    rescan: bool,
}

impl Batch {
    /// Adds one event as classified against `set`; false when it concerns
    /// nothing watched (a neighbour file, a read).
    pub fn add(&mut self, event: &Event, set: &WatchSet) -> bool {
        if event.need_rescan() {
            self.rescan = true;
            return true;
        }
        let relevant = relevant(&event.kind, &event.paths, set);
        let any = !relevant.is_empty();
        for (file, hint) in relevant {
            let previous = self.files.get(&file).copied();
            let folded = match (previous, hint) {
                (Some(previous), Hint::Meta) => previous,
                (None, Hint::Meta) => Hint::Weak,
                (_, hint) => hint,
            };
            self.files.insert(file, folded);
        }
        any
    }

    /// Events were lost: the agent must re-check everything.
    pub fn lost_events(&mut self) {
        self.rescan = true;
    }

    /// Whether every touched file's last content event says its writer is done (closed after
    /// writing, renamed into place): the burst need not wait for more.
    pub fn is_finished(&self) -> bool {
        !self.rescan && !self.files.is_empty() && self.files.values().all(|h| *h == Hint::Done)
    }

    /// The signal for this burst, if anything watched may have changed.
    ///
    /// `complete` holds when every touched file's last content event was a strong one (a
    /// create counts), so a create followed by writes still in progress is not reported as
    /// done; `finished` when each was a close after writing or a rename into place.
    pub fn into_signal(self) -> Option<WatchSignal> {
        if self.rescan {
            return Some(WatchSignal::Rescan);
        }
        if self.files.is_empty() {
            return None;
        }
        let finished = self.is_finished();
        let complete = self
            .files
            .values()
            .all(|h| matches!(h, Hint::Done | Hint::Strong));
        Some(WatchSignal::Changed {
            paths: self.files.into_keys().collect(),
            complete,
            finished,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, DataChange, Flag, MetadataKind, RemoveKind};

    const CONF: &str = "/etc/kea/kea-dhcp4.conf";

    fn set() -> WatchSet {
        // /etc/kea/kea-dhcp4.conf -> ..data/kea-dhcp4.conf, ..data -> ..v1
        WatchSet::from_chains([(
            PathBuf::from(CONF),
            vec![
                PathBuf::from(CONF),
                PathBuf::from("/etc/kea/..data"),
                PathBuf::from("/etc/kea/..v1/kea-dhcp4.conf"),
            ],
        )])
    }

    fn event(kind: EventKind, paths: &[&str]) -> Event {
        paths
            .iter()
            .fold(Event::new(kind), |event, path| event.add_path(path.into()))
    }

    fn signal(events: &[Event]) -> Option<WatchSignal> {
        let set = set();
        let mut batch = Batch::default();
        for event in events {
            batch.add(event, &set);
        }
        batch.into_signal()
    }

    /// A change of CONF; `finished` implies `complete`.
    fn changed(complete: bool, finished: bool) -> Option<WatchSignal> {
        Some(WatchSignal::Changed {
            paths: vec![PathBuf::from(CONF)],
            complete,
            finished,
        })
    }

    const CLOSE_WRITE: EventKind = EventKind::Access(AccessKind::Close(AccessMode::Write));
    const CLOSE_READ: EventKind = EventKind::Access(AccessKind::Close(AccessMode::Read));
    const OPEN: EventKind = EventKind::Access(AccessKind::Open(AccessMode::Any));
    const WRITE: EventKind = EventKind::Modify(ModifyKind::Data(DataChange::Any));
    const CHMOD: EventKind = EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any));
    const CREATE: EventKind = EventKind::Create(CreateKind::File);
    const REMOVE: EventKind = EventKind::Remove(RemoveKind::File);
    const REMOVE_DIR: EventKind = EventKind::Remove(RemoveKind::Folder);
    const MOVED_FROM: EventKind = EventKind::Modify(ModifyKind::Name(RenameMode::From));
    const MOVED_TO: EventKind = EventKind::Modify(ModifyKind::Name(RenameMode::To));
    const RENAMED: EventKind = EventKind::Modify(ModifyKind::Name(RenameMode::Both));

    #[test]
    fn bursts_become_signals() {
        let tmp = "/etc/kea/.kea-dhcp4.conf.tmp";
        let cases: Vec<(&str, Vec<Event>, Option<WatchSignal>)> = vec![
            (
                "in-place write",
                vec![
                    event(OPEN, &[CONF]),
                    event(WRITE, &[CONF]),
                    event(CLOSE_WRITE, &[CONF]),
                ],
                changed(true, true),
            ),
            (
                "write still going",
                vec![event(WRITE, &[CONF])],
                changed(false, false),
            ),
            (
                "close then another write begins",
                vec![event(CLOSE_WRITE, &[CONF]), event(WRITE, &[CONF])],
                changed(false, false),
            ),
            (
                "write temp and rename over",
                vec![
                    event(CREATE, &[tmp]),
                    event(WRITE, &[tmp]),
                    event(CLOSE_WRITE, &[tmp]),
                    event(MOVED_FROM, &[tmp]),
                    event(MOVED_TO, &[CONF]),
                    event(RENAMED, &[tmp, CONF]),
                ],
                changed(true, true),
            ),
            (
                "renamed away",
                vec![
                    event(MOVED_FROM, &[CONF]),
                    event(RENAMED, &[CONF, "/etc/kea/kea-dhcp4.conf~"]),
                ],
                changed(false, false),
            ),
            (
                "removed",
                vec![event(REMOVE, &[CONF])],
                changed(false, false),
            ),
            (
                "removed and recreated",
                vec![
                    event(REMOVE, &[CONF]),
                    event(CREATE, &[CONF]),
                    event(WRITE, &[CONF]),
                    event(CLOSE_WRITE, &[CONF]),
                ],
                changed(true, true),
            ),
            (
                "created, nothing written yet: likely done, not finished",
                vec![event(CREATE, &[CONF])],
                changed(true, false),
            ),
            (
                "created and written, still open",
                vec![event(CREATE, &[CONF]), event(WRITE, &[CONF])],
                changed(false, false),
            ),
            (
                "chmod after the rename keeps it complete",
                vec![event(MOVED_TO, &[CONF]), event(CHMOD, &[CONF])],
                changed(true, true),
            ),
            (
                "chmod alone",
                vec![event(CHMOD, &[CONF])],
                changed(false, false),
            ),
            (
                "..data swapped",
                vec![
                    event(MOVED_FROM, &["/etc/kea/..data_tmp"]),
                    event(MOVED_TO, &["/etc/kea/..data"]),
                ],
                changed(true, true),
            ),
            (
                "symlink target edited",
                vec![event(CLOSE_WRITE, &["/etc/kea/..v1/kea-dhcp4.conf"])],
                changed(true, true),
            ),
            (
                "target directory removed",
                vec![event(REMOVE_DIR, &["/etc/kea/..v1"])],
                changed(false, false),
            ),
            (
                "reads are nothing",
                vec![event(OPEN, &[CONF]), event(CLOSE_READ, &[CONF])],
                None,
            ),
            (
                "neighbours are nothing",
                vec![
                    event(CREATE, &["/etc/kea/.kea-dhcp4.conf.swp"]),
                    event(WRITE, &["/etc/kea/kea-dhcp4.conf~"]),
                    event(CLOSE_WRITE, &["/etc/kea/kea-leases4.csv"]),
                    event(REMOVE, &["/etc/kea/4913"]),
                    event(MOVED_TO, &["/etc/kea/kea-dhcp4.pid"]),
                    event(WRITE, &["/etc/kea/..v1/other.conf"]),
                ],
                None,
            ),
            (
                "overflow wins",
                vec![
                    event(CLOSE_WRITE, &[CONF]),
                    Event::new(EventKind::Other).set_flag(Flag::Rescan),
                ],
                Some(WatchSignal::Rescan),
            ),
        ];
        for (name, events, expected) in cases {
            assert_eq!(signal(&events), expected, "{name}");
        }
    }

    #[test]
    fn every_file_must_be_done_for_complete() {
        let include = PathBuf::from("/etc/kea/subnets.json");
        let set = WatchSet::from_chains([
            (PathBuf::from(CONF), vec![PathBuf::from(CONF)]),
            (include.clone(), vec![include.clone()]),
        ]);
        let mut batch = Batch::default();
        batch.add(&event(CLOSE_WRITE, &[CONF]), &set);
        batch.add(&event(WRITE, &["/etc/kea/subnets.json"]), &set);
        assert_eq!(
            batch.into_signal(),
            Some(WatchSignal::Changed {
                paths: vec![PathBuf::from(CONF), include],
                complete: false,
                finished: false,
            })
        );
    }

    #[test]
    fn lost_dirs_are_watched_dirs_removed_or_moved() {
        let set = set();
        let cases: Vec<(EventKind, &str, Vec<PathBuf>)> = vec![
            (
                REMOVE_DIR,
                "/etc/kea/..v1",
                vec![PathBuf::from("/etc/kea/..v1")],
            ),
            (MOVED_FROM, "/etc/kea", vec![PathBuf::from("/etc/kea")]),
            (MOVED_TO, "/etc/kea", vec![PathBuf::from("/etc/kea")]),
            (REMOVE_DIR, "/etc/kea/..v0", vec![]),
            (OPEN, "/etc/kea", vec![]),
            (CHMOD, "/etc/kea", vec![]),
        ];
        for (kind, path, expected) in cases {
            assert_eq!(
                lost_dirs(&kind, &[PathBuf::from(path)], &set),
                expected,
                "{kind:?} {path}"
            );
        }
    }
}
