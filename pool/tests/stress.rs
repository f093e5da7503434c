//! Stress test: more producer threads than cores (so they migrate between
//! CPUs, and so between lanes, mid-stream) push tagged records of several
//! kinds while one consumer thread refills, seals open pages, takes sealed
//! pages, checks and recycles them, and lets idle caches shrink (`relax`,
//! which races the producers on the cache entries; in one run also `shrink`).
//! At the end every record must have arrived exactly once with its kind.
//!
//! Records are never dereferenced by the pool: each is an address encoding
//! `(producer, sequence number)`, made with `without_provenance_mut`.
//! Bounded by iteration counts; no timing assertions.

use core::ptr::{self, NonNull};
use kvfree_rcu_pool::{BusyLanes, Config, Kind, Pool};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::thread;

const KINDS: usize = 4;

fn record(producer: usize, seq: usize) -> NonNull<()> {
    NonNull::new(ptr::without_provenance_mut(
        ((producer << 32 | seq) + 1) * 8,
    ))
    .unwrap()
}

fn decode(ptr: NonNull<()>) -> (usize, usize) {
    let v = ptr.as_ptr().addr() / 8 - 1;
    (v >> 32, v & 0xffff_ffff)
}

fn kind(k: usize) -> Kind {
    Kind::new(NonNull::new(ptr::without_provenance_mut(4096 * (k + 1))).unwrap())
}

/// The kind of a record: runs of varying length, so pages mix kinds.
fn kind_of(producer: usize, seq: usize) -> Kind {
    kind((producer + seq / (1 + producer % 5)) % KINDS)
}

/// What the consumer does besides collecting, each round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Supply {
    /// Refill and relax.
    Adaptive,
    /// Refill, relax, and every few rounds `shrink` (memory pressure).
    Shrinking,
}

fn run(config: Config, producers: usize, per_producer: usize, supply: Supply) {
    let pool = Pool::new(config).unwrap();
    pool.refill().unwrap();
    let done = AtomicUsize::new(0);
    let retries = AtomicU64::new(0);
    let mut seen = vec![vec![0u8; per_producer]; producers];
    let mut kinds_ok = true;

    thread::scope(|s| {
        for p in 0..producers {
            let (pool, done, retries) = (&pool, &done, &retries);
            s.spawn(move || {
                for seq in 0..per_producer {
                    while pool.push(record(p, seq), kind_of(p, seq)).is_err() {
                        retries.fetch_add(1, Relaxed);
                        thread::yield_now();
                    }
                }
                done.fetch_add(1, Relaxed);
            });
        }
        // The consumer (this thread).
        let mut round = 0u64;
        let mut collect = |busy: BusyLanes| {
            round += 1;
            if supply == Supply::Shrinking && round % 16 == 0 {
                pool.shrink();
            }
            let _ = pool.refill(); // allocation failure is not expected, but harmless
            let mut pages = pool.take_sealed();
            pool.seal_open(&mut pages, busy);
            pages.for_each_record(|ptr, k| {
                let (p, seq) = decode(ptr);
                seen[p][seq] += 1;
                kinds_ok &= k == kind_of(p, seq);
            });
            pool.recycle(pages);
            pool.relax();
        };
        while done.load(Relaxed) < producers {
            collect(BusyLanes::Skip);
            thread::yield_now();
        }
        collect(BusyLanes::Wait);
    });

    assert!(kinds_ok, "a record came back with the wrong kind");
    for (p, counts) in seen.iter().enumerate() {
        if let Some(seq) = counts.iter().position(|&c| c != 1) {
            panic!("record ({p}, {seq}) arrived {} times", counts[seq]);
        }
    }
    let stats = pool.stats();
    assert_eq!(stats.records_pushed, (producers * per_producer) as u64);
    assert_eq!(stats.no_page, retries.load(Relaxed));
    eprintln!("{stats:?}, retries after NoPage: {}", retries.load(Relaxed));
}

#[test]
fn many_producers_one_consumer_default_config() {
    run(Config::default(), 8, 100_000, Supply::Adaptive);
}

/// Tiny fixed caches and more lanes than CPUs: producers run dry often, so
/// `NoPage`, refill and recycle race the pushes constantly.
#[test]
fn many_producers_tiny_caches() {
    let mut config = Config::default();
    (config.low_watermark, config.high_watermark, config.lanes) = (1, 2, Some(3));
    config.max_watermark = 2;
    run(config, 8, 50_000, Supply::Adaptive);
}

/// Tiny caches that grow (up to 8 pages), `relax` and `shrink` racing the
/// producers: targets go up and down all the time.
#[test]
fn many_producers_growing_and_shrinking_caches() {
    let mut config = Config::default();
    (config.low_watermark, config.high_watermark, config.lanes) = (1, 1, Some(3));
    config.max_watermark = 8.min(kvfree_rcu_pool::CACHE_CAPACITY);
    run(config, 8, 50_000, Supply::Shrinking);
}
