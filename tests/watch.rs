//! The config watcher against the real filesystem and real inotify.

use kea_sync_agent::watch::{ConfigWatcher, WatchSignal};
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

/// How long an expected signal may take.
const EXPECTED: Duration = Duration::from_secs(2);
/// How long to listen before saying "no signal".
const SILENCE: Duration = Duration::from_millis(300);

struct Fixture {
    _tmp: tempfile::TempDir,
    /// A symlink-free directory for the test's files.
    root: PathBuf,
    watcher: ConfigWatcher,
    signals: UnboundedReceiver<WatchSignal>,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonicalize");
        let (watcher, signals) = ConfigWatcher::new().expect("watcher");
        Fixture {
            _tmp: tmp,
            root,
            watcher,
            signals,
        }
    }

    /// A fixture watching the file at `relative`, written with `text` (directories made).
    fn watching(relative: &str, text: &str) -> (Fixture, PathBuf) {
        let mut fx = Fixture::new();
        let conf = fx.path(relative);
        if let Some(dir) = conf.parent() {
            std::fs::create_dir_all(dir).expect("mkdir");
        }
        write(&conf, text);
        fx.watch(&[&conf]);
        (fx, conf)
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    fn watch(&mut self, files: &[&Path]) {
        let files: Vec<PathBuf> = files.iter().map(|file| file.to_path_buf()).collect();
        self.watcher.set_files(&files).expect("set_files");
    }

    /// Every signal of one change: the first within `EXPECTED`, then all until `SILENCE`.
    async fn signals(&mut self) -> Vec<WatchSignal> {
        let first = timeout(EXPECTED, self.signals.recv())
            .await
            .expect("a signal in time")
            .expect("watcher alive");
        let mut all = vec![first];
        while let Ok(Some(signal)) = timeout(SILENCE, self.signals.recv()).await {
            all.push(signal);
        }
        all
    }

    /// Waits for signals naming `file`; returns what the last one naming it says of the writer.
    async fn changed(&mut self, file: &Path) -> Written {
        let signals = self.signals().await;
        let mut last = None;
        for signal in &signals {
            match signal {
                WatchSignal::Changed {
                    paths,
                    complete,
                    finished,
                } => {
                    if paths.iter().any(|path| path == file) {
                        last = Some(Written {
                            complete: *complete,
                            finished: *finished,
                        });
                    }
                }
                WatchSignal::Rescan => panic!("unexpected rescan in {signals:?}"),
            }
        }
        last.unwrap_or_else(|| panic!("no signal names {}: {signals:?}", file.display()))
    }

    async fn quiet(&mut self, what: &str) {
        if let Ok(signal) = timeout(SILENCE, self.signals.recv()).await {
            panic!("{what}: expected no signal, got {signal:?}");
        }
    }
}

/// What a change signal says of the writer.
#[derive(Debug, PartialEq, Eq)]
struct Written {
    complete: bool,
    finished: bool,
}

/// Closed after writing or renamed into place: the agent need not wait.
const FINISHED: Written = Written {
    complete: true,
    finished: true,
};

/// Removed, moved away or still being written: the agent waits out its settle window.
const UNFINISHED: Written = Written {
    complete: false,
    finished: false,
};

fn write(path: &Path, text: &str) {
    let mut file = std::fs::File::create(path).expect("open for writing");
    file.write_all(text.as_bytes()).expect("write");
}

fn run(program: &str, args: &[&std::ffi::OsStr]) {
    let status = Command::new(program).args(args).status().expect(program);
    assert!(status.success(), "{program} failed: {status}");
}

#[tokio::test]
async fn in_place_write_is_complete() {
    let (mut fx, conf) = Fixture::watching("kea-dhcp4.conf", "{}");
    write(&conf, r#"{ "Dhcp4": {} }"#);
    assert_eq!(fx.changed(&conf).await, FINISHED);
}

#[tokio::test]
async fn a_writer_pausing_with_the_file_open_is_finished_only_at_its_close() {
    let (mut fx, conf) = Fixture::watching("kea-dhcp4.conf", "{}");
    let mut file = std::fs::File::create(&conf).expect("open for writing");
    file.write_all(br#"{ "Dhcp4": "#).expect("first half");
    // Longer than the watcher's quiet window: the first half is reported, as unfinished.
    assert_eq!(
        fx.changed(&conf).await,
        UNFINISHED,
        "half written, still open"
    );
    file.write_all(b"{} }").expect("second half");
    drop(file);
    assert_eq!(
        fx.changed(&conf).await,
        FINISHED,
        "closed after the second half"
    );
}

#[tokio::test]
async fn write_temp_and_rename_over_is_complete() {
    let (mut fx, conf) = Fixture::watching("kea-dhcp4.conf", "{}");
    let temp = fx.path(".kea-dhcp4.conf.tmp1234");
    write(&temp, r#"{ "Dhcp4": {} }"#);
    std::fs::rename(&temp, &conf).expect("rename");
    assert_eq!(fx.changed(&conf).await, FINISHED);
}

#[tokio::test]
async fn sed_in_place_is_complete() {
    let (mut fx, conf) = Fixture::watching(
        "kea-dhcp4.conf",
        r#"{ "Dhcp4": { "valid-lifetime": 4000 } }"#,
    );
    run(
        "sed",
        &["-i".as_ref(), "s/4000/8000/".as_ref(), conf.as_os_str()],
    );
    assert_eq!(fx.changed(&conf).await, FINISHED);
}

#[tokio::test]
async fn cp_over_is_complete() {
    let (mut fx, conf) = Fixture::watching("kea-dhcp4.conf", "{}");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let source = elsewhere.path().join("new.conf");
    write(&source, r#"{ "Dhcp4": {} }"#);
    run("cp", &[source.as_os_str(), conf.as_os_str()]);
    assert_eq!(fx.changed(&conf).await, FINISHED);
}

#[tokio::test]
async fn remove_then_recreate_is_complete() {
    let (mut fx, conf) = Fixture::watching("kea-dhcp4.conf", "{}");
    std::fs::remove_file(&conf).expect("remove");
    assert_eq!(
        fx.changed(&conf).await,
        UNFINISHED,
        "a removal alone is not complete"
    );
    write(&conf, r#"{ "Dhcp4": {} }"#);
    assert_eq!(fx.changed(&conf).await, FINISHED);
}

#[tokio::test]
async fn symlinked_config_sees_its_target_edited() {
    let mut fx = Fixture::new();
    std::fs::create_dir(fx.path("etc")).expect("mkdir");
    std::fs::create_dir(fx.path("srv")).expect("mkdir");
    let target = fx.path("srv/kea-dhcp4.conf");
    write(&target, "{}");
    let conf = fx.path("etc/kea-dhcp4.conf");
    symlink(&target, &conf).expect("symlink");
    fx.watch(&[&conf]);
    assert_eq!(
        fx.watcher.watched_dirs(),
        vec![fx.path("etc"), fx.path("srv")]
    );

    write(&target, r#"{ "Dhcp4": {} }"#);
    assert_eq!(
        fx.changed(&conf).await,
        FINISHED,
        "the signal names the watched link"
    );
}

#[tokio::test]
async fn configmap_data_swap_is_seen_and_followed() {
    let mut fx = Fixture::new();
    std::fs::create_dir(fx.path("..v1")).expect("mkdir");
    write(&fx.path("..v1/kea-dhcp4.conf"), "{}");
    symlink("..v1", fx.path("..data")).expect("symlink data");
    let conf = fx.path("kea-dhcp4.conf");
    symlink("..data/kea-dhcp4.conf", &conf).expect("symlink conf");
    fx.watch(&[&conf]);
    assert_eq!(
        fx.watcher.watched_dirs(),
        vec![fx.root.clone(), fx.path("..v1")]
    );

    // What the kubelet does: a new timestamped dir, then a rename of a new link over ..data.
    std::fs::create_dir(fx.path("..v2")).expect("mkdir");
    write(&fx.path("..v2/kea-dhcp4.conf"), r#"{ "Dhcp4": {} }"#);
    symlink("..v2", fx.path("..data_tmp")).expect("symlink data_tmp");
    std::fs::rename(fx.path("..data_tmp"), fx.path("..data")).expect("swap");
    assert_eq!(fx.changed(&conf).await, FINISHED);

    fx.watcher.refresh().expect("refresh");
    assert_eq!(
        fx.watcher.watched_dirs(),
        vec![fx.root.clone(), fx.path("..v2")]
    );
    std::fs::remove_dir_all(fx.path("..v1")).expect("remove old data");
    fx.quiet("the old data dir removed").await;

    write(
        &fx.path("..v2/kea-dhcp4.conf"),
        r#"{ "Dhcp4": { "a": 1 } }"#,
    );
    assert_eq!(fx.changed(&conf).await, FINISHED);
}

#[tokio::test]
async fn set_files_follows_the_include_set() {
    let (mut fx, conf) = Fixture::watching("kea-dhcp4.conf", "{}");
    let include = fx.path("subnets.json");
    write(&include, "[]");
    write(&include, "[ {} ]");
    fx.quiet("an include not yet in the set").await;

    fx.watch(&[&conf, &include]);
    write(&include, "[ {}, {} ]");
    assert_eq!(fx.changed(&include).await, FINISHED);

    fx.watch(&[&include]);
    write(&conf, r#"{ "Dhcp4": {} }"#);
    fx.quiet("a file dropped from the set").await;
    write(&include, "[]");
    assert_eq!(fx.changed(&include).await, FINISHED);
}

#[tokio::test]
async fn neighbours_and_reads_do_not_wake_the_agent() {
    let (mut fx, conf) = Fixture::watching("kea-dhcp4.conf", "{}");
    for name in [
        ".kea-dhcp4.conf.swp",
        "kea-dhcp4.conf~",
        "kea-leases4.csv",
        "kea-dhcp4.pid",
        "4913",
    ] {
        let path = fx.path(name);
        write(&path, "x");
        std::fs::rename(&path, fx.path("renamed")).expect("rename");
        std::fs::remove_file(fx.path("renamed")).expect("remove");
        fx.quiet(name).await;
    }
    std::fs::read_to_string(&conf).expect("read");
    fx.quiet("reading the config").await;
}

#[tokio::test]
async fn removed_directory_is_watched_again_after_refresh() {
    let (mut fx, conf) = Fixture::watching("etc/kea/kea-dhcp4.conf", "{}");
    let dir = fx.path("etc/kea");
    assert_eq!(fx.watcher.watched_dirs(), vec![dir.clone()]);

    std::fs::remove_dir_all(&dir).expect("remove dir");
    assert_eq!(fx.changed(&conf).await, UNFINISHED);
    fx.watcher.refresh().expect("refresh with the dir gone");
    assert!(fx.watcher.watched_dirs().is_empty());

    std::fs::create_dir_all(&dir).expect("mkdir again");
    write(&conf, "{ }");
    fx.watcher.refresh().expect("refresh with the dir back");
    assert_eq!(fx.watcher.watched_dirs(), vec![dir.clone()]);
    // Whatever happened while unwatched is reported once the directory is back.
    assert_eq!(fx.changed(&conf).await, UNFINISHED);

    write(&conf, r#"{ "Dhcp4": {} }"#);
    assert_eq!(fx.changed(&conf).await, FINISHED);
}

#[tokio::test]
async fn directory_recreated_before_refresh_is_watched_again() {
    let (mut fx, conf) = Fixture::watching("kea/kea-dhcp4.conf", "{}");
    let dir = fx.path("kea");

    // The same name may get the same inode number back; the watch must be renewed anyway.
    std::fs::remove_dir_all(&dir).expect("remove dir");
    std::fs::create_dir(&dir).expect("mkdir again");
    write(&conf, "{ }");
    fx.changed(&conf).await;
    fx.watcher.refresh().expect("refresh");

    write(&conf, r#"{ "Dhcp4": {} }"#);
    assert_eq!(fx.changed(&conf).await, FINISHED);
}

#[tokio::test]
async fn missing_directory_is_not_an_error() {
    let mut fx = Fixture::new();
    let conf = fx.path("later/kea-dhcp4.conf");
    fx.watch(&[&conf]);
    assert!(fx.watcher.watched_dirs().is_empty());

    std::fs::create_dir(fx.path("later")).expect("mkdir");
    write(&conf, "{}");
    fx.watcher.refresh().expect("refresh");
    assert_eq!(fx.watcher.watched_dirs(), vec![fx.path("later")]);
    fx.changed(&conf).await;

    write(&conf, r#"{ "Dhcp4": {} }"#);
    assert_eq!(fx.changed(&conf).await, FINISHED);
}

#[tokio::test]
async fn dropping_the_watcher_ends_the_signals() {
    let fx = Fixture::new();
    let Fixture {
        watcher,
        mut signals,
        ..
    } = fx;
    drop(watcher);
    let end = timeout(EXPECTED, signals.recv())
        .await
        .expect("ends in time");
    assert_eq!(end, None);
}
