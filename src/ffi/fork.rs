//! Which process this is: a fork generation, bumped in every child (see `atfork.rs`), and the
//! process id (kept by `crate::process`, refreshed here). Each operation compares its handle's
//! generation with it (one load and compare) and, in a new process, drops the inherited
//! connections (`HandleInner::forget_after_fork`). The lowest layer of the C ABI: the locks
//! use the process id.

use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Bumped in every child process right after fork().
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// This process's id without a system call on the hot path (refreshed in each child).
pub use crate::process::pid;

/// Records a new process: called by the pthread_atfork child handler (see `atfork.rs`).
pub fn child_started() {
    crate::process::refresh();
    GENERATION.fetch_add(1, Ordering::AcqRel);
}
