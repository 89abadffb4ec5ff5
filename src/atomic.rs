//! Atomic file writes, the one way every output of the crate reaches the disk: the bytes go to a
//! uniquely named temporary file created exclusively beside the target (`O_CREAT | O_EXCL`, which
//! never follows a symlink planted at that name, and never opens a file that already exists), are
//! flushed and synced, then renamed over the target. On every failure path the temporary file is
//! removed, so a crash, a full disk or a target that cannot be replaced (a directory, say) leaves
//! neither a half-written output nor litter.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Names tried before giving up on a folder full of our own temporary files.
const ATTEMPTS: u32 = 64;

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Creates a fresh temporary file beside `path`: `.<name>.<pid>-<n>.tmp`.
fn create_temp(path: &Path) -> Result<(PathBuf, std::fs::File)> {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("output path", path.display(), "names no file"))?
        .to_string_lossy()
        .into_owned();
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let call = CALLS.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_file_name(format!(".{name}.{}-{call}.tmp", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(io(path, e)),
        }
    }
    Err(io(
        path,
        last.unwrap_or_else(|| std::io::Error::other("no free temporary name")),
    ))
}

/// Writes `path` atomically with `fill`, which writes the whole content into the file it is given.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut std::fs::File) -> Result<()>) -> Result<()> {
    let (tmp, mut file) = create_temp(path)?;
    let result = fill(&mut file)
        .and_then(|()| file.flush().map_err(|e| io(path, e)))
        .and_then(|()| file.sync_all().map_err(|e| io(path, e)));
    drop(file);
    let result = result.and_then(|()| std::fs::rename(&tmp, path).map_err(|e| io(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |f| f.write_all(bytes).map_err(|e| io(path, e)))
}

/// Checks, before any work, that `path` can be written: its folder exists and it is not a folder.
pub fn check_writable(what: &'static str, path: &Path) -> Result<()> {
    if path.is_dir() || path.as_os_str().to_string_lossy().ends_with('/') {
        return Err(Error::invalid(what, path.display(), "is a directory"));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::invalid(
            what,
            path.display(),
            format!("its folder {} does not exist", dir.display()),
        ));
    }
    Ok(())
}
