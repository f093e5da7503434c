//! The torture harness shared by `tests/torture.rs` (short, bounded by
//! iteration counts, run by CI) and `examples/torture.rs` (a soak bounded by
//! wall-clock time).
//!
//! In the style of the kernel's rcutorture: an RCU-protected table holds
//! objects of four types and sizes; readers traverse it inside read-side
//! critical sections with random delays (spins, `yield_now`, nested
//! sections); updaters replace elements and retire the old ones through
//! every retire call of the service (headed `kvfree_rcu`, `try_kvfree_rcu`
//! falling back to `kvfree_rcu_mightsleep`, `kvfree_rcu_with` with a custom
//! free function, some of them under a `RawSpinLock`); a maintenance thread
//! calls `barrier()`, `shrink()` and `run_once()`, injects page-allocation
//! failures and spawns short-lived threads that retire and exit. There are
//! more threads than cores.
//!
//! Each object carries:
//! - a `magic` word, `ALIVE` until its `Drop` swaps in `POISON` (a second
//!   drop sees `POISON` and fails the run: "freed exactly once");
//! - a payload whose first and last words both hold the object's id (a torn
//!   or reused object fails the check);
//! - its *pipeline age* origin: the domain's epoch, read after the unlink and
//!   a `SeqCst` fence, stored when the updater removes it. A reader that sees
//!   the object computes `age = epoch_now - removed_epoch`. rcutorture's rule
//!   holds here: while a reader that found the object is still inside its
//!   critical section, at most one epoch step can complete after the unlink
//!   (the design's `get_state() = epoch + 2` argument), so an age of 2 or
//!   more means a grace period ended under a reader: the run fails.
//!
//! Per-type counters (created, retired, dropped) prove that every object
//! retired was freed exactly once once the final `barrier()` returns.
#![allow(dead_code, unreachable_pub, missing_docs)]

use kvfree_rcu::{KvfreeRcu, RawSpinLock, Rcu, RcuHead, impl_rcu_headed};
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering, fence};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

pub const ALIVE: u64 = 0x5AFE_0B1E_C7A1_1CE5;
pub const POISON: u64 = 0xDEAD_F1EE_DEAD_F1EE;
/// `removed_epoch` of an object still linked in the table.
const LINKED: u64 = u64::MAX;
/// Ages a reader can observe: 0, 1, and "2 or more" (a failure).
const AGES: usize = 3;

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub readers: usize,
    pub updaters: usize,
    /// Replacements per updater (the CI bound); ignored when `duration` is set.
    pub updates_per_updater: u64,
    /// Run for this long instead (the soak).
    pub duration: Option<Duration>,
    /// Elements per type in the table.
    pub slots: usize,
    /// Small per-CPU caches, so floods run the fallbacks often.
    pub low_watermark: usize,
    pub high_watermark: usize,
    /// Print a progress line every this many seconds (soak only).
    pub progress: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            readers: 4,
            updaters: 3,
            updates_per_updater: 20_000,
            duration: None,
            slots: 16,
            low_watermark: 2,
            high_watermark: 4,
            progress: None,
        }
    }
}

/// Scales an iteration count by `KVFREE_STRESS_SCALE` (a float, default 1;
/// the sanitizer scripts set it below 1).
pub fn stress_scale(n: u64) -> u64 {
    let scale = std::env::var("KVFREE_STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.0);
    ((n as f64 * scale) as u64).max(1)
}

/// Per-type counters.
#[derive(Debug, Default)]
pub struct Counts {
    pub created: AtomicU64,
    pub retired: AtomicU64,
    pub dropped: AtomicU64,
}

/// What every torture object starts with.
pub struct Header {
    magic: AtomicU64,
    removed_epoch: AtomicU64,
    id: u64,
    counts: &'static Counts,
}

impl Header {
    fn new(id: u64, counts: &'static Counts) -> Header {
        counts.created.fetch_add(1, Ordering::Relaxed);
        Header {
            magic: AtomicU64::new(ALIVE),
            removed_epoch: AtomicU64::new(LINKED),
            id,
            counts,
        }
    }
}

impl Drop for Header {
    fn drop(&mut self) {
        let was = self.magic.swap(POISON, Ordering::Relaxed);
        if was != ALIVE {
            fail(&format!(
                "object {} dropped twice (magic {was:#x})",
                self.id
            ));
        }
        self.counts.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// An object of the table: a header and `N` payload words.
pub trait Object: Send + Sync + 'static {
    fn header(&self) -> &Header;
    fn payload(&self) -> &[u64];
}

macro_rules! object {
    ($name:ident, $words:expr, headed) => {
        pub struct $name {
            hdr: Header,
            payload: [u64; $words],
            head: RcuHead,
        }
        impl_rcu_headed!($name, head);
        impl $name {
            fn boxed(id: u64, counts: &'static Counts) -> *mut $name {
                Box::into_raw(Box::new($name { hdr: Header::new(id, counts), payload: [id; $words], head: RcuHead::new() }))
            }
        }
        object!(@impl $name);
    };
    ($name:ident, $words:expr) => {
        pub struct $name {
            hdr: Header,
            payload: [u64; $words],
        }
        impl $name {
            fn boxed(id: u64, counts: &'static Counts) -> *mut $name {
                Box::into_raw(Box::new($name { hdr: Header::new(id, counts), payload: [id; $words] }))
            }
        }
        object!(@impl $name);
    };
    (@impl $name:ident) => {
        impl Object for $name {
            fn header(&self) -> &Header {
                &self.hdr
            }
            fn payload(&self) -> &[u64] {
                &self.payload
            }
        }
    };
}

// 16 B, 64 B and 1 KiB payloads; headed and head-less.
object!(Small, 2, headed);
object!(Medium, 8);
object!(Large, 128, headed);
object!(Custom, 4);

/// The free function `kvfree_rcu_with` is given for `Custom` objects.
///
/// # Safety
/// `p` came from `Custom::boxed` and is freed once.
unsafe fn free_custom(p: NonNull<()>) {
    // SAFETY: contract above.
    drop(unsafe { Box::from_raw(p.cast::<Custom>().as_ptr()) });
}

/// Records that a reader failed; panics (the test fails, the example exits 1).
pub fn fail(msg: &str) -> ! {
    FAILED.store(true, Ordering::SeqCst);
    panic!("torture: FAILURE: {msg}");
}
static FAILED: AtomicBool = AtomicBool::new(false);

/// A small xorshift generator: deterministic per thread, no allocation.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random short delay inside a read-side critical section, as rcutorture's
/// readers do: mostly nothing, sometimes a spin, sometimes a yield (which,
/// with more threads than cores, gets the reader preempted).
fn read_delay(rng: &mut Rng) {
    match rng.below(64) {
        0..=1 => std::thread::yield_now(),
        2..=9 => (0..rng.below(256)).for_each(|_| std::hint::spin_loop()),
        _ => {}
    }
}

struct Table {
    small: Vec<AtomicPtr<Small>>,
    medium: Vec<AtomicPtr<Medium>>,
    large: Vec<AtomicPtr<Large>>,
    custom: Vec<AtomicPtr<Custom>>,
}

/// The per-type counters of one run.
pub struct TypeCounts {
    pub small: &'static Counts,
    pub medium: &'static Counts,
    pub large: &'static Counts,
    pub custom: &'static Counts,
}

impl TypeCounts {
    fn all(&self) -> [(&'static str, &'static Counts); 4] {
        [
            ("small/headed", self.small),
            ("medium/plain", self.medium),
            ("large/headed", self.large),
            ("custom/with", self.custom),
        ]
    }
}

struct Shared {
    rcu: Arc<Rcu>,
    service: KvfreeRcu,
    table: Table,
    counts: TypeCounts,
    /// Updaters take it to replace `large` elements: retiring under a raw
    /// spinlock is what the service is for.
    writer_lock: RawSpinLock<()>,
    next_id: AtomicU64,
    stop_readers: AtomicBool,
    stop_updaters: AtomicBool,
    reads: AtomicU64,
    updates: AtomicU64,
    ages: [AtomicU64; AGES],
    inline_frees: AtomicU64,
    barriers: AtomicU64,
    shrinks: AtomicU64,
    short_threads: AtomicU64,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub elapsed: Duration,
    pub readers: usize,
    pub updaters: usize,
    pub reads: u64,
    pub updates: u64,
    /// Reader observations by pipeline age: [0, 1, >=2]. The last must be 0.
    pub ages: [u64; AGES],
    /// (type, created, retired, dropped) per type.
    pub per_type: Vec<(&'static str, u64, u64, u64)>,
    pub stats: kvfree_rcu::Stats,
    pub inline_frees: u64,
    pub barriers: u64,
    pub shrinks: u64,
    pub short_threads: u64,
    pub uses_membarrier: bool,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.stats;
        writeln!(
            f,
            "torture: {:.1} s, {} readers, {} updaters, membarrier: {}",
            self.elapsed.as_secs_f64(),
            self.readers,
            self.updaters,
            self.uses_membarrier
        )?;
        writeln!(f, "  reads: {}  updates: {}", self.reads, self.updates)?;
        writeln!(
            f,
            "  reader pipeline ages: 0: {}  1: {}  >=2 (failures): {}",
            self.ages[0], self.ages[1], self.ages[2]
        )?;
        for (name, created, retired, dropped) in &self.per_type {
            writeln!(
                f,
                "  {name:<13} created {created:>10}  retired {retired:>10}  dropped {dropped:>10}"
            )?;
        }
        writeln!(
            f,
            "  service: queued_pages {}  queued_heads {}  try_failed {}  freed {}  freed_inline {}  (harness inline frees {})",
            s.queued_pages,
            s.queued_heads,
            s.try_failed,
            s.freed,
            s.freed_inline,
            self.inline_frees
        )?;
        writeln!(
            f,
            "  pages: allocated {}  live {}  alloc_failures {}  refill_requests {}  batches {}  worker_wakeups {}",
            s.pages_allocated,
            s.pages_live,
            s.alloc_failures,
            s.refill_requests,
            s.batches,
            s.worker_wakeups
        )?;
        write!(
            f,
            "  epochs advanced: {}  barriers: {}  shrinks: {}  short-lived retiring threads: {}",
            s.grace_periods, self.barriers, self.shrinks, self.short_threads
        )
    }
}

impl Shared {
    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Checks one object a reader found; returns its pipeline age (0, 1, 2+).
    fn check(&self, obj: &dyn Object) -> usize {
        let h = obj.header();
        let magic = h.magic.load(Ordering::Relaxed);
        if magic != ALIVE {
            fail(&format!("reader saw a freed object (magic {magic:#x})"));
        }
        let p = obj.payload();
        if p[0] != h.id || p[p.len() - 1] != h.id {
            fail(&format!(
                "reader saw a torn or reused object: id {} payload {} .. {}",
                h.id,
                p[0],
                p[p.len() - 1]
            ));
        }
        let removed = h.removed_epoch.load(Ordering::Relaxed);
        if removed == LINKED {
            return 0;
        }
        // Relaxed: a stale epoch only makes the age smaller (never a false failure).
        let age = self.rcu.grace_periods().saturating_sub(removed) as usize;
        if age >= 2 {
            self.ages[2].fetch_add(1, Ordering::Relaxed);
            fail(&format!(
                "pipeline age {age}: a grace period ended while a reader held object {}",
                h.id
            ));
        }
        age.min(1)
    }

    fn reader(&self, seed: u64) {
        self.rcu.register_current_thread().expect("reader slot");
        let mut rng = Rng::new(seed);
        let mut reads = 0;
        let mut ages = [0u64; AGES];
        while !self.stop_readers.load(Ordering::Relaxed) {
            let guard = self.rcu.read_lock();
            for _ in 0..4 {
                let i = rng.below(self.table.small.len() as u64) as usize;
                let nested = (rng.below(16) == 0).then(|| self.rcu.read_lock());
                // Loaded inside our read-side critical section; updaters
                // retire only after unlinking, so the object is not freed
                // before `guard` drops.
                let obj: &dyn Object = match rng.below(4) {
                    // SAFETY: see above.
                    0 => unsafe { &*self.table.small[i].load(Ordering::Acquire) },
                    // SAFETY: see above.
                    1 => unsafe { &*self.table.medium[i].load(Ordering::Acquire) },
                    // SAFETY: see above.
                    2 => unsafe { &*self.table.large[i].load(Ordering::Acquire) },
                    // SAFETY: see above.
                    _ => unsafe { &*self.table.custom[i].load(Ordering::Acquire) },
                };
                ages[self.check(obj)] += 1;
                read_delay(&mut rng);
                // Check again after the delay: still alive, still young.
                ages[self.check(obj)] += 1;
                drop(nested);
            }
            drop(guard);
            reads += 1;
        }
        self.reads.fetch_add(reads, Ordering::Relaxed);
        for (total, n) in self.ages.iter().zip(ages) {
            total.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Stamps a just-unlinked object with the epoch its pipeline age counts from.
    fn mark_removed(&self, h: &Header) {
        // SeqCst fence: orders the unlink before the epoch load, as
        // `Rcu::get_state` does (pairs with the readers' light barrier and the
        // advancers' heavy one).
        fence(Ordering::SeqCst);
        h.removed_epoch
            .store(self.rcu.grace_periods(), Ordering::Relaxed);
        h.counts.retired.fetch_add(1, Ordering::Relaxed);
    }

    fn update_once(&self, rng: &mut Rng) {
        let i = rng.below(self.table.small.len() as u64) as usize;
        let id = self.id();
        match rng.below(4) {
            0 => {
                let old =
                    self.table.small[i].swap(Small::boxed(id, self.counts.small), Ordering::AcqRel);
                // SAFETY: `old` is a live table element we just unlinked.
                self.mark_removed(unsafe { &(*old).hdr });
                // SAFETY: from Box::into_raw, unlinked above, retired once.
                unsafe { self.service.kvfree_rcu(NonNull::new(old).unwrap()) };
            }
            1 => {
                let old = self.table.medium[i]
                    .swap(Medium::boxed(id, self.counts.medium), Ordering::AcqRel);
                // SAFETY: as above.
                self.mark_removed(unsafe { &(*old).hdr });
                // SAFETY: as above; on Err the object is ours again and this
                // is ordinary context, so the sleeping variant retires it.
                if let Err(old) = unsafe { self.service.try_kvfree_rcu(NonNull::new(old).unwrap()) }
                {
                    // SAFETY: Err handed ownership back; retired once.
                    unsafe { self.service.kvfree_rcu_mightsleep(old) };
                }
            }
            2 => {
                let new = Large::boxed(id, self.counts.large); // allocate outside the lock
                let _locked = self.writer_lock.lock();
                let old = self.table.large[i].swap(new, Ordering::AcqRel);
                // SAFETY: as above.
                self.mark_removed(unsafe { &(*old).hdr });
                // SAFETY: as above; the headed call never fails, so it is the
                // one to use under a raw spinlock.
                unsafe { self.service.kvfree_rcu(NonNull::new(old).unwrap()) };
            }
            _ => {
                let new = Custom::boxed(id, self.counts.custom);
                let rejected = {
                    let _locked = self.writer_lock.lock();
                    let old = self.table.custom[i].swap(new, Ordering::AcqRel);
                    // SAFETY: as above.
                    self.mark_removed(unsafe { &(*old).hdr });
                    // SAFETY: `free_custom` frees a `Custom` box, once; unlinked above.
                    unsafe {
                        self.service
                            .kvfree_rcu_with(NonNull::new(old).unwrap().cast(), free_custom)
                    }
                    .err()
                };
                if let Some(old) = rejected {
                    // No page: after the lock, wait a grace period and free inline.
                    self.rcu.synchronize();
                    // SAFETY: a `Custom` box, unlinked a grace period ago, freed once.
                    unsafe { free_custom(old) };
                    self.inline_frees.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if rng.below(64) == 0 {
            std::thread::yield_now();
        }
    }

    fn updater(&self, seed: u64, limit: u64) {
        let mut rng = Rng::new(seed);
        let mut n = 0;
        while n < limit && !self.stop_updaters.load(Ordering::Relaxed) {
            self.update_once(&mut rng);
            n += 1;
        }
        self.updates.fetch_add(n, Ordering::Relaxed);
    }

    fn maintenance(self: &Arc<Self>, seed: u64) {
        let mut rng = Rng::new(seed);
        while !self.stop_readers.load(Ordering::Relaxed) {
            match rng.below(16) {
                0..=3 => {
                    self.service.barrier();
                    self.barriers.fetch_add(1, Ordering::Relaxed);
                }
                4 => {
                    self.service.shrink();
                    self.shrinks.fetch_add(1, Ordering::Relaxed);
                }
                5 => self.service.inject_alloc_failures(2),
                6..=7 => {
                    // A thread that retires a few objects and exits at once:
                    // nothing it queued may be stranded.
                    let me = self.clone();
                    std::thread::spawn(move || {
                        let mut rng = Rng::new(seed ^ 0xABCD);
                        for _ in 0..8 {
                            me.update_once(&mut rng);
                        }
                        me.updates.fetch_add(8, Ordering::Relaxed);
                    })
                    .join()
                    .expect("short-lived updater");
                    self.short_threads.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    self.service.run_once();
                }
            }
            std::thread::sleep(Duration::from_micros(rng.below(2_000)));
        }
    }
}

/// Runs one torture session; panics on any failure, returns the summary.
pub fn run(config: &Config) -> Summary {
    let rcu = Arc::new(Rcu::new());
    let service = KvfreeRcu::builder(rcu.clone())
        .low_watermark(config.low_watermark)
        .high_watermark(config.high_watermark)
        .build();
    let counts = TypeCounts {
        small: Box::leak(Box::default()),
        medium: Box::leak(Box::default()),
        large: Box::leak(Box::default()),
        custom: Box::leak(Box::default()),
    };
    let mut id = 0;
    let mut next = || {
        id += 1;
        id
    };
    let table = Table {
        small: (0..config.slots)
            .map(|_| AtomicPtr::new(Small::boxed(next(), counts.small)))
            .collect(),
        medium: (0..config.slots)
            .map(|_| AtomicPtr::new(Medium::boxed(next(), counts.medium)))
            .collect(),
        large: (0..config.slots)
            .map(|_| AtomicPtr::new(Large::boxed(next(), counts.large)))
            .collect(),
        custom: (0..config.slots)
            .map(|_| AtomicPtr::new(Custom::boxed(next(), counts.custom)))
            .collect(),
    };
    let shared = Arc::new(Shared {
        rcu,
        service,
        table,
        counts,
        writer_lock: RawSpinLock::new(()),
        next_id: AtomicU64::new(1 << 32),
        stop_readers: AtomicBool::new(false),
        stop_updaters: AtomicBool::new(false),
        reads: AtomicU64::new(0),
        updates: AtomicU64::new(0),
        ages: Default::default(),
        inline_frees: AtomicU64::new(0),
        barriers: AtomicU64::new(0),
        shrinks: AtomicU64::new(0),
        short_threads: AtomicU64::new(0),
    });

    let go = Arc::new(Barrier::new(config.readers + config.updaters + 2));
    let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
        let go = go.clone();
        std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                go.wait();
                f()
            })
            .expect("spawn")
    };
    let readers: Vec<_> = (0..config.readers)
        .map(|r| {
            let s = shared.clone();
            spawn(
                format!("reader-{r}"),
                Box::new(move || s.reader(r as u64 + 1)),
            )
        })
        .collect();
    let limit = if config.duration.is_some() {
        u64::MAX
    } else {
        config.updates_per_updater
    };
    let updaters: Vec<_> = (0..config.updaters)
        .map(|u| {
            let s = shared.clone();
            spawn(
                format!("updater-{u}"),
                Box::new(move || s.updater(1000 + u as u64, limit)),
            )
        })
        .collect();
    let maintenance = {
        let s = shared.clone();
        spawn("maintenance".into(), Box::new(move || s.maintenance(77)))
    };
    go.wait();
    let started = Instant::now();

    if let Some(d) = config.duration {
        let deadline = started + d;
        let mut next_report = config.progress.map(|p| started + p);
        while Instant::now() < deadline
            && !FAILED.load(Ordering::SeqCst)
            && !updaters.iter().any(|h| h.is_finished())
        {
            std::thread::sleep(Duration::from_millis(50));
            if let (Some(at), Some(p)) = (next_report, config.progress) {
                if Instant::now() >= at {
                    let s = shared.service.stats();
                    eprintln!(
                        "torture: {:>5.0} s: updates {} freed {} queued_heads {} try_failed {} epochs {}",
                        started.elapsed().as_secs_f64(),
                        shared
                            .counts
                            .all()
                            .iter()
                            .map(|(_, c)| c.retired.load(Ordering::Relaxed))
                            .sum::<u64>(),
                        s.freed,
                        s.queued_heads,
                        s.try_failed,
                        s.grace_periods
                    );
                    next_report = Some(at + p);
                }
            }
        }
        shared.stop_updaters.store(true, Ordering::Relaxed);
    }
    let mut panic = None;
    for h in updaters {
        if let Err(e) = h.join() {
            panic.get_or_insert(e);
        }
    }
    shared.stop_readers.store(true, Ordering::Relaxed);
    for h in readers.into_iter().chain([maintenance]) {
        if let Err(e) = h.join() {
            panic.get_or_insert(e);
        }
    }
    if let Some(e) = panic {
        std::panic::resume_unwind(e);
    }

    // Everything retired must be freed by one barrier; then nothing is pending.
    shared.service.barrier();
    let stats = shared.service.stats();
    let shared = Arc::into_inner(shared).expect("every thread joined");
    let mut per_type = Vec::new();
    for (name, c) in shared.counts.all() {
        let (created, retired, dropped) = (
            c.created.load(Ordering::SeqCst),
            c.retired.load(Ordering::SeqCst),
            c.dropped.load(Ordering::SeqCst),
        );
        assert_eq!(
            dropped, retired,
            "{name}: every retired object freed exactly once after barrier()"
        );
        assert_eq!(
            created,
            retired + config.slots as u64,
            "{name}: the table holds the rest"
        );
        per_type.push((name, created, retired, dropped));
    }
    assert_eq!(stats.pending, 0, "{stats:?}");
    let summary = Summary {
        elapsed: started.elapsed(),
        readers: config.readers,
        updaters: config.updaters,
        reads: shared.reads.load(Ordering::SeqCst),
        updates: shared.updates.load(Ordering::SeqCst),
        ages: std::array::from_fn(|i| shared.ages[i].load(Ordering::SeqCst)),
        per_type,
        stats,
        inline_frees: shared.inline_frees.load(Ordering::SeqCst),
        barriers: shared.barriers.load(Ordering::SeqCst),
        shrinks: shared.shrinks.load(Ordering::SeqCst),
        short_threads: shared.short_threads.load(Ordering::SeqCst),
        uses_membarrier: shared.rcu.uses_membarrier(),
    };
    assert_eq!(
        summary.ages[2], 0,
        "no reader saw an object older than one epoch step"
    );

    // Free the table's last elements: no reader remains.
    let Shared {
        table,
        service,
        counts,
        ..
    } = shared;
    for p in table.small {
        // SAFETY: (all four) linked elements, never retired, no readers left.
        drop(unsafe { Box::from_raw(p.into_inner()) });
    }
    for p in table.medium {
        // SAFETY: as above.
        drop(unsafe { Box::from_raw(p.into_inner()) });
    }
    for p in table.large {
        // SAFETY: as above.
        drop(unsafe { Box::from_raw(p.into_inner()) });
    }
    for p in table.custom {
        // SAFETY: as above.
        drop(unsafe { Box::from_raw(p.into_inner()) });
    }
    drop(service);
    for (name, c) in counts.all() {
        assert_eq!(
            c.dropped.load(Ordering::SeqCst),
            c.created.load(Ordering::SeqCst),
            "{name}: all objects freed"
        );
    }
    summary
}
