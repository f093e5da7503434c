//! Slabs: the pool gets its pages from the general allocator
//! [`Config::slab_pages`](crate::Config::slab_pages) at a time, and gives a
//! slab back once every page of it is freed.
//!
//! # Why
//! A page is 4 KiB, and glibc grows a thread's arena (every thread but the
//! first allocates from an arena of its own) by exactly what a request
//! needs, one `mprotect` call per growth: an aligned page took one
//! `mprotect` of 8 KiB, under the process's memory-map lock, which every
//! other thread's arena growth and trim takes too. In the 8-thread flood
//! the worker allocated about 5 000 pages that way while eight producers
//! grew their own arenas 4 000 times each; the worker spent most of its
//! rounds waiting for that lock (half a second of a one-second flood under
//! `perf trace`), its refills came late, and the lanes ran dry. One
//! allocation of 16 pages (64 KiB, below glibc's 128 KiB `mmap`
//! threshold) grows the arena once for all of them (docs/BENCHMARKS.md,
//! "Pages allocated in slabs"). Allocators that grow their heap in large
//! steps do not need it: on mimalloc the 8-thread flood's peak memory was
//! about 10% higher with slabs, so `slab_pages = 1` suits it better.
//!
//! # Layout and lifetime
//! ```text
//! +--------+--------+-----+----------+      +----------------------------+
//! | page 0 | page 1 | ... | page n-1 |  <-  | header: live, base, layout |
//! +--------+--------+-----+----------+      +----------------------------+
//! ```
//! One allocation of exactly `n` pages (a size an allocator with size
//! classes of whole pages serves without padding), and a small one for the
//! [`Slab`] header, which counts the pages not freed yet. Every page
//! points to its header
//! (its `slab` field); freeing a page (`Page::free`) drops the page in
//! place and releases it here ([`release`]); the release that brings the
//! count to zero frees the whole allocation. The count starts at `n`, so
//! the allocation lives exactly as long as its longest-lived page.
//!
//! Releases come from any thread that owns a page (the worker, a helper,
//! a `kvfree_rcu_mightsleep` caller, `Drop`), so the count is an atomic
//! decremented with `AcqRel`: its `Release` half orders the releasing
//! thread's last use of its page before the count moves; its `Acquire`
//! half, on the decrement that reaches zero, orders every other page's
//! last use (the decrements form one release sequence) before the free.
//! `Arc` uses a `Release` decrement and an `Acquire` fence instead; a
//! fence is invisible to ThreadSanitizer, which runs this code in CI, and
//! the cost of the stronger decrement does not matter off the retire
//! path.
//!
//! # Cost
//! A page the pool keeps (in a cache or the reserve) keeps its slab
//! allocated: at most `slab_pages - 1` idle pages' worth of memory (60
//! KiB at the default) per kept page, until that page goes too. The pool
//! keeps pages only while traffic uses them: idle lanes relax to their
//! base target, and an unused reserve halves at each idle look
//! (`reserve.rs`), so an idle pool gives its slabs back.
//!
//! Only ordinary-context code allocates or frees pages (refill, recycle,
//! relax, shrink, `push_with_new_page`, `Drop`); never a push.

use crate::page::Page;
use crate::page_list::PageList;
use crate::sync::{AtomicUsize, Ordering};
use core::ptr::NonNull;
use std::alloc::{self, Layout};

/// The header of a slab (see the module doc), in an allocation of its
/// own.
pub(crate) struct Slab {
    /// Pages of the slab not freed yet.
    live: AtomicUsize,
    /// The slab's pages, and their layout, for the last release.
    base: NonNull<u8>,
    layout: Layout,
}

/// The layout of a slab of `pages` pages; `None` if it overflows.
fn slab_layout(pages: usize) -> Option<Layout> {
    Layout::array::<Page>(pages).ok()
}

/// Allocates a slab of `pages` empty pages (at least 1) with the general
/// allocator (ordinary context only), each owned by the list it returns.
/// `None` if allocation failed.
pub(crate) fn alloc(pages: usize) -> Option<PageList> {
    let pages = pages.max(1);
    let layout = slab_layout(pages)?;
    // SAFETY: the layout holds at least one page: non-zero size.
    let base = NonNull::new(unsafe { alloc::alloc(layout) })?;
    let header = Box::new(Slab {
        live: AtomicUsize::new(pages),
        base,
        layout,
    });
    let header = NonNull::from(Box::leak(header));
    let mut list = PageList::new();
    for i in 0..pages {
        // SAFETY: page `i` of `Layout::array::<Page>(pages)` starts at
        // offset `i * size_of::<Page>()`, inside the allocation and aligned
        // for a page.
        let page = unsafe { base.cast::<Page>().add(i) };
        // SAFETY: the page's memory is ours, unused, and valid for a page
        // (above); its header lives as long as any of the slab's pages.
        unsafe {
            Page::init(page, header);
            list.push(page);
        }
    }
    Some(list)
}

/// Releases one page of `slab`: the last release frees the slab.
///
/// # Safety
/// 1. The caller owned a page of `slab`, dropped it in place, and never
///    uses it again; each page is released once.
pub(crate) unsafe fn release(slab: NonNull<Slab>) {
    // SAFETY: contract 1: a page of the slab was live until now, so its
    // header is (it goes only with the last page).
    let live = unsafe { &slab.as_ref().live };
    // AcqRel: the Release half orders this thread's last use of its page
    // before the count moves, for whoever takes it to zero; the Acquire
    // half, when this decrement is that one, pairs with every other
    // page's decrement (all read-modify-writes of one count, so one
    // release sequence): all of their last uses happen before the free.
    if live.fetch_sub(1, Ordering::AcqRel) != 1 {
        return;
    }
    // SAFETY: zero: every page was released (contract 1), so nobody uses
    // the pages or the header; the pages go with their own layout, the
    // header came from `Box::leak` in `alloc`.
    unsafe {
        let header = Box::from_raw(slab.as_ptr());
        alloc::dealloc(header.base.as_ptr(), header.layout);
    }
}

#[cfg(all(test, not(kvfree_loom)))]
mod tests {
    use super::*;

    /// Frees every page of a slab, in the order given by `order`.
    fn free_in_order(pages: usize, order: impl Fn(usize) -> usize) {
        let mut list = alloc(pages).expect("a small slab");
        assert_eq!(list.pages(), pages);
        let mut each = Vec::new();
        while let Some(page) = list.pop() {
            each.push(page);
        }
        for i in 0..pages {
            // SAFETY: each page is ours, popped from the list, freed once
            // (`order` is a permutation).
            unsafe { Page::free(each[order(i)]) };
        }
    }

    #[test]
    fn a_slab_is_freed_with_its_last_page_in_any_order() {
        // Miri checks that the slab is freed once (no leak, no double
        // free) and that no page is used after its slab is freed.
        free_in_order(1, |i| i);
        free_in_order(4, |i| i);
        free_in_order(4, |i| 3 - i);
        free_in_order(5, |i| (i * 2) % 5);
    }

    #[test]
    fn a_slabs_pages_are_distinct_and_aligned() {
        let mut list = alloc(3).expect("a small slab");
        let mut addrs = Vec::new();
        while let Some(page) = list.pop() {
            assert_eq!(page.as_ptr().addr() % align_of::<Page>(), 0);
            addrs.push(page);
        }
        addrs.sort();
        addrs.dedup();
        assert_eq!(addrs.len(), 3);
        for page in addrs {
            // SAFETY: each page is ours, freed once.
            unsafe { Page::free(page) };
        }
    }

    /// A page that moves to another thread with its owner.
    struct Owned(NonNull<Page>);
    // SAFETY: a page is plain memory, owned by one thread at a time: the
    // thread that receives it is its only user.
    unsafe impl Send for Owned {}

    #[test]
    fn threads_that_free_a_slabs_pages_at_once_free_it_once() {
        // Each thread writes its page, then frees it: under Miri, a
        // `Relaxed` decrement would race the other thread's writes with
        // the slab's free.
        for _ in 0..if cfg!(miri) { 4 } else { 100 } {
            let mut list = alloc(2).expect("a small slab");
            let pages = [list.pop().unwrap(), list.pop().unwrap()].map(Owned);
            std::thread::scope(|s| {
                for page in pages {
                    s.spawn(move || {
                        let page = page;
                        // SAFETY: the page is this thread's alone; it writes
                        // every header field, then frees it once.
                        unsafe {
                            Page::reset(page.0);
                            Page::free(page.0);
                        }
                    });
                }
            });
        }
    }

    #[test]
    fn an_impossible_slab_is_none() {
        assert!(slab_layout(usize::MAX).is_none());
    }
}
