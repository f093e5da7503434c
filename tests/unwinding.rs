//! Freeing while the thread unwinds from an unrelated panic is an ordinary
//! free; only a destructor that panics *inside* a batch aborts the process.
//!
//! The scenarios that could abort run in a child process (this test binary
//! again, running one scenario named by `KVFREE_UNWIND_SCENARIO`), so an
//! abort fails the parent test instead of killing the whole test binary.

mod common;

use common::*;
use kvfree_rcu::{KvfreeRcu, Rcu, RcuHead, impl_rcu_headed};
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::sync::Arc;

const SCENARIO: &str = "KVFREE_UNWIND_SCENARIO";
const OBJECTS: u64 = 100;

fn manual_service() -> KvfreeRcu {
    KvfreeRcu::builder(Arc::new(Rcu::new())).manual().build()
}

fn retire_some(service: &KvfreeRcu, counter: &'static DropCounter) {
    for i in 0..OBJECTS {
        // SAFETY: from Box::leak, unpublished, retired once.
        unsafe { service.kvfree_rcu(Headed::boxed(i, counter)) };
    }
}

/// Calls one of the service's freeing calls from its `Drop`.
struct CallsDuringUnwind<'a> {
    service: &'a KvfreeRcu,
    call: &'a str,
}

impl Drop for CallsDuringUnwind<'_> {
    fn drop(&mut self) {
        assert!(std::thread::panicking(), "dropped by the unwind");
        match self.call {
            "barrier" => self.service.barrier(),
            "shrink" => {
                for _ in 0..1_000 {
                    if self.service.stats().pending == 0 {
                        break;
                    }
                    self.service.shrink();
                }
            }
            "run_once" => {
                for _ in 0..1_000 {
                    if self.service.stats().pending == 0 {
                        break;
                    }
                    self.service.run_once();
                }
            }
            other => unreachable!("{other}"),
        }
    }
}

/// An object whose destructor panics (the policy: the process aborts).
struct PanicsInDrop {
    head: RcuHead,
}
impl_rcu_headed!(PanicsInDrop, head);
impl Drop for PanicsInDrop {
    fn drop(&mut self) {
        panic!("a destructor run by the service panics");
    }
}

/// The child's side: runs `scenario`, returns normally when it passed.
fn run_scenario(scenario: &str) {
    // The unrelated panics below are expected: keep the child's stderr short.
    std::panic::set_hook(Box::new(|_| {}));
    let counter = DropCounter::leak();
    match scenario {
        "manual_service_dropped_while_unwinding" => {
            let unwound = catch_unwind(AssertUnwindSafe(|| {
                let service = manual_service();
                retire_some(&service, counter);
                panic!("unrelated to the service");
            }));
            assert!(unwound.is_err());
            assert_eq!(counter.dropped(), OBJECTS as usize, "drop drained");
        }
        "worker_service_dropped_while_unwinding" => {
            let unwound = catch_unwind(AssertUnwindSafe(|| {
                let service = KvfreeRcu::new(Arc::new(Rcu::new()));
                retire_some(&service, counter);
                panic!("unrelated to the service");
            }));
            assert!(unwound.is_err());
            assert_eq!(counter.dropped(), OBJECTS as usize, "drop drained");
        }
        call @ ("barrier" | "shrink" | "run_once") => {
            let service = manual_service();
            retire_some(&service, counter);
            let unwound = catch_unwind(AssertUnwindSafe(|| {
                let _calls = CallsDuringUnwind {
                    service: &service,
                    call,
                };
                panic!("unrelated to the service");
            }));
            assert!(unwound.is_err());
            if call == "barrier" {
                assert_eq!(counter.dropped(), OBJECTS as usize);
            }
            service.barrier();
            assert_eq!(counter.dropped(), OBJECTS as usize);
        }
        "destructor_panics_mid_batch" => {
            let service = manual_service();
            let p = std::ptr::NonNull::from(Box::leak(Box::new(PanicsInDrop {
                head: RcuHead::new(),
            })));
            // SAFETY: from Box::leak, unpublished, retired once.
            unsafe { service.kvfree_rcu(p) };
            service.barrier(); // must abort the process
            unreachable!("a panicking destructor did not abort");
        }
        other => panic!("unknown scenario {other}"),
    }
}

/// Runs `scenario` in a child process; returns its exit status and stderr.
fn in_child(test: &str, scenario: &str) -> (std::process::ExitStatus, String) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(SCENARIO, scenario)
        .output()
        .expect("run the test binary again");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn freeing_while_unwinding_from_an_unrelated_panic_is_a_normal_free() {
    if let Ok(scenario) = std::env::var(SCENARIO) {
        return run_scenario(&scenario);
    }
    for scenario in [
        "manual_service_dropped_while_unwinding",
        "worker_service_dropped_while_unwinding",
        "barrier",
        "shrink",
        "run_once",
    ] {
        let (status, stderr) = in_child(
            "freeing_while_unwinding_from_an_unrelated_panic_is_a_normal_free",
            scenario,
        );
        assert!(
            status.success(),
            "{scenario}: child exited with {status:?}\n{stderr}"
        );
    }
}

#[test]
fn a_destructor_that_panics_mid_batch_aborts_the_process() {
    if let Ok(scenario) = std::env::var(SCENARIO) {
        return run_scenario(&scenario);
    }
    let (status, stderr) = in_child(
        "a_destructor_that_panics_mid_batch_aborts_the_process",
        "destructor_panics_mid_batch",
    );
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}\n{stderr}");
    assert!(
        stderr.contains("a destructor panicked while the service freed"),
        "{stderr}"
    );
}
