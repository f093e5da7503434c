//! Pages owned by the consumer: a singly linked list through page headers.
//!
//! A `PageList` is what the consumer gets from
//! [`Pool::take_sealed`](crate::Pool::take_sealed) and
//! [`Pool::seal_open`](crate::Pool::seal_open), drains with
//! [`PageList::for_each_record`], and gives back with
//! [`Pool::recycle`](crate::Pool::recycle). It owns its pages outright (no
//! producer can reach them any more), so it may be sent to another thread and
//! its pages freed at will.
//!
//! Dropping a list frees its pages and **leaks the records in them**: the pool
//! never frees objects, it only stores pointers to them. Drain first.

use crate::Kind;
use crate::page::Page;
use core::fmt;
use core::ptr::{self, NonNull};

/// Pages owned by the consumer (a singly linked list through page headers).
///
/// # Example
/// ```
/// use kvfree_rcu_pool::PageList;
///
/// let mut a = PageList::new();
/// a.append(PageList::new());
/// assert!(a.is_empty());
/// assert_eq!((a.pages(), a.records()), (0, 0));
/// ```
pub struct PageList {
    head: *mut Page,
    tail: *mut Page,
    pages: usize,
    records: usize,
}

// SAFETY: a PageList owns its pages exclusively (no producer or other list
// can reach them), and a page holds only addresses, never dereferenced by the
// pool, so moving the list to another thread is like moving a Vec of words.
unsafe impl Send for PageList {}

impl PageList {
    /// An empty list.
    ///
    /// ```
    /// use kvfree_rcu_pool::PageList;
    /// let list = PageList::new();
    /// assert!(list.is_empty());
    /// ```
    pub const fn new() -> PageList {
        PageList {
            head: ptr::null_mut(),
            tail: ptr::null_mut(),
            pages: 0,
            records: 0,
        }
    }

    /// Takes ownership of a null-terminated chain of pages.
    ///
    /// # Safety
    /// 1. The caller owns every page of the chain starting at `head` (null:
    ///    empty), and gives up ownership.
    pub(crate) unsafe fn from_chain(head: *mut Page) -> PageList {
        let mut list = PageList::new();
        let mut next = head;
        while let Some(page) = NonNull::new(next) {
            // SAFETY: contract 1: we own every page of the chain.
            next = unsafe { Page::next(page) };
            // SAFETY: contract 1, as above.
            unsafe { list.push(page) };
        }
        list
    }

    /// Appends one page.
    ///
    /// # Safety
    /// 1. The caller owns `page`, a live page not in any list, and gives up
    ///    ownership.
    pub(crate) unsafe fn push(&mut self, page: NonNull<Page>) {
        // SAFETY: contract 1: the page is ours now.
        unsafe {
            Page::set_next(page, ptr::null_mut());
            self.records += Page::items(page);
        }
        match NonNull::new(self.tail) {
            // SAFETY: the list owns its tail page.
            Some(tail) => unsafe { Page::set_next(tail, page.as_ptr()) },
            None => self.head = page.as_ptr(),
        }
        self.tail = page.as_ptr();
        self.pages += 1;
    }

    /// Removes the first page; the caller owns it.
    pub(crate) fn pop(&mut self) -> Option<NonNull<Page>> {
        let page = NonNull::new(self.head)?;
        // SAFETY: the list owns its pages.
        unsafe {
            self.head = Page::next(page);
            self.records -= Page::items(page);
            Page::set_next(page, ptr::null_mut());
        }
        if self.head.is_null() {
            self.tail = ptr::null_mut();
        }
        self.pages -= 1;
        Some(page)
    }

    /// True if the list holds no page.
    ///
    /// ```
    /// use kvfree_rcu_pool::PageList;
    /// assert!(PageList::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// The CPU the first page's first record was pushed on (`None`: the
    /// list is empty, or its first page is): where a consumer that frees on
    /// the filling CPU, as the kernel's per-CPU work does, runs to free the
    /// first page. Split the list with [`split_front`](Self::split_front)
    /// to look at the next pages.
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use kvfree_rcu_pool::{BusyLanes, Kind, PageList, Pool};
    /// let pool = Pool::default();
    /// pool.refill().unwrap();
    /// let mut pages = PageList::new();
    /// assert_eq!(pages.first_page_cpu(), None);
    /// pool.push(NonNull::<u64>::dangling().cast(), Kind::new(NonNull::<u8>::dangling().cast())).unwrap();
    /// pool.seal_open(&mut pages, BusyLanes::Wait);
    /// assert!(pages.first_page_cpu().is_some());
    /// ```
    pub fn first_page_cpu(&self) -> Option<usize> {
        // SAFETY: the list owns its pages.
        NonNull::new(self.head).and_then(|page| unsafe { Page::filled_on(page) })
    }

    /// Number of pages in the list.
    ///
    /// ```
    /// use kvfree_rcu_pool::PageList;
    /// assert_eq!(PageList::new().pages(), 0);
    /// ```
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Number of records (pointers) in the list's pages.
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use kvfree_rcu_pool::{BusyLanes, Kind, PageList, Pool};
    /// let pool = Pool::default();
    /// pool.refill().unwrap();
    /// let kind = Kind::new(NonNull::<u8>::dangling().cast());
    /// pool.push(NonNull::<u64>::dangling().cast(), kind).unwrap();
    /// let mut list = PageList::new();
    /// pool.seal_open(&mut list, BusyLanes::Wait);
    /// assert!(list.records() >= 1);
    /// pool.recycle(list);
    /// ```
    pub fn records(&self) -> usize {
        self.records
    }

    /// Moves every page of `other` to the end of this list.
    ///
    /// ```
    /// use kvfree_rcu_pool::{PageList, Pool};
    /// let pool = Pool::default();
    /// let mut all: PageList = pool.take_sealed();
    /// all.append(pool.take_sealed());
    /// assert_eq!(all.pages(), 0); // nothing was sealed
    /// ```
    pub fn append(&mut self, mut other: PageList) {
        let Some(other_head) = NonNull::new(other.head) else {
            return;
        };
        match NonNull::new(self.tail) {
            // SAFETY: the list owns its tail page.
            Some(tail) => unsafe { Page::set_next(tail, other_head.as_ptr()) },
            None => self.head = other_head.as_ptr(),
        }
        self.tail = other.tail;
        self.pages += other.pages;
        self.records += other.records;
        // `other`'s pages now belong to `self`: empty it so its Drop frees none.
        other.head = ptr::null_mut();
        other.tail = ptr::null_mut();
        other.pages = 0;
        other.records = 0;
    }

    /// Moves the first `pages` pages (all of them if there are fewer) into a
    /// new list, in order: how a consumer splits its pages into chunks that
    /// several threads drain at once.
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use kvfree_rcu_pool::{BusyLanes, Config, Kind, PageList, Pool};
    /// let mut config = Config::default();
    /// config.lanes = Some(2);
    /// let pool = Pool::new(config).unwrap();
    /// pool.refill().unwrap();
    /// let kind = Kind::new(NonNull::<u8>::dangling().cast());
    /// pool.push(NonNull::<u64>::dangling().cast(), kind).unwrap();
    /// let mut all = PageList::new();
    /// pool.seal_open(&mut all, BusyLanes::Wait);
    /// let (pages, records) = (all.pages(), all.records());
    /// let first = all.split_front(1);
    /// assert_eq!(first.pages() + all.pages(), pages);
    /// assert_eq!(first.records() + all.records(), records);
    /// pool.recycle(first);
    /// pool.recycle(all);
    /// ```
    pub fn split_front(&mut self, pages: usize) -> PageList {
        let mut front = PageList::new();
        for _ in 0..pages {
            let Some(page) = self.pop() else { break };
            // SAFETY: `pop` gave us the page, out of any list.
            unsafe { front.push(page) };
        }
        front
    }

    /// Splits the list by the thread lane that filled each page
    /// ([`ThreadLane::tag`](crate::ThreadLane::tag); `None`: the per-CPU
    /// lanes), keeping each group's pages in list order; the groups come in
    /// the order of their first page. Reads every page's header: one walk
    /// of the list.
    ///
    /// ```
    /// use core::ptr::NonNull;
    /// use kvfree_rcu_pool::{BusyLanes, Kind, Pool};
    /// let pool = Pool::default();
    /// pool.refill().unwrap();
    /// let kind = Kind::new(NonNull::<u8>::dangling().cast());
    /// let ptr = NonNull::<u64>::dangling().cast();
    /// let lane = pool.claim_thread_lane();
    /// // SAFETY: the lane is ours, claimed above and released below.
    /// unsafe { pool.push_local(lane, ptr, kind).unwrap() };
    /// pool.push(ptr, kind).unwrap();
    /// let mut pages = pool.take_sealed();
    /// pool.seal_open(&mut pages, BusyLanes::Wait);
    /// let mut groups = pages.split_by_thread_lane();
    /// groups.sort_by_key(|(tag, _)| tag.is_some());
    /// assert_eq!(groups.len(), 2);
    /// assert_eq!(groups[0].0, None);
    /// assert_eq!(groups[1].0, Some(lane.tag()));
    /// // SAFETY: claimed above, not used afterwards.
    /// unsafe { pool.release_thread_lane(lane) };
    /// for (_, pages) in groups {
    ///     pool.recycle(pages);
    /// }
    /// ```
    pub fn split_by_thread_lane(mut self) -> Vec<(Option<crate::LaneTag>, PageList)> {
        let mut groups: Vec<(Option<crate::LaneTag>, PageList)> = Vec::new();
        while let Some(page) = self.pop() {
            // SAFETY: `pop` gave us the page, out of any list.
            let tag = unsafe { Page::thread_lane(page) };
            let group = match groups.iter().position(|(t, _)| *t == tag) {
                Some(i) => &mut groups[i].1,
                None => {
                    groups.push((tag, PageList::new()));
                    &mut groups.last_mut().expect("just pushed").1
                }
            };
            // SAFETY: as above.
            unsafe { group.push(page) };
        }
        groups
    }

    /// Calls `f(ptr, kind)` for every record, page by page, in write order
    /// within a page. Only the pages' arrays are read; the objects are not.
    ///
    /// # Example
    /// ```
    /// use core::ptr::NonNull;
    /// use kvfree_rcu_pool::{BusyLanes, Config, Kind, Pool};
    ///
    /// let mut config = Config::default();
    /// config.lanes = Some(1);
    /// let pool = Pool::new(config).unwrap();
    /// pool.refill().unwrap();
    /// let (a, b) = (Kind::new(NonNull::<u16>::dangling().cast()), Kind::new(NonNull::<u32>::dangling().cast()));
    /// let ptr = NonNull::<u64>::dangling().cast();
    /// for kind in [a, a, b, a] {
    ///     pool.push(ptr, kind).unwrap();
    /// }
    /// let mut pages = pool.take_sealed();
    /// pool.seal_open(&mut pages, BusyLanes::Wait);
    /// let mut kinds = Vec::new();
    /// pages.for_each_record(|_, kind| kinds.push(kind));
    /// assert_eq!(kinds, [a, a, b, a]);
    /// pool.recycle(pages);
    /// ```
    pub fn for_each_record(&self, mut f: impl FnMut(NonNull<()>, Kind)) {
        let mut next = self.head;
        while let Some(page) = NonNull::new(next) {
            // SAFETY: the list owns its pages.
            unsafe {
                Page::for_each_record(page, &mut f);
                next = Page::next(page);
            }
        }
    }
}

impl Default for PageList {
    fn default() -> Self {
        PageList::new()
    }
}

impl fmt::Debug for PageList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PageList")
            .field("pages", &self.pages)
            .field("records", &self.records)
            .finish()
    }
}

impl Drop for PageList {
    /// Frees every page; records still in them are leaked.
    fn drop(&mut self) {
        while let Some(page) = self.pop() {
            // SAFETY: `pop` gave us the page; nobody else can reach it.
            unsafe { Page::free(page) };
        }
    }
}
