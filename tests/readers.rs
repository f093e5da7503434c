//! Readers never observe a freed object: oversubscribed readers traverse
//! RCU-protected pointers while updaters replace and retire them through
//! every retire call, and other threads call `barrier()` and `shrink()`.
//!
//! Each object's `Drop` poisons it, and this binary's allocator quarantines
//! freed blocks (filled with poison, released only much later), so a reader
//! that touched an object after its free reads poison and fails the test
//! instead of reading reused memory silently.

mod common;

use common::*;
use kvfree_rcu::{KvfreeRcu, Rcu};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

/// Delays every free by `QUARANTINE` later frees, poisoning the block meanwhile.
struct Quarantine;
const QUARANTINE: usize = 1 << 14;
static RING: [AtomicPtr<u8>; QUARANTINE] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; QUARANTINE];
static SIZES: [AtomicUsize; QUARANTINE] = [const { AtomicUsize::new(0) }; QUARANTINE];
static NEXT: AtomicUsize = AtomicUsize::new(0);
const ALIGN: usize = 16;

// SAFETY: allocation forwards to System with the alignment raised to ALIGN
// (so a quarantined block can be freed later with a layout rebuilt from its
// size alone); a block is handed to System's dealloc exactly once, by
// whichever free swaps it out of the ring.
unsafe impl GlobalAlloc for Quarantine {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let l = Layout::from_size_align(layout.size(), layout.align().max(ALIGN)).unwrap();
        // SAFETY: non-zero size, as the caller promised for `layout`.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.align() > ALIGN {
            let l = Layout::from_size_align(layout.size(), layout.align()).unwrap();
            // SAFETY: allocated by `alloc` above with this exact layout.
            return unsafe { System.dealloc(ptr, l) };
        }
        // SAFETY: the block is ours until freed below, `size` bytes long.
        unsafe { std::ptr::write_bytes(ptr, 0xDE, layout.size()) };
        let i = NEXT.fetch_add(1, Ordering::Relaxed) % QUARANTINE;
        let old_size = SIZES[i].swap(layout.size(), Ordering::AcqRel);
        let old = RING[i].swap(ptr, Ordering::AcqRel);
        if !old.is_null() {
            // The size may belong to a racing neighbour; only the pointer
            // matters for System on Linux (free(3) ignores the size), and the
            // alignment is always ALIGN here.
            let l = Layout::from_size_align(old_size.max(1), ALIGN).unwrap();
            // SAFETY: `old` was a live block parked in the ring by one dealloc,
            // swapped out exactly once, here.
            unsafe { System.dealloc(old, l) };
        }
    }
}

#[global_allocator]
static ALLOC: Quarantine = Quarantine;

const SLOTS: usize = 8;

#[test]
fn readers_never_observe_a_freed_object() {
    let counter = DropCounter::leak();
    let rcu = Arc::new(Rcu::new());
    let service = Arc::new(KvfreeRcu::new(rcu.clone()));
    let slots: Arc<Vec<AtomicPtr<Headed>>> = Arc::new(
        (0..SLOTS)
            .map(|i| AtomicPtr::new(Headed::boxed(i as u64, counter).as_ptr()))
            .collect(),
    );
    let plain_slots: Arc<Vec<AtomicPtr<Plain>>> = Arc::new(
        (0..SLOTS)
            .map(|i| AtomicPtr::new(Plain::boxed(i as u64, counter).as_ptr()))
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers = 6; // with 2 updaters and a maintenance thread: 9 threads on 2 cores
    let updates = scaled(100_000);
    let start = Arc::new(Barrier::new(readers + 3));
    let mut handles = Vec::new();

    for r in 0..readers {
        let (rcu, slots, plain_slots, stop, reads, start) = (
            rcu.clone(),
            slots.clone(),
            plain_slots.clone(),
            stop.clone(),
            reads.clone(),
            start.clone(),
        );
        handles.push(std::thread::spawn(move || {
            rcu.register_current_thread().unwrap();
            start.wait();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _guard = rcu.read_lock();
                for i in 0..SLOTS {
                    let p = slots[i].load(Ordering::Acquire);
                    // SAFETY: published and not freed before our guard drops.
                    let obj = unsafe { &*p };
                    assert_eq!(
                        obj.magic.load(Ordering::Relaxed),
                        ALIVE,
                        "reader saw a freed headed object"
                    );
                    let q = plain_slots[i].load(Ordering::Acquire);
                    // SAFETY: as above.
                    let plain = unsafe { &*q };
                    if (n + r as u64) % 64 == 0 {
                        std::thread::yield_now(); // get preempted inside the section
                    }
                    assert_eq!(
                        obj.magic.load(Ordering::Relaxed),
                        ALIVE,
                        "headed object freed during the section"
                    );
                    assert_eq!(
                        plain.magic.load(Ordering::Relaxed),
                        ALIVE,
                        "reader saw a freed plain object"
                    );
                    assert_eq!(plain.payload[0], plain.payload[2]);
                }
                n += 1;
            }
            reads.fetch_add(n, Ordering::Relaxed);
        }));
    }

    for u in 0..2u64 {
        let (service, slots, plain_slots, start) = (
            service.clone(),
            slots.clone(),
            plain_slots.clone(),
            start.clone(),
        );
        handles.push(std::thread::spawn(move || {
            start.wait();
            for k in 0..updates as u64 {
                let i = ((k * 7 + u) % SLOTS as u64) as usize;
                let old = slots[i].swap(Headed::boxed(k, counter).as_ptr(), Ordering::AcqRel);
                // SAFETY: unlinked above, from Box::leak, retired once.
                unsafe { service.kvfree_rcu(std::ptr::NonNull::new(old).unwrap()) };
                let old = plain_slots[i].swap(Plain::boxed(k, counter).as_ptr(), Ordering::AcqRel);
                let old = std::ptr::NonNull::new(old).unwrap();
                // SAFETY: as above; on Err it is ours again and we retire it
                // with the sleeping variant (ordinary context).
                if let Err(old) = unsafe { service.try_kvfree_rcu(old) } {
                    // SAFETY: Err handed it back; retired once.
                    unsafe { service.kvfree_rcu_mightsleep(old) };
                }
            }
        }));
    }

    {
        let (service, start, stop) = (service.clone(), start.clone(), stop.clone());
        handles.push(std::thread::spawn(move || {
            start.wait();
            let mut k = 0;
            while !stop.load(Ordering::Relaxed) {
                if k % 8 == 7 {
                    service.shrink();
                } else {
                    service.barrier();
                }
                k += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }));
    }

    // Updaters finish first; then stop readers and maintenance.
    let maintenance = handles.pop().unwrap();
    let updaters: Vec<_> = handles.split_off(readers);
    for h in updaters {
        h.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    maintenance.join().unwrap();

    service.barrier();
    assert_eq!(
        counter.dropped(),
        2 * 2 * updates,
        "every replaced object freed exactly once"
    );
    assert!(reads.load(Ordering::Relaxed) > 0);
    for i in 0..SLOTS {
        // SAFETY: no readers remain; the final objects were never retired.
        unsafe {
            drop(Box::from_raw(slots[i].load(Ordering::Relaxed)));
            drop(Box::from_raw(plain_slots[i].load(Ordering::Relaxed)));
        }
    }
}
