//! Each case edits the fleet's edited service's file one way and asserts what Kea runs
//! and how often it reloaded: exactly once per real edit, never for what is no edit,
//! and never a daemon whose files were not touched.

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{AgentOptions, FIRST, Fleet, KeaServer, QUIET, file_name, run, write_by_rename};
use crate::common::backdate;

/// A `#[test]` of every write-pattern case for `$fleet` (a [`Fleet`] expression), named
/// after the case: `write_pattern_tests!(Fleet::alone(Service::Dhcp4));`.
#[macro_export]
macro_rules! write_pattern_tests {
    ($fleet:expr) => {
        $crate::write_pattern_tests!(@each $fleet;
            in_place_write_reloads_once,
            write_paused_halfway_reloads_once_with_the_whole_file,
            rename_over_reloads_once,
            sed_in_place_reloads_once,
            cp_over_reloads_once,
            remove_and_recreate_reloads_once,
            symlinked_config_file_follows_edits_of_its_target,
            data_symlink_swap_reloads_once_per_swap,
            editing_an_included_file_reloads_once_per_edit,
            touch_and_identical_rewrite_do_not_reload,
            editor_swap_and_backup_files_do_not_reload,
            config_written_by_kea_itself_is_in_sync_without_a_reload,
            fifty_saves_in_a_second_coalesce_into_few_reloads,
            kea_restart_under_the_agent_causes_no_reload,
            fresh_agent_against_kea_running_the_file_does_not_reload,
        );
    };
    (@each $fleet:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::common::write_patterns::cases::$case(&$fleet);
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------
// How a file gets edited: each real edit is exactly one reload

pub fn in_place_write_reloads_once(fleet: &Fleet) {
    let f = fleet.start();
    fs::write(f.path(), f.text(4100)).expect("write in place");
    f.expect_live(4100, 1);
}

pub fn write_paused_halfway_reloads_once_with_the_whole_file(fleet: &Fleet) {
    let f = fleet.start();
    let text = f.text(4100);
    let (head, rest) = text.split_at(text.len() / 2);
    let mut file = fs::File::create(f.path()).expect("truncate");
    file.write_all(head.as_bytes())
        .expect("write the first half");
    file.flush().expect("flush");
    sleep(Duration::from_millis(300));
    file.write_all(rest.as_bytes()).expect("write the rest");
    drop(file);
    f.expect_live(4100, 1);
    f.expect_nothing_rejected("the half-written file");
}

pub fn rename_over_reloads_once(fleet: &Fleet) {
    let f = fleet.start();
    write_by_rename(f.path(), &f.text(4100));
    f.expect_live(4100, 1);
}

pub fn sed_in_place_reloads_once(fleet: &Fleet) {
    let f = fleet.start();
    let template = f.template();
    let script = format!("s/{}/{}/", template.line(FIRST), template.line(4100));
    run("sed", &["-i", "-e", &script, &f.path().to_string_lossy()]);
    f.expect_live(4100, 1);
}

pub fn cp_over_reloads_once(fleet: &Fleet) {
    let f = fleet.start();
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let source = elsewhere
        .path()
        .join(format!("{}.new", file_name(f.path())));
    fs::write(&source, f.text(4100)).expect("write the new file");
    run(
        "cp",
        &[&source.to_string_lossy(), &f.path().to_string_lossy()],
    );
    f.expect_live(4100, 1);
}

pub fn remove_and_recreate_reloads_once(fleet: &Fleet) {
    let f = fleet.start();
    fs::remove_file(f.path()).expect("remove");
    // Longer than the settle time: the agent looks while the file is missing.
    sleep(Duration::from_millis(200));
    fs::write(f.path(), f.text(4100)).expect("recreate");
    f.expect_live(4100, 1);
    f.expect_nothing_rejected("the missing file");
}

pub fn symlinked_config_file_follows_edits_of_its_target(fleet: &Fleet) {
    let links = tempfile::tempdir().expect("temp dir");
    let f = fleet.start_with(
        |template| template.standard(FIRST),
        |kea| {
            let link = links.path().join(file_name(&kea.config_path));
            symlink(&kea.config_path, &link).expect("symlink to Kea's config");
            link
        },
    );
    fs::write(f.path(), f.text(4100)).expect("edit the target in place");
    f.expect_live(4100, 1);
    write_by_rename(f.path(), &f.text(4200));
    f.expect_live(4200, 2);
}

/// Kubernetes ConfigMap layout: NAME -> ..data/NAME, ..data -> ..v1.
pub fn data_symlink_swap_reloads_once_per_swap(fleet: &Fleet) {
    let f = fleet.start_with(
        |template| template.standard(FIRST),
        |kea| {
            let dir = &kea.dir;
            let original = fs::read_to_string(&kea.config_path).expect("read Kea's config");
            backdate(&write_version(kea, "..v1", &original));
            symlink("..v1", dir.join("..data")).expect("..data -> ..v1");
            let target = Path::new("..data").join(file_name(&kea.config_path));
            symlink(target, dir.join("config.link")).expect("link");
            fs::rename(dir.join("config.link"), &kea.config_path).expect("link over");
            kea.config_path.clone()
        },
    );
    let swap = |old: &str, new: &str, text: &str| {
        let dir = &f.kea().dir;
        write_version(f.kea(), new, text);
        symlink(new, dir.join("..data_tmp")).expect("..data_tmp -> new version");
        fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap ..data");
        fs::remove_dir_all(dir.join(old)).expect("remove the old version");
    };
    swap("..v1", "..v2", &f.text(4100));
    f.expect_live(4100, 1);
    swap("..v2", "..v3", &f.text(4200));
    f.expect_live(4200, 2);
}

/// Writes `text` as `version`/NAME in Kea's dir (a ConfigMap version).
fn write_version(kea: &KeaServer, version: &str, text: &str) -> PathBuf {
    let version_dir = kea.dir.join(version);
    fs::create_dir(&version_dir).expect("create version dir");
    let file = version_dir.join(file_name(&kea.config_path));
    fs::write(&file, text).expect("write version file");
    file
}

pub fn editing_an_included_file_reloads_once_per_edit(fleet: &Fleet) {
    let includes = tempfile::tempdir().expect("temp dir");
    let include = includes.path().join("value.json");
    let including = |file: &Path| format!(r#"<?include "{}"?>"#, file.display());
    let f = fleet.start_with(
        |template| {
            fs::write(&include, template.line(FIRST)).expect("write include");
            backdate(&include);
            template.text(&including(&include))
        },
        |kea| kea.config_path.clone(),
    );
    let main = fs::read_to_string(f.path()).expect("read the main file");
    assert!(main.contains(&including(&include)), "{main}");
    let line = |value| f.template().line(value);

    fs::write(&include, line(4100)).expect("edit include");
    f.expect_live(4100, 1);
    write_by_rename(&include, &line(4200));
    f.expect_live(4200, 2);

    // A newly included file is watched from the reload that brought it in.
    let second = includes.path().join("value-2.json");
    fs::write(&second, line(4300)).expect("write second include");
    fs::write(f.path(), f.text_with(&including(&second))).expect("switch to the second include");
    f.expect_live(4300, 3);
    fs::write(&second, line(4400)).expect("edit the second include");
    f.expect_live(4400, 4);
}

// ---------------------------------------------------------------------------------------
// What is not an edit: no reload

pub fn touch_and_identical_rewrite_do_not_reload(fleet: &Fleet) {
    let f = fleet.start();
    run("touch", &[&f.path().to_string_lossy()]);
    f.expect_no_more_reloads(0);

    let unchanged = f.events("Unchanged").len();
    fs::write(f.path(), f.text(FIRST)).expect("identical rewrite");
    f.wait("the agent to look at the rewritten file", || {
        f.events("Unchanged").len() > unchanged
    });
    f.expect_no_more_reloads(0);

    fs::write(f.path(), f.text(4100)).expect("a real edit");
    f.expect_live(4100, 1);
}

pub fn editor_swap_and_backup_files_do_not_reload(fleet: &Fleet) {
    let f = fleet.start();
    let name = file_name(f.path());
    let dir = &f.kea().dir;
    fs::write(dir.join(format!(".{name}.swp")), b"b0VIM 9.0\0\0garbage").expect("swp");
    fs::write(dir.join(format!("{name}~")), f.text(4100)).expect("backup");
    f.expect_no_more_reloads(0);

    fs::write(f.path(), f.text(4200)).expect("a real edit");
    f.expect_live(4200, 1);
}

/// A central that does config-set + config-write (Stork, Micetro) leaves a file that Kea
/// already runs: the agent finds it in sync and does not reload (a reload restarts HA).
pub fn config_written_by_kea_itself_is_in_sync_without_a_reload(fleet: &Fleet) {
    let f = fleet.start();
    let key = f.template().service.config_key();
    let mut config = f.kea().command(r#"{"command":"config-get"}"#)["arguments"].clone();
    if let Some(top) = config.as_object_mut() {
        top.remove("hash"); // Kea 2.4+ adds it; config-set refuses it
    }
    config[key][f.template().key()] = json!(4100);
    let set = f
        .kea()
        .command(&json!({"command": "config-set", "arguments": config}).to_string());
    assert_eq!(set["result"], 0, "config-set: {set}");
    let write = f.kea().command(
        &json!({"command": "config-write", "arguments": {"filename": f.path()}}).to_string(),
    );
    assert_eq!(write["result"], 0, "config-write: {write}");
    f.wait("the agent to look at the file Kea wrote", || {
        f.events("InSync").len() >= 2
    });
    sleep(QUIET);
    f.accept_live(4100, 0);
    let in_sync = f.events("InSync");
    assert_eq!(in_sync.len(), 2, "{}", f.agent.log());
    assert!(
        in_sync[1].contains("in-memory config already is this content"),
        "{}",
        in_sync[1]
    );
}

// ---------------------------------------------------------------------------------------
// Bursts, Kea restarted, a fresh agent

pub fn fifty_saves_in_a_second_coalesce_into_few_reloads(fleet: &Fleet) {
    let f = fleet.start();
    // One save every 20 ms, alternately in place and by rename: 50 within a second.
    let started = Instant::now();
    for (i, value) in (5001..=5050).enumerate() {
        let text = f.text(value);
        if i % 2 == 0 {
            fs::write(f.path(), text).expect("write in place");
        } else {
            write_by_rename(f.path(), &text);
        }
        let next = started + Duration::from_millis(20) * (u32::try_from(i).expect("small") + 1);
        sleep(next.saturating_duration_since(Instant::now()));
    }
    f.wait("the last save live", || f.value() == Some(5050));
    f.wait("the agent to report it", || f.applied() >= 1);
    sleep(QUIET);
    let reloads = f.reloads();
    assert!(
        (1..=10).contains(&reloads),
        "50 saves gave {reloads} reloads\n{}",
        f.agent.log()
    );
    f.accept_live(5050, reloads);
}

pub fn kea_restart_under_the_agent_causes_no_reload(fleet: &Fleet) {
    // Re-check every second, so the agent gets to look after the restart.
    let mut f = fleet
        .clone()
        .options(AgentOptions {
            check_interval_s: 1,
            ..fleet.options
        })
        .start();
    let old_pid = f.kea().pid();
    f.kea_mut().restart();
    assert_ne!(f.kea().pid(), old_pid, "Kea should run as a new process");
    sleep(Duration::from_millis(1500));
    f.expect_no_more_reloads(0);

    fs::write(f.path(), f.text(4100)).expect("edit after the restart");
    f.expect_live(4100, 1);
}

pub fn fresh_agent_against_kea_running_the_file_does_not_reload(fleet: &Fleet) {
    // Fleet::start gives every agent a new, empty state dir.
    let f = fleet.start();
    f.expect_no_more_reloads(0);
    assert_eq!(
        f.kea().reload_count(),
        0,
        "no reload at all since Kea started"
    );
    assert_eq!(f.value(), Some(u64::from(FIRST)));
}

// ---------------------------------------------------------------------------------------
// Invalid content

/// The template's invalid body is refused by the validator: no reload, Kea keeps its
/// config; the fixed file then goes live with one reload.
pub fn invalid_edit_is_rejected_without_reload(fleet: &Fleet) {
    let f = fleet.start();
    let (body, kea_says) = f.template().invalid(4100);
    f.expect_rejected(&f.text_with(&body), kea_says);
    fs::write(f.path(), f.text(4100)).expect("fix");
    f.expect_live(4100, 1);
}
