//! This process's id without a system call each time it is asked: the C layer's locks and the
//! pipelined read side ask on every call, and getpid() is a system call. The C layer refreshes
//! it in every child ([`refresh`], from its `pthread_atfork` handler, installed with the first
//! handle). Only the C front end's paths ask for it; a Rust program that forks gets no
//! refresh, so nothing on the Rust client's paths may rely on it.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU32, Ordering};

static PID: AtomicU32 = AtomicU32::new(0);

/// This process's id (asked of the kernel the first time only).
#[inline]
pub fn pid() -> u32 {
    match PID.load(Ordering::Relaxed) {
        0 => refresh(),
        p => p,
    }
}

/// Asks the kernel again: in a child process right after fork().
pub fn refresh() -> u32 {
    let p = rustix::process::getpid().as_raw_nonzero().get() as u32;
    PID.store(p, Ordering::Relaxed);
    p
}
