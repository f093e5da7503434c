//! `CallRcu`: a correct but naive `call_rcu`, the design the kernel's
//! `kvfree_rcu()` replaced: every call allocates a callback
//! (`Box<dyn FnOnce>`, capturing the object pointer) and a list node
//! holding it, and pushes the node onto a lock-free Treiber stack, so the
//! comparison is about the allocations, not about a lock.
//!
//! A worker thread takes the whole stack with one `swap(null)` every
//! millisecond (or at once when [`Scheme::barrier`] nudges it), waits for a
//! grace period of the same kind of [`Rcu`] domain kvfree-rcu uses
//! (`synchronize`, taken after the swap, so after every push in the batch),
//! and runs the callbacks oldest first. `barrier()` queues a callback that
//! raises a flag and waits for it: since batches run in order and a batch's
//! callbacks run oldest first, every earlier callback has run by then.

use super::Scheme;
use crate::object::FloodObj;
use kvfree_rcu::Rcu;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

type Callback = Box<dyn FnOnce() + Send>;

struct Node {
    next: *mut Node,
    callback: Callback,
}

/// A raw object pointer that may move to the worker thread.
struct SendPtr(NonNull<FloodObj>);

// SAFETY: the pointer is a retired FloodObj (Send: plain data) that only the
// callback uses, once.
unsafe impl Send for SendPtr {}

impl SendPtr {
    /// Unwraps (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> NonNull<FloodObj> {
        self.0
    }
}

struct Shared {
    rcu: Rcu,
    /// Treiber stack of pending callbacks, newest first.
    pending: AtomicPtr<Node>,
    stop: AtomicBool,
    paused: AtomicBool,
}

impl Shared {
    fn push(&self, callback: Callback) {
        let node = Box::into_raw(Box::new(Node {
            next: ptr::null_mut(),
            callback,
        }));
        let mut top = self.pending.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` is ours until the CAS publishes it.
            unsafe { (*node).next = top };
            // Release: publishes the node (and the caller's unlink) to the
            // worker's Acquire swap.
            match self.pending.compare_exchange_weak(
                top,
                node,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(now) => top = now,
            }
        }
    }

    /// Takes every pending callback, waits a grace period, runs them oldest
    /// first. Returns whether there was anything.
    fn run_batch(&self) -> bool {
        // Acquire: pairs with the Release CAS in `push`.
        let mut top = self.pending.swap(ptr::null_mut(), Ordering::Acquire);
        if top.is_null() {
            return false;
        }
        self.rcu.synchronize();
        let mut oldest_first = Vec::new();
        while !top.is_null() {
            // SAFETY: the swap made us the only owner of every node on the
            // list; each came from Box::into_raw in `push`.
            let node = unsafe { Box::from_raw(top) };
            top = node.next;
            oldest_first.push(node.callback);
        }
        for callback in oldest_first.into_iter().rev() {
            callback();
        }
        true
    }
}

/// A naive `call_rcu` with its worker thread.
pub struct CallRcu {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for CallRcu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallRcu").finish_non_exhaustive()
    }
}

impl CallRcu {
    /// A fresh domain and worker.
    pub fn new() -> CallRcu {
        let shared = Arc::new(Shared {
            rcu: Rcu::new(),
            pending: AtomicPtr::new(ptr::null_mut()),
            stop: AtomicBool::new(false),
            paused: AtomicBool::new(false),
        });
        let s = shared.clone();
        let worker = std::thread::Builder::new()
            .name("call-rcu".into())
            .spawn(move || {
                // Acquire: pairs with the Release store in `drop`.
                while !s.stop.load(Ordering::Acquire) {
                    // Relaxed: a test switch; no data depends on it.
                    if s.paused.load(Ordering::Relaxed) || !s.run_batch() {
                        std::thread::park_timeout(Duration::from_millis(1));
                    }
                }
            })
            .expect("spawn the call_rcu worker");
        CallRcu {
            shared,
            worker: Mutex::new(Some(worker)),
        }
    }

    /// Queues `callback` to run after a grace period (allocates a node).
    pub fn call_rcu(&self, callback: Callback) {
        self.shared.push(callback);
    }
}

impl Default for CallRcu {
    fn default() -> Self {
        CallRcu::new()
    }
}

impl Scheme for CallRcu {
    fn name(&self) -> &'static str {
        "naive call_rcu"
    }

    #[inline]
    unsafe fn retire(&self, obj: NonNull<FloodObj>) {
        let obj = SendPtr(obj);
        self.call_rcu(Box::new(move || {
            let obj = obj.get();
            // SAFETY: the trait's contract (a FloodObj::alloc pointer,
            // retired once, unused by the caller) and a grace period has
            // elapsed since it was queued.
            unsafe { FloodObj::free(obj) }
        }));
    }

    fn barrier(&self) {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        // Release: pairs with the Acquire load below; the callbacks before
        // it have run.
        self.call_rcu(Box::new(move || flag.store(true, Ordering::Release)));
        let mut sleep = Duration::from_micros(10);
        // Acquire: pairs with the Release store in the barrier callback.
        while !done.load(Ordering::Acquire) {
            if let Some(w) = self.worker.lock().unwrap().as_ref() {
                w.thread().unpark();
            }
            std::thread::sleep(sleep);
            sleep = (sleep * 2).min(Duration::from_millis(1));
        }
    }

    fn grace_periods(&self) -> Option<u64> {
        Some(self.shared.rcu.grace_periods())
    }

    fn stall_worker(&self) -> bool {
        // Relaxed: a test switch.
        self.shared.paused.store(true, Ordering::Relaxed);
        true
    }

    fn resume_worker(&self) {
        // Relaxed: a test switch.
        self.shared.paused.store(false, Ordering::Relaxed);
    }
}

impl Drop for CallRcu {
    fn drop(&mut self) {
        self.resume_worker();
        self.barrier();
        // Release: pairs with the worker's Acquire load.
        self.shared.stop.store(true, Ordering::Release);
        if let Some(w) = self.worker.lock().unwrap().take() {
            w.thread().unpark();
            let _ = w.join();
        }
        // The worker is gone: run anything queued after the last batch.
        while self.shared.run_batch() {}
    }
}
