//! Differential property: for generated config files in the whole dialect,
//! `dialect::expand_file` succeeds exactly when `kea-dhcp4 -t` accepts the
//! file; when both accept, the reader built the value the generator meant and
//! warned about as many extraneous commas as Kea did.
//!
//! Seeded and reproducible: DIALECT_PROPERTY_SEED (default fixed),
//! DIALECT_PROPERTY_CASES (default 600), DIALECT_PROPERTY_CASE=N runs only
//! case N, DIALECT_PROPERTY_KEEP=1 keeps the case directories. A failure
//! prints each disagreeing case with its files and the command to rerun it.

#[path = "../common/mod.rs"]
mod common;
mod generate;

use common::{kea_accepts, require_binary};
use kea_sync_agent::dialect::{self, Style};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

const DEFAULT_SEED: u64 = 0x6b65_615f_6469_616c;
const DEFAULT_CASES: usize = 600;

fn env_number(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    Some(parsed.unwrap_or_else(|e| panic!("{name}={text}: {e}")))
}

/// The seed of case `n`: independent of how many cases run, so one can be rerun alone.
fn case_seed(seed: u64, n: usize) -> u64 {
    generate::Rng::new(seed ^ (n as u64).wrapping_mul(0xA24B_AED4_963E_E407)).next_u64()
}

/// What one case came to, and the breakers it had.
enum Outcome {
    Agree {
        accepted: bool,
        breakers: Vec<&'static str>,
    },
    Disagree(String),
}

fn run_case(kea: &Path, seed: u64, n: usize, keep: bool) -> Outcome {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("dialect-property-{n}-"))
        .tempdir()
        .expect("tempdir");
    let dir = tmp.path();
    let case = generate::case(case_seed(seed, n), dir);
    for (name, bytes) in &case.files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, bytes).expect("write case file");
    }
    let main = dir.join(&case.files[0].0);
    let ours = dialect::expand_file(&main, dir, Style::Compact);
    let (kea_ok, kea_text) = kea_accepts(kea, &main, dir);

    let mut problems = Vec::new();
    match &ours {
        Ok(_) if !kea_ok => problems.push("expand accepts but kea-dhcp4 -t refuses".to_string()),
        Err(_) if kea_ok => problems.push("kea-dhcp4 -t accepts but expand refuses".to_string()),
        _ => {}
    }
    if let (Ok(expanded), true) = (&ours, kea_ok) {
        if case.tokens_intact {
            match expanded.to_value() {
                Ok(value) if value == case.expected => {}
                Ok(value) => problems.push(format!(
                    "expand built another value:\n  got  {value}\n  want {}",
                    case.expected
                )),
                Err(e) => problems.push(format!("expand wrote invalid JSON: {e}")),
            }
        }
        let kea_warnings = kea_text.matches("Extraneous comma").count();
        if expanded.warnings.len() != kea_warnings {
            problems.push(format!(
                "{} extraneous-comma warnings, Kea gave {kea_warnings}",
                expanded.warnings.len()
            ));
        }
    }
    if problems.is_empty() {
        if keep {
            eprintln!("case {n}: kept {}", tmp.keep().display());
        }
        return Outcome::Agree {
            accepted: kea_ok,
            breakers: case.breakers,
        };
    }

    let mut report = format!(
        "case {n}: {}\n  rerun: DIALECT_PROPERTY_SEED={seed:#x} DIALECT_PROPERTY_CASE={n} DIALECT_PROPERTY_KEEP=1 cargo test --test dialect_property\n  breakers: {:?}\n  expand: {}\n  kea-dhcp4 -t: {}\n",
        problems.join("; "),
        case.breakers,
        match &ours {
            Ok(expanded) => format!("accepted, {} warnings", expanded.warnings.len()),
            Err(e) => e.to_string(),
        },
        kea_summary(&kea_text),
    );
    for (name, bytes) in &case.files {
        report.push_str(&format!(
            "  --- {}\n{}\n",
            name.display(),
            String::from_utf8_lossy(bytes)
        ));
    }
    eprintln!("case {n}: kept {}", tmp.keep().display());
    Outcome::Disagree(report)
}

/// The line of Kea's output that says why, else its last line.
fn kea_summary(text: &str) -> String {
    text.lines()
        .find(|line| line.contains("failed with") || line.contains("Error"))
        .or_else(|| text.lines().last())
        .unwrap_or("")
        .to_string()
}

#[test]
fn expand_accepts_exactly_what_kea_dhcp4_accepts() {
    let kea = require_binary("kea-dhcp4");
    let seed = env_number("DIALECT_PROPERTY_SEED").unwrap_or(DEFAULT_SEED);
    let keep = std::env::var("DIALECT_PROPERTY_KEEP").is_ok_and(|v| v == "1");
    let cases: Vec<usize> = match env_number("DIALECT_PROPERTY_CASE") {
        Some(n) => vec![n as usize],
        None => {
            let count = env_number("DIALECT_PROPERTY_CASES").map_or(DEFAULT_CASES, |n| n as usize);
            (0..count).collect()
        }
    };

    // kea-dhcp4 -t takes ~25 ms: one worker per core.
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicUsize::new(0);
    let accepted = AtomicUsize::new(0);
    let disagreements = Mutex::new(Vec::new());
    // Per breaker: cases accepted and refused, to see the generator reaches them.
    let tally: Mutex<BTreeMap<&str, (usize, usize)>> = Mutex::new(BTreeMap::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(&n) = cases.get(next.fetch_add(1, Ordering::Relaxed)) {
                    match run_case(&kea, seed, n, keep) {
                        Outcome::Agree {
                            accepted: ok,
                            breakers,
                        } => {
                            accepted.fetch_add(usize::from(ok), Ordering::Relaxed);
                            let mut tally = tally.lock().expect("no worker panicked");
                            for breaker in breakers {
                                let counts = tally.entry(breaker).or_default();
                                if ok {
                                    counts.0 += 1;
                                } else {
                                    counts.1 += 1;
                                }
                            }
                        }
                        Outcome::Disagree(report) => disagreements
                            .lock()
                            .expect("no worker panicked")
                            .push((n, report)),
                    }
                }
            });
        }
    });
    let accepted = accepted.into_inner();
    let mut disagreements = disagreements.into_inner().expect("no worker panicked");
    disagreements.sort_by_key(|(n, _)| *n);
    eprintln!(
        "{} cases (seed {seed:#x}) in {:.1} s: {accepted} accepted by both, {} disagreements",
        cases.len(),
        started.elapsed().as_secs_f64(),
        disagreements.len()
    );
    for (breaker, (ok, refused)) in tally.into_inner().expect("no worker panicked") {
        eprintln!("  {breaker}: {ok} accepted, {refused} refused");
    }
    let shown: Vec<&str> = disagreements
        .iter()
        .take(5)
        .map(|(_, r)| r.as_str())
        .collect();
    assert!(
        disagreements.is_empty(),
        "{} of {} cases disagree (first {} below)\n{}",
        disagreements.len(),
        cases.len(),
        shown.len(),
        shown.join("\n")
    );
    if cases.len() >= 100 {
        // Both verdicts are common, so the property can fail either way.
        let share = accepted * 100 / cases.len();
        assert!(
            (30..=85).contains(&share),
            "{share}% of the cases were accepted: the generator is off balance"
        );
    }
}
