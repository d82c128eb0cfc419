//! Which paths matter: every symlink hop of every watched file, and the directories holding them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ffi::OsString;
use std::path::{Component, MAIN_SEPARATOR_STR, Path, PathBuf};

/// Most symlinks followed for one path, as Linux's ELOOP limit.
const MAX_SYMLINKS: usize = 40;

/// One step of a path still to resolve.
enum Step {
    Root,
    Up,
    Name(OsString),
}

fn steps(path: &Path) -> Vec<Step> {
    path.components()
        .filter_map(|component| match component {
            Component::Prefix(_) | Component::RootDir => Some(Step::Root),
            Component::CurDir => None,
            Component::ParentDir => Some(Step::Up),
            Component::Normal(name) => Some(Step::Name(name.to_owned())),
        })
        .collect()
}

/// The physical paths `path` goes through: each symlink met in any component (so a
/// Kubernetes `..data` directory link counts), then the final target.
///
/// Every returned path has a symlink-free parent, which is the name inotify reports for a
/// watch on that parent. Components that do not exist are taken as written.
pub fn symlink_chain(path: &Path) -> Vec<PathBuf> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut todo: VecDeque<Step> = steps(&absolute).into();
    let mut here = PathBuf::from(MAIN_SEPARATOR_STR);
    let mut hops = Vec::new();
    while let Some(step) = todo.pop_front() {
        match step {
            Step::Root => here = PathBuf::from(MAIN_SEPARATOR_STR),
            Step::Up => {
                here.pop();
            }
            Step::Name(name) => {
                let next = here.join(name);
                match std::fs::read_link(&next) {
                    Ok(target) if hops.len() < MAX_SYMLINKS => {
                        hops.push(next);
                        // A relative target resolves against the link's own directory: `here`.
                        for step in steps(&target).into_iter().rev() {
                            todo.push_front(step);
                        }
                    }
                    _ => here = next,
                }
            }
        }
    }
    hops.push(here);
    hops
}

/// The watched files, keyed by the physical paths whose events concern them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchSet {
    /// Symlink hop or final target -> the watched files (as the agent named them) reaching it.
    hops: BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    /// Parent directory of every hop: what gets an inotify watch.
    dirs: BTreeSet<PathBuf>,
}

impl WatchSet {
    /// Resolves the symlink chain of every file now.
    pub fn resolve(files: &[PathBuf]) -> WatchSet {
        WatchSet::from_chains(files.iter().map(|file| (file.clone(), symlink_chain(file))))
    }

    /// Builds the set from already resolved chains: `(watched file, its hops)`.
    pub fn from_chains(chains: impl IntoIterator<Item = (PathBuf, Vec<PathBuf>)>) -> WatchSet {
        let mut set = WatchSet::default();
        for (file, hops) in chains {
            for hop in hops {
                if let Some(dir) = hop.parent() {
                    set.dirs.insert(dir.to_path_buf());
                }
                set.hops.entry(hop).or_default().insert(file.clone());
            }
        }
        set
    }

    /// The directories to watch.
    pub fn dirs(&self) -> &BTreeSet<PathBuf> {
        &self.dirs
    }

    /// Whether `path` is one of the directories to watch.
    pub fn is_dir(&self, path: &Path) -> bool {
        self.dirs.contains(path)
    }

    /// The watched files an event on `path` concerns, if `path` is a hop.
    pub fn owners(&self, path: &Path) -> Option<&BTreeSet<PathBuf>> {
        self.hops.get(path)
    }

    /// The watched files with a hop directly inside `dir`.
    pub fn owners_in(&self, dir: &Path) -> BTreeSet<PathBuf> {
        self.hops
            .iter()
            .filter(|(hop, _)| hop.parent() == Some(dir))
            .flat_map(|(_, owners)| owners.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn real_tempdir() -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonicalize");
        (tmp, root)
    }

    #[test]
    fn plain_file_is_its_own_chain() {
        let (_tmp, root) = real_tempdir();
        let file = root.join("kea-dhcp4.conf");
        std::fs::write(&file, "{}").expect("write");
        assert_eq!(symlink_chain(&file), vec![file]);
    }

    #[test]
    fn missing_file_is_taken_as_written() {
        let (_tmp, root) = real_tempdir();
        let file = root.join("gone/../etc/kea-dhcp4.conf");
        assert_eq!(symlink_chain(&file), vec![root.join("etc/kea-dhcp4.conf")]);
    }

    #[test]
    fn symlinked_file_lists_link_then_target() {
        let (_tmp, root) = real_tempdir();
        std::fs::create_dir(root.join("real")).expect("mkdir");
        std::fs::write(root.join("real/kea.conf"), "{}").expect("write");
        symlink("real/kea.conf", root.join("kea.conf")).expect("symlink");
        assert_eq!(
            symlink_chain(&root.join("kea.conf")),
            vec![root.join("kea.conf"), root.join("real/kea.conf")]
        );
    }

    #[test]
    fn configmap_layout_lists_every_hop() {
        let (_tmp, root) = real_tempdir();
        std::fs::create_dir(root.join("..2026_11_26")).expect("mkdir");
        std::fs::write(root.join("..2026_11_26/kea-dhcp4.conf"), "{}").expect("write");
        symlink("..2026_11_26", root.join("..data")).expect("symlink data");
        symlink("..data/kea-dhcp4.conf", root.join("kea-dhcp4.conf")).expect("symlink conf");
        assert_eq!(
            symlink_chain(&root.join("kea-dhcp4.conf")),
            vec![
                root.join("kea-dhcp4.conf"),
                root.join("..data"),
                root.join("..2026_11_26/kea-dhcp4.conf"),
            ]
        );
    }

    #[test]
    fn symlinked_directory_in_the_middle_counts() {
        let (_tmp, root) = real_tempdir();
        std::fs::create_dir_all(root.join("opt/kea")).expect("mkdir");
        std::fs::create_dir(root.join("etc")).expect("mkdir");
        symlink(root.join("opt/kea"), root.join("etc/kea")).expect("symlink");
        assert_eq!(
            symlink_chain(&root.join("etc/kea/kea.conf")),
            vec![root.join("etc/kea"), root.join("opt/kea/kea.conf")]
        );
    }

    #[test]
    fn symlink_loop_ends() {
        let (_tmp, root) = real_tempdir();
        symlink("b", root.join("a")).expect("symlink");
        symlink("a", root.join("b")).expect("symlink");
        let chain = symlink_chain(&root.join("a"));
        assert_eq!(chain.len(), MAX_SYMLINKS + 1);
    }

    #[test]
    fn set_maps_hops_to_the_files_named_by_the_agent() {
        let conf = PathBuf::from("/etc/kea/kea-dhcp4.conf");
        let include = PathBuf::from("/etc/kea/subnets.json");
        let set = WatchSet::from_chains([
            (
                conf.clone(),
                vec![conf.clone(), PathBuf::from("/srv/kea/kea-dhcp4.conf")],
            ),
            (include.clone(), vec![include.clone()]),
        ]);
        let dirs: Vec<_> = set.dirs().iter().cloned().collect();
        assert_eq!(
            dirs,
            vec![PathBuf::from("/etc/kea"), PathBuf::from("/srv/kea")]
        );
        assert_eq!(
            set.owners(Path::new("/srv/kea/kea-dhcp4.conf")),
            Some(&BTreeSet::from([conf.clone()]))
        );
        assert_eq!(set.owners(Path::new("/etc/kea/kea-leases4.csv")), None);
        assert_eq!(
            set.owners_in(Path::new("/etc/kea")),
            BTreeSet::from([conf, include])
        );
    }
}
