//! Who may use the shared Asterisk at once: every test process holds a shared lock on
//! one gate file while it runs; a test that restarts or kills Asterisk takes the lock
//! exclusively, so it runs alone whatever the runner (`cargo test` runs test binaries
//! one after another, nextest runs each test in a process of its own, in parallel).

use std::fs::File;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a test that needs Asterisk alone waits for the others to finish.
const EXCLUSIVE_WAIT: Duration = Duration::from_secs(20 * 60);

fn gate_file() -> std::io::Result<File> {
    let path = std::env::temp_dir().join("ari-lab.gate");
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .or_else(|_| File::open(&path))
}

static HELD: OnceLock<File> = OnceLock::new();

/// Takes the shared lock for the rest of this process.
///
/// # Panics
/// When the gate file cannot be opened or locked (the test must not run unguarded).
pub(crate) fn share() {
    HELD.get_or_init(|| {
        let file = gate_file().expect("open the lab's gate file in the temp directory");
        file.lock_shared()
            .expect("take the shared lock on the lab's gate file");
        file
    });
}

/// Takes the exclusive lock for the rest of this process, waiting until no other test
/// process uses the lab.
///
/// # Panics
/// When it cannot be had within twenty minutes, or the gate file cannot be opened.
pub(crate) async fn exclusive() {
    if HELD.get().is_some() {
        return;
    }
    let file = gate_file().expect("open the lab's gate file in the temp directory");
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) => {
                assert!(
                    started.elapsed() < EXCLUSIVE_WAIT,
                    "other tests used the lab for {EXCLUSIVE_WAIT:?}; this one needs it alone"
                );
                // Polling a file lock: there is no event to wait on.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(std::fs::TryLockError::Error(error)) => {
                panic!("cannot lock the lab's gate file: {error}")
            }
        }
    }
    let _ = HELD.set(file);
}
