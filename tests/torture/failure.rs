//! How a check fails: a panic naming the failure, and a process-wide flag the
//! soak's deadline loop polls so it stops at the first failure instead of
//! running on until its deadline.

use std::sync::atomic::{AtomicBool, Ordering};

static FAILED: AtomicBool = AtomicBool::new(false);

/// Records that a check failed; panics (the test fails, the example exits
/// with the panic's status).
pub fn fail(msg: &str) -> ! {
    FAILED.store(true, Ordering::SeqCst);
    panic!("torture: FAILURE: {msg}");
}

/// True once any thread of the process has called [`fail`].
pub fn has_failed() -> bool {
    FAILED.load(Ordering::SeqCst)
}
