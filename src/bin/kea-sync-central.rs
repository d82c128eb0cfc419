//! kea-sync-central (placeholder until the central lands).
fn main() {}
