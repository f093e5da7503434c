//! `Urcu`: liburcu's `call_rcu` (the "memb" flavour, which like kvfree-rcu's
//! `Rcu` uses `membarrier()` for its heavy side), through FFI. Feature
//! `liburcu`; links the system's `liburcu-memb`.
//!
//! liburcu's `call_rcu` takes an embedded `struct rcu_head { next; func; }`
//! (two words) and queues it on a wait-free queue for its call_rcu worker;
//! the object's [`RcuHead`](kvfree_rcu::RcuHead) field has exactly that size
//! and alignment and is otherwise unused by this scheme, so it serves as the
//! `rcu_head`. The calling thread must be registered (`call_rcu` enters a
//! read-side critical section).

use super::Scheme;
use crate::object::FloodObj;
use std::cell::Cell;
use std::mem::offset_of;
use std::ptr::NonNull;

/// liburcu's `struct rcu_head`.
#[repr(C)]
struct UrcuHead {
    next: *mut UrcuHead,
    func: Option<unsafe extern "C" fn(*mut UrcuHead)>,
}

const _: () = assert!(size_of::<UrcuHead>() == size_of::<kvfree_rcu::RcuHead>());

#[link(name = "urcu-memb")]
unsafe extern "C" {
    fn urcu_memb_register_thread();
    fn urcu_memb_unregister_thread();
    fn urcu_memb_call_rcu(head: *mut UrcuHead, func: unsafe extern "C" fn(*mut UrcuHead));
    fn urcu_memb_barrier();
    fn urcu_memb_synchronize_rcu();
}

thread_local! {
    /// Whether this thread is registered with liburcu (registering twice aborts).
    static REGISTERED: Cell<bool> = const { Cell::new(false) };
}

/// Frees the FloodObj whose head is `head`.
///
/// # Safety
/// 1. `head` points at the `head` field of a FloodObj from FloodObj::alloc,
///    derived from the object pointer (so with its provenance).
/// 2. It is called once, after a grace period.
unsafe extern "C" fn free_obj(head: *mut UrcuHead) {
    // SAFETY: contract 1: the object starts `offset_of!(FloodObj, head)`
    // bytes before the head, in the same allocation.
    let obj = unsafe { head.byte_sub(offset_of!(FloodObj, head)) }.cast::<FloodObj>();
    // SAFETY: contract 1 (a FloodObj::alloc pointer, non-null) and 2 (once).
    unsafe { FloodObj::free(NonNull::new_unchecked(obj)) }
}

/// liburcu's default call_rcu worker.
#[derive(Debug, Default)]
pub struct Urcu;

impl Urcu {
    /// The scheme (liburcu's process-wide domain).
    pub fn new() -> Urcu {
        Urcu
    }
}

impl Scheme for Urcu {
    fn name(&self) -> &'static str {
        "liburcu call_rcu"
    }

    fn register_thread(&self) {
        if !REGISTERED.replace(true) {
            // SAFETY: the thread is not registered yet (the flag says so).
            unsafe { urcu_memb_register_thread() }
        }
    }

    fn unregister_thread(&self) {
        if REGISTERED.replace(false) {
            // SAFETY: the thread registered in `register_thread`.
            unsafe { urcu_memb_unregister_thread() }
        }
    }

    #[inline]
    unsafe fn retire(&self, obj: NonNull<FloodObj>) {
        // SAFETY: `obj` is a live FloodObj (the trait's contract 1).
        let head = unsafe { &raw mut (*obj.as_ptr()).head }.cast::<UrcuHead>();
        // The head is two writable words only liburcu uses from now on, and
        // the thread is registered (register_thread runs first everywhere).
        // SAFETY: as above; `free_obj`'s contract 1 holds by construction and
        // liburcu calls it once after a grace period (contract 2).
        unsafe { urcu_memb_call_rcu(head, free_obj) }
    }

    fn barrier(&self) {
        let was_registered = REGISTERED.get();
        self.register_thread();
        // SAFETY: the thread is registered and outside any read-side
        // critical section, as both calls require.
        unsafe {
            urcu_memb_synchronize_rcu();
            urcu_memb_barrier();
        }
        if !was_registered {
            self.unregister_thread();
        }
    }
}
