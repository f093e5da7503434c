//! Retiring objects from a signal handler, and under a raw spinlock.
//!
//! Run: `cargo run --release --example signal_handler [signals]`
//!
//! This is the raw-API example (`AtomicPtr` slots, `Box` pointers,
//! `kvfree_rcu`/`try_kvfree_rcu`), for the contexts where every step must
//! be visible: what is allocated beforehand, and what the handler calls.
//! Readers use the process-wide domain, `Rcu::global()`. The service is the
//! example's own, over that domain, rather than `kvfree_rcu::global()`: its
//! point is to drive the handler's retires onto the fallbacks (the head list
//! for `kvfree_rcu`, `Err` for `try_kvfree_rcu`), which needs pool caches of
//! one page (`low_watermark(1)`, `high_watermark(1)`), and the global
//! service's settings are not configurable. That costs one more worker thread
//! and its own pool pages; other code should reach for the global service.
//!
//! # The pattern
//! - The handler cannot allocate, lock, or wait: it may have interrupted
//!   `malloc`, a held lock, or a retire call on its own thread. So the
//!   objects it retires are allocated beforehand and parked in a lock-free
//!   table of `AtomicPtr` slots; the handler takes one with `swap(null)`.
//! - The handler starts with `AtomicSection::enter()` (the context checker
//!   then reports any allocation or sleeping call it makes), saves `errno`
//!   (the worker wake-up may make a syscall), reads the shared config under
//!   `Rcu::global().read_lock()` (nesting inside whatever section it interrupted), and
//!   retires a headed object with `kvfree_rcu` (never fails) and a head-less
//!   one with `try_kvfree_rcu`. On `Err` it cannot wait, so it parks the
//!   object in a "returned" slot; the main thread later retires it with
//!   `kvfree_rcu_mightsleep` from ordinary context.
//! - The target thread calls `Rcu::register_current_thread()` before the
//!   handler can fire (the first registration may allocate), and then keeps
//!   retiring objects and reading itself, so signals land in the middle of
//!   its retire calls and read sections. It replaces the shared config under
//!   a `RawSpinLock` (as a kernel-style writer would) and retires the old one
//!   with `kvfree_rcu` *while holding the lock*: legal, since the call never
//!   allocates, locks or sleeps. The handler never takes that lock (it may
//!   have interrupted its holder). The service is reentrant (a
//!   producer interrupted mid-push holds its CPU slot `BUSY`; the handler's
//!   push goes to another slot or to the head list).
//! - Signals are sent with `pthread_kill` to that thread, one at a time (the
//!   sender waits for the handler's acknowledgement, since pending signals of
//!   the same number coalesce).
//!
//! # Why it is correct
//! Every object is unreachable to readers when retired (the parked objects
//! were never published), and retired once: a slot's `swap(null)` hands it
//! to exactly one party. The checks at the end prove each object was
//! dropped once and that the checker saw no violation in the handler.

use kvfree_rcu::context::{self, AtomicSection, CHECKS};
use kvfree_rcu::{CheckedAlloc, KvfreeRcu, RawSpinLock, Rcu, RcuHead, impl_rcu_headed};
use std::ptr::{self, NonNull};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};

#[global_allocator]
static ALLOC: CheckedAlloc = CheckedAlloc::system();

static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Reads of a config that was already dropped (its value zeroed).
static BAD_READS: AtomicU64 = AtomicU64::new(0);

struct Headed {
    value: u64,
    head: RcuHead,
}
impl_rcu_headed!(Headed, head);

struct Plain {
    payload: [u64; 4],
}

impl Drop for Headed {
    fn drop(&mut self) {
        self.value = 0;
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}
impl Drop for Plain {
    fn drop(&mut self) {
        self.payload = [0; 4];
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Everything the handler touches, built before the handler is installed.
struct Shared {
    service: KvfreeRcu,
    /// Parked objects, one pair per signal, taken with `swap(null)`.
    headed: Box<[AtomicPtr<Headed>]>,
    plain: Box<[AtomicPtr<Plain>]>,
    /// Plain objects the handler could not retire (`Err`), one per signal.
    returned: Box<[AtomicPtr<Plain>]>,
    /// A published value the handler reads under `read_lock`.
    config: AtomicPtr<Headed>,
    /// Serialises the config's writers (only the target thread here); never
    /// taken by the handler.
    config_lock: RawSpinLock<()>,
    handled: AtomicUsize,
    try_failed: AtomicU64,
}

/// `OnceLock::get` is one `Acquire` load: async-signal-safe.
static SHARED: OnceLock<Shared> = OnceLock::new();

extern "C" fn on_signal(_signal: libc::c_int) {
    let _atomic = AtomicSection::enter();
    // SAFETY: __errno_location returns this thread's errno, valid for the
    // thread's life; we restore it before returning.
    let saved_errno = unsafe { *libc::__errno_location() };
    let Some(s) = SHARED.get() else { return };
    // Relaxed: the sender waits for our Release below before sending again,
    // so handler runs never overlap; this is just our index.
    let i = s.handled.load(Ordering::Relaxed);
    {
        // `Rcu::global()` is one Acquire load: main created it before
        // installing the handler.
        let _guard = Rcu::global().read_lock();
        // SAFETY: loaded inside a read section; the config is freed only a
        // grace period after it is replaced.
        let config = unsafe { &*s.config.load(Ordering::Acquire) };
        if config.value == 0 {
            BAD_READS.fetch_add(1, Ordering::Relaxed); // a dropped config: never happens
        }
    }
    if let Some(p) = NonNull::new(s.headed[i].swap(ptr::null_mut(), Ordering::Acquire)) {
        // SAFETY: (1) parked from Box::leak; (2) never published; (3) the
        // swap gave it to us alone, so it is retired once.
        unsafe { s.service.kvfree_rcu(p) };
    }
    if let Some(p) = NonNull::new(s.plain[i].swap(ptr::null_mut(), Ordering::Acquire)) {
        // SAFETY: as above.
        if let Err(p) = unsafe { s.service.try_kvfree_rcu(p) } {
            // No page: we still own it and cannot wait here. Park it for
            // the main thread (Release: it reads the object after its Acquire).
            s.returned[i].store(p.as_ptr(), Ordering::Release);
            s.try_failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    // Release: pairs with the sender's Acquire load; our writes above happen
    // before it sends the next signal or reads `returned`.
    s.handled.store(i + 1, Ordering::Release);
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved_errno };
}

fn main() {
    let signals: usize = std::env::args()
        .nth(1)
        .map_or(2_000, |s| s.parse().expect("signals: a number"));
    context::set_report_mode(context::ReportMode::Count);
    // Small pool caches, so some handler retires find no page and take the
    // fallbacks (the head list for `kvfree_rcu`, `Err` for `try_kvfree_rcu`):
    // why this example builds its own service (module docs), over the global
    // domain. Ordinary context, before the handler is installed.
    let service = KvfreeRcu::builder(std::sync::Arc::new(Rcu::global().clone()))
        .low_watermark(1)
        .high_watermark(1)
        .max_watermark(1)
        .build();
    let park = |n: usize| -> Box<[AtomicPtr<Headed>]> {
        (0..n)
            .map(|i| {
                AtomicPtr::new(Box::into_raw(Box::new(Headed {
                    value: i as u64,
                    head: RcuHead::new(),
                })))
            })
            .collect()
    };
    let shared = Shared {
        service,
        headed: park(signals),
        plain: (0..signals)
            .map(|i| {
                AtomicPtr::new(Box::into_raw(Box::new(Plain {
                    payload: [i as u64; 4],
                })))
            })
            .collect(),
        returned: (0..signals)
            .map(|_| AtomicPtr::new(ptr::null_mut()))
            .collect(),
        config: AtomicPtr::new(Box::into_raw(Box::new(Headed {
            value: 1,
            head: RcuHead::new(),
        }))),
        config_lock: RawSpinLock::new(()),
        handled: AtomicUsize::new(0),
        try_failed: AtomicU64::new(0),
    };
    let s = SHARED.get_or_init(|| shared);
    let allocated = 2 * signals as u64 + 1;

    // The target thread: registered first, then signals can hit it anywhere.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let target = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            Rcu::global()
                .register_current_thread()
                .expect("a reader slot");
            // SAFETY: pthread_self has no preconditions.
            tid_tx.send(unsafe { libc::pthread_self() }).unwrap();
            let mut own = 0u64;
            // Relaxed: only ends the loop.
            while !stop.load(Ordering::Relaxed) {
                // Ordinary-context work the handler interrupts: read sections
                // and retires of our own (replacing the config).
                let _guard = Rcu::global().read_lock();
                drop(_guard);
                // Allocate before taking the raw spinlock.
                let new = Box::into_raw(Box::new(Headed {
                    value: own + 2,
                    head: RcuHead::new(),
                }));
                {
                    let _locked = s.config_lock.lock();
                    // AcqRel: publishes `new`; makes us the owner of `old`.
                    let old = s.config.swap(new, Ordering::AcqRel);
                    // SAFETY: (1) from Box::into_raw; (2) unlinked by the
                    // swap; (3) retired once: config writers hold the lock,
                    // so each old config is swapped out exactly once.
                    unsafe { s.service.kvfree_rcu(NonNull::new(old).unwrap()) };
                }
                own += 1;
                // Pace the flood of our own retires a little.
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
            }
            own
        })
    };
    let tid = tid_rx.recv().unwrap();

    // SAFETY: `on_signal` is an `extern "C" fn(c_int)` that only does
    // async-signal-safe work; the zeroed sigaction is a valid starting value
    // (empty mask, no flags) and we fill in the handler.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, ptr::null_mut()),
            0,
            "sigaction"
        );
    }
    for i in 0..signals {
        // SAFETY: `tid` is a live thread (it runs until we set `stop`).
        let rc = unsafe { libc::pthread_kill(tid, libc::SIGUSR1) };
        assert_eq!(rc, 0, "pthread_kill");
        // Acquire: pairs with the handler's Release store.
        while s.handled.load(Ordering::Acquire) <= i {
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let own = target.join().expect("the target thread panicked");

    // Ordinary context: retire what the handler handed back.
    let mut returned = 0;
    for slot in s.returned.iter() {
        // Acquire: pairs with the handler's Release store.
        if let Some(p) = NonNull::new(slot.swap(ptr::null_mut(), Ordering::Acquire)) {
            // SAFETY: parked from Box::into_raw, never published, and the
            // handler gave it back on Err: retired once, here.
            unsafe { s.service.kvfree_rcu_mightsleep(p) };
            returned += 1;
        }
    }
    s.service.barrier();
    let stats = s.service.stats();
    let dropped = DROPPED.load(Ordering::Relaxed);
    println!(
        "signal_handler: {signals} signals handled, each retiring 2 objects ({} try_kvfree_rcu Err, retired later with kvfree_rcu_mightsleep); target thread retired {own} of its own meanwhile",
        s.try_failed.load(Ordering::Relaxed),
    );
    println!(
        "  pages path {}, head-list fallback {}, violations {} (checker {}); dropped {dropped}",
        stats.queued_pages,
        stats.queued_heads,
        context::violations(),
        if CHECKS { "on" } else { "off" },
    );
    assert_eq!(
        BAD_READS.load(Ordering::Relaxed),
        0,
        "the handler read a freed config"
    );
    assert_eq!(returned, s.try_failed.load(Ordering::Relaxed));
    assert_eq!(
        context::violations(),
        0,
        "the context checker reported a violation"
    );
    // Every parked object, plus every config the target replaced, was freed once
    // (the current config is still published).
    assert_eq!(
        dropped,
        allocated - 1 + own,
        "every retired object is freed exactly once"
    );
    // SAFETY: no handler can run any more (no more signals are sent) and the
    // target has exited: nobody reads the config.
    drop(unsafe { Box::from_raw(s.config.swap(ptr::null_mut(), Ordering::AcqRel)) });
}
