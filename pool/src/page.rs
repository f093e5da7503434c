//! A page: one 4096-byte, 4096-aligned block holding a run-length stream of
//! records.
//!
//! ```text
//! +------+------+-------+-----------+-----------+-------------+------+---------------------------+
//! | next | used | items | last_kind | filled_on | thread_lane | slab | records[RECORDS_PER_PAGE] |
//! +------+------+-------+-----------+-----------+-------------+------+---------------------------+
//!                                                                      NULL, k1, p, p, p, NULL, ...
//! ```
//!
//! `slab` points to the header of the `Slab` the page was allocated in
//! (`slab.rs`), which frees the slab with its last page. Set once, when
//! the slab is allocated; `reset` leaves it. It takes another word of the
//! padding.
//!
//! `thread_lane` is the [`LaneTag`] of the thread lane that filled the page
//! (0 for a page filled through the per-CPU lanes): a consumer can give a
//! thread the pages of its own lane to free, so that the objects go back to
//! the allocator caches of the thread that allocated them
//! ([`PageList::split_by_thread_lane`]). It takes another word of the
//! padding.
//!
//! `filled_on` is the CPU the page's first record was pushed on
//! ([`NO_CPU`] while the page is empty): a consumer that frees on the CPU
//! that filled the page finds the objects in that CPU's caches
//! ([`PageList::first_page_cpu`]). It takes one of the words the 4096-byte
//! alignment leaves as padding after the records.
//!
//! `next` links the page into the hand-off list or a [`PageList`]; `used` is
//! the number of records written, `items` the number of pointers among
//! them, `last_kind` the kind of the last pointer written (null on an empty
//! page). When a pointer's kind differs from `last_kind`, the writer first
//! writes `MARKER` and the kind. A page is *full* for a pointer when the
//! records it needs (1, or 3 on a kind change) do not fit in
//! [`USABLE_RECORDS`].
//!
//! `MARKER` is the null pointer: the one value no record can be, since
//! pointers and kinds are `NonNull`. Every other address can be a pointer,
//! even `usize::MAX` (a dangling pointer to a zero-sized value with
//! alignment 1 is valid anywhere but 0), so any other marker would be
//! ambiguous. Null costs nothing on the push path: no pointer needs escaping,
//! and the decoder tests each record against it.
//!
//! # Ownership
//! Every field is read and written only by the page's current owner (see the
//! crate doc), so fields are plain cells, not atomics: ownership passes with a
//! `Release` store or CAS and an `Acquire` swap on the word the page sits in,
//! which orders the previous owner's writes before the next owner's reads.
//! Every function here that touches a page is `unsafe` with that one contract.
//!
//! Records are stored as pointers (`*mut ()`), never as integers, so the
//! objects' and the kinds' provenance survives (Miri strict provenance).
//!
//! [`PageList`]: crate::PageList

use crate::slab::{self, Slab};
use crate::sync::UnsafeCell;
use crate::{Kind, LaneTag, RECORDS_PER_PAGE, USABLE_RECORDS};
use core::ptr::{self, NonNull};

/// Length of the record array. Under loom every cell is a tracked object, so
/// the array is cut to the records actually used; elsewhere it is the full
/// [`RECORDS_PER_PAGE`] (Miri caps only the *usable* part).
const RECORD_WORDS: usize = if cfg!(kvfree_loom) {
    USABLE_RECORDS
} else {
    RECORDS_PER_PAGE
};

/// Announces that the next record is a kind: null, which no pointer or kind
/// can be (see the module doc).
const MARKER: *mut () = ptr::null_mut();

/// One page of records (see the module doc for the layout and the rules).
#[repr(C, align(4096))]
pub(crate) struct Page {
    next: UnsafeCell<*mut Page>,
    used: UnsafeCell<usize>,
    items: UnsafeCell<usize>,
    last_kind: UnsafeCell<*mut ()>,
    filled_on: UnsafeCell<usize>,
    thread_lane: UnsafeCell<usize>,
    slab: UnsafeCell<NonNull<Slab>>,
    records: [UnsafeCell<*mut ()>; RECORD_WORDS],
}

/// `filled_on` of an empty page.
const NO_CPU: usize = usize::MAX;

// Not under loom, where the record array is cut (`RECORD_WORDS`) and loom's
// cells are larger than a word: the page is then another size.
#[cfg(not(kvfree_loom))]
const _: () = {
    assert!(size_of::<Page>() == crate::PAGE_SIZE);
    assert!(align_of::<Page>() == crate::PAGE_SIZE);
};
const _: () = assert!(USABLE_RECORDS >= 3 && USABLE_RECORDS <= RECORD_WORDS);

/// Reads a field of a page.
///
/// # Safety
/// 1. The caller owns the page that contains `cell`.
#[inline(always)]
unsafe fn get<T: Copy>(cell: &UnsafeCell<T>) -> T {
    // SAFETY: by contract 1 nobody else accesses the cell, so no write races
    // this read; every field is initialised by `alloc`.
    cell.with(|p| unsafe { *p })
}

/// How many records ahead `for_each_record` prefetches: the page lists the
/// objects ahead of time, so their cache lines can be on their way while
/// the earlier ones are freed (measured in docs/BENCHMARKS.md, "levers").
const PREFETCH_AHEAD: usize = 8;

/// Writes a field of a page.
///
/// # Safety
/// 1. The caller owns the page that contains `cell`.
#[inline(always)]
unsafe fn set<T: Copy>(cell: &UnsafeCell<T>, value: T) {
    // SAFETY: by contract 1 nobody else accesses the cell, so this write races
    // no other access.
    cell.with_mut(|p| unsafe { p.write(value) })
}

impl Page {
    /// Makes an empty page of `slab` in `page`'s memory.
    ///
    /// # Safety
    /// 1. `page` is valid for writes of a `Page`, aligned, and unused: the
    ///    caller owns it from now on.
    /// 2. `slab` is the header of the slab `page` is part of, live until
    ///    every page of it is released (`slab.rs`).
    pub(crate) unsafe fn init(page: NonNull<Page>, slab: NonNull<Slab>) {
        let raw = page.as_ptr();
        // SAFETY: contract 1: `raw` is valid, suitably aligned memory for a
        // `Page`; each write initialises one field in place, through raw
        // pointers, so no reference to uninitialised memory is made.
        unsafe {
            ptr::addr_of_mut!((*raw).next).write(UnsafeCell::new(ptr::null_mut()));
            ptr::addr_of_mut!((*raw).used).write(UnsafeCell::new(0));
            ptr::addr_of_mut!((*raw).items).write(UnsafeCell::new(0));
            ptr::addr_of_mut!((*raw).last_kind).write(UnsafeCell::new(ptr::null_mut()));
            ptr::addr_of_mut!((*raw).filled_on).write(UnsafeCell::new(NO_CPU));
            ptr::addr_of_mut!((*raw).thread_lane).write(UnsafeCell::new(0));
            ptr::addr_of_mut!((*raw).slab).write(UnsafeCell::new(slab));
            let records = ptr::addr_of_mut!((*raw).records).cast::<UnsafeCell<*mut ()>>();
            for i in 0..RECORD_WORDS {
                records.add(i).write(UnsafeCell::new(ptr::null_mut()));
            }
        }
    }

    /// Frees a page. Records still in it are leaked (the pool never frees
    /// objects).
    ///
    /// # Safety
    /// 1. The caller owns `page`, a page [`Page::init`] made in a slab
    ///    (`slab.rs`), and nobody uses it afterwards.
    pub(crate) unsafe fn free(page: NonNull<Page>) {
        // SAFETY: contract 1: the page is live, initialised and ours, and
        // nobody touches it after this, so it can be dropped in place and
        // released; `init` set its slab, live until its last page goes.
        unsafe {
            let slab = get(&page.as_ref().slab);
            ptr::drop_in_place(page.as_ptr());
            slab::release(slab);
        }
    }

    /// Empties a page for reuse.
    ///
    /// # Safety
    /// 1. The caller owns `page`, a live page.
    pub(crate) unsafe fn reset(page: NonNull<Page>) {
        // SAFETY: contract 1: the page is live.
        let page = unsafe { page.as_ref() };
        // SAFETY: contract 1: we own the page.
        unsafe {
            set(&page.next, ptr::null_mut());
            set(&page.used, 0);
            set(&page.items, 0);
            set(&page.last_kind, ptr::null_mut());
            set(&page.filled_on, NO_CPU);
            set(&page.thread_lane, 0);
        }
    }

    /// Appends `ptr` of kind `kind` to the stream, preceded by `MARKER, kind`
    /// if the kind changes. Returns false, writing nothing, if the page is
    /// full for it. Never fails on an empty page.
    ///
    /// # Safety
    /// 1. The caller owns `page`, a live page.
    #[inline]
    pub(crate) unsafe fn try_push(page: NonNull<Page>, ptr: NonNull<()>, kind: Kind) -> bool {
        // SAFETY: contract 1: the page is live.
        let page = unsafe { page.as_ref() };
        let kind = kind.as_ptr().as_ptr();
        // SAFETY: contract 1, we own the page (so for every `get`/`set` below).
        let (mut used, last_kind) = unsafe { (get(&page.used), get(&page.last_kind)) };
        let first = used == 0;
        let same_kind = last_kind == kind;
        let needed = if same_kind { 1 } else { 3 };
        if used + needed > USABLE_RECORDS {
            return false;
        }
        if !same_kind {
            // SAFETY: as above.
            unsafe {
                set(&page.records[used], MARKER);
                set(&page.records[used + 1], kind);
                set(&page.last_kind, kind);
            }
            used += 2;
        }
        // SAFETY: as above.
        unsafe {
            set(&page.records[used], ptr.as_ptr());
            set(&page.used, used + 1);
            set(&page.items, get(&page.items) + 1);
        }
        if first {
            // Once per page: the CPU this push runs on (getcpu: rseq or the
            // vDSO, no syscall).
            // SAFETY: as above.
            unsafe { set(&page.filled_on, crate::cpu::current()) };
        }
        true
    }

    /// Marks an empty page as filled through the thread lane `tag`.
    ///
    /// # Safety
    /// 1. The caller owns `page`, a live page.
    pub(crate) unsafe fn set_thread_lane(page: NonNull<Page>, tag: LaneTag) {
        // SAFETY: contract 1: the page is live and ours.
        unsafe { set(&page.as_ref().thread_lane, tag.0.get()) };
    }

    /// The thread lane that filled the page; `None` for a page filled
    /// through the per-CPU lanes, or empty.
    ///
    /// # Safety
    /// 1. The caller owns `page`, a live page.
    pub(crate) unsafe fn thread_lane(page: NonNull<Page>) -> Option<LaneTag> {
        // SAFETY: contract 1: the page is live and ours.
        let tag = unsafe { get(&page.as_ref().thread_lane) };
        core::num::NonZeroUsize::new(tag).map(LaneTag)
    }

    /// The CPU the page's first record was pushed on; `None` for an empty
    /// page.
    ///
    /// # Safety
    /// 1. The caller owns `page`, a live page.
    pub(crate) unsafe fn filled_on(page: NonNull<Page>) -> Option<usize> {
        // SAFETY: contract 1: the page is live and ours.
        let cpu = unsafe { get(&page.as_ref().filled_on) };
        (cpu != NO_CPU).then_some(cpu)
    }

    /// The next page in the list this page sits in (null: none).
    ///
    /// # Safety
    /// 1. The caller owns `page`, a live page.
    pub(crate) unsafe fn next(page: NonNull<Page>) -> *mut Page {
        // SAFETY: contract 1: the page is live and ours.
        unsafe { get(&page.as_ref().next) }
    }

    /// Links `page` in front of `next`.
    ///
    /// # Safety
    /// 1. The caller owns `page`, a live page.
    pub(crate) unsafe fn set_next(page: NonNull<Page>, next: *mut Page) {
        // SAFETY: contract 1: the page is live and ours.
        unsafe { set(&page.as_ref().next, next) }
    }

    /// Records written (pointers, markers and kinds).
    ///
    /// # Safety
    /// 1. The caller owns `page`, a live page.
    pub(crate) unsafe fn used(page: NonNull<Page>) -> usize {
        // SAFETY: contract 1: the page is live and ours.
        unsafe { get(&page.as_ref().used) }
    }

    /// Pointers stored (records minus markers and kinds).
    ///
    /// # Safety
    /// 1. The caller owns `page`, a live page.
    pub(crate) unsafe fn items(page: NonNull<Page>) -> usize {
        // SAFETY: contract 1: the page is live and ours.
        unsafe { get(&page.as_ref().items) }
    }

    /// Calls `f(ptr, kind)` for every pointer in write order, decoding the
    /// run-length kinds. Walks the array only; never touches the objects.
    ///
    /// # Safety
    /// 1. The caller owns `page`, a live page.
    pub(crate) unsafe fn for_each_record(
        page: NonNull<Page>,
        f: &mut impl FnMut(NonNull<()>, Kind),
    ) {
        // SAFETY: contract 1: the page is live.
        let page = unsafe { page.as_ref() };
        // SAFETY: contract 1, we own the page (so for every `get` below).
        let used = unsafe { get(&page.used) };
        let mut kind = None;
        let mut i = 0;
        while i < used {
            if i + PREFETCH_AHEAD < used {
                // SAFETY: as above.
                let ahead: *mut () = unsafe { get(&page.records[i + PREFETCH_AHEAD]) };
                crate::prefetch::read(ahead.cast_const());
            }
            // SAFETY: as above.
            let record = unsafe { get(&page.records[i]) };
            if record == MARKER {
                // SAFETY: as above.
                kind = NonNull::new(unsafe { get(&page.records[i + 1]) }).map(Kind::new);
                i += 2;
                continue;
            }
            // A stream always starts with `MARKER, kind`, and only non-null
            // pointers and kinds are written, so a record that is not the
            // marker is a pointer (non-null) and a kind is known.
            if let (Some(ptr), Some(kind)) = (NonNull::new(record), kind) {
                f(ptr, kind);
            } else {
                debug_assert!(false, "corrupt record stream");
            }
            i += 1;
        }
    }
}
