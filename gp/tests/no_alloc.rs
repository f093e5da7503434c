//! After `register_current_thread()`, the read side and the polled API make
//! no heap allocation: a counting global allocator proves it.

use kvfree_rcu_gp::Rcu;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct CountingAlloc;

std::thread_local! {
    // Const-initialised and without a destructor: reading it never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to `System` unchanged; the counter is a
// const thread-local Cell, which neither allocates nor reenters us.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn read_side_and_polled_api_never_allocate_after_registration() {
    let rcu = Rcu::new();
    let other = Rcu::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            rcu.register_current_thread().unwrap();
            other.register_current_thread().unwrap();
            let before = allocations();
            let mut expired = 0u64;
            for i in 0..1_000_000u64 {
                let outer = rcu.read_lock();
                let inner = rcu.read_lock();
                let nested_other = other.read_lock();
                drop(nested_other);
                drop(inner);
                drop(outer);
                let a = rcu.get_state();
                let b = rcu.start_poll();
                expired += u64::from(rcu.poll_state(a)) + u64::from(rcu.poll_state(b));
                if i % 1024 == 0 {
                    // Ordinary-context step, kept in to show it does not
                    // allocate either.
                    rcu.advance();
                }
            }
            assert_eq!(
                allocations() - before,
                0,
                "the read side or polled API allocated"
            );
            std::hint::black_box(expired);
        });
    });
}

#[test]
fn synchronize_and_advance_do_not_allocate_either() {
    let rcu = Rcu::new();
    rcu.register_current_thread().unwrap();
    let before = allocations();
    for _ in 0..1000 {
        drop(rcu.read_lock());
        rcu.advance();
        rcu.synchronize();
    }
    assert_eq!(allocations() - before, 0);
}
