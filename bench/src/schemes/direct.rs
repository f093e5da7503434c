//! `Direct`: frees the object at once, with no grace period. Not a valid
//! RCU scheme; it measures the cost of freeing itself, the flood's floor.
//! (Every scheme pays the allocation; this one pays the free at once, on
//! the allocating thread.)

use super::Scheme;
use crate::object::FloodObj;
use std::ptr::NonNull;

/// Frees at once.
#[derive(Debug, Default)]
pub struct Direct;

impl Direct {
    /// The scheme.
    pub fn new() -> Direct {
        Direct
    }
}

impl Scheme for Direct {
    fn name(&self) -> &'static str {
        "direct"
    }

    #[inline]
    unsafe fn retire(&self, obj: NonNull<FloodObj>) {
        // Without `black_box` the compiler sees the allocation freed unused
        // right after it was made (the flood's loop inlines both) and
        // removes the pair, so this row would measure nothing.
        let obj = std::hint::black_box(obj);
        // SAFETY: the trait's contract 1 and 2 are FloodObj::free's.
        unsafe { FloodObj::free(obj) }
    }

    fn barrier(&self) {}
}
