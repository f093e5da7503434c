//! `Parking`: pointers parked from any context are each retired exactly
//! once by `flush`, through a page or inline; a full parking hands the
//! pointer back; parking and flushing race safely.
#![cfg(not(kvfree_loom))]

mod common;

use common::*;
use kvfree_rcu::{KvfreeRcu, Parking, Rcu};
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn manual() -> KvfreeRcu {
    KvfreeRcu::builder(Rcu::global()).manual().build()
}

#[test]
fn flush_retires_through_a_page_when_one_is_available() {
    let counter = DropCounter::leak();
    let service = manual();
    let parking = Parking::with_capacity(4);
    for i in 0..4 {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { parking.park(Plain::boxed(i, counter)) }.expect("a free slot");
    }
    // SAFETY: as above.
    let back = unsafe { parking.park(Plain::boxed(9, counter)) }.expect_err("full");
    // SAFETY: handed back: ours, retired once.
    unsafe { service.kvfree_rcu_mightsleep(back) };
    assert_eq!(parking.flush(&service), 4);
    assert_eq!(service.stats().freed_inline, 0, "pages were available");
    service.barrier();
    assert_eq!(counter.dropped(), 5);
    assert_eq!(parking.flush(&service), 0, "nothing left");
}

#[test]
fn flush_allocates_a_page_or_frees_inline_when_no_page_is_available() {
    let counter = DropCounter::leak();
    let service = manual();
    let parking = Parking::with_capacity(3);
    let park_three = |first: u64| {
        for i in first..first + 3 {
            // SAFETY: from Box::leak, unpublished, retired once.
            unsafe { parking.park(Plain::boxed(i, counter)) }.expect("a free slot");
        }
    };
    park_three(0);
    // A manual service refills only in its rounds: none here. Empty the
    // caches and seal the open pages, so no page is left at all.
    service.barrier();
    service.shrink();
    // No page: the flush allocates one (ordinary context), no grace-period wait.
    assert_eq!(parking.flush(&service), 3);
    let s = service.stats();
    assert_eq!((s.freed_inline, s.inline_page_allocs), (0, 1), "{s:?}");
    service.barrier();
    assert_eq!(counter.dropped(), 3);
    // No page and the allocation fails: freed inline after a grace period.
    park_three(3);
    service.barrier();
    service.shrink();
    service.inject_alloc_failures(3);
    assert_eq!(parking.flush(&service), 3);
    assert_eq!(counter.dropped(), 6, "freed inline after a grace period");
    assert_eq!(service.stats().freed_inline, 3);
}

#[test]
#[should_panic(expected = "Parking::with_capacity(0)")]
fn zero_capacity_is_refused() {
    let _ = Parking::with_capacity(0);
}

/// Producers park and retire while a flusher flushes: every object is
/// dropped exactly once (the counter's poison check catches a double drop).
#[test]
fn parking_and_flushing_race_without_loss_or_double_free() {
    let watchdog = std::thread::spawn(|| {
        for _ in 0..600 {
            std::thread::sleep(std::time::Duration::from_millis(100));
            if DONE.load(Ordering::Relaxed) {
                return;
            }
        }
        eprintln!("parking race: no progress for 60 s");
        std::process::abort();
    });
    static DONE: AtomicBool = AtomicBool::new(false);
    let counter = DropCounter::leak();
    let service = Arc::new(
        KvfreeRcu::builder(Rcu::global())
            .low_watermark(1)
            .high_watermark(1)
            .max_watermark(1)
            .build(),
    );
    let parking = Arc::new(Parking::with_capacity(16));
    let stop = Arc::new(AtomicBool::new(false));
    let producers = 2;
    let per_producer = scaled(20_000) as u64;
    let flusher = {
        let (service, parking, stop) = (service.clone(), parking.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                parking.flush(&service);
                std::thread::yield_now();
            }
        })
    };
    let handles: Vec<_> = (0..producers)
        .map(|t| {
            let (service, parking) = (service.clone(), parking.clone());
            std::thread::spawn(move || {
                for i in 0..per_producer {
                    let mut p: NonNull<Plain> = Plain::boxed(t * per_producer + i, counter);
                    loop {
                        // SAFETY: from Box::leak, unpublished, retired once;
                        // Err hands it back.
                        match unsafe { parking.try_kvfree_rcu_or_park(&service, p) } {
                            Ok(()) => break,
                            Err(back) => {
                                p = back;
                                std::thread::yield_now();
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    flusher.join().unwrap();
    parking.flush(&service);
    service.barrier();
    assert_eq!(counter.dropped() as u64, producers * per_producer);
    DONE.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
}
