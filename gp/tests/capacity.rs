//! Exhausting a domain's reader table, and getting slots back as threads exit.

use kvfree_rcu_gp::{CapacityError, Rcu};
use std::sync::Barrier;

#[test]
fn full_table_then_exits_free_slots() {
    const CAP: usize = 4;
    let rcu = Rcu::with_capacity(CAP);
    for round in 0..3 {
        let registered = Barrier::new(CAP + 1);
        let checked = Barrier::new(CAP + 1);
        std::thread::scope(|s| {
            // Joined explicitly: `scope` itself may return before a thread's
            // thread-local destructors (which release its slot) have run;
            // `join` waits for the whole thread.
            let holders: Vec<_> = (0..CAP)
                .map(|_| {
                    s.spawn(|| {
                        rcu.register_current_thread().unwrap();
                        drop(rcu.read_lock());
                        registered.wait();
                        checked.wait();
                    })
                })
                .collect();
            registered.wait();
            let err = s
                .spawn(|| rcu.register_current_thread())
                .join()
                .unwrap()
                .unwrap_err();
            assert_eq!(err, CapacityError { capacity: CAP }, "round {round}");
            assert!(err.to_string().contains("all 4 reader slots"));
            assert!(err.to_string().contains("Rcu::with_capacity"));
            let panic = s.spawn(|| drop(rcu.read_lock())).join().unwrap_err();
            let message = panic.downcast_ref::<String>().unwrap();
            assert!(message.contains("all 4 reader slots"), "{message}");
            checked.wait();
            for holder in holders {
                holder.join().unwrap();
            }
        });
        // Every thread exited: all slots are free again.
        rcu.synchronize();
    }
    let registered = Barrier::new(CAP);
    std::thread::scope(|s| {
        for _ in 0..CAP {
            s.spawn(|| {
                rcu.register_current_thread().unwrap();
                registered.wait();
            });
        }
    });
}

#[test]
fn error_is_a_std_error() {
    let err: Box<dyn std::error::Error> = Box::new(CapacityError { capacity: 7 });
    assert!(err.to_string().contains('7'));
}
