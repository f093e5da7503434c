//! The hand-off of full pages to the consumer: a Treiber stack taken whole.
//!
//! A producer that fills a page links it in front of the current head and
//! publishes it with a `Release` CAS; the consumer takes the whole list with
//! one `swap(null)` (`Acquire`). Because the consumer never pops a single node
//! there is no ABA: a pusher's CAS only compares the head it linked behind,
//! and a pusher only ever reads and writes its own page (its `next` link), so
//! no one dereferences a page they do not own. Each CAS continues the release
//! sequence of the CASes before it, so the consumer's `Acquire` sees every
//! page in the list, not only the head.

use crate::page::Page;
use crate::sync::{
    AtomicPtr,
    Ordering::{Acquire, Relaxed, Release},
};
use core::ptr::{self, NonNull};

/// The list of sealed (full) pages (see the module doc).
pub(crate) struct HandOff {
    head: AtomicPtr<Page>,
}

impl HandOff {
    pub(crate) fn new() -> HandOff {
        HandOff {
            head: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Hands `page` over to the consumer. Lock-free: the loop retries only
    /// when another push succeeded.
    ///
    /// # Safety
    /// 1. The caller owns `page`, a live page, and gives up ownership.
    pub(crate) unsafe fn push(&self, page: NonNull<Page>) {
        // Relaxed: we never read through the head; the CAS decides.
        let mut head = self.head.load(Relaxed);
        loop {
            // SAFETY: contract 1: we still own the page until the CAS succeeds.
            unsafe { Page::set_next(page, head) };
            // Release: publishes the page's records and link; pairs with the
            // Acquire swap in `take_all`.
            match self
                .head
                .compare_exchange_weak(head, page.as_ptr(), Release, Relaxed)
            {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }

    /// Takes every handed-off page: the caller owns the returned chain
    /// (linked through `next`, null-terminated).
    pub(crate) fn take_all(&self) -> *mut Page {
        // Acquire: pairs with the Release CASes in `push` (a release sequence).
        self.head.swap(ptr::null_mut(), Acquire)
    }
}
