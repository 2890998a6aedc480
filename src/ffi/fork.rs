//! Fork safety without ritual: a child may use a handle it inherited at once. A
//! `pthread_atfork` child handler bumps a fork generation; each operation compares its handle's
//! generation with it (one load and compare) and, in a new process, drops the inherited
//! connections (closing a descriptor sends nothing while the parent still holds it) and
//! connects afresh. The library's process-wide registries are locked around `fork()` so the
//! child never inherits one held by another thread.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static PID: AtomicU32 = AtomicU32::new(0);
static INSTALL: Once = Once::new();

/// Bumped in every child process right after fork().
pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// This process's id without a system call on the hot path (refreshed in each child).
pub fn pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => {
            // SAFETY: getpid() has no preconditions.
            let p = unsafe { libc::getpid() } as u32;
            PID.store(p, Ordering::Relaxed);
            p
        }
        p => p,
    }
}

// The pthread_atfork handlers run inside the panic boundary like every function C calls.
extern "C" fn prepare() {
    ffi_body!((), { super::state::lock_registries() })
}

extern "C" fn parent() {
    ffi_body!((), { super::state::unlock_registries() })
}

extern "C" fn child() {
    ffi_body!((), {
        super::state::unlock_registries();
        // SAFETY: getpid() has no preconditions.
        PID.store(unsafe { libc::getpid() } as u32, Ordering::Relaxed);
        GENERATION.fetch_add(1, Ordering::AcqRel);
    })
}

/// Registers the fork handlers once per process; called when the first handle is created.
pub fn install() {
    INSTALL.call_once(|| {
        pid();
        // SAFETY: registering plain extern "C" functions with no captured state.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}
