//! `LocalRetirer`: a thread's own lane into a service. Every object retired
//! through handles is freed exactly once, by a barrier or, for an idle
//! thread's page, by the worker's drain interval alone; dropped handles
//! hand their pages off and their lanes are reused; a signal handler that
//! interrupts a call on the same handle is served by the per-CPU lanes; a
//! call makes no allocation under a raw spinlock; `reclaim` frees what has
//! expired on the calling thread, in ordinary context only; and a flood
//! the worker deals to a helper and a reclaiming thread loses nothing.

mod common;

use common::*;
use kvfree_rcu::context::{self, ReportMode};
use kvfree_rcu::{CheckedAlloc, KvfreeRcu, RECLAIM_BITE, RawSpinLock, Rcu};
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: CheckedAlloc = CheckedAlloc::system();

#[test]
fn objects_retired_through_handles_are_freed_exactly_once() {
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    let (threads, per_thread) = (4, scaled(20_000));
    std::thread::scope(|s| {
        for t in 0..threads {
            let service = &service;
            s.spawn(move || {
                let local = service.local_retirer();
                for i in 0..per_thread {
                    let value = (t * per_thread + i) as u64;
                    if i % 3 == 0 {
                        let p = Plain::boxed(value, counter);
                        // SAFETY: from Box::leak, unpublished, retired once;
                        // Err hands it back and we retire it again below.
                        if let Err(p) = unsafe { local.try_kvfree_rcu(p) } {
                            // SAFETY: as above; ordinary context.
                            unsafe { service.kvfree_rcu_mightsleep(p) };
                        }
                    } else {
                        // SAFETY: from Box::leak, unpublished, retired once.
                        unsafe { local.kvfree_rcu(Headed::boxed(value, counter)) };
                    }
                }
                // Half the handles are dropped here, half stay alive until
                // after the barrier: it must take their open pages too.
                if t % 2 == 1 {
                    service.barrier();
                }
                drop(local);
            });
        }
    });
    service.barrier();
    assert_eq!(counter.dropped(), threads * per_thread);
    let stats = service.stats();
    assert_eq!(stats.pending, 0, "{stats:?}");
}

#[test]
fn an_idle_threads_page_is_freed_without_a_barrier() {
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    let local = service.local_retirer();
    for i in 0..10 {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { local.kvfree_rcu(Headed::boxed(i, counter)) };
    }
    // The handle stays alive and idle: the worker's drain interval takes its
    // page once it has stayed open a whole interval.
    let deadline = Instant::now() + Duration::from_secs(30);
    while counter.dropped() < 10 {
        assert!(
            Instant::now() < deadline,
            "an idle handle's records were not collected: {:?}",
            service.stats()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(local);
}

#[test]
fn dropped_handles_give_their_lanes_back() {
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    for round in 0..50u64 {
        let local = service.local_retirer();
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { local.kvfree_rcu(Headed::boxed(round, counter)) };
        // The debug format names the type only.
        assert!(format!("{local:?}").starts_with("LocalRetirer"));
    }
    // Two handles at once use two lanes; the records of both come out.
    let (a, b) = (service.local_retirer(), service.local_retirer());
    // SAFETY: as above.
    unsafe {
        a.kvfree_rcu(Headed::boxed(50, counter));
        b.kvfree_rcu(Headed::boxed(51, counter));
    }
    assert!(std::ptr::eq(a.service(), &service));
    drop((a, b));
    service.barrier();
    assert_eq!(counter.dropped(), 52);
}

/// A domain and a service on it with no worker thread, so every free is
/// the test thread's.
fn manual_service() -> (Arc<Rcu>, KvfreeRcu) {
    let rcu = Arc::new(Rcu::new());
    let service = KvfreeRcu::builder(rcu.clone()).manual().build();
    (rcu, service)
}

#[test]
fn reclaim_frees_what_has_expired_on_the_calling_thread() {
    let counter = DropCounter::leak();
    let (rcu, service) = manual_service();
    let local = service.local_retirer();
    for i in 0..100 {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { local.kvfree_rcu(Headed::boxed(i, counter)) };
    }
    assert_eq!(local.reclaim(), 0, "nothing collected yet");
    // Two rounds: the first sees the thread lane's page open, the second
    // takes it (it stayed open) into a batch.
    service.run_once();
    service.run_once();
    assert_eq!(counter.dropped(), 0, "its grace period has not ended");
    rcu.synchronize();
    assert_eq!(local.reclaim(), 100);
    assert_eq!(counter.dropped(), 100, "freed inside the call");
    assert_eq!(local.reclaim(), 0);
    drop(local);
    service.barrier();
    assert_eq!(service.stats().freed, 100);
}

#[test]
fn a_reclaim_call_frees_one_bite() {
    let counter = DropCounter::leak();
    let (rcu, service) = manual_service();
    let local = service.local_retirer();
    // More than the pages a manual service starts with: the rest falls
    // back to the head lists, freed a bite at a time too.
    let n = 3000;
    for i in 0..n {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { local.kvfree_rcu(Headed::boxed(i, counter)) };
    }
    // A reader on another thread holds the grace period open while both
    // rounds collect (the second takes the thread lane's open page), so
    // neither frees anything.
    let (entered, leave) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
    std::thread::scope(|s| {
        s.spawn(|| {
            let _guard = rcu.read_lock();
            entered.wait();
            leave.wait();
        });
        entered.wait();
        service.run_once();
        service.run_once();
        assert_eq!(counter.dropped(), 0, "a reader holds the grace period");
        leave.wait();
    });
    rcu.synchronize();
    let mut calls = 0;
    loop {
        let freed = local.reclaim();
        if freed == 0 {
            break;
        }
        assert!(freed <= RECLAIM_BITE, "{freed} objects in one call");
        calls += 1;
    }
    assert_eq!(counter.dropped(), n as usize, "everything expired is freed");
    assert!(calls >= n / RECLAIM_BITE, "{calls} calls");
    drop(local);
    service.barrier();
    assert_eq!(service.stats().freed, n);
}

#[test]
fn threads_that_reclaim_and_the_worker_free_each_object_once() {
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    let (threads, per_thread) = (4, scaled(20_000));
    let reclaimed: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let service = &service;
                s.spawn(move || {
                    let local = service.local_retirer();
                    let mut reclaimed = 0;
                    for i in 0..per_thread {
                        let p = Headed::boxed((t * per_thread + i) as u64, counter);
                        // SAFETY: from Box::leak, unpublished, retired once.
                        unsafe { local.kvfree_rcu(p) };
                        if i % 256 == 255 {
                            reclaimed += local.reclaim() as usize;
                        }
                    }
                    reclaimed
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    service.barrier();
    assert_eq!(counter.dropped(), threads * per_thread);
    assert!(reclaimed <= threads * per_thread);
    let stats = service.stats();
    assert_eq!(stats.freed, (threads * per_thread) as u64, "{stats:?}");
}

/// While the service is behind (a backlog past 512 Ki objects, retired
/// behind a paused worker) and threads reclaim, the worker deals the ready
/// batches out and frees only a few bites a round itself; with no helper,
/// the reclaiming threads free the rest: every object is freed exactly
/// once, and the threads freed some of them.
#[test]
fn threads_that_reclaim_while_the_service_is_behind_free_each_object_once() {
    const THREADS: usize = 2;
    const PER_THREAD: usize = 320 * 1024;
    let counter = DropCounter::leak();
    let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
        .max_reclaim_helpers(0)
        .build();
    service.pause_worker();
    let retired = std::sync::Barrier::new(THREADS + 1);
    let reclaimed: u64 = std::thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (service, retired) = (&service, &retired);
                s.spawn(move || {
                    let local = service.local_retirer();
                    let mut reclaimed = 0;
                    for i in 0..PER_THREAD {
                        let p = Headed::boxed((t * PER_THREAD + i) as u64, counter);
                        // SAFETY: from Box::leak, unpublished, retired once.
                        unsafe { local.kvfree_rcu(p) };
                        if i % 256 == 255 {
                            // Nothing is collected yet: this only says the
                            // thread reclaims.
                            reclaimed += local.reclaim();
                        }
                    }
                    retired.wait();
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while service.stats().pending > (PER_THREAD / 4) as u64 {
                        reclaimed += local.reclaim();
                        assert!(
                            Instant::now() < deadline,
                            "the backlog is not freed: {:?}",
                            service.stats()
                        );
                    }
                    reclaimed
                })
            })
            .collect();
        retired.wait();
        service.resume_worker();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    service.barrier();
    let n = THREADS * PER_THREAD;
    assert_eq!(counter.dropped(), n);
    let stats = service.stats();
    assert_eq!(stats.freed, n as u64, "{stats:?}");
    assert!(
        reclaimed > 0,
        "the reclaiming threads freed nothing: {stats:?}"
    );
    assert_eq!(stats.reclaim_helpers, 0);
}

/// The worker deals the ready batches of a flood to a helper and to a
/// thread that reclaims, while two threads go on retiring through the
/// service's calls and the reclaiming thread through its handle: batches
/// posted by thread lane, the per-CPU lanes' pages and the handle's taken
/// bite by bite by the helper, the worker and the lender at once. Every
/// object is freed exactly once, with no barrier. Run by ASan and TSan too
/// (ci/40-asan.sh, ci/50-tsan.sh), where no other test reaches the dealer
/// with helpers running.
#[test]
fn a_flood_dealt_to_a_helper_and_a_lender_frees_each_object_once() {
    /// Past the 512 Ki objects from which the worker deals, retired behind
    /// the paused worker by the two producers together.
    const BEHIND: usize = 288 * 1024;
    /// Retired by each producer after the worker resumes.
    const AFTER: usize = 64 * 1024;
    /// Retired by the reclaiming thread.
    const LENT: usize = 64 * 1024;
    let watchdog = Watchdog::arm("flood dealt to a helper and a lender");
    let counter = DropCounter::leak();
    let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
        .max_reclaim_helpers(1)
        .build();
    // A helper starts after a round that reaped a batch of 64 Ki objects or
    // more: pile such batches up behind the paused worker until one has.
    let mut piled = 0;
    while service.stats().reclaim_helpers == 0 {
        service.pause_worker();
        for i in 0..100_000 {
            // SAFETY: from Box::leak, never published, retired once.
            unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
        }
        piled += 100_000;
        service.resume_worker();
        while service.stats().pending > 0 {
            std::thread::yield_now();
        }
    }
    let before = service.stats().freed;
    service.pause_worker();
    let behind = std::sync::Barrier::new(3);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let producers: Vec<_> = (0..2)
            .map(|t| {
                let (service, behind) = (&service, &behind);
                s.spawn(move || {
                    for i in 0..BEHIND + AFTER {
                        if i == BEHIND {
                            behind.wait();
                        }
                        let p = Headed::boxed((t * (BEHIND + AFTER) + i) as u64, counter);
                        // SAFETY: from Box::leak, unpublished, retired once.
                        unsafe { service.kvfree_rcu(p) };
                    }
                })
            })
            .collect();
        let (service, done) = (&service, &done);
        let lender = s.spawn(move || {
            let local = service.local_retirer();
            for i in 0..LENT {
                let p = Headed::boxed(i as u64, counter);
                // SAFETY: from Box::leak, unpublished, retired once.
                unsafe { local.kvfree_rcu(p) };
                if i % 256 == 255 {
                    local.reclaim();
                }
            }
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                local.reclaim();
                std::thread::yield_now();
            }
        });
        behind.wait();
        service.resume_worker();
        for producer in producers {
            producer.join().unwrap();
        }
        let n = (2 * (BEHIND + AFTER) + LENT) as u64;
        while service.stats().freed - before < n {
            std::thread::yield_now();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        lender.join().unwrap();
    });
    let n = 2 * (BEHIND + AFTER) + LENT;
    assert_eq!(counter.dropped(), piled + n);
    let stats = service.stats();
    assert_eq!(stats.freed - before, n as u64, "{stats:?}");
    assert_eq!(stats.pending, 0, "{stats:?}");
    drop(watchdog);
}

#[test]
fn reclaim_in_atomic_context_is_reported() {
    context::set_report_mode(ReportMode::Count);
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    let local = service.local_retirer();
    let lock = RawSpinLock::new(());
    let before = context::thread_violations();
    {
        let _locked = lock.lock();
        local.reclaim();
    }
    if context::CHECKS {
        assert_eq!(context::thread_violations(), before + 1);
    }
}

#[test]
fn a_handle_under_raw_spinlock_makes_zero_allocations() {
    context::set_report_mode(ReportMode::Count);
    let counter = DropCounter::leak();
    let service = KvfreeRcu::new(Arc::new(Rcu::new()));
    let local = service.local_retirer(); // ordinary context: may allocate
    let lock = RawSpinLock::new(());
    let (rounds, per_round) = (100, 200);
    for r in 0..rounds {
        let headed: Vec<_> = (0..per_round)
            .map(|i| Headed::boxed(r * 1000 + i, counter))
            .collect();
        let allocs_before = context::thread_allocations();
        let violations_before = context::thread_violations();
        {
            let _locked = lock.lock();
            for p in &headed {
                // SAFETY: from Box::leak, unpublished, retired once.
                unsafe { local.kvfree_rcu(*p) };
            }
        }
        assert_eq!(context::thread_allocations(), allocs_before, "round {r}");
        assert_eq!(context::thread_violations(), violations_before, "round {r}");
    }
    drop(local);
    service.barrier();
    assert_eq!(counter.dropped(), (rounds * per_round) as usize);
}

// Not under TSan, which delays signals to its own points (as for
// `tests/signals.rs`, which `ci/50-tsan.sh` leaves out).
#[cfg(all(unix, not(kvfree_tsan)))]
mod signals {
    use super::*;
    use kvfree_rcu::LocalRetirer;
    use std::cell::Cell;
    use std::ptr;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

    /// Objects the handler retires: preallocated, taken by index (no
    /// allocation in the handler).
    struct Stock {
        objects: Vec<AtomicPtr<Headed>>,
        next: AtomicUsize,
    }

    static STOCK: OnceLock<Stock> = OnceLock::new();
    static SERVICE: OnceLock<KvfreeRcu> = OnceLock::new();

    std::thread_local! {
        /// The handle of the thread the signals interrupt, while it lives.
        static HANDLE: Cell<*const LocalRetirer<'static>> = const { Cell::new(ptr::null()) };
    }

    /// Retires one stocked object through the interrupted thread's own
    /// handle: when the signal lands inside a call on it, the per-CPU
    /// lanes serve this one.
    extern "C" fn retire_handler(_signal: libc::c_int) {
        let handle = HANDLE.with(Cell::get);
        let Some(stock) = STOCK.get() else { return };
        // SAFETY: set by the target thread to a handle that outlives the
        // signals (it is cleared before the handle is dropped, and signals
        // stop before that); the handler runs on that thread.
        let Some(handle) = (unsafe { handle.as_ref() }) else {
            return;
        };
        let i = stock.next.fetch_add(1, Ordering::Relaxed);
        let Some(slot) = stock.objects.get(i) else {
            return;
        };
        let p = slot.swap(ptr::null_mut(), Ordering::Relaxed);
        if let Some(p) = NonNull::new(p) {
            // SAFETY: a preallocated Box taken exactly once, never published.
            unsafe { handle.kvfree_rcu(p) };
        }
    }

    #[test]
    fn a_signal_handler_retiring_through_the_interrupted_handle_loses_nothing() {
        let counter = DropCounter::leak();
        let stocked = scaled(5_000);
        let service = SERVICE.get_or_init(|| KvfreeRcu::new(Arc::new(Rcu::new())));
        assert!(
            STOCK
                .set(Stock {
                    objects: (0..stocked)
                        .map(|i| AtomicPtr::new(Headed::boxed(i as u64, counter).as_ptr()))
                        .collect(),
                    next: AtomicUsize::new(0),
                })
                .is_ok()
        );
        // SAFETY: a zeroed `sigaction` is a valid starting value; every
        // field we rely on is set below, and the handler has the signature
        // the kernel calls without SA_SIGINFO.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(libc::c_int) = retire_handler;
            sa.sa_sigaction = handler as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            assert_eq!(libc::sigaction(libc::SIGUSR2, &sa, ptr::null_mut()), 0);
        }
        let done = AtomicBool::new(false);
        let target: OnceLock<libc::pthread_t> = OnceLock::new();
        let own = scaled(100_000);
        std::thread::scope(|s| {
            s.spawn(|| {
                let local = service.local_retirer();
                HANDLE.with(|h| h.set(&local));
                // SAFETY: pthread_self has no preconditions.
                target.set(unsafe { libc::pthread_self() }).unwrap();
                for i in 0..own {
                    let p = Headed::boxed((stocked + i) as u64, counter);
                    // SAFETY: from Box::leak, unpublished, retired once.
                    unsafe { local.kvfree_rcu(p) };
                }
                done.store(true, Ordering::Release);
                // Block the signal before the handle goes away.
                // SAFETY: a valid, initialised set; blocking on this thread.
                unsafe {
                    let mut set: libc::sigset_t = std::mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, libc::SIGUSR2);
                    libc::pthread_sigmask(libc::SIG_BLOCK, &set, ptr::null_mut());
                }
                HANDLE.with(|h| h.set(ptr::null()));
                drop(local);
            });
            s.spawn(|| {
                let thread = loop {
                    if let Some(t) = target.get() {
                        break *t;
                    }
                    std::thread::yield_now();
                };
                while !done.load(Ordering::Acquire) {
                    // SAFETY: the target thread is alive until `done`
                    // (it sets `done` before it exits).
                    unsafe { libc::pthread_kill(thread, libc::SIGUSR2) };
                    std::thread::sleep(Duration::from_micros(20));
                }
            });
        });
        // Objects the handler never reached are retired here.
        let stock = STOCK.get().unwrap();
        for slot in &stock.objects {
            if let Some(p) = NonNull::new(slot.swap(ptr::null_mut(), Ordering::Relaxed)) {
                // SAFETY: a preallocated Box taken exactly once.
                unsafe { service.kvfree_rcu(p) };
            }
        }
        service.barrier();
        assert_eq!(counter.dropped(), stocked + own);
        let handled = stock.next.load(Ordering::Relaxed).min(stocked);
        assert!(handled > 0, "no signal was handled");
    }
}
