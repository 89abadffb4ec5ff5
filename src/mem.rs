//! Host memory accounting: the process's peak resident set, as the kernel counts it.

/// Peak resident set size of this process in bytes (`getrusage`), 0 where unavailable.
pub fn peak_host_bytes() -> u64 {
    // SAFETY: getrusage only writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc == 0 {
        // Linux reports kibibytes.
        usage.ru_maxrss.max(0) as u64 * 1024
    } else {
        0
    }
}
