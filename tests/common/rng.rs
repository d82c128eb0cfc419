//! A seeded pseudo-random source (SplitMix64) for the fault, soak and property tests: every run
//! prints its seed, and `KEA_TEST_SEED=N` repeats a run exactly (as far as timing allows).

use std::ops::Range;
use std::time::{Duration, SystemTime};

/// SplitMix64: tiny, fast and good enough to pick delays and edits.
pub struct Rng(u64);

impl Rng {
    /// Seeded with `seed`, for generators that derive their own seeds.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Seeded from `KEA_TEST_SEED`, else from the clock; the seed is printed for `what`.
    pub fn from_env(what: &str) -> Rng {
        let seed = match std::env::var("KEA_TEST_SEED") {
            Ok(text) => text
                .parse()
                .unwrap_or_else(|_| panic!("KEA_TEST_SEED={text} is not a number")),
            Err(_) => SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1),
        };
        eprintln!("{what}: seed {seed} (KEA_TEST_SEED={seed} repeats it)");
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `range` (which must not be empty).
    pub fn in_range(&mut self, range: Range<u64>) -> u64 {
        assert!(!range.is_empty(), "Rng::in_range: empty range {range:?}");
        range.start + self.next_u64() % (range.end - range.start)
    }

    /// True `percent` times in a hundred.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.in_range(0..100) < percent
    }

    /// A duration of `millis` milliseconds.
    pub fn millis(&mut self, millis: Range<u64>) -> Duration {
        Duration::from_millis(self.in_range(millis))
    }

    /// A number in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.in_range(0..n as u64) as usize
    }

    /// One of `items` (which must not be empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let at = self.in_range(0..items.len() as u64) as usize;
        &items[at]
    }
}
