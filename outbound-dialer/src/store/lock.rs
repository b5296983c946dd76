//! One dialer per campaign file: two processes dialling from the same list would each
//! take the same pending numbers and call them twice.
//!
//! The lock is `flock` on a file beside the store (`<db>.lock`), not on the database
//! itself: SQLite's POSIX locks on the database are dropped by the kernel when any other
//! descriptor of that file is closed. The kernel releases `flock` when the process dies,
//! so a `kill -9` leaves nothing to clean up.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Held while a [`super::Store`] is open; shared by its clones.
#[derive(Debug, Clone)]
pub(super) struct CampaignLock {
    file: Arc<Mutex<Option<File>>>,
}

/// The lock file of a store.
pub(super) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_owned();
    name.push(".lock");
    db.with_file_name(name)
}

impl CampaignLock {
    /// Takes the lock without waiting; `None` if another process holds it.
    pub(super) fn acquire(db: &Path) -> io::Result<Option<CampaignLock>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path(db))?;
        if !try_lock(&file)? {
            return Ok(None);
        }
        Ok(Some(CampaignLock {
            file: Arc::new(Mutex::new(Some(file))),
        }))
    }

    /// Releases the lock now rather than when the last clone is dropped.
    pub(super) fn release(&self) {
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        drop(file.take());
    }
}

#[cfg(unix)]
fn try_lock(file: &File) -> io::Result<bool> {
    use rustix::fs::{FlockOperation, flock};
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// Elsewhere the guard is not available; the store works without it.
#[cfg(not(unix))]
fn try_lock(_file: &File) -> io::Result<bool> {
    Ok(true)
}
