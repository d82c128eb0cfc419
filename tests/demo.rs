//! scripts/demo as a new operator meets it (issue #18): it installs only what the demo needs
//! (never the tests' PostgreSQL or Chromium), prints the agent's events whole, with Kea's
//! reason for refusing the broken edit intact, and keeps the central's page up for the time
//! it states even when stdin is not a terminal.
//!
//! The demo runs with cargo's binaries (DEMO_BIN_DIR) and install-deps' test seams: a fake
//! apt-get that only records its calls, and the tests' packages forced missing.
#![cfg(feature = "central")]

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use tempfile::TempDir;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo");
const AGENT: &str = env!("CARGO_BIN_EXE_kea-sync-agent");
const CENTRAL: &str = env!("CARGO_BIN_EXE_kea-sync-central");
/// How long the demo keeps the page up here.
const KEEP: Duration = Duration::from_secs(3);
/// The whole demo (about 10 s on an idle host, without the build).
const TIMEOUT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_millis(50);

/// `GET /` on `base` (http://127.0.0.1:PORT): the status line.
fn get_page(base: &str) -> std::io::Result<String> {
    let address = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply.lines().next().unwrap_or_default().to_owned())
}

/// The page's address, from the demo's line "The fleet page: http://... stays up".
fn page_address(stdout: &str) -> Option<String> {
    let line = stdout
        .lines()
        .find(|line| line.starts_with("The fleet page: "))?;
    let address = line.split_whitespace().nth(3)?;
    line.contains("stays up").then(|| address.to_owned())
}

#[test]
fn the_demo_installs_none_of_the_tests_packages_prints_keas_refusal_whole_keeps_its_page_up() {
    let dir = TempDir::new().expect("temp dir");
    let apt = dir.path().join("apt-get");
    let calls = dir.path().join("apt-calls");
    fs::write(
        &apt,
        format!(
            "#!/bin/sh\n# Stands in for apt-get: records its calls, installs nothing.\n\
             echo \"$*\" >>'{}'\n",
            calls.display()
        ),
    )
    .expect("write the fake apt-get");
    fs::set_permissions(&apt, fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = Path::new(AGENT).parent().expect("cargo's bin dir");
    assert_eq!(
        Path::new(CENTRAL).parent(),
        Some(bin),
        "the agent and the central in different dirs"
    );
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");

    let started = Instant::now();
    let mut child = Command::new(SCRIPT)
        .env("DEMO_BIN_DIR", bin)
        .env("DEMO_KEEP_S", KEEP.as_secs().to_string())
        .env("INSTALL_DEPS_APT_GET", &apt)
        .env(
            "INSTALL_DEPS_FORCE_MISSING",
            "postgresql chromium fonts-dejavu-core",
        )
        .stdin(Stdio::null())
        .stdout(fs::File::create(&stdout_path).expect("stdout file"))
        .stderr(fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("run scripts/demo");
    let output = || {
        format!(
            "--- stdout\n{}--- stderr\n{}",
            fs::read_to_string(&stdout_path).unwrap_or_default(),
            fs::read_to_string(&stderr_path).unwrap_or_default()
        )
    };

    // Stdin is /dev/null, so no Enter can come: the page must stay up for KEEP all the same.
    let mut page = None;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the demo") {
            break status;
        }
        if page.is_none()
            && let Some(base) = page_address(&fs::read_to_string(&stdout_path).unwrap_or_default())
        {
            let said = Instant::now();
            page = Some((get_page(&base), said));
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo still runs after {TIMEOUT:?}\n{}", output());
        }
        sleep(POLL);
    };
    let ended = Instant::now();
    let out = output();
    assert!(status.success(), "scripts/demo: {status}\n{out}");

    assert_eq!(
        fs::read_to_string(&calls).ok(),
        None,
        "the demo ran apt-get (with the tests' packages forced missing, or this host lacks \
         one of `scripts/install-deps --for demo --list`)\n{out}"
    );

    // Kea's whole reason, on one line: the pool, the subnet's prefix and the place.
    let stdout = fs::read_to_string(&stdout_path).unwrap_or_default();
    let reason = stdout
        .lines()
        .find(|line| line.contains("does not match the prefix of a subnet"))
        .unwrap_or_else(|| panic!("no refusal reason in the demo's output\n{out}"));
    for part in [
        "198.51.100.10-198.51.100.200",
        "does not match the prefix of a subnet: 192.0.2.0/24",
        "subnets.inc:",
    ] {
        assert!(
            reason.contains(part),
            "the refusal's line lacks {part:?}: {reason:?}\n{out}"
        );
    }
    for outcome in ["applied", "rejected"] {
        assert!(
            stdout
                .lines()
                .any(|line| line.contains(&format!(" {outcome} at "))),
            "no {outcome} event in the demo's output\n{out}"
        );
    }
    assert!(
        !stdout.contains('\u{1b}'),
        "terminal escapes in redirected output\n{out}"
    );

    let (reply, said) =
        page.unwrap_or_else(|| panic!("the demo never said where its page is\n{out}"));
    let reply = reply.unwrap_or_else(|e| panic!("the page does not answer: {e}\n{out}"));
    assert!(reply.contains(" 200"), "GET /: {reply:?}\n{out}");
    // Up for KEEP after saying so (a little slack: the line is read by polling).
    assert!(
        ended.duration_since(said) + Duration::from_millis(500) >= KEEP,
        "the demo ended {:?} after announcing {KEEP:?} with stdin from /dev/null\n{out}",
        ended.duration_since(said)
    );
}
