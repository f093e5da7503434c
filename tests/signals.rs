//! Retiring from signal handlers.
//!
//! A target thread loops through the places where a signal hurts most:
//! inside the service's own retire calls (the pool's push, the head-list
//! push), inside `malloc`/`free`, holding a `std::sync::Mutex`, and holding a
//! `RawSpinLock` inside an RCU read-side critical section. Another thread
//! sends it tens of thousands of `SIGUSR1`s with `pthread_kill`, one at a
//! time (it waits for each to be handled, so none coalesce and the count is
//! exact); the handler retires preallocated objects with the headed
//! `kvfree_rcu` and with `try_kvfree_rcu`, inside a nested read-side section.
//! The handler takes none of the target's locks: the point is that it needs
//! none.
//!
//! Checked:
//! - no deadlock: a watchdog aborts the process (failing the test instead of
//!   hanging CI) if no signal is handled for 60 s;
//! - no allocation and no checker report inside the handler: `CheckedAlloc`
//!   is this binary's global allocator, the handler declares an
//!   `AtomicSection`, and counts its thread's allocations and violations
//!   before and after;
//! - nothing lost, nothing freed twice: drop counters after `barrier()`.
//!
//! The same harness runs a naive `call_rcu` that allocates a callback node
//! per call (pushed onto a lock-free stack, so allocation is its only sin):
//! the checker must report it from the handler.

mod common;

use common::*;
use kvfree_rcu::context::{self, AtomicSection, CHECKS, ReportMode};
use kvfree_rcu::{CheckedAlloc, KvfreeRcu, RawSpinLock, Rcu};
use std::os::unix::thread::JoinHandleExt;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: CheckedAlloc = CheckedAlloc::system();

/// Signals per run (each handled before the next is sent).
fn signals(debug: usize) -> usize {
    let scale = std::env::var("KVFREE_STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.0);
    let n = if cfg!(debug_assertions) {
        debug
    } else {
        debug * 2
    };
    ((n as f64 * scale) as usize).max(100)
}

/// Installs `handler` for `signal` with `SA_RESTART`.
fn install(signal: libc::c_int, handler: extern "C" fn(libc::c_int)) {
    // SAFETY: a zeroed `sigaction` is a valid starting value; every field we
    // rely on is set below, and `handler` is an `extern "C" fn(c_int)`, the
    // signature the kernel calls without SA_SIGINFO.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(
            libc::sigaction(signal, &sa, ptr::null_mut()),
            0,
            "sigaction"
        );
    }
}

/// Saves and restores `errno` around a handler (the futex wake may set it).
struct ErrnoGuard(libc::c_int);
impl ErrnoGuard {
    fn save() -> ErrnoGuard {
        // SAFETY: `__errno_location` returns this thread's errno slot.
        ErrnoGuard(unsafe { *libc::__errno_location() })
    }
}
impl Drop for ErrnoGuard {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

/// Counts what a handler invocation allocated and reported, on its thread.
struct HandlerAccount<'a> {
    allocations: u64,
    violations: u64,
    into: &'a Account,
}

#[derive(Default)]
struct Account {
    handled: AtomicU64,
    allocations: AtomicU64,
    violations: AtomicU64,
}

impl<'a> HandlerAccount<'a> {
    fn start(into: &'a Account) -> Self {
        HandlerAccount {
            allocations: context::thread_allocations(),
            violations: context::thread_violations(),
            into,
        }
    }
}
impl Drop for HandlerAccount<'_> {
    fn drop(&mut self) {
        let a = context::thread_allocations().wrapping_sub(self.allocations);
        let v = context::thread_violations().wrapping_sub(self.violations);
        self.into.allocations.fetch_add(a, Ordering::Relaxed);
        self.into.violations.fetch_add(v, Ordering::Relaxed);
        // Release: the sender's Acquire load of `handled` sees the counts above.
        self.into.handled.fetch_add(1, Ordering::Release);
    }
}

/// Objects preallocated for a handler, taken by index (a handler must not allocate).
struct Stock<T> {
    items: Box<[AtomicPtr<T>]>,
    next: AtomicUsize,
}

impl<T> Stock<T> {
    fn new(n: usize, make: impl Fn(usize) -> NonNull<T>) -> Self {
        Stock {
            items: (0..n).map(|i| AtomicPtr::new(make(i).as_ptr())).collect(),
            next: AtomicUsize::new(0),
        }
    }
    /// Takes the next object (async-signal-safe: two atomic operations).
    fn take(&self) -> Option<NonNull<T>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.items
            .get(i)
            .and_then(|p| NonNull::new(p.swap(ptr::null_mut(), Ordering::Acquire)))
    }
    /// Stores `p` at the next index (the handler hands back an `Err` object).
    fn put(&self, p: NonNull<T>) -> Result<(), NonNull<T>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        match self.items.get(i) {
            Some(slot) => {
                slot.store(p.as_ptr(), Ordering::Release);
                Ok(())
            }
            None => Err(p),
        }
    }
    fn empty(n: usize) -> Self {
        Stock {
            items: (0..n).map(|_| AtomicPtr::new(ptr::null_mut())).collect(),
            next: AtomicUsize::new(0),
        }
    }
    fn drain(&self) -> impl Iterator<Item = NonNull<T>> + '_ {
        self.items
            .iter()
            .filter_map(|p| NonNull::new(p.swap(ptr::null_mut(), Ordering::Acquire)))
    }
}

/// Runs the signal harness: spawns the target (running `target_step` in a
/// loop after registering with `rcu`), a watchdog, and sends `n` signals,
/// each handled before the next. Returns the target's own violation count.
fn run_harness(
    signal: libc::c_int,
    n: usize,
    rcu: &Arc<Rcu>,
    account: &'static Account,
    target_step: impl Fn(u64) + Send + 'static,
) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let target = {
        let (stop, ready, progress, rcu) =
            (stop.clone(), ready.clone(), progress.clone(), rcu.clone());
        std::thread::spawn(move || {
            rcu.register_current_thread().expect("slot");
            let before = context::thread_violations();
            ready.store(true, Ordering::Release);
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                target_step(k);
                k += 1;
                progress.store(k, Ordering::Relaxed);
            }
            context::thread_violations() - before
        })
    };
    while !ready.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut last = (u64::MAX, Instant::now());
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let handled = account.handled.load(Ordering::Relaxed);
                if handled != last.0 {
                    last = (handled, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(60) {
                    eprintln!(
                        "signals: WATCHDOG: no signal handled for 60 s (handled {handled}): deadlock; aborting"
                    );
                    std::process::abort();
                }
            }
        })
    };
    let thread = target.as_pthread_t();
    for _ in 0..n {
        let before = account.handled.load(Ordering::Acquire);
        // SAFETY: `thread` is a live thread (joined only after this loop) and
        // `signal` has a handler installed.
        assert_eq!(unsafe { libc::pthread_kill(thread, signal) }, 0);
        let mut spins = 0u32;
        while account.handled.load(Ordering::Acquire) == before {
            spins += 1;
            if spins % 64 == 0 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    let target_violations = target.join().expect("target thread");
    done.store(true, Ordering::Relaxed);
    watchdog.join().unwrap();
    assert!(progress.load(Ordering::Relaxed) > 0);
    target_violations
}

// ---- the service in a handler ----------------------------------------------

struct RetireState {
    rcu: Arc<Rcu>,
    service: KvfreeRcu,
    headed: Stock<Headed>,
    plain: Stock<Plain>,
    returned: Stock<Plain>,
}

static RETIRE: OnceLock<RetireState> = OnceLock::new();
/// What the target is doing (0 retiring, 1 malloc/free, 2 std Mutex held,
/// 3 RawSpinLock held in a read section), and where the signals landed.
static PHASE: AtomicU8 = AtomicU8::new(0);
static PHASE_HITS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static RETIRE_ACCOUNT: Account = Account {
    handled: AtomicU64::new(0),
    allocations: AtomicU64::new(0),
    violations: AtomicU64::new(0),
};

/// Retires two headed objects and one head-less one, in a read-side section.
extern "C" fn retire_handler(_signal: libc::c_int) {
    let _errno = ErrnoGuard::save();
    let _atomic = AtomicSection::enter();
    let _account = HandlerAccount::start(&RETIRE_ACCOUNT);
    let Some(st) = RETIRE.get() else { return };
    PHASE_HITS[PHASE.load(Ordering::Relaxed) as usize].fetch_add(1, Ordering::Relaxed);
    let _read = st.rcu.read_lock(); // nests in the target's own section when it is in one
    for _ in 0..2 {
        if let Some(p) = st.headed.take() {
            // SAFETY: a preallocated Box taken exactly once, never published.
            unsafe { st.service.kvfree_rcu(p) };
        }
    }
    if let Some(p) = st.plain.take() {
        // SAFETY: as above; Err hands it back: the handler parks it for
        // ordinary context (`returned` has one entry per plain object).
        if let Err(p) = unsafe { st.service.try_kvfree_rcu(p) } {
            if st.returned.put(p).is_err() {
                abort_with("signals: returned stock overflow\n");
            }
        }
    }
}

/// Writes `msg` with `write(2)` and aborts: async-signal-safe (never expected).
fn abort_with(msg: &str) -> ! {
    // SAFETY: `msg` is a valid byte slice for the duration of the call.
    let _ = unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
    std::process::abort()
}

#[test]
fn signal_handlers_retire_while_the_thread_is_retiring_allocating_or_locked() {
    context::set_report_mode(ReportMode::Count);
    let n = signals(20_000);
    let counter = DropCounter::leak();
    let rcu = Arc::new(Rcu::new());
    let service = KvfreeRcu::builder(rcu.clone())
        .low_watermark(2)
        .high_watermark(4)
        .max_watermark(4)
        .build();
    let state = RetireState {
        rcu: rcu.clone(),
        service,
        headed: Stock::new(2 * n, |i| Headed::boxed(i as u64, counter)),
        plain: Stock::new(n, |i| Plain::boxed(i as u64, counter)),
        returned: Stock::empty(n),
    };
    assert!(RETIRE.set(state).is_ok());
    install(libc::SIGUSR1, retire_handler);

    static TARGET_RETIRED: AtomicU64 = AtomicU64::new(0);
    static STD_MUTEX: Mutex<Vec<u64>> = Mutex::new(Vec::new());
    static RAW: RawSpinLock<u64> = RawSpinLock::new(0);
    let target_violations = run_harness(libc::SIGUSR1, n, &rcu, &RETIRE_ACCOUNT, move |k| {
        let st = RETIRE.get().unwrap();
        PHASE.store((k % 4) as u8, Ordering::Relaxed);
        match k % 4 {
            // Inside retire calls (and malloc, for the objects).
            0 => {
                for i in 0..16 {
                    // SAFETY: from Box::leak, never published, retired once.
                    unsafe { st.service.kvfree_rcu(Headed::boxed(i, counter)) };
                    let p = Plain::boxed(i, counter);
                    // SAFETY: as above; on Err the object is ours again.
                    if let Err(p) = unsafe { st.service.try_kvfree_rcu(p) } {
                        // SAFETY: ordinary context; retired once.
                        unsafe { st.service.kvfree_rcu_mightsleep(p) };
                    }
                }
                TARGET_RETIRED.fetch_add(32, Ordering::Relaxed);
            }
            // Inside malloc/free, many sizes.
            1 => {
                let v: Vec<Box<[u8]>> = (1..48)
                    .map(|s| vec![s as u8; s * 37].into_boxed_slice())
                    .collect();
                drop(v);
            }
            // Holding a std Mutex (the process's other locks), allocating under it.
            2 => {
                let mut g = STD_MUTEX.lock().unwrap();
                g.push(k);
                if g.len() > 256 {
                    *g = Vec::new();
                }
            }
            // Holding a RawSpinLock inside a read-side section, retiring under it.
            _ => {
                let p = Headed::boxed(k, counter); // allocate before the lock
                let _read = st.rcu.read_lock();
                let mut g = RAW.lock();
                *g += 1;
                // SAFETY: from Box::leak, never published, retired once.
                unsafe { st.service.kvfree_rcu(p) };
                for _ in 0..64 {
                    std::hint::spin_loop();
                }
                TARGET_RETIRED.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    let st = RETIRE.get().unwrap();
    // Objects the handler got back with Err: ordinary context retires them now.
    let mut returned = 0;
    for p in st.returned.drain() {
        // SAFETY: handed back by try_kvfree_rcu's Err, retired once now.
        unsafe { st.service.kvfree_rcu_mightsleep(p) };
        returned += 1;
    }
    st.service.barrier();
    let handled = RETIRE_ACCOUNT.handled.load(Ordering::SeqCst);
    let retired = 3 * n + TARGET_RETIRED.load(Ordering::SeqCst) as usize;
    println!(
        "signals: {handled} handled, {retired} objects retired ({returned} handed back by try_kvfree_rcu), stats {:?}",
        st.service.stats()
    );
    let hits: Vec<u64> = PHASE_HITS
        .iter()
        .map(|h| h.load(Ordering::SeqCst))
        .collect();
    println!(
        "signals landed while retiring / in malloc-free / under a std Mutex / under a RawSpinLock: {hits:?}"
    );
    assert_eq!(handled, n as u64, "every signal handled exactly once");
    assert!(
        st.headed.take().is_none() && st.plain.take().is_none(),
        "the handlers used every preallocated object"
    );
    assert_eq!(
        RETIRE_ACCOUNT.allocations.load(Ordering::SeqCst),
        0,
        "no allocation inside the handler"
    );
    assert_eq!(
        RETIRE_ACCOUNT.violations.load(Ordering::SeqCst),
        0,
        "the checker stayed silent in the handler"
    );
    assert_eq!(target_violations, 0, "nor on the interrupted thread");
    assert_eq!(
        counter.dropped(),
        retired,
        "every object retired was freed exactly once"
    );
    assert_eq!(st.service.stats().pending, 0);
}

// ---- a naive call_rcu in the same harness: the checker must catch it -------

/// A correct but naive `call_rcu`: one heap node per callback, pushed onto a
/// lock-free (Treiber) stack. Its only sin is the allocation, which makes it
/// unusable in a signal handler or under a raw spinlock.
struct NaiveCallRcu {
    head: AtomicPtr<Node>,
}

struct Node {
    next: *mut Node,
    callback: Box<dyn FnOnce() + Send>,
}

impl NaiveCallRcu {
    const fn new() -> Self {
        NaiveCallRcu {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    fn call_rcu(&self, callback: Box<dyn FnOnce() + Send>) {
        let node = Box::into_raw(Box::new(Node {
            next: ptr::null_mut(),
            callback,
        })); // the allocation
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` is ours until the CAS publishes it.
            unsafe { (*node).next = head };
            // Release: publishes the node's fields to the drainer's Acquire swap.
            match self
                .head
                .compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Takes every callback, waits for a grace period, runs them.
    fn drain(&self, rcu: &Rcu) -> usize {
        let mut node = self.head.swap(ptr::null_mut(), Ordering::Acquire);
        rcu.synchronize();
        let mut n = 0;
        while !node.is_null() {
            // SAFETY: taken by the swap, so owned; from Box::into_raw.
            let b = unsafe { Box::from_raw(node) };
            node = b.next;
            (b.callback)();
            n += 1;
        }
        n
    }
}

struct NaiveState {
    plain: Stock<Plain>,
}
static NAIVE: NaiveCallRcu = NaiveCallRcu::new();
static NAIVE_STATE: OnceLock<NaiveState> = OnceLock::new();
static NAIVE_ACCOUNT: Account = Account {
    handled: AtomicU64::new(0),
    allocations: AtomicU64::new(0),
    violations: AtomicU64::new(0),
};

struct SendPtr(NonNull<Plain>);
// SAFETY: `Plain` is Send; the pointer is an owned Box moved to the callback.
unsafe impl Send for SendPtr {}

extern "C" fn naive_handler(_signal: libc::c_int) {
    let _errno = ErrnoGuard::save();
    let _atomic = AtomicSection::enter();
    let _account = HandlerAccount::start(&NAIVE_ACCOUNT);
    let Some(st) = NAIVE_STATE.get() else { return };
    if let Some(p) = st.plain.take() {
        let p = SendPtr(p);
        NAIVE.call_rcu(Box::new(move || {
            let p = p;
            // SAFETY: an owned Box, freed once, after the drain's grace period.
            drop(unsafe { Box::from_raw(p.0.as_ptr()) });
        }));
    }
}

#[test]
fn naive_call_rcu_allocating_in_a_signal_handler_is_reported() {
    context::set_report_mode(ReportMode::Count);
    let n = signals(1_000) / 4;
    let counter = DropCounter::leak();
    let rcu = Arc::new(Rcu::new());
    assert!(
        NAIVE_STATE
            .set(NaiveState {
                plain: Stock::new(n, |i| Plain::boxed(i as u64, counter))
            })
            .is_ok()
    );
    install(libc::SIGUSR2, naive_handler);
    static RAW: RawSpinLock<u64> = RawSpinLock::new(0);
    // The target never allocates here: a handler that mallocs while its
    // thread is inside malloc could deadlock for real, and the point is the
    // report, not the deadlock.
    let rcu2 = rcu.clone();
    let target_violations = run_harness(libc::SIGUSR2, n, &rcu, &NAIVE_ACCOUNT, move |_| {
        let _read = rcu2.read_lock();
        let mut g = RAW.lock();
        *g += 1;
        for _ in 0..64 {
            std::hint::spin_loop();
        }
    });
    let freed = NAIVE.drain(&rcu);
    assert_eq!(freed, n);
    assert_eq!(counter.dropped(), n);
    let allocations = NAIVE_ACCOUNT.allocations.load(Ordering::SeqCst);
    let violations = NAIVE_ACCOUNT.violations.load(Ordering::SeqCst);
    println!(
        "naive call_rcu: {n} signals, {allocations} allocations and {violations} reports in the handler"
    );
    if CHECKS {
        // Two allocations per call (the closure and the node), each reported.
        assert!(allocations >= 2 * n as u64, "{allocations}");
        assert!(
            violations >= 2 * n as u64,
            "CheckedAlloc reported the handler's allocations: {violations}"
        );
        assert_eq!(
            target_violations, violations,
            "all on the interrupted thread, all from the handler"
        );
    }
}
