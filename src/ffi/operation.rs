//! What every key operation shares: the D2 key check ([`validate_key`]), the prologue under the
//! handle's lock ([`begin`]: connections of a parent process dropped, a domain's list brought up
//! to date), the exchange on each server holding a copy ([`on_copies_for`], [`Outcome`]) with
//! the connection closed on any failure, and the epilogue ([`finish`]) that records the handle's
//! last error and delivers reports once nothing is locked.

use libc::{c_char, size_t};

use super::error::{report_bad_key, Delivered, Scope};
use super::hooks::{default_key_valid, key_bytes};
use super::route::{report_unreachable, route, CallError, Failure, Front};
use super::state::{HandleInner, HandleState};
use super::types::*;
use crate::command::{self, Pending};
use crate::conn::Conn;
use crate::engine::{self, RouteError, Servers};
use crate::key;

/// Runs the client's `mcKeyValid` hook (it may rewrite the key in place), then the built-in
/// check, which always runs (D2). `Err` carries the value the storage calls return: the hook's
/// non-zero result, or -9 for the built-in check.
///
/// # Safety
/// `ctxt` is live; `key` is NULL or `len` bytes, writable if a hook is installed.
pub unsafe fn validate_key<'a>(
    ctxt: *const memcache_ctxt,
    key_ptr: *mut c_char,
    len: size_t,
) -> Result<&'a [u8], i32> {
    // SAFETY: the caller passes a live context (this function's contract; every entry point
    // checked it for NULL), and the hook field is a plain copy of a function pointer.
    let hook = unsafe { (*ctxt).mcKeyValid }
        .filter(|&h| !std::ptr::eq(h as *const (), default_key_valid as *const ()));
    if let Some(hook) = hook {
        if !key_ptr.is_null() {
            // SAFETY: the client's validator with the documented arguments.
            let rc = unsafe { hook(ctxt as _, key_ptr, len) };
            if rc != 0 {
                report_bad_key(ctxt, "key rejected by mcKeyValid");
                return Err(rc);
            }
        }
    }
    // SAFETY: `key_ptr` is NULL or `len` readable bytes (this function's contract), which is
    // what key_bytes asks; the hook above may have rewritten the bytes but not moved them.
    let bytes = unsafe { key_bytes(key_ptr, len) };
    match key::check(bytes) {
        Ok(()) => Ok(bytes),
        Err(e) => {
            report_bad_key(ctxt, e.reason());
            Err(-9)
        }
    }
}

/// What every operation does first under the handle's lock: in a process forked since the
/// connections were made, drop them without a word (the parent keeps its own); then bring a
/// domain's server list up to date. Both are one load and compare in the common case.
///
/// # Safety
/// `ctxt` and `mc` are live; `inner` is `mc`'s locked state.
pub unsafe fn begin(
    ctxt: *const memcache_ctxt,
    mc: *mut memcache,
    st: &HandleState,
    inner: &mut HandleInner,
) {
    inner.forget_after_fork();
    // SAFETY: `ctxt` and `mc` are live and `inner` is `mc`'s locked state, as begin's own
    // contract requires of its caller; sync asks exactly that.
    unsafe { super::domain::sync(ctxt, mc, st, inner) };
}

/// [`begin`] for calls that do not otherwise lock the handle (stats, flush_all, server_find).
///
/// # Safety
/// `ctxt` and `mc` are live.
pub unsafe fn sync_handle(ctxt: *const memcache_ctxt, mc: *mut memcache) {
    let st = super::state::handle(mc);
    let mut inner = st.lock();
    // SAFETY: `ctxt` and `mc` are live (this function's contract) and `inner` is the guard
    // just taken on `mc`'s own state.
    unsafe { begin(ctxt, mc, &st, &mut inner) };
}

/// How an exchange ended.
pub enum Outcome<T> {
    Done(T),
    /// No server could be chosen or reached (reported).
    NoServer,
    /// The exchange failed and the connection was closed (reported).
    Failed,
}

/// Runs a request and reads its reply on each server holding a copy of `key` (one server
/// unless the handle keeps several copies), in order, primary first ([`engine::on_copies`]).
/// Stops at the first result for which `done` is true (reads: a hit). Returns that result,
/// else the first successful one (writes: the primary's answer, or the first copy's when the
/// primary failed). Failures close their connection and are reported; they change the answer
/// only when no copy succeeded.
///
/// With one copy, the request is pipelined ([`engine::pipelined`]): threads sharing the handle
/// send on the server's connection without waiting for each other's replies. Several copies,
/// or a call under way that needs the connections alone, make it an exchange of its own.
///
/// # Safety
/// `ctxt` and `mc` are live.
// Each caller has its own instance (its closures' types): inlining it costs no code size and
// keeps the hot path of a get or set one function (whether LLVM chose to varied by build).
#[inline(always)]
pub unsafe fn on_copies_for<T, P: Pending<Output = T>>(
    ctxt: *const memcache_ctxt,
    mc: *mut memcache,
    st: &HandleState,
    key: &[u8],
    done: impl Fn(&T) -> bool,
    request: impl Fn(&mut Conn, &mut Vec<u8>) -> Result<(), Failure>,
    mut reply: impl FnMut() -> P,
) -> Outcome<T> {
    let mut inner = st.lock();
    if !inner.shared() || inner.replicas > 1 {
        inner.make_exclusive();
    }
    // SAFETY: `ctxt` and `mc` are live (this function's contract) and `inner` is the guard
    // just taken on `st`, `mc`'s own state.
    unsafe { begin(ctxt, mc, st, &mut inner) };
    let copies = inner.replicas as usize;
    let shared = inner.shared();
    let mut front = Front {
        ctxt,
        mc,
        st,
        inner: &mut inner,
    };
    let hash = front.hash(key);
    let exchange = |conn: &mut Conn, wbuf: &mut Vec<u8>| {
        request(conn, wbuf)?;
        command::wait(conn, &mut reply())
    };
    if copies <= 1 {
        // SAFETY: `front` holds this call's live `ctxt` and `mc` and the guard on `mc`'s
        // state taken above, which is what route asks.
        let Some(at) = (unsafe { route(&mut front, hash) }) else {
            return Outcome::NoServer;
        };
        // A hook run unlocked above may have let a call that needs the connections alone start.
        let result = if shared && front.inner.shared() {
            engine::pipelined(&mut front, at, &request, reply())
        } else {
            Servers::exchange(&mut front, at, exchange)
        };
        return match result {
            Ok(v) => Outcome::Done(v),
            Err(_) => Outcome::Failed,
        };
    }
    match engine::on_copies(&mut front, hash, copies, done, exchange) {
        Ok((_, v)) => Outcome::Done(v),
        Err(RouteError::Unreachable(CallError::Failed)) => Outcome::Failed,
        Err(_) => {
            report_unreachable(ctxt);
            Outcome::NoServer
        }
    }
}

/// Ends a call: records the handle's last error (the call's last report when it `failed`,
/// none otherwise: a miss, NOT_STORED or a failover that ended well is not an error), then
/// delivers the queued reports.
pub fn finish(
    scope: Scope,
    ctxt: *const memcache_ctxt,
    st: Option<&HandleState>,
    failed: bool,
) -> Delivered {
    if let Some(st) = st {
        st.set_last_error(if failed { scope.last() } else { None });
    }
    scope.deliver(ctxt)
}
