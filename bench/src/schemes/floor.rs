//! `Floor`: the physical limit of *recording* a pointer: a push into a
//! thread-local `ArrayVec`, with no atomics and no fences. It is not a valid
//! RCU scheme (nothing waits for readers); the recorded objects are freed in
//! batches by [`Scheme::flush_thread`], outside the timed region of the
//! retire bench, and in the flood when the array fills up or the thread ends.

use super::Scheme;
use crate::object::FloodObj;
use arrayvec::ArrayVec;
use std::cell::RefCell;
use std::ptr::NonNull;

/// Records per thread before a batch free.
pub const FLOOR_CAPACITY: usize = 1024;

thread_local! {
    static RECORDED: RefCell<ArrayVec<NonNull<FloodObj>, FLOOR_CAPACITY>> = const { RefCell::new(ArrayVec::new_const()) };
}

/// Thread-local recording.
#[derive(Debug, Default)]
pub struct Floor;

impl Floor {
    /// The scheme.
    pub fn new() -> Floor {
        Floor
    }
}

fn free_recorded(recorded: &mut ArrayVec<NonNull<FloodObj>, FLOOR_CAPACITY>) {
    for obj in recorded.drain(..) {
        // SAFETY: every recorded pointer came from `retire`, whose contract
        // makes it a FloodObj::alloc pointer retired once and unused since.
        unsafe { FloodObj::free(obj) };
    }
}

impl Scheme for Floor {
    fn name(&self) -> &'static str {
        "floor"
    }

    #[inline]
    unsafe fn retire(&self, obj: NonNull<FloodObj>) {
        RECORDED.with(|r| {
            let mut recorded = r.borrow_mut();
            if let Err(full) = recorded.try_push(obj) {
                free_recorded(&mut recorded);
                recorded.push(full.element());
            }
        });
    }

    fn flush_thread(&self) {
        RECORDED.with(|r| free_recorded(&mut r.borrow_mut()));
    }

    fn barrier(&self) {
        self.flush_thread();
    }
}
