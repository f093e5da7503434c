//! Helpers shared by the integration tests: objects that count their drops
//! and poison themselves, so a test can prove "freed exactly once" and
//! "never freed while a reader can see it".
#![allow(dead_code, unreachable_pub)]

use kvfree_rcu::{RcuHead, impl_rcu_headed};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

pub const ALIVE: u64 = 0xA11C_E0A1_1CE0_A11C;
pub const POISON: u64 = 0xDEAD_BEEF_DEAD_BEEF;

/// Counts drops of the objects of one test.
#[derive(Debug, Default)]
pub struct DropCounter {
    pub dropped: AtomicUsize,
}

impl DropCounter {
    pub fn leak() -> &'static DropCounter {
        Box::leak(Box::default())
    }
    pub fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
    /// An object's drop: poison it (failing on a second drop) and count it.
    pub fn poison_and_count(&self, magic: &AtomicU64) {
        assert_eq!(
            magic.swap(POISON, Ordering::SeqCst),
            ALIVE,
            "object dropped twice"
        );
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

/// A headed object (it embeds an `RcuHead`).
pub struct Headed {
    pub magic: AtomicU64,
    pub value: u64,
    pub counter: &'static DropCounter,
    pub head: RcuHead,
}
impl_rcu_headed!(Headed, head);

impl Headed {
    pub fn boxed(value: u64, counter: &'static DropCounter) -> std::ptr::NonNull<Headed> {
        let b = Box::new(Headed {
            magic: AtomicU64::new(ALIVE),
            value,
            counter,
            head: RcuHead::new(),
        });
        std::ptr::NonNull::from(Box::leak(b))
    }
}

impl Drop for Headed {
    fn drop(&mut self) {
        self.counter.poison_and_count(&self.magic);
    }
}

/// A head-less object of another size and type.
pub struct Plain {
    pub magic: AtomicU64,
    pub payload: [u64; 3],
    pub counter: &'static DropCounter,
}

impl Plain {
    pub fn boxed(value: u64, counter: &'static DropCounter) -> std::ptr::NonNull<Plain> {
        let b = Box::new(Plain {
            magic: AtomicU64::new(ALIVE),
            payload: [value; 3],
            counter,
        });
        std::ptr::NonNull::from(Box::leak(b))
    }
}

impl Drop for Plain {
    fn drop(&mut self) {
        self.counter.poison_and_count(&self.magic);
    }
}

/// A zero-sized type with a counted drop.
pub struct Zst;
pub static ZST_DROPS: AtomicUsize = AtomicUsize::new(0);
impl Drop for Zst {
    fn drop(&mut self) {
        ZST_DROPS.fetch_add(1, Ordering::SeqCst);
    }
}

/// Small per-test sizes: Miri does not run integration tests, but keep them quick anyway.
pub fn scaled(n: usize) -> usize {
    if cfg!(debug_assertions) { n } else { n * 4 }
}

/// How long a forked child may run before [`fork_and_wait`] kills it.
#[cfg(unix)]
pub const FORK_WATCHDOG: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs `work` in a forked child and returns its wait status, or kills it
/// and fails with `hung` after [`FORK_FORK_WATCHDOG`] (so a hang fails CI rather
/// than stalling it).
#[cfg(unix)]
pub fn fork_and_wait(hung: &str, work: impl FnOnce()) -> i32 {
    // SAFETY: fork has no preconditions; the child only runs `work` and then
    // `_exit`s, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).is_ok();
        // SAFETY: `_exit` ends the child at once, without running the parent's
        // atexit handlers or the test harness.
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    let started = std::time::Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: `pid` is our child and `status` a valid out-pointer.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(done >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if done == pid {
            return status;
        }
        if started.elapsed() > FORK_WATCHDOG {
            // SAFETY: `pid` is our child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            // SAFETY: as above; reap it so no zombie remains.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            panic!("{hung} for {FORK_WATCHDOG:?} (killed)");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Aborts the process if still armed after 60 s, so a test that would hang
/// (a wait that never ends, a self-deadlock) fails CI instead of stalling it.
pub struct Watchdog {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Arms it; dropping it disarms it.
    pub fn arm(what: &'static str) -> Watchdog {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let done = done.clone();
            std::thread::spawn(move || {
                let start = std::time::Instant::now();
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if start.elapsed() > std::time::Duration::from_secs(60) {
                        eprintln!("WATCHDOG: {what} still running after 60 s: hung; aborting");
                        std::process::abort();
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            })
        };
        Watchdog {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// This process's threads whose name starts with `prefix`, each with its
/// nice value, sorted by name (Linux's `/proc/self/task/*/comm` and
/// `stat`, field 19; Linux shows a name's first 15 bytes).
#[cfg(target_os = "linux")]
pub fn nice_of_threads(prefix: &str) -> Vec<(String, i32)> {
    let mut found = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let Ok(task) = task else { continue };
        // A thread that exits while we look has no files any more.
        let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else {
            continue;
        };
        let comm = comm.trim_end().to_owned();
        if !comm.starts_with(prefix) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // The name is in parentheses and may hold spaces: fields after it
        // start at state (field 3); nice is field 19.
        let after_name = &stat[stat.rfind(')').expect("stat has a name") + 2..];
        let nice = after_name
            .split(' ')
            .nth(19 - 3)
            .and_then(|f| f.parse().ok())
            .expect("stat has a nice value");
        found.push((comm, nice));
    }
    found.sort();
    found
}

/// The calling thread's nice value (0 where there are none).
pub fn own_nice() -> i32 {
    #[cfg(unix)]
    // SAFETY: getpriority has no preconditions (errno is not read; -1 is a
    // valid nice value and is never an error for the calling thread).
    return unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    #[cfg(not(unix))]
    return 0;
}
