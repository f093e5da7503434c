//! Loom models of the pool's protocol: every interleaving (up to the
//! preemption bound) of producers, the consumer's seal and take, the refiller
//! and recycle. Under loom a page holds `USABLE_RECORDS - 2` = 4 records of
//! one kind and a lane caches at most 2 pages, so a few pushes fill pages.
//!
//! Every model checks the same end-to-end property: each record whose push
//! returned `Ok` is delivered exactly once, with its kind; a record whose push
//! returned `NoPage` is never delivered. Loom also checks that no page field
//! is accessed by two parties without a happens-before edge between them
//! (the page cells are loom `UnsafeCell`s).
//!
//! Run: `RUSTFLAGS="--cfg kvfree_loom" LOOM_MAX_PREEMPTIONS=3 cargo test --release -p kvfree-rcu-pool --test loom`
#![cfg(kvfree_loom)]

use core::ptr::{self, NonNull};
use kvfree_rcu_pool::{BusyLanes, Config, Kind, PageList, Pool, USABLE_RECORDS, set_simulated_cpu};
use loom::sync::Arc;
use loom::thread;

/// Records of one kind that fit in a page.
const PER_PAGE: usize = USABLE_RECORDS - 2;

/// A never-dereferenced record tagged with its producer and sequence number.
fn record(producer: usize, seq: usize) -> NonNull<()> {
    NonNull::new(ptr::without_provenance_mut(
        ((producer << 16 | seq) + 1) * 8,
    ))
    .unwrap()
}

fn kind(k: usize) -> Kind {
    Kind::new(NonNull::new(ptr::without_provenance_mut(4096 * (k + 1))).unwrap())
}

/// A pool whose targets stay at `high`.
fn pool(lanes: usize, low: usize, high: usize) -> Arc<Pool> {
    growing_pool(lanes, low, high, high)
}

/// A pool whose targets start at `high` and may grow to `max`, each page
/// its own allocation (the models count pages, and a slab's rest would
/// wait in the reserve; slabs have their own model).
fn growing_pool(lanes: usize, low: usize, high: usize, max: usize) -> Arc<Pool> {
    let mut config = Config::default();
    (config.low_watermark, config.high_watermark, config.lanes) = (low, high, Some(lanes));
    config.max_watermark = max;
    config.slab_pages = 1;
    Arc::new(Pool::new(config).unwrap())
}

/// Two consumers free the two pages of one slab at once: one refill put
/// one page in the lane's cache and the other in the reserve, and both
/// threads `shrink`, each taking whatever page it finds first. Every page
/// is freed once, the slab with the last of them (its header's count:
/// `slab.rs`), whichever thread that is. Loom does not see the slab's
/// memory go back to the allocator, so the count's ordering is checked by
/// Miri instead (`slab.rs`'s unit test, two threads freeing at once).
#[test]
fn two_consumers_free_a_slabs_pages_at_once() {
    loom::model(|| {
        let mut config = Config::default();
        (config.low_watermark, config.high_watermark, config.lanes) = (1, 1, Some(1));
        (config.max_watermark, config.max_reserve, config.slab_pages) = (1, 0, 2);
        let pool = Arc::new(Pool::new(config).unwrap());
        assert_eq!(pool.refill(), Ok(1));
        let stats = pool.stats();
        assert_eq!(
            (
                stats.pages_allocated,
                stats.pages_cached,
                stats.pages_reserved
            ),
            (2, 1, 1)
        );
        let other = {
            let pool = pool.clone();
            thread::spawn(move || pool.shrink())
        };
        let freed = pool.shrink() + other.join().unwrap();
        // A shrink that found the reserve busy leaves its page there.
        let freed = freed + pool.shrink();
        assert_eq!(freed, 2);
        assert_eq!(pool.stats().pages_live, 0);
    });
}

/// Checks the cache and reserve counts are exact once everything is
/// quiescent: `shrink` takes every cached page out by swapping the entries,
/// and every reserved page out of the reserve, and must find as many as the
/// counts said.
fn assert_count_exact(pool: &Pool) {
    let stats = pool.stats();
    assert_eq!(
        pool.shrink() as u64,
        stats.pages_cached + stats.pages_reserved
    );
    let stats = pool.stats();
    assert_eq!((stats.pages_cached, stats.pages_reserved), (0, 0));
}

/// Pushes `count` records as `producer`, with the kind `kind_of(seq)`;
/// returns those that were stored.
fn produce(
    pool: &Pool,
    producer: usize,
    count: usize,
    kind_of: impl Fn(usize) -> Kind,
) -> Vec<(usize, Kind)> {
    let mut stored = Vec::new();
    for seq in 0..count {
        let (r, k) = (record(producer, seq), kind_of(seq));
        if pool.push(r, k).is_ok() {
            stored.push((r.as_ptr().addr(), k));
        }
    }
    stored
}

/// Drains `pages` into `into`.
fn drain(pages: &PageList, into: &mut Vec<(usize, Kind)>) {
    pages.for_each_record(|p, k| into.push((p.as_ptr().addr(), k)));
}

/// Takes everything left (sealed and open, waiting on busy lanes).
fn drain_all(pool: &Pool, into: &mut Vec<(usize, Kind)>) {
    let mut pages = pool.take_sealed();
    assert_eq!(pool.seal_open(&mut pages, BusyLanes::Wait), 0);
    drain(&pages, into);
    pool.recycle(pages);
}

/// Every stored record delivered exactly once, with its kind.
fn assert_exactly_once(mut stored: Vec<(usize, Kind)>, mut delivered: Vec<(usize, Kind)>) {
    stored.sort_by_key(|r| r.0);
    delivered.sort_by_key(|r| r.0);
    assert_eq!(stored, delivered);
}

/// Joins `producer`, adds what it stored to `stored`, takes everything
/// still in the pool into `delivered`, and checks that every stored record
/// came out exactly once.
fn join_drain_and_check(
    pool: &Pool,
    producer: thread::JoinHandle<Vec<(usize, Kind)>>,
    mut stored: Vec<(usize, Kind)>,
    mut delivered: Vec<(usize, Kind)>,
) {
    stored.extend(producer.join().unwrap());
    drain_all(pool, &mut delivered);
    assert_exactly_once(stored, delivered);
}

/// A producer preempted mid-push while the consumer seals without waiting:
/// the consumer either skips the BUSY lane or takes a page between pushes.
#[test]
fn seal_skips_a_producer_mid_push() {
    loom::model(|| {
        let pool = pool(1, 2, 2);
        pool.refill().unwrap();
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || produce(&pool, 0, PER_PAGE + 1, |_| kind(0)))
        };
        let mut delivered = Vec::new();
        let mut pages = pool.take_sealed();
        let skipped = pool.seal_open(&mut pages, BusyLanes::Skip);
        assert!(skipped <= 1);
        drain(&pages, &mut delivered);
        pool.recycle(pages);
        let stored = producer.join().unwrap();
        drain_all(&pool, &mut delivered);
        assert_exactly_once(stored, delivered);
    });
}

/// With `wait`, the consumer gets the open page once the producer lets go.
#[test]
fn seal_waits_for_a_producer_mid_push() {
    loom::model(|| {
        let pool = pool(1, 1, 1);
        pool.refill().unwrap();
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || produce(&pool, 0, 2, kind))
        };
        let mut delivered = Vec::new();
        let mut pages = PageList::new();
        assert_eq!(pool.seal_open(&mut pages, BusyLanes::Wait), 0);
        drain(&pages, &mut delivered);
        pool.recycle(pages);
        let stored = producer.join().unwrap();
        drain_all(&pool, &mut delivered);
        assert_exactly_once(stored, delivered);
    });
}

/// Two producers start on the same lane (one of them "migrated" there), with
/// different kinds; one of them migrates again between pushes. Both fill
/// pages, so both hand off concurrently, while the consumer takes sealed pages.
#[test]
fn two_producers_share_a_lane() {
    loom::model(|| {
        let pool = pool(2, 1, 2);
        pool.refill().unwrap();
        let a = {
            let pool = pool.clone();
            thread::spawn(move || {
                set_simulated_cpu(0);
                produce(&pool, 0, 2, |_| kind(0))
            })
        };
        let b = {
            let pool = pool.clone();
            thread::spawn(move || {
                set_simulated_cpu(0);
                let mut stored = produce(&pool, 1, 1, |_| kind(1));
                set_simulated_cpu(1);
                let r = record(1, 1);
                if pool.push(r, kind(1)).is_ok() {
                    stored.push((r.as_ptr().addr(), kind(1)));
                }
                stored
            })
        };
        let mut delivered = Vec::new();
        let pages = pool.take_sealed();
        drain(&pages, &mut delivered);
        pool.recycle(pages);
        let mut stored = a.join().unwrap();
        stored.extend(b.join().unwrap());
        drain_all(&pool, &mut delivered);
        assert_exactly_once(stored, delivered);
    });
}

/// Full pages from two lanes handed off at once (Treiber pushes racing each
/// other and the consumer's take-all).
#[test]
fn hand_offs_race_take_sealed() {
    loom::model(|| {
        let pool = pool(2, 1, 1);
        pool.refill().unwrap();
        // Fill both open pages up front so that one push each hands off.
        let mut stored = Vec::new();
        for (producer, cpu) in [(0, 0), (1, 1)] {
            set_simulated_cpu(cpu);
            stored.extend(produce(&pool, producer, PER_PAGE, |_| kind(producer)));
        }
        pool.refill().unwrap();
        let producers: Vec<_> = (0..2)
            .map(|producer| {
                let pool = pool.clone();
                thread::spawn(move || {
                    set_simulated_cpu(producer);
                    let r = record(producer, PER_PAGE);
                    pool.push(r, kind(producer))
                        .map(|_| (r.as_ptr().addr(), kind(producer)))
                })
            })
            .collect();
        let mut delivered = Vec::new();
        let pages = pool.take_sealed();
        drain(&pages, &mut delivered);
        pool.recycle(pages);
        for p in producers {
            stored.extend(p.join().unwrap());
        }
        drain_all(&pool, &mut delivered);
        assert_exactly_once(stored, delivered);
    });
}

/// A producer takes cached pages while the refiller puts new ones in.
#[test]
fn refill_races_a_producer_on_the_cache() {
    loom::model(|| {
        let pool = pool(1, 1, 2);
        pool.refill().unwrap();
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || produce(&pool, 0, PER_PAGE + 1, |_| kind(0)))
        };
        let refiller = {
            let pool = pool.clone();
            thread::spawn(move || pool.refill().unwrap())
        };
        let stored = producer.join().unwrap();
        // Below the low watermark a refill fills to the high one (2 here).
        assert!(refiller.join().unwrap() <= 2);
        // With the refill's page the producer never runs dry; without it
        // (the refill ran first) the last push may have failed.
        assert!(stored.len() >= PER_PAGE);
        let mut delivered = Vec::new();
        drain_all(&pool, &mut delivered);
        assert_exactly_once(stored, delivered);
        let stats = pool.stats();
        assert_eq!(
            stats.pages_live,
            stats.pages_cached + stats.pages_reserved + stats.pages_in_flight
        );
    });
}

/// Recycle puts a drained page back while a producer needs one.
#[test]
fn recycle_races_pushes() {
    loom::model(|| {
        let pool = pool(1, 1, 2);
        pool.refill().unwrap();
        let stored = produce(&pool, 0, PER_PAGE, |_| kind(0));
        let mut full = PageList::new();
        pool.seal_open(&mut full, BusyLanes::Wait);
        // The cache is empty now; the producer's pushes fail until recycle.
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || produce(&pool, 1, 2, |_| kind(1)))
        };
        let mut delivered = Vec::new();
        drain(&full, &mut delivered);
        pool.recycle(full);
        join_drain_and_check(&pool, producer, stored, delivered);
    });
}

/// A producer runs its lane dry while the refill looks at it: the refill
/// either sees the dry event (and grows the lane's target to 2) or not, and
/// its pages race the producer's next pop. Nothing is lost or doubled, and
/// the cache count is exact at the end.
#[test]
fn refill_grows_a_lane_a_producer_runs_dry() {
    loom::model(|| {
        let pool = growing_pool(1, 1, 1, 2);
        pool.refill().unwrap(); // filled to its target: armed
        // The cached page becomes the open page, and fills up.
        let stored = produce(&pool, 0, PER_PAGE, |_| kind(0));
        let producer = {
            let pool = pool.clone();
            // The first push finds the lane dry; the second may find the
            // refill's pages.
            thread::spawn(move || produce(&pool, 1, 2, |_| kind(1)))
        };
        let allocated = pool.refill().unwrap();
        let target = pool.stats().cache_target;
        assert!(
            (allocated, target) == (1, 1) || (allocated, target) == (2, 2),
            "{allocated} pages, target {target}"
        );
        join_drain_and_check(&pool, producer, stored, Vec::new());
        assert_count_exact(&pool);
    });
}

/// `relax` takes cached pages back (the lane looked idle) while a producer
/// starts pushing again and pops from the same cache: each page goes to
/// exactly one of them.
#[test]
fn relax_races_a_producer_on_the_cache() {
    loom::model(|| {
        let pool = growing_pool(1, 1, 1, 2);
        pool.refill().unwrap();
        let stored = produce(&pool, 0, PER_PAGE + 1, |_| kind(0)); // the last push finds it dry
        assert!(produce(&pool, 0, 1, |_| kind(0)).is_empty()); // still dry
        pool.refill().unwrap(); // grown to 2, filled
        assert_eq!(pool.stats().cache_target, 2);
        pool.relax(); // records the push count
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || produce(&pool, 1, PER_PAGE, |_| kind(1)))
        };
        // Idle unless the producer already pushed: halves to 1, frees one page.
        let freed = pool.relax();
        assert!(freed <= 1);
        join_drain_and_check(&pool, producer, stored, Vec::new());
        assert_count_exact(&pool);
    });
}

/// Pages go round through the reserve: a recycle puts a drained page past
/// the full cache into the reserve while two inline pushes take pages
/// (from the reserve, or newly allocated when it is empty or busy). Every
/// page has one owner at a time: loom's cells catch two parties touching
/// one page, the counts come out exact, and no record is lost.
#[test]
fn recycle_and_inline_pushes_share_the_reserve() {
    loom::model(|| {
        let pool = pool(1, 1, 1);
        pool.refill().unwrap();
        let mut stored = produce(&pool, 0, PER_PAGE, |_| kind(0)); // the open page is full
        pool.refill().unwrap(); // the cache is full again
        let mut pages = pool.take_sealed();
        pool.seal_open(&mut pages, BusyLanes::Wait);
        let mut delivered = Vec::new();
        drain(&pages, &mut delivered);
        let inline = |producer: usize| {
            let pool = pool.clone();
            thread::spawn(move || {
                let r = record(producer, 0);
                pool.push_with_new_page(r, kind(producer)).unwrap();
                vec![(r.as_ptr().addr(), kind(producer))]
            })
        };
        let (a, b) = (inline(1), inline(2));
        pool.recycle(pages); // past the full cache: into the reserve
        stored.extend(a.join().unwrap());
        stored.extend(b.join().unwrap());
        drain_all(&pool, &mut delivered);
        assert_exactly_once(stored, delivered);
        let stats = pool.stats();
        assert_eq!(
            stats.pages_live,
            stats.pages_cached + stats.pages_reserved + stats.pages_in_flight
        );
        assert_count_exact(&pool);
    });
}

/// A push that brings its own page races a producer on the same lane and
/// the consumer sealing it: the new page becomes the open page, or is
/// cached, or carries its record to the consumer alone.
#[test]
fn push_with_new_page_races_a_producer_and_seal() {
    loom::model(|| {
        let pool = pool(1, 1, 1);
        pool.refill().unwrap();
        let mut stored = produce(&pool, 0, PER_PAGE, |_| kind(0)); // the open page is full
        let allocating = {
            let pool = pool.clone();
            thread::spawn(move || {
                let r = record(1, 0);
                pool.push_with_new_page(r, kind(1)).unwrap();
                vec![(r.as_ptr().addr(), kind(1))]
            })
        };
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || produce(&pool, 2, 1, |_| kind(2)))
        };
        let mut delivered = Vec::new();
        let mut pages = pool.take_sealed();
        pool.seal_open(&mut pages, BusyLanes::Skip);
        drain(&pages, &mut delivered);
        pool.recycle(pages);
        stored.extend(allocating.join().unwrap());
        join_drain_and_check(&pool, producer, stored, delivered);
        assert_count_exact(&pool);
    });
}

/// Pushes `count` records as `producer` through a thread lane it claims
/// (and releases at the end if `release`); returns those that were stored.
fn produce_local(pool: &Pool, producer: usize, count: usize, release: bool) -> Vec<(usize, Kind)> {
    let lane = pool.claim_thread_lane();
    let mut stored = Vec::new();
    for seq in 0..count {
        let (r, k) = (record(producer, seq), kind(0));
        // SAFETY: claimed by this thread above, used by it alone.
        if unsafe { pool.push_local(lane, r, k) }.is_ok() {
            stored.push((r.as_ptr().addr(), k));
        }
    }
    if release {
        // SAFETY: claimed above, released once, not used afterwards.
        unsafe { pool.release_thread_lane(lane) };
    }
    stored
}

/// A thread lane's owner fills a page and switches to the next (a CAS on
/// its `open` word, a hand-off) while the consumer takes its open page and
/// waits for the owner's push to end (`thread_lane.rs`, "Why the consumer
/// may use `p`"): the store-buffering handshake, with loom's SeqCst fences
/// standing in for the compiler fence and `membarrier()`.
#[test]
fn a_thread_lane_push_races_the_consumer_taking_its_page() {
    loom::model(|| {
        let pool = pool(1, 2, 2);
        pool.refill().unwrap();
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || produce_local(&pool, 0, PER_PAGE + 1, false))
        };
        let mut delivered = Vec::new();
        let mut pages = pool.take_sealed();
        assert_eq!(pool.seal_open(&mut pages, BusyLanes::Wait), 0);
        drain(&pages, &mut delivered);
        pool.recycle(pages);
        let stored = producer.join().unwrap();
        drain_all(&pool, &mut delivered);
        assert_exactly_once(stored, delivered);
    });
}

/// The owner pushes and releases its lane (a CAS taking its page back)
/// while the consumer takes idle pages twice (`BusyLanes::Skip`): the page
/// reaches the consumer once, through the release or the take.
#[test]
fn a_thread_lane_release_races_the_consumer() {
    loom::model(|| {
        let pool = pool(1, 1, 1);
        pool.refill().unwrap();
        let producer = {
            let pool = pool.clone();
            thread::spawn(move || produce_local(&pool, 0, 2, true))
        };
        let mut delivered = Vec::new();
        for _ in 0..2 {
            let mut pages = pool.take_sealed();
            pool.seal_open(&mut pages, BusyLanes::Skip);
            drain(&pages, &mut delivered);
            pool.recycle(pages);
        }
        let stored = producer.join().unwrap();
        drain_all(&pool, &mut delivered);
        assert_exactly_once(stored, delivered);
    });
}
