//! Reclaim with CPU affinity ([`ReclaimAffinity::FillingCpu`], opt-in):
//! the service's own reclaim threads free a page's objects on the CPU that
//! filled it, as the kernel's per-CPU `kfree_rcu` work does.
//!
//! # Why
//! A producer writes each object on its CPU; a reclaim thread on another
//! CPU then reads it (to free it), and the producer's next `malloc` reads
//! the chunk back after the free wrote it: each object's cache line crosses
//! between the CPUs twice. On the project's VM that traffic, not the
//! service, sets the flood's speed (docs/BENCHMARKS.md, "Reclaim with CPU
//! affinity"). A page records the CPU its first record was pushed on
//! (`PageList::first_page_cpu`, in the pool); before freeing a chunk of
//! pages, a reclaim thread moves itself to that CPU with
//! `sched_setaffinity` (one syscall when the CPU changes, none otherwise).
//!
//! # Whose threads
//! Only the threads the service owns move: the worker and its reclaim
//! helpers mark themselves ([`become_reclaim_thread`]) when they start. A
//! `barrier()` caller that reaps on its own thread is never moved: its
//! affinity is the application's.
//!
//! # The cost
//! The reclaim thread then shares the producer's CPU, and the scheduler
//! divides that CPU's time between them: an ordinary (`SCHED_OTHER`)
//! producer may be preempted by the reclaim in the middle of a retire call
//! for up to a scheduler slice, as a kernel task may be by its CPU's
//! kworker. A real-time (`SCHED_FIFO`/`SCHED_RR`) producer is not, and
//! that is the other side of the cost: a reclaim thread that moves onto the
//! CPU of a real-time producer that never sleeps runs there only in the
//! window the kernel keeps for ordinary threads beside real-time ones (by
//! default 50 ms a second; none where that is turned off), and it
//! holds the batch it is freeing meanwhile, so reclaim and `barrier()`
//! slow down or stall with it, as a kernel kworker does beside a spinning
//! RT task. So `FillingCpu` is for ordinary-priority producers;
//! [`ReclaimAffinity::Anywhere`] leaves the reclaim threads where the
//! scheduler puts them and serves both.
//!
//! Moving is an optimisation: on other systems than Linux, under Miri, and
//! when the move fails (a CPU outside the process's cpuset), the thread
//! frees where it is.

use core::cell::Cell;

/// Where the service's reclaim threads (the worker and its helpers) free
/// the objects of a page ([`Builder::reclaim_affinity`](crate::Builder::reclaim_affinity)).
///
/// ```
/// use std::sync::Arc;
/// use kvfree_rcu::{KvfreeRcu, Rcu, ReclaimAffinity};
/// let service = KvfreeRcu::builder(Arc::new(Rcu::new()))
///     .reclaim_affinity(ReclaimAffinity::Anywhere)
///     .build();
/// # drop(service);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReclaimAffinity {
    /// On the CPU that filled the page: the reclaim thread moves there
    /// (Linux; elsewhere as `Anywhere`). Faster floods; worse tails for
    /// ordinary-priority producers; not for real-time producers that never
    /// sleep, whose CPU the reclaim thread would wait for (see the module
    /// docs).
    FillingCpu,
    /// Wherever the scheduler runs the reclaim threads. The default: the
    /// service never puts its own threads on a producer's CPU.
    #[default]
    Anywhere,
}

/// This thread's part in reclaim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Not a reclaim thread of ours (an application thread in `barrier()`),
    /// or one with `ReclaimAffinity::Anywhere`: never moved.
    Stay,
    /// A reclaim thread that moves to the filling CPU; the CPU it was last
    /// moved to (`usize::MAX`: none yet).
    Follow { on: usize },
}

// `const`, no destructor: readable at any point of the thread's life.
thread_local! {
    static ROLE: Cell<Role> = const { Cell::new(Role::Stay) };
}

/// Marks the calling thread (the worker or a helper, at its start) as a
/// reclaim thread with `affinity`.
pub(crate) fn become_reclaim_thread(affinity: ReclaimAffinity) {
    let role = match affinity {
        ReclaimAffinity::FillingCpu => Role::Follow { on: usize::MAX },
        ReclaimAffinity::Anywhere => Role::Stay,
    };
    ROLE.with(|r| r.set(role));
}

/// Before freeing objects a page recorded as filled on `cpu`: moves the
/// calling thread there if it is a reclaim thread that follows the filling
/// CPU and is elsewhere. Ordinary context (a syscall).
pub(crate) fn move_to_filling_cpu(cpu: usize) {
    let Role::Follow { on } = ROLE.with(Cell::get) else {
        return;
    };
    if on == cpu {
        return;
    }
    // Remember the attempt even when it fails: one syscall per change of
    // CPU, not one per chunk on a CPU we may not use.
    ROLE.with(|r| r.set(Role::Follow { on: cpu }));
    set_affinity(cpu);
}

#[cfg(all(target_os = "linux", not(miri)))]
fn set_affinity(cpu: usize) {
    // Beyond the fixed-size set: stay (a machine with over 1024 CPUs).
    if cpu >= libc::CPU_SETSIZE as usize {
        return;
    }
    // SAFETY: `cpu_set_t` is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { core::mem::zeroed() };
    // SAFETY: `cpu` is below `CPU_SETSIZE` (checked above), so the bit is
    // inside `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid set of the size
    // passed. The result is not needed: on failure (a CPU outside our
    // cpuset) the thread stays where it is, which is correct, only slower.
    let _ = unsafe { libc::sched_setaffinity(0, core::mem::size_of_val(&set), &set) };
}

#[cfg(not(all(target_os = "linux", not(miri))))]
fn set_affinity(_cpu: usize) {}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;

    #[test]
    fn only_reclaim_threads_that_follow_move() {
        // An application thread: never moved, whatever the page says.
        move_to_filling_cpu(0);
        assert_eq!(ROLE.with(Cell::get), Role::Stay);
        std::thread::spawn(|| {
            become_reclaim_thread(ReclaimAffinity::Anywhere);
            move_to_filling_cpu(0);
            assert_eq!(ROLE.with(Cell::get), Role::Stay);
            become_reclaim_thread(ReclaimAffinity::FillingCpu);
            move_to_filling_cpu(0);
            assert_eq!(ROLE.with(Cell::get), Role::Follow { on: 0 });
        })
        .join()
        .unwrap();
    }
}
