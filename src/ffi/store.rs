//! Commands that change items: set, add, replace (spec §9.2), delete (§9.3, D7), incr and decr
//! (§9.4), and the modern append, prepend, cas, touch and 64-bit counters, which share the same
//! paths.

use std::ffi::CStr;

use libc::{c_char, c_int, c_void, size_t, time_t};

use super::context::global;
use super::context::set_errnum;
use super::error::{report, Scope};
use super::operation::{finish, on_copies_for, validate_key, Outcome};
use super::route::Failure;
use super::state;
use super::types::*;
use crate::command::{self, Counter, Line, Stored};
use crate::protocol::StoreCmd;

/// One storage command. Returns 0 stored, 1 not stored, MC_EXISTS / MC_NOT_FOUND (cas),
/// 2 any other reply or a failed exchange, 4 SERVER_ERROR, -1 no server, or the key check's
/// value; through MCM_RET_CODE after a report.
///
/// # Safety
/// `ctxt` and `mc` are live; `key` and `val` are readable for their lengths.
#[allow(clippy::too_many_arguments)] // the C signature's arguments, passed through
pub(super) unsafe fn store(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    cmd: StoreCmd,
    key: *mut c_char,
    key_len: size_t,
    val: *const c_void,
    bytes: size_t,
    expire: time_t,
    flags: u32,
) -> c_int {
    let scope = Scope::enter(match cmd {
        StoreCmd::Set => c"mcm_set",
        StoreCmd::Add => c"mcm_add",
        StoreCmd::Replace => c"mcm_replace",
        StoreCmd::Append => c"mcm_append",
        StoreCmd::Prepend => c"mcm_prepend",
        StoreCmd::Cas(_) => c"mcm_cas",
    });
    // SAFETY: ctxt was NULL-checked by every exported caller; key is NULL or key_len bytes,
    // writable when an mcKeyValid hook is installed (mcm_set's and its relatives' argument).
    let key = match unsafe { validate_key(ctxt, key, key_len) } {
        Ok(k) => k,
        Err(rc) => return finish(scope, ctxt, Some(&state::handle(mc)), true).ret(rc),
    };
    // SAFETY: ctxt is live.
    unsafe { set_errnum(ctxt, 0) };
    let value: &[u8] = if val.is_null() || bytes == 0 {
        &[]
    } else {
        // SAFETY: the caller guarantees `bytes` readable bytes at val.
        unsafe { std::slice::from_raw_parts(val as *const u8, bytes) }
    };
    let st = state::handle(mc);
    // SAFETY: ctxt and mc were NULL-checked by every exported caller and are live (the
    // documented arguments).
    let outcome = unsafe {
        on_copies_for(
            ctxt,
            mc,
            &st,
            key,
            |_| false,
            |conn, wbuf| command::send_store(conn, wbuf, cmd, key, flags, expire as u64, value),
            || Line(command::stored),
        )
    };
    let outcome = match outcome {
        Outcome::Done(stored) => Outcome::Done(match stored {
            Stored::Stored => 0,
            Stored::NotStored => {
                let verb = String::from_utf8_lossy(cmd.verb()).into_owned();
                report!(ctxt, MCM_ERR_MC_STORE, 0, 0, verb);
                1
            }
            Stored::Exists => MC_EXISTS,
            Stored::NotFound => MC_NOT_FOUND,
            Stored::ServerError(msg) => {
                report!(ctxt, MCM_ERR_MC_STORE, 0, 0, msg);
                4
            }
        }),
        Outcome::NoServer => Outcome::NoServer,
        Outcome::Failed => Outcome::Failed,
    };
    let rc = match outcome {
        Outcome::Done(rc) => rc,
        Outcome::NoServer => -1,
        Outcome::Failed => 2,
    };
    finish(scope, ctxt, Some(&st), rc < 0 || rc == 2 || rc == 4).ret(rc)
}

/// Stores the value unconditionally. 0 stored; 1 not stored; 2 other reply or I/O failure;
/// 4 SERVER_ERROR (e.g. too large); -1 no server; -9 or the hook's value for a bad key.
///
/// # Safety
/// `ctxt` and `mc` are live; `key` is `key_len` bytes (writable if an mcKeyValid hook is
/// installed); `val` is `bytes` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_set(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: *const c_void,
    bytes: size_t,
    expire: time_t,
    flags: u16,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        // SAFETY: forwarded contract.
        unsafe {
            store(
                ctxt,
                mc,
                StoreCmd::Set,
                key,
                key_len,
                val,
                bytes,
                expire,
                flags as u32,
            )
        }
    })
}

/// The global-context form of mcm_set().
///
/// # Safety
/// As mcm_set().
#[no_mangle]
pub unsafe extern "C" fn mc_set(
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: *const c_void,
    bytes: size_t,
    expire: time_t,
    flags: u16,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_set(global(), mc, key, key_len, val, bytes, expire, flags) }
}

/// Stores the value only if the key is absent. Results as mc_set().
///
/// # Safety
/// `ctxt` and `mc` are live; `key` is `key_len` bytes (writable if an mcKeyValid hook is
/// installed); `val` is `bytes` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_add(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: *const c_void,
    bytes: size_t,
    expire: time_t,
    flags: u16,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        // SAFETY: forwarded contract.
        unsafe {
            store(
                ctxt,
                mc,
                StoreCmd::Add,
                key,
                key_len,
                val,
                bytes,
                expire,
                flags as u32,
            )
        }
    })
}

/// The global-context form of mcm_add().
///
/// # Safety
/// As mcm_add().
#[no_mangle]
pub unsafe extern "C" fn mc_add(
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: *const c_void,
    bytes: size_t,
    expire: time_t,
    flags: u16,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_add(global(), mc, key, key_len, val, bytes, expire, flags) }
}

/// Stores the value only if the key exists. Results as mc_set().
///
/// # Safety
/// `ctxt` and `mc` are live; `key` is `key_len` bytes (writable if an mcKeyValid hook is
/// installed); `val` is `bytes` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_replace(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: *const c_void,
    bytes: size_t,
    expire: time_t,
    flags: u16,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        // SAFETY: forwarded contract.
        unsafe {
            store(
                ctxt,
                mc,
                StoreCmd::Replace,
                key,
                key_len,
                val,
                bytes,
                expire,
                flags as u32,
            )
        }
    })
}

/// The global-context form of mcm_replace().
///
/// # Safety
/// As mcm_replace().
#[no_mangle]
pub unsafe extern "C" fn mc_replace(
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: *const c_void,
    bytes: size_t,
    expire: time_t,
    flags: u16,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_replace(global(), mc, key, key_len, val, bytes, expire, flags) }
}

/// Appends to an existing value (beyond 1.4). Results as mc_set(); 1 when the key is absent.
///
/// # Safety
/// `ctxt` and `mc` are live; `key` is `key_len` bytes (writable if an mcKeyValid hook is
/// installed); `val` is `bytes` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_append(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: *const c_void,
    bytes: size_t,
    expire: time_t,
    flags: u16,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        // SAFETY: forwarded contract.
        unsafe {
            store(
                ctxt,
                mc,
                StoreCmd::Append,
                key,
                key_len,
                val,
                bytes,
                expire,
                flags as u32,
            )
        }
    })
}

/// The global-context form of mcm_append().
///
/// # Safety
/// As mcm_append().
#[no_mangle]
pub unsafe extern "C" fn mc_append(
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: *const c_void,
    bytes: size_t,
    expire: time_t,
    flags: u16,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_append(global(), mc, key, key_len, val, bytes, expire, flags) }
}

/// Prepends to an existing value (beyond 1.4). Results as mc_set(); 1 when the key is absent.
///
/// # Safety
/// `ctxt` and `mc` are live; `key` is `key_len` bytes (writable if an mcKeyValid hook is
/// installed); `val` is `bytes` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_prepend(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: *const c_void,
    bytes: size_t,
    expire: time_t,
    flags: u16,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        // SAFETY: forwarded contract.
        unsafe {
            store(
                ctxt,
                mc,
                StoreCmd::Prepend,
                key,
                key_len,
                val,
                bytes,
                expire,
                flags as u32,
            )
        }
    })
}

/// The global-context form of mcm_prepend().
///
/// # Safety
/// As mcm_prepend().
#[no_mangle]
pub unsafe extern "C" fn mc_prepend(
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: *const c_void,
    bytes: size_t,
    expire: time_t,
    flags: u16,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_prepend(global(), mc, key, key_len, val, bytes, expire, flags) }
}

#[allow(clippy::too_many_arguments)]
/// Stores the value only if the item is unchanged since the `gets` that returned `cas`
/// (beyond 1.4). 0 stored; MC_EXISTS (5) changed since; MC_NOT_FOUND (6) absent; other
/// results as mc_set().
///
/// # Safety
/// As mcm_set().
#[no_mangle]
pub unsafe extern "C" fn mcm_cas(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: *const c_void,
    bytes: size_t,
    expire: time_t,
    flags: u16,
    cas: u64,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        // SAFETY: forwarded contract.
        unsafe {
            store(
                ctxt,
                mc,
                StoreCmd::Cas(cas),
                key,
                key_len,
                val,
                bytes,
                expire,
                flags as u32,
            )
        }
    })
}

/// The global-context form of mcm_cas().
///
/// # Safety
/// As mcm_set().
#[no_mangle]
pub unsafe extern "C" fn mc_cas(
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: *const c_void,
    bytes: size_t,
    expire: time_t,
    flags: u16,
    cas: u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_cas(global(), mc, key, key_len, val, bytes, expire, flags, cas) }
}

/// Runs a found/not-found command (delete, touch) on the key's server.
///
/// # Safety
/// `ctxt` and `mc` are live; `key` is valid for the call.
unsafe fn found_or_not(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: &[u8],
    request: impl Fn(&mut crate::conn::Conn, &mut Vec<u8>) -> Result<(), Failure>,
    meaning: fn(crate::protocol::Reply<'_>) -> Result<bool, Failure>,
) -> (Outcome<bool>, std::sync::Arc<state::HandleState>) {
    let st = state::handle(mc);
    // SAFETY: ctxt and mc were NULL-checked by mcm_delete() and mcm_touch() and are live (the
    // documented arguments).
    let outcome =
        unsafe { on_copies_for(ctxt, mc, &st, key, |_| false, request, || Line(meaning)) };
    (outcome, st)
}

/// Deletes the key. 0 deleted; 1 not found; -1 no server; -5 other reply or I/O failure; -9 or
/// the hook's value for a bad key. A non-zero `hold` is ignored with a NOTICE (D7): memcached
/// 1.4 and later refuse hold times.
///
/// # Safety
/// `ctxt` and `mc` are live; `key` is `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_delete(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    hold: time_t,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        let scope = Scope::enter(c"mcm_delete");
        // SAFETY: ctxt was NULL-checked above; key is NULL or key_len bytes (the documented
        // argument), writable when an mcKeyValid hook is installed.
        let key = match unsafe { validate_key(ctxt, key, key_len) } {
            Ok(k) => k,
            Err(rc) => return finish(scope, ctxt, Some(&state::handle(mc)), true).ret(rc),
        };
        if hold != 0 {
            report!(
                ctxt,
                MCM_ERR_PROTO,
                MCM_ERR_LVL_NOTICE,
                0,
                "delete hold time ignored"
            );
        }
        // SAFETY: ctxt and mc were NULL-checked above and are live (the documented arguments).
        let (outcome, st) = unsafe {
            found_or_not(
                ctxt,
                mc,
                key,
                |c, w| command::send_delete(c, w, key),
                command::deleted,
            )
        };
        let rc = match outcome {
            Outcome::Done(deleted) => !deleted as c_int,
            Outcome::NoServer => -1,
            Outcome::Failed => -5,
        };
        finish(scope, ctxt, Some(&st), rc < 0).ret(rc)
    })
}

/// The global-context form of mcm_delete().
///
/// # Safety
/// As mcm_delete().
#[no_mangle]
pub unsafe extern "C" fn mc_delete(
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    hold: time_t,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_delete(global(), mc, key, key_len, hold) }
}

/// Resets the item's expiry (beyond 1.4). 0 touched; MC_NOT_FOUND (6) absent; -1 no server;
/// 2 other reply or I/O failure; -9 or the hook's value for a bad key.
///
/// # Safety
/// As mcm_delete().
#[no_mangle]
pub unsafe extern "C" fn mcm_touch(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    expire: time_t,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        let scope = Scope::enter(c"mcm_touch");
        // SAFETY: ctxt was NULL-checked above; key is NULL or key_len bytes (the documented
        // argument), writable when an mcKeyValid hook is installed.
        let key = match unsafe { validate_key(ctxt, key, key_len) } {
            Ok(k) => k,
            Err(rc) => return finish(scope, ctxt, Some(&state::handle(mc)), true).ret(rc),
        };
        let request = |c: &mut _, w: &mut _| command::send_touch(c, w, key, expire as u64);
        // SAFETY: ctxt and mc were NULL-checked above and are live (the documented arguments).
        let (outcome, st) = unsafe { found_or_not(ctxt, mc, key, request, command::touched) };
        let rc = match outcome {
            Outcome::Done(touched) => {
                if touched {
                    0
                } else {
                    MC_NOT_FOUND
                }
            }
            Outcome::NoServer => -1,
            Outcome::Failed => 2,
        };
        finish(scope, ctxt, Some(&st), rc < 0 || rc == 2).ret(rc)
    })
}

/// The global-context form of mcm_touch().
///
/// # Safety
/// As mcm_delete().
#[no_mangle]
pub unsafe extern "C" fn mc_touch(
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    expire: time_t,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_touch(global(), mc, key, key_len, expire) }
}

/// A failed incr/decr: what delivery left (for MCM_RET_CODE) and, for a refused key, the key
/// check's value (the hook's non-zero result or -9).
struct ArithFail {
    delivered: super::error::Delivered,
    bad_key: Option<c_int>,
}

/// incr/decr. Ok(Some(v)) new value; Ok(None) not found (errnum ENOENT); Err on failure with
/// errnum set (EINVAL for a bad key, else 0).
/// Never re-sent after a timeout (D8): a counter must not move twice.
///
/// # Safety
/// `ctxt` and `mc` are live; `key` is `key_len` bytes.
unsafe fn arith(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    funcname: &'static CStr,
    incr: bool,
    key: *mut c_char,
    key_len: size_t,
    delta: u64,
) -> Result<Option<u64>, ArithFail> {
    let scope = Scope::enter(funcname);
    // SAFETY: ctxt is live.
    unsafe { set_errnum(ctxt, 0) };
    // SAFETY: ctxt was NULL-checked by every exported caller (incr, decr, and their 64-bit
    // forms); key is NULL or key_len bytes, writable when an mcKeyValid hook is installed.
    let key = match unsafe { validate_key(ctxt, key, key_len) } {
        Ok(k) => k,
        Err(rc) => {
            // SAFETY: ctxt is live.
            unsafe { set_errnum(ctxt, libc::EINVAL as u32) };
            let delivered = finish(scope, ctxt, Some(&state::handle(mc)), true);
            return Err(ArithFail {
                delivered,
                bad_key: Some(rc),
            });
        }
    };
    let st = state::handle(mc);
    // SAFETY: ctxt and mc were NULL-checked by every exported caller and are live.
    let outcome = unsafe {
        on_copies_for(
            ctxt,
            mc,
            &st,
            key,
            |_| false,
            |conn, wbuf| command::send_arith(conn, wbuf, incr, key, delta),
            || Line(command::counter),
        )
    };
    let outcome = match outcome {
        Outcome::Done(Counter::Value(n)) => Outcome::Done(Ok(Some(n))),
        Outcome::Done(Counter::NotFound) => Outcome::Done(Ok(None)),
        Outcome::Done(Counter::Refused(msg)) => {
            report!(ctxt, MCM_ERR_PROTO, 0, 0, msg);
            Outcome::Done(Err(()))
        }
        Outcome::NoServer => Outcome::NoServer,
        Outcome::Failed => Outcome::Failed,
    };
    let result = match outcome {
        Outcome::Done(Ok(v)) => Ok(v),
        Outcome::Done(Err(())) | Outcome::NoServer | Outcome::Failed => Err(()),
    };
    if let Ok(None) = result {
        // SAFETY: ctxt is live.
        unsafe { set_errnum(ctxt, libc::ENOENT as u32) };
    }
    let delivered = finish(scope, ctxt, Some(&st), result.is_err());
    result.map_err(|()| ArithFail {
        delivered,
        bad_key: None,
    })
}

/// 1.4's 32-bit counter result: the new value truncated to 32 bits; 0 with errnum ENOENT when
/// the key is missing, 0 with errnum EINVAL for a bad key.
///
/// # Safety
/// As arith().
unsafe fn arith32(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    funcname: &'static CStr,
    incr: bool,
    key: *mut c_char,
    key_len: size_t,
    val: u32,
) -> u32 {
    // SAFETY: forwarded contract.
    match unsafe { arith(ctxt, mc, funcname, incr, key, key_len, val as u64) } {
        Ok(Some(v)) => v as u32,
        Ok(None) => 0,
        // D2: a bad key returns 0 (errnum EINVAL), like every other failure.
        Err(f) => f.delivered.ret(0) as u32,
    }
}

/// Adds `val` to a counter; returns the new value as 32 bits. A missing key returns 0 and sets
/// `ctxt->errnum = ENOENT`; other failures return 0 (errnum 0, or EINVAL for a bad key).
///
/// # Safety
/// `ctxt` and `mc` are live; `key` is `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_incr(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: u32,
) -> u32 {
    ffi_body!(0, {
        check_null!(0; ctxt, mc);
        // SAFETY: forwarded contract.
        unsafe { arith32(ctxt, mc, c"mcm_incr", true, key, key_len, val) }
    })
}

/// Subtracts `val` from a counter (memcached stops at 0). Results as mc_incr().
///
/// # Safety
/// As mcm_incr().
#[no_mangle]
pub unsafe extern "C" fn mcm_decr(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: u32,
) -> u32 {
    ffi_body!(0, {
        check_null!(0; ctxt, mc);
        // SAFETY: forwarded contract.
        unsafe { arith32(ctxt, mc, c"mcm_decr", false, key, key_len, val) }
    })
}

/// The global-context form of mcm_incr().
///
/// # Safety
/// As mcm_incr().
#[no_mangle]
pub unsafe extern "C" fn mc_incr(
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: u32,
) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { mcm_incr(global(), mc, key, key_len, val) }
}

/// The global-context form of mcm_decr().
///
/// # Safety
/// As mcm_incr().
#[no_mangle]
pub unsafe extern "C" fn mc_decr(
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    val: u32,
) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { mcm_decr(global(), mc, key, key_len, val) }
}

/// 64-bit counter (beyond 1.4): 0 and the new value in `*value` (if non-NULL); MC_NOT_FOUND
/// (6) for a missing key; -1 for any failure (reported); -9 or the hook's value for a bad key.
///
/// # Safety
/// As mcm_incr(); `value` is NULL or writable.
#[allow(clippy::too_many_arguments)] // the C signature's arguments and the caller's name
unsafe fn arith64(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    funcname: &'static CStr,
    incr: bool,
    key: *mut c_char,
    key_len: size_t,
    delta: u64,
    value: *mut u64,
) -> c_int {
    // SAFETY: forwarded contract.
    match unsafe { arith(ctxt, mc, funcname, incr, key, key_len, delta) } {
        Ok(Some(v)) => {
            if !value.is_null() {
                // SAFETY: value is non-NULL (tested just above) and writable: the documented
                // out-pointer of mcm_incr64() and mcm_decr64().
                unsafe { *value = v };
            }
            0
        }
        Ok(None) => MC_NOT_FOUND,
        Err(f) => f.delivered.ret(f.bad_key.unwrap_or(-1)),
    }
}

/// Adds `delta` to a 64-bit counter (beyond 1.4). 0 with the new value in `*value`;
/// MC_NOT_FOUND (6) when the key is missing; -1 on failure; -9 for a bad key.
///
/// # Safety
/// `ctxt` and `mc` are live; `key` is `key_len` bytes; `value` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mcm_incr64(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    delta: u64,
    value: *mut u64,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        // SAFETY: forwarded contract.
        unsafe { arith64(ctxt, mc, c"mcm_incr64", true, key, key_len, delta, value) }
    })
}

/// Subtracts `delta` from a 64-bit counter (beyond 1.4). Results as mc_incr64().
///
/// # Safety
/// As mcm_incr64().
#[no_mangle]
pub unsafe extern "C" fn mcm_decr64(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    delta: u64,
    value: *mut u64,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        // SAFETY: forwarded contract.
        unsafe { arith64(ctxt, mc, c"mcm_decr64", false, key, key_len, delta, value) }
    })
}

/// The global-context form of mcm_incr64().
///
/// # Safety
/// As mcm_incr64().
#[no_mangle]
pub unsafe extern "C" fn mc_incr64(
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    delta: u64,
    value: *mut u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_incr64(global(), mc, key, key_len, delta, value) }
}

/// The global-context form of mcm_decr64().
///
/// # Safety
/// As mcm_incr64().
#[no_mangle]
pub unsafe extern "C" fn mc_decr64(
    mc: *mut memcache,
    key: *mut c_char,
    key_len: size_t,
    delta: u64,
    value: *mut u64,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_decr64(global(), mc, key, key_len, delta, value) }
}
