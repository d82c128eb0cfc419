//! The soak (issue #17, item 6): for `KEA_SOAK_MINUTES` minutes, random valid and invalid
//! edits of Kea's config file in random editor styles, while the central (the receiver)
//! goes away or fails for random spells; then the fault tests' invariant
//! ([`Rig::assert_invariant`], tests/common/rig.rs) and the counts. `scripts/soak MINUTES`
//! runs it (CI: 2, by hand: 60); `KEA_TEST_SEED=N` repeats a run's choices.
//!
//! Without `KEA_SOAK_MINUTES` (a plain `cargo test`) it is a short round that keeps the
//! soak itself working: every editor style once with a valid and once with an invalid
//! content, and one outage.

mod common;
#[path = "common/receiver.rs"]
mod receiver;
#[path = "common/rig.rs"]
mod rig;

use common::edit::Editor;
use common::rng::Rng;
use receiver::Answer;
use rig::{Content, Rig, RigOptions};
use std::collections::BTreeMap;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A pool outside its subnet, a string for a number, or not JSON at all.
const INVALID: [fn(u64) -> Content; 3] =
    [Content::PoolOutsideSubnet, Content::WrongType, Content::Cut];

/// What the soak did, for the closing lines.
#[derive(Default)]
struct Counts {
    edits: usize,
    valid: usize,
    invalid: usize,
    by_editor: BTreeMap<String, usize>,
    /// The receiver gone (connections refused) or answering 500, and for how long.
    outages: usize,
    outage_time: Duration,
}

/// A central outage under way.
struct Outage {
    ends: Instant,
    /// The receiver is gone (else it answers 500).
    away: bool,
    began: Instant,
}

/// How the soak goes: for a duration, or one short round.
enum Plan {
    For(Duration),
    /// Each editor style with each of these contents, in turn.
    Round(Vec<(Editor, bool)>),
}

#[test]
fn soak_random_edits_and_central_outages_end_with_the_invariant() {
    let plan = match std::env::var("KEA_SOAK_MINUTES") {
        Ok(text) => {
            let minutes: f64 = text
                .parse()
                .ok()
                .filter(|m: &f64| *m > 0.0)
                .unwrap_or_else(|| panic!("KEA_SOAK_MINUTES={text} is not a positive number"));
            Plan::For(Duration::from_secs_f64(minutes * 60.0))
        }
        Err(_) => {
            eprintln!(
                "soak: KEA_SOAK_MINUTES not set: one short round (scripts/soak MINUTES soaks)"
            );
            let round = Editor::ALL
                .iter()
                .flat_map(|&editor| [(editor, true), (editor, false)])
                .collect();
            Plan::Round(round)
        }
    };
    let mut rng = Rng::from_env("soak");
    let started = Instant::now();
    let mut rig = Rig::start(RigOptions {
        check_interval_s: 10,
        ..RigOptions::default()
    });
    rig.wait_started();
    let mut counts = Counts::default();
    // The short round has one outage of 3 s, from its 4th edit.
    let short = matches!(plan, Plan::Round(_));
    let mut outage: Option<Outage> = None;
    let mut next_outage = Instant::now() + rng.millis(2_000..20_000);
    for step in 0.. {
        let (editor, valid) = match &plan {
            Plan::For(duration) if started.elapsed() >= *duration => break,
            Plan::For(_) => (*rng.pick(&Editor::ALL), rng.percent(70)),
            Plan::Round(round) => match round.get(step) {
                Some(&pick) => pick,
                None => break,
            },
        };
        // The central: away, failing, or back, in spells of random length.
        let now = Instant::now();
        match outage.take() {
            Some(spell) if now >= spell.ends => {
                end_outage(&mut rig, &spell, &mut counts);
                next_outage = now + rng.millis(5_000..40_000);
            }
            Some(spell) => outage = Some(spell),
            None if (short && step == 3) || (!short && now >= next_outage) => {
                let away = short || rng.percent(70);
                if away {
                    rig.receiver.go_away();
                } else {
                    rig.receiver.set_answer(Answer::ServerError);
                }
                counts.outages += 1;
                let length = if short {
                    Duration::from_secs(3)
                } else {
                    rng.millis(1_000..20_000)
                };
                outage = Some(Outage {
                    ends: now + length,
                    away,
                    began: now,
                });
            }
            None => {}
        }

        let content: fn(u64) -> Content = if valid {
            Content::Valid
        } else {
            *rng.pick(&INVALID)
        };
        rig.write_new(content, editor);
        counts.edits += 1;
        if valid {
            counts.valid += 1;
        } else {
            counts.invalid += 1;
        }
        *counts.by_editor.entry(format!("{editor:?}")).or_default() += 1;
        // Now and then a burst (the agent coalesces), mostly time to act on each edit.
        let pause = if rng.percent(20) {
            rng.millis(0..60)
        } else {
            rng.millis(100..1_500)
        };
        sleep(pause);
        if counts.edits % 10 == 0 {
            // A reload in flight closes and reopens Kea's sockets within milliseconds: lost
            // means not back within a second.
            let deadline = Instant::now() + Duration::from_secs(1);
            while !rig.serving() && Instant::now() < deadline {
                sleep(Duration::from_millis(10));
            }
            assert!(
                rig.serving(),
                "after {} edits Kea (pid {}) no longer holds 127.0.0.1:{}/udp\n{}",
                counts.edits,
                rig.kea.pid(),
                rig.port,
                rig.context()
            );
        }
    }
    if let Some(spell) = outage.take() {
        end_outage(&mut rig, &spell, &mut counts);
    }
    // The soak ends on a valid file, which must go live.
    rig.write_new(Content::Valid, Editor::RenameOver);
    counts.edits += 1;
    counts.valid += 1;
    let tally = rig.assert_invariant();

    let minutes = started.elapsed().as_secs_f64() / 60.0;
    eprintln!(
        "soak: {minutes:.1} min; {} edits ({} valid, {} invalid); {} central outages ({:.0} s in all); \
         {} Kea reloads; {} events pushed",
        counts.edits,
        counts.valid,
        counts.invalid,
        counts.outages,
        counts.outage_time.as_secs_f64(),
        tally.kea_reloads,
        tally.stored,
    );
    eprintln!("soak: {tally}");
    eprintln!("soak: edits by editor style {:?}", counts.by_editor);
}

/// Brings the receiver back (or makes it accept again) and counts the spell.
fn end_outage(rig: &mut Rig, spell: &Outage, counts: &mut Counts) {
    if spell.away {
        rig.receiver.come_back();
    } else {
        rig.receiver.set_answer(Answer::Accept);
    }
    counts.outage_time += spell.began.elapsed();
}
