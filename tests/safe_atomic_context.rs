//! The safe layer in atomic context: `RcuCell::replace_with` a node built
//! earlier makes zero allocations under a held `RawSpinLock` and keeps the
//! checker silent. `CheckedAlloc` is this binary's global allocator, so
//! every allocation of the test thread is counted (in checked builds; in
//! release builds without `context-check` the counters stay 0 and the test
//! proves nothing, as in tests/atomic_context.rs).

use kvfree_rcu::context::{self, ReportMode};
use kvfree_rcu::{CheckedAlloc, Owned, RawSpinLock, Rcu, RcuCell};

#[global_allocator]
static ALLOC: CheckedAlloc = CheckedAlloc::system();

#[test]
fn replace_with_a_preallocated_node_makes_zero_allocations_under_a_raw_spinlock() {
    context::set_report_mode(ReportMode::Count);
    kvfree_rcu::init_global();
    Rcu::global().register_current_thread().unwrap();
    let cell = RcuCell::new(0u64);
    let lock = RawSpinLock::new(());
    for round in 1..=200u64 {
        let nodes: Vec<Owned<u64>> = (0..50).map(|i| Owned::new(round * 100 + i)).collect();
        let allocs_before = context::thread_allocations();
        let violations_before = context::thread_violations();
        {
            let _held = lock.lock();
            for node in nodes {
                cell.replace_with(node);
            }
            let guard = Rcu::global().read_lock();
            assert_eq!(*cell.read(&guard), round * 100 + 49);
        }
        assert_eq!(
            context::thread_allocations(),
            allocs_before,
            "allocated under the lock"
        );
        assert_eq!(
            context::thread_violations(),
            violations_before,
            "a violation under the lock"
        );
    }
    kvfree_rcu::barrier();
}
