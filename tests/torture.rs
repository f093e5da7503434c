//! rcutorture for the service, the CI-sized run: readers with random delays,
//! updaters retiring through every call (some under a raw spinlock), and
//! concurrent `barrier()`/`shrink()`/`run_once()`, fault injection and
//! short-lived retiring threads; more threads than cores. Bounded by
//! iteration counts (scaled by `KVFREE_STRESS_SCALE`). The soak is
//! `cargo run --release --example torture -- --seconds 600`; the harness
//! (shared with it) documents every check.

#[path = "torture/harness.rs"]
mod harness;

#[test]
fn torture_readers_updaters_and_maintenance() {
    let config = harness::Config {
        readers: 4,
        updaters: 3,
        updates_per_updater: harness::stress_scale(if cfg!(debug_assertions) {
            150_000
        } else {
            600_000
        }),
        ..harness::Config::default()
    };
    let summary = harness::run(&config);
    println!("{summary}");
    assert!(summary.reads > 0, "readers ran");
    assert!(summary.updates >= 3 * config.updates_per_updater);
    let s = summary.stats;
    assert!(s.queued_pages > 0, "the fast path ran: {s:?}");
}

#[test]
fn torture_with_default_pool_and_more_readers() {
    // Larger caches that grow when they run dry and shrink back when idle
    // (the fast path dominates; `shrink()` and `run_once()` race the
    // growth), and a reader-heavy mix.
    let config = harness::Config {
        readers: 6,
        updaters: 2,
        updates_per_updater: harness::stress_scale(if cfg!(debug_assertions) {
            100_000
        } else {
            400_000
        }),
        low_watermark: 5,
        high_watermark: 10,
        max_watermark: kvfree_rcu::CACHE_CAPACITY,
        ..harness::Config::default()
    };
    let summary = harness::run(&config);
    println!("{summary}");
    assert!(summary.reads > 0);
}
