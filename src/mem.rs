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

/// Bytes of memory the system can still give (`MemAvailable` of `/proc/meminfo`), `None` where
/// that is not known.
pub fn available_host_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses, before anything is allocated, a size whose working set (`bytes`, an estimate of the
/// largest buffers it needs) exceeds the memory the system has available.
pub fn check_fits(
    name: &'static str,
    value: impl std::fmt::Display,
    bytes: u128,
) -> crate::Result<()> {
    let Some(avail) = available_host_bytes() else {
        return Ok(());
    };
    if bytes > avail as u128 {
        let gib = |b: u128| b as f64 / (1u64 << 30) as f64;
        return Err(crate::Error::invalid(
            name,
            value,
            format!(
                "needs about {:.1} GiB of memory, more than the {:.1} GiB available",
                gib(bytes),
                gib(avail as u128)
            ),
        ));
    }
    Ok(())
}
