//! Counts the syscalls one thread makes, in process, with perf counters.
//!
//! On Linux, [`SyscallCounter::open`] opens a group of counting perf events
//! for the calling thread only (`perf_event_open` with `pid = 0, cpu = -1`,
//! no `inherit`), enabled at once: the leader counts every syscall (the
//! `raw_syscalls:sys_enter` tracepoint), and members count the
//! memory-management ones an allocator makes to grow and trim its heap
//! ([`MEMORY_SYSCALLS`], one `syscalls:sys_enter_*` tracepoint each). The
//! library itself makes none of those, so they tell the allocator's
//! syscalls from the rest (a retire path's wake-ups are futex calls).
//!
//! [`SyscallCounter::read`] reads the whole group with one `read`
//! (`PERF_FORMAT_GROUP`). A window's syscalls are the difference of two
//! reads, less one for the second read's own entry (the tracepoint fires on
//! syscall entry, before the read returns the count);
//! [`SyscallCounter::syscalls_since`] does that sum.
//!
//! Counting is not free, and the costs fall outside the window: the first
//! counter in the system registers the tracepoint (the kernel patches code
//! and waits for an RCU grace period: tens of milliseconds), and closing the
//! last one unregisters it; so the flood opens its counters before its
//! start signal and closes them after its clock stops. While the tracepoint
//! is registered every thread in the system takes the slower syscall entry
//! path (a fraction of a microsecond per syscall); `--syscalls off` measures
//! without it.
//!
//! Opening needs the tracepoints' ids from tracefs (`/sys/kernel/tracing`,
//! or `/sys/kernel/debug/tracing`) and the right to trace (root, or
//! `perf_event_paranoid` at most 1 with tracefs readable). When the
//! `raw_syscalls` one or the permission is missing, `open` returns `None`
//! and the tables print "n/a"; the job never fails for it. When only the
//! per-syscall tracepoints are missing, the memory share is `None`. Other
//! systems always get `None`.

/// The memory-management syscalls counted apart: what malloc implementations
/// call to grow, trim and return their heaps.
pub const MEMORY_SYSCALLS: [&str; 6] = ["mmap", "munmap", "mprotect", "mremap", "brk", "madvise"];

/// The tracepoint ids a [`SyscallCounter`] needs.
#[derive(Clone, Debug)]
pub struct Tracepoints {
    /// `raw_syscalls:sys_enter`.
    all: u64,
    /// `syscalls:sys_enter_NAME` for each of [`MEMORY_SYSCALLS`]; empty if
    /// any is missing.
    memory: Vec<u64>,
}

/// Syscall counts, from one read or over a window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallCounts {
    /// Every syscall.
    pub all: u64,
    /// Those among them in [`MEMORY_SYSCALLS`], if counted.
    pub memory: Option<u64>,
}

/// A per-thread syscall counter group (see the module docs).
#[derive(Debug)]
pub struct SyscallCounter {
    /// The group leader (a `File`, for `read`).
    #[cfg(target_os = "linux")]
    leader: std::fs::File,
    /// The memory-syscall members; kept open for the group's life.
    #[cfg(target_os = "linux")]
    members: Vec<std::fs::File>,
}

/// Where tracefs may be mounted.
#[cfg(target_os = "linux")]
const TRACEFS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracepoints' ids, if tracefs shows at least `raw_syscalls:sys_enter`.
#[cfg(target_os = "linux")]
pub fn tracepoints() -> Option<Tracepoints> {
    let id = |root: &str, event: &str| -> Option<u64> {
        let path = format!("{root}/events/{event}/id");
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    };
    let (root, all) = TRACEFS
        .iter()
        .find_map(|root| Some((*root, id(root, "raw_syscalls/sys_enter")?)))?;
    let memory: Option<Vec<u64>> = MEMORY_SYSCALLS
        .iter()
        .map(|name| id(root, &format!("syscalls/sys_enter_{name}")))
        .collect();
    Some(Tracepoints {
        all,
        memory: memory.unwrap_or_default(),
    })
}

#[cfg(target_os = "linux")]
mod sys {
    //! The parts of `<linux/perf_event.h>` used here (the `libc` crate does
    //! not carry them).

    /// `PERF_TYPE_TRACEPOINT`.
    pub(super) const PERF_TYPE_TRACEPOINT: u32 = 2;
    /// `PERF_ATTR_SIZE_VER0`: the attribute struct up to `config1`.
    pub(super) const PERF_ATTR_SIZE_VER0: u32 = 64;
    /// `PERF_FORMAT_GROUP`: a read of the leader returns
    /// `{ u64 nr; u64 values[nr]; }`, leader first.
    pub(super) const PERF_FORMAT_GROUP: u64 = 1 << 3;
    /// `PERF_FLAG_FD_CLOEXEC`.
    pub(super) const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;

    /// `struct perf_event_attr` up to `config1` (`PERF_ATTR_SIZE_VER0`,
    /// which every kernel since 2.6.31 accepts).
    #[repr(C)]
    #[derive(Default)]
    pub(super) struct PerfEventAttr {
        pub(super) kind: u32,
        pub(super) size: u32,
        pub(super) config: u64,
        pub(super) sample_period: u64,
        pub(super) sample_type: u64,
        pub(super) read_format: u64,
        pub(super) flags: u64,
        pub(super) wakeup_events: u32,
        pub(super) bp_type: u32,
        pub(super) config1: u64,
    }

    const _: () = assert!(size_of::<PerfEventAttr>() == PERF_ATTR_SIZE_VER0 as usize);
}

/// Opens one enabled counting event on tracepoint `id` for the calling
/// thread, in the group of `leader` (`-1`: a new group).
#[cfg(target_os = "linux")]
fn open_event(id: u64, leader: libc::c_int) -> Option<std::fs::File> {
    use std::os::fd::FromRawFd;
    let attr = sys::PerfEventAttr {
        kind: sys::PERF_TYPE_TRACEPOINT,
        size: sys::PERF_ATTR_SIZE_VER0,
        config: id,
        read_format: sys::PERF_FORMAT_GROUP,
        ..Default::default()
    };
    let (pid, cpu): (libc::pid_t, libc::c_int) = (0, -1);
    // SAFETY: perf_event_open reads `attr` (a valid, initialised
    // PERF_ATTR_SIZE_VER0 struct whose `size` says so) and takes no other
    // pointers.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            &raw const attr,
            pid,
            cpu,
            leader,
            sys::PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: a fresh file descriptor returned to us, owned by nothing else.
    Some(unsafe { std::fs::File::from_raw_fd(fd as libc::c_int) })
}

#[cfg(target_os = "linux")]
impl SyscallCounter {
    /// Opens a running counter group for the calling thread; `None` if the
    /// tracepoints or the permission are missing.
    pub fn open(tracepoints: Option<&Tracepoints>) -> Option<SyscallCounter> {
        use std::os::fd::AsRawFd;
        let tracepoints = tracepoints?;
        let leader = open_event(tracepoints.all, -1)?;
        let members: Option<Vec<_>> = tracepoints
            .memory
            .iter()
            .map(|&id| open_event(id, leader.as_raw_fd()))
            .collect();
        Some(SyscallCounter {
            // A member that cannot be opened leaves the memory share uncounted.
            members: members.unwrap_or_default(),
            leader,
        })
    }

    /// The counts so far, including this read's own syscall; `None` if they
    /// cannot be read.
    #[inline]
    pub fn read(&self) -> Option<SyscallCounts> {
        use std::io::Read;
        let mut words = [0u64; 1 + 1 + MEMORY_SYSCALLS.len()];
        // SAFETY: any bytes are valid u64s; the slice covers exactly `words`.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), size_of_val(&words))
        };
        let read = (&self.leader).read(bytes).ok()?;
        let values = (words[0] as usize).min(words.len() - 1);
        if read < 8 * (1 + values) || values == 0 {
            return None;
        }
        let memory = (values == 1 + self.members.len() && !self.members.is_empty())
            .then(|| words[2..1 + values].iter().sum());
        Some(SyscallCounts {
            all: words[1],
            memory,
        })
    }
}

/// The tracepoints: never available off Linux.
#[cfg(not(target_os = "linux"))]
pub fn tracepoints() -> Option<Tracepoints> {
    None
}

#[cfg(not(target_os = "linux"))]
impl SyscallCounter {
    /// Always `None` off Linux.
    pub fn open(_tracepoints: Option<&Tracepoints>) -> Option<SyscallCounter> {
        None
    }

    /// Never called (no counter can be opened).
    pub fn read(&self) -> Option<SyscallCounts> {
        None
    }
}

impl SyscallCounter {
    /// Syscalls since `start` (an earlier [`read`](Self::read)), less this
    /// call's own read (not a memory syscall); `None` if the counts cannot
    /// be read.
    #[inline]
    pub fn syscalls_since(&self, start: SyscallCounts) -> Option<SyscallCounts> {
        let now = self.read()?;
        Some(SyscallCounts {
            all: now.all.saturating_sub(start.all).saturating_sub(1),
            memory: now
                .memory
                .zip(start.memory)
                .map(|(now, start)| now.saturating_sub(start)),
        })
    }
}
