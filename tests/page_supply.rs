//! Issue 11, items 3 and 4: where the retire path's pages come from.
//! - A lane that runs dry grows its cache (its target grows at the next
//!   refill: straight to the max watermark), so a flood that outran the
//!   base cache finds pages once the target has caught up; an idle lane
//!   shrinks back to the base.
//! - `kvfree_rcu_mightsleep` with no page allocates one on the spot instead
//!   of waiting for a grace period; only when that allocation fails does it
//!   wait and free inline.
//!
//! Deterministic: one lane and a manual service (or a paused worker), so
//! the rounds happen exactly where the test calls them; no timing.

mod common;

use common::*;
use kvfree_rcu::{KvfreeRcu, Rcu};
use std::sync::Arc;

/// Records per page of one kind (`RECORDS_PER_PAGE` 502, less the
/// marker and kind the first record costs).
const PER_PAGE: usize = 500;

/// A lane's base target, in pages: the default high watermark.
const BASE: u64 = 8;

/// Headed retires in one burst: 40 pages' worth, more than the base cache
/// ([`BASE`] pages) and its open page hold.
const BURST: usize = 40 * PER_PAGE;

fn one_lane_manual_service() -> KvfreeRcu {
    KvfreeRcu::builder(Arc::new(Rcu::new()))
        .manual()
        .lanes(1)
        .build()
}

/// Retires `BURST` headed objects; returns how many took the head-list
/// fallback (no page).
fn burst(service: &KvfreeRcu, counter: &'static DropCounter) -> u64 {
    let before = service.stats().queued_heads;
    for i in 0..BURST {
        // SAFETY: from Box::leak, never published, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i as u64, counter)) };
    }
    service.stats().queued_heads - before
}

/// Regression test for issue 11 item 3: with fixed caches (before the
/// targets adapted) every burst overflowed the base cache and about
/// half of it fell back to the head list, every round, forever. Now the
/// lane's target grows after the burst that ran it dry, straight to the
/// max watermark, and the refill allocates the lane's share of its budget
/// (all of it: the lane is the only one), so the next burst fits: from
/// then on no call falls back.
#[test]
fn a_lane_that_runs_dry_grows_until_a_burst_fits() {
    let counter = DropCounter::leak();
    let service = one_lane_manual_service();
    let mut fallbacks = Vec::new();
    for _ in 0..6 {
        fallbacks.push(burst(&service, counter));
        service.run_once(); // refills, growing the lane that ran dry
    }
    let s = service.stats();
    assert!(
        fallbacks[0] > 0,
        "the first burst overflows the base cache: {fallbacks:?}"
    );
    assert_eq!(fallbacks[1..], [0, 0, 0, 0, 0], "{fallbacks:?}, {s:?}");
    assert_eq!(s.cache_target, kvfree_rcu::CACHE_CAPACITY as u64, "{s:?}");
    service.barrier();
    assert_eq!(counter.dropped(), 6 * BURST);
}

/// The other half of item 3: once the lane is idle, the rounds (one relax
/// step each: `run_once` stands for a drain interval) bring its target back
/// to the base and free the cached pages above it.
#[test]
fn an_idle_lane_shrinks_back_to_the_base() {
    let counter = DropCounter::leak();
    let service = one_lane_manual_service();
    for _ in 0..4 {
        burst(&service, counter);
        service.run_once();
    }
    let grown = service.stats();
    assert!(grown.cache_target > BASE, "{grown:?}");
    service.barrier();
    for _ in 0..8 {
        service.run_once(); // idle: no retire since the previous round
    }
    let s = service.stats();
    assert_eq!(s.cache_target, BASE, "{s:?}");
    assert!(s.pages_cached <= BASE, "{s:?}");
    assert!(s.pages_live < grown.pages_live, "pages were freed: {s:?}");
    assert_eq!(counter.dropped(), 4 * BURST);
}

/// Issue 11 item 4: with the worker paused and no page anywhere,
/// `kvfree_rcu_mightsleep` allocates pages on the spot: no call waits for a
/// grace period (none completes before the barrier) and none frees inline.
/// Before, each call that found no page waited for a grace period.
#[test]
fn mightsleep_allocates_a_page_instead_of_waiting_for_a_grace_period() {
    let _watchdog = Watchdog::arm("mightsleep_allocates_a_page_instead_of_waiting");
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    service.pause_worker();
    service.barrier(); // no open page (the drained pages go back to the caches)
    service.shrink(); // no cached page either
    let before = service.stats();
    let n = 10 * PER_PAGE;
    for i in 0..n {
        // SAFETY: from Box::leak, never published, retired once; ordinary context.
        unsafe { service.kvfree_rcu_mightsleep(Plain::boxed(i as u64, counter)) };
    }
    let s = service.stats();
    assert_eq!(s.freed_inline, 0, "{s:?}");
    assert_eq!(
        s.grace_periods, before.grace_periods,
        "nobody waited: {s:?}"
    );
    assert!(s.inline_page_allocs >= 10, "{s:?}");
    assert!(s.pages_allocated >= before.pages_allocated + 10, "{s:?}");
    assert_eq!(s.queued_pages - before.queued_pages, n as u64, "{s:?}");
    assert_eq!(counter.dropped(), 0, "nothing freed before a grace period");
    service.barrier();
    assert_eq!(counter.dropped(), n, "nothing lost");
    service.resume_worker();
}

/// Item 4's fallback: when the page allocation fails too, the call waits
/// for a grace period and frees the object inline; the next call, with
/// allocation working again, gets a page.
#[test]
fn mightsleep_waits_for_a_grace_period_only_when_the_allocation_fails() {
    let counter = DropCounter::leak();
    let service = one_lane_manual_service();
    service.barrier();
    service.shrink();
    service.inject_alloc_failures(1);
    // SAFETY: from Box::leak, never published, retired once; ordinary context.
    unsafe { service.kvfree_rcu_mightsleep(Plain::boxed(0, counter)) };
    let s = service.stats();
    assert_eq!((s.freed_inline, s.inline_page_allocs), (1, 0), "{s:?}");
    assert!(s.alloc_failures >= 1, "{s:?}");
    assert_eq!(counter.dropped(), 1, "freed inline after the grace period");
    // SAFETY: as above.
    unsafe { service.kvfree_rcu_mightsleep(Plain::boxed(1, counter)) };
    let s = service.stats();
    assert_eq!((s.freed_inline, s.inline_page_allocs), (1, 1), "{s:?}");
    service.barrier();
    assert_eq!(counter.dropped(), 2);
}

/// Pages a flood of `kvfree_rcu_mightsleep` brought come back past the
/// (fixed, one-page) cache into the reserve, and the next flood takes them
/// from there instead of allocating; `max_reserve(0)` frees them instead.
/// `shrink` empties the reserve.
#[test]
fn a_second_flood_reuses_the_first_floods_pages_from_the_reserve() {
    for reserve in [kvfree_rcu::DEFAULT_RESERVE, 0] {
        let counter = DropCounter::leak();
        let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
            .manual()
            .lanes(1)
            .low_watermark(1)
            .high_watermark(1)
            .max_watermark(1)
            .max_reserve(reserve)
            // Each page its own allocation, so that the counts are the
            // reserve's alone (a slab's rest would wait in the reserve).
            .slab_pages(1)
            .build();
        let n = 10 * PER_PAGE;
        let flood = |first: usize| {
            for i in first..first + n {
                // SAFETY: from Box::leak, never published, retired once;
                // ordinary context.
                unsafe { service.kvfree_rcu_mightsleep(Plain::boxed(i as u64, counter)) };
            }
            service.barrier();
        };
        flood(0);
        let first = service.stats();
        assert!(first.pages_allocated >= 10, "{first:?}");
        let kept = if reserve == 0 {
            0
        } else {
            first.pages_live - 1
        };
        assert_eq!(
            (first.pages_cached, first.pages_reserved),
            (1, kept),
            "{first:?}"
        );
        flood(n);
        let second = service.stats();
        if reserve == 0 {
            assert!(
                second.pages_allocated >= first.pages_allocated + 9,
                "{second:?}"
            );
            assert_eq!(second.reserve_reuses, 0, "{second:?}");
        } else {
            assert_eq!(second.pages_allocated, first.pages_allocated, "{second:?}");
            assert!(second.reserve_reuses >= 9, "{second:?}");
        }
        assert_eq!(counter.dropped(), 2 * n, "nothing lost");
        service.shrink();
        let s = service.stats();
        assert_eq!((s.pages_cached, s.pages_reserved), (0, 0), "{s:?}");
    }
}
