//! Fork safety without ritual: a child may use a handle it inherited at once. The
//! `pthread_atfork` child handler starts a new fork generation (`fork.rs`), after which each
//! operation drops the inherited connections (closing a descriptor sends nothing while the
//! parent still holds it) and connects afresh. The library's process-wide registries are locked
//! around `fork()` so the child never inherits one held by another thread.

use std::sync::Once;

use super::fork;

static INSTALL: Once = Once::new();

// The pthread_atfork handlers run inside the panic boundary like every function C calls.
extern "C" fn prepare() {
    ffi_body!((), {
        super::state::lock_registries();
        super::error::hold_messages();
        super::repeats::hold();
    })
}

extern "C" fn parent() {
    ffi_body!((), {
        super::repeats::release();
        super::error::release_messages();
        super::state::unlock_registries();
    })
}

extern "C" fn child() {
    ffi_body!((), {
        super::repeats::release();
        super::error::release_messages();
        super::state::unlock_registries();
        fork::child_started();
    })
}

/// Registers the fork handlers once per process; called when the first handle is created.
pub fn install() {
    INSTALL.call_once(|| {
        fork::pid();
        // SAFETY: registering plain extern "C" functions with no captured state.
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}
