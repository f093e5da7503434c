//! The process's peak resident set size.
//!
//! On Linux it is `VmHWM` from `/proc/self/status` (the high-water mark of
//! RSS since the process started); on other Unix systems `getrusage`'s
//! `ru_maxrss` (kilobytes, bytes on macOS). The main job runs each flood
//! configuration in a fresh process, so this is that configuration's peak:
//! the objects waiting for a grace period, the scheme's bookkeeping, and
//! whatever the allocator keeps, plus the binary's few MiB.

/// Peak RSS in bytes, if the system tells.
pub fn peak_rss_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        vm_hwm()
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        ru_maxrss()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

#[cfg(target_os = "linux")]
fn vm_hwm() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    // "VmHWM:     12345 kB"
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(all(unix, not(target_os = "linux")))]
fn ru_maxrss() -> Option<u64> {
    // SAFETY: an all-zero rusage is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return None;
    }
    let units = if cfg!(target_os = "macos") { 1 } else { 1024 };
    Some(usage.ru_maxrss as u64 * units)
}
