//! The safe layer: `RcuCell` and the typed pointers (`Atomic`, `Owned`,
//! `Shared`, `Unlinked`). Sized for Miri (ci/30-miri.sh runs this file):
//! services are per-test and manual, so `barrier` drives every free on the
//! test thread and the counts are exact; no timing.

use kvfree_rcu::{Atomic, KvfreeRcu, Owned, Rcu, RcuCell, Shared};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts its drops in the counter it points to.
struct Counted {
    value: usize,
    drops: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

fn manual_service() -> Arc<KvfreeRcu> {
    Arc::new(KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build())
}

#[test]
fn every_replaced_value_is_dropped_exactly_once_after_barrier() {
    let service = manual_service();
    let drops = Arc::new(AtomicUsize::new(0));
    let counted = |value| Counted {
        value,
        drops: drops.clone(),
    };
    let cell = RcuCell::with_shared_service(service.clone(), counted(0));
    let n = if cfg!(miri) { 20 } else { 2000 };
    for i in 1..=n {
        if i % 2 == 0 {
            cell.replace(counted(i));
        } else {
            cell.replace_with(Owned::new(counted(i)));
        }
    }
    // A guard of the service's domain keeps what it read alive.
    {
        let guard = service.grace_period().read_lock();
        let seen = cell.read(&guard);
        cell.replace(counted(n + 1));
        assert_eq!(seen.value, n);
    }
    service.barrier();
    assert_eq!(
        drops.load(Ordering::Relaxed),
        n + 1,
        "every replaced value, once"
    );
    assert_eq!(cell.with(|v| v.value), n + 1);
    drop(cell);
    service.barrier();
    assert_eq!(
        drops.load(Ordering::Relaxed),
        n + 2,
        "and the last one on drop"
    );
}

#[test]
fn update_applies_every_change_and_drops_each_old_value() {
    let service = manual_service();
    let drops = Arc::new(AtomicUsize::new(0));
    let cell = RcuCell::with_shared_service(
        service.clone(),
        Counted {
            value: 0,
            drops: drops.clone(),
        },
    );
    let n = if cfg!(miri) { 10 } else { 500 };
    for _ in 0..n {
        cell.update(|old| Counted {
            value: old.value + 1,
            drops: old.drops.clone(),
        });
    }
    service.barrier();
    assert_eq!(cell.with(|v| v.value), n);
    assert_eq!(drops.load(Ordering::Relaxed), n);
}

#[test]
fn update_from_threads_loses_nothing() {
    let cell = RcuCell::with_shared_service(manual_service(), 0usize);
    let (threads, each) = if cfg!(miri) { (2, 5) } else { (4, 200) };
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..each {
                    cell.update(|v| v + 1);
                }
            });
        }
    });
    assert_eq!(cell.with(|v| *v), threads * each);
}

#[test]
fn a_guard_of_another_domain_is_refused_with_the_message() {
    let cell = RcuCell::with_shared_service(manual_service(), 1u32);
    let other = Rcu::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let guard = other.read_lock();
        *cell.read(&guard)
    }));
    let payload = result.expect_err("a guard of another domain must be refused");
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(
        message.contains("different RCU domain"),
        "unexpected panic message: {message}"
    );
    // A clone of the service's domain is the same domain.
    let same = (**cell.service().grace_period()).clone();
    assert_eq!(*cell.read(&same.read_lock()), 1);
}

/// A lock-free stack on the typed pointers: the only `unsafe` is the
/// retire, whose contracts the stack discharges (one link per node,
/// readers in the service's domain, each node popped once).
struct Stack {
    head: Atomic<Item>,
    service: Arc<KvfreeRcu>,
}

struct Item {
    value: Counted,
    next: Atomic<Item>,
}

impl Stack {
    fn push(&self, value: Counted) {
        let rcu = self.service.grace_period();
        let guard = rcu.read_lock();
        let mut node = Owned::new(Item {
            value,
            next: Atomic::null(),
        });
        let mut current = self.head.load(&guard);
        loop {
            node.next.store(current);
            match self.head.compare_exchange_owned(current, node, &guard) {
                Ok(_) => return,
                Err((actual, back)) => (current, node) = (actual, back),
            }
        }
    }

    fn pop(&self) -> Option<usize> {
        let rcu = self.service.grace_period();
        let guard = rcu.read_lock();
        let mut current = self.head.load(&guard);
        loop {
            let item = current.as_ref()?;
            let next = item.next.load(&guard);
            match self.head.compare_exchange(current, next, &guard) {
                Ok(unlinked) => {
                    let value = item.value.value;
                    let unlinked = unlinked.expect("current was not null");
                    // SAFETY: (1) a popped node's only link was `head`, just
                    // moved past it; (2) readers take guards of the
                    // service's domain (above); (3) the successful CAS hands
                    // each node to one popper.
                    unsafe { unlinked.retire(&self.service) };
                    return Some(value);
                }
                Err(actual) => current = actual,
            }
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        while self.pop().is_some() {}
    }
}

#[test]
fn a_stack_on_typed_pointers_drops_each_item_once() {
    let service = manual_service();
    let drops = Arc::new(AtomicUsize::new(0));
    let stack = Stack {
        head: Atomic::null(),
        service: service.clone(),
    };
    let (threads, each) = if cfg!(miri) { (2, 5) } else { (4, 300) };
    std::thread::scope(|s| {
        for t in 0..threads {
            let (stack, drops) = (&stack, drops.clone());
            s.spawn(move || {
                for i in 0..each {
                    stack.push(Counted {
                        value: t * each + i,
                        drops: drops.clone(),
                    });
                    if i % 3 == 0 {
                        stack.pop();
                    }
                }
            });
        }
    });
    drop(stack);
    service.barrier();
    assert_eq!(drops.load(Ordering::Relaxed), threads * each);
}

#[test]
fn shared_and_swap_basics() {
    let service = manual_service();
    let link = Atomic::new(7u64);
    let rcu = service.grace_period();
    {
        let guard = rcu.read_lock();
        let seen: Shared<'_, u64> = link.load(&guard);
        assert_eq!(seen.as_ref(), Some(&7));
        assert!(seen.ptr_eq(link.load(&guard)));
        assert!(!seen.is_null() && Shared::<u64>::null().is_null());
        let old = link.swap(Some(Owned::new(8))).expect("was not null");
        // SAFETY: (1) `link` was the only link; (2) readers use `rcu`, the
        // service's domain; (3) swapped out once.
        unsafe { old.retire(&service) };
        assert_eq!(seen.as_ref(), Some(&7), "still valid under the guard");
        assert_eq!(link.load(&guard).as_ref(), Some(&8));
    }
    let last = link.swap(None).expect("was not null");
    // Through a thread's own lane this time.
    let local = service.local_retirer();
    // SAFETY: as above; `local` retires into the same service.
    unsafe { last.retire_local(&local) };
    drop(local);
    assert!(link.swap(None).is_none());
    service.barrier();
    assert_eq!(service.stats().pending, 0);
    assert_eq!(service.stats().freed, 2);
}

#[test]
#[cfg_attr(miri, ignore = "spawns the global service's worker thread")]
fn the_global_service_serves_cells_and_free_functions() {
    let service = kvfree_rcu::init_global();
    assert!(std::ptr::eq(service, kvfree_rcu::global()));
    let cell = RcuCell::new(String::from("a"));
    {
        let guard = Rcu::global().read_lock();
        let a = cell.read(&guard);
        cell.replace(String::from("b"));
        assert_eq!(a, "a");
    }
    let p = std::ptr::NonNull::from(Box::leak(Box::new(3u8)));
    // SAFETY: from Box::leak, never published, retired once.
    if let Err(p) = unsafe { kvfree_rcu::try_kvfree_rcu(p) } {
        // SAFETY: handed back by Err; ordinary context.
        unsafe { kvfree_rcu::kvfree_rcu_mightsleep(p) };
    }
    kvfree_rcu::barrier();
    assert_eq!(cell.with(|v| v.clone()), "b");
}
