//! Server statistics (spec §9.7, D6) and flushing (§9.8).

use std::ptr;

use libc::{c_int, timeval};

use super::context::{global, Alloc};
use super::error::{report, Scope};
use super::operation::finish;
use super::route::Failure;
use super::state::{self, HandleInner, HandleState};
use super::types::*;
use crate::command;
use crate::conn::Conn;
use crate::protocol::parse_u64;

/// Connects `ms` and runs one exchange on it. None when it cannot be reached or the exchange
/// failed (reported, connection closed).
///
/// # Safety
/// `ctxt` is live; `ms` is a live server of `mc`'s state `st`.
unsafe fn on_server<T>(
    ctxt: *const memcache_ctxt,
    st: &HandleState,
    ms: *mut memcache_server,
    exchange: impl FnOnce(&mut Conn, &mut Vec<u8>) -> Result<T, Failure>,
) -> Option<T> {
    // SAFETY: the only caller, version_of() for mcm_server_version(), passes the ctxt and ms
    // that function NULL-checked (ms a server of mc, its documented argument); lock_exclusive()
    // holds the handle's guard on_server_locked() needs.
    unsafe { on_server_locked(ctxt, &mut st.lock_exclusive(), ms, exchange) }
}

/// on_server() for a caller that holds the handle's guard.
///
/// # Safety
/// `ctxt` is live; `ms` is a live server of the handle whose locked state is `inner`.
unsafe fn on_server_locked<T>(
    ctxt: *const memcache_ctxt,
    inner: &mut HandleInner,
    ms: *mut memcache_server,
    exchange: impl FnOnce(&mut Conn, &mut Vec<u8>) -> Result<T, Failure>,
) -> Option<T> {
    // SAFETY: ctxt is live and ms a server of the guarded handle: the callers pass the ms their
    // exported function NULL-checked, or a member of server_slice(mc) read under this guard.
    if !unsafe { super::route::connect_one(ctxt, inner, ms) } {
        return None;
    }
    let HandleInner { servers, wbuf, .. } = inner;
    let side = servers.iter_mut().find(|s| s.ms == ms)?;
    // SAFETY: the caller's ctxt is live, and side was just found among the locked handle's
    // servers, so side.ms is one of its live servers.
    unsafe { super::route::exchange(ctxt, side, wbuf, exchange) }.ok()
}

/// Unsigned decimal stored in the field's width (D6); unparsable values count as 0.
fn num(v: &[u8]) -> u64 {
    parse_u64(v).unwrap_or(0)
}

/// `sec.usec` or `sec:usec`.
fn rusage(v: &[u8]) -> timeval {
    let sep = v.iter().position(|&b| b == b'.' || b == b':');
    let (s, us) = match sep {
        Some(at) => (&v[..at], &v[at + 1..]),
        None => (v, &b""[..]),
    };
    timeval {
        tv_sec: num(s) as libc::time_t,
        tv_usec: (num(us) % 1_000_000) as libc::suseconds_t,
    }
}

fn apply_stat(alloc: &Alloc, s: &mut memcache_server_stats, name: &[u8], v: &[u8]) {
    match name {
        b"pid" => s.pid = num(v) as libc::pid_t,
        b"uptime" => s.uptime = num(v) as libc::time_t,
        b"time" => s.time = num(v) as libc::time_t,
        b"version" => {
            alloc.free(s.version);
            s.version = alloc.cstring(v);
        }
        b"rusage_user" => s.rusage_user = rusage(v),
        b"rusage_system" => s.rusage_system = rusage(v),
        b"curr_items" => s.curr_items = num(v) as u32,
        b"total_items" => s.total_items = num(v),
        b"bytes" => s.bytes = num(v),
        b"curr_connections" => s.curr_connections = num(v) as u32,
        b"total_connections" => s.total_connections = num(v),
        b"connection_structures" => s.connection_structures = num(v) as u32,
        b"cmd_get" => s.cmd_get = num(v),
        b"cmd_set" => s.cmd_set = num(v),
        b"get_hits" => s.get_hits = num(v),
        b"get_misses" => s.get_misses = num(v),
        b"bytes_read" => s.bytes_read = num(v),
        b"bytes_written" => s.bytes_written = num(v),
        b"limit_maxbytes" => s.limit_maxbytes = num(v),
        _ => {} // D6: modern servers send many more; they are skipped, the reply still read.
    }
}

/// One server's statistics. Caller owns the result; release it with mc_server_stats_free().
/// NULL when the server cannot be reached or answers wrongly (reported).
///
/// # Safety
/// `ctxt` and `mc` are live; `ms` is a server of `mc`.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_stats(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    ms: *mut memcache_server,
) -> *mut memcache_server_stats {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); ctxt, mc, ms);
        let scope = Scope::enter(c"mcm_server_stats");
        let st = state::handle(mc);
        // SAFETY: ctxt, mc and ms were NULL-checked above; ms is a server of mc (the documented
        // argument) and lock_exclusive() holds mc's guard for the call.
        let s = unsafe { stats_of(ctxt, &mut st.lock_exclusive(), ms) };
        finish(scope, ctxt, Some(&st), s.is_null());
        s
    })
}

/// One server's statistics from the context's allocator, NULL when it cannot be reached or
/// answers wrongly (reported).
///
/// # Safety
/// `ctxt` is live; `ms` is a live server of the handle whose locked state is `inner`.
unsafe fn stats_of(
    ctxt: *mut memcache_ctxt,
    inner: &mut HandleInner,
    ms: *mut memcache_server,
) -> *mut memcache_server_stats {
    // SAFETY: ctxt is non-NULL: mcm_server_stats() and mcm_stats() NULL-check it; only its
    // allocator fields are read.
    let alloc = unsafe { Alloc::of(ctxt) };
    let s = alloc.new_zeroed::<memcache_server_stats>();
    if s.is_null() {
        report!(ctxt, MCM_ERR_MEM_MALLOC, 0, libc::ENOMEM, "stats");
        return ptr::null_mut();
    }
    // SAFETY: ctxt and ms are as on_server_locked() needs (from the callers' NULL checks or the
    // guarded server list); s is a fresh zeroed structure, written only by the closure.
    let ok = unsafe {
        on_server_locked(ctxt, inner, ms, |conn, wbuf| {
            command::stats(conn, wbuf, None, &mut |name, value| {
                apply_stat(&alloc, &mut *s, name, value)
            })
        })
    };
    if ok.is_none() {
        // SAFETY: s is ours and not handed out.
        unsafe { mcm_server_stats_free(ctxt, s) };
        return ptr::null_mut();
    }
    s
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_stats(
    mc: *mut memcache,
    ms: *mut memcache_server,
) -> *mut memcache_server_stats {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_stats(global(), mc, ms) }
}

fn add_tv(a: &mut timeval, b: &timeval) {
    let usec = a.tv_usec + b.tv_usec;
    a.tv_sec += b.tv_sec + usec / 1_000_000;
    a.tv_usec = usec % 1_000_000;
}

/// The statistics of every server merged: counters summed, pid/uptime/time from the last server
/// that answered, version from the first. Zeros when no server answered; NULL only when
/// allocation fails. Caller owns the result; release it with mc_server_stats_free().
///
/// # Safety
/// `ctxt` and `mc` are live.
#[no_mangle]
pub unsafe extern "C" fn mcm_stats(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
) -> *mut memcache_server_stats {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); ctxt, mc);
        let scope = Scope::enter(c"mcm_stats");
        let st = state::handle(mc);
        // One guard from bringing the list up to date to the last server asked: another
        // thread's begin() replaces the server array and frees the servers that left.
        let mut inner = st.lock_exclusive();
        // SAFETY: ctxt and mc were NULL-checked above; inner is mc's exclusively locked state.
        unsafe { super::operation::begin(ctxt, mc, &st, &mut inner) };
        // SAFETY: ctxt is non-NULL (checked above); only its allocator fields are read.
        let alloc = unsafe { Alloc::of(ctxt) };
        let total = alloc.new_zeroed::<memcache_server_stats>();
        if total.is_null() {
            report!(ctxt, MCM_ERR_MEM_MALLOC, 0, libc::ENOMEM, "stats");
            drop(inner);
            finish(scope, ctxt, Some(&st), true);
            return ptr::null_mut();
        }
        // SAFETY: mc is live and its list cannot change under the guard; total is a fresh
        // zeroed structure owned here.
        unsafe {
            let t = &mut *total;
            for &ms in state::server_slice(mc) {
                let s = stats_of(ctxt, &mut inner, ms);
                let Some(one) = s.as_ref() else { continue };
                t.pid = one.pid;
                t.uptime = one.uptime;
                t.time = one.time;
                if t.version.is_null() && !one.version.is_null() {
                    t.version = alloc.cstring(std::ffi::CStr::from_ptr(one.version).to_bytes());
                }
                add_tv(&mut t.rusage_user, &one.rusage_user);
                add_tv(&mut t.rusage_system, &one.rusage_system);
                t.curr_items = t.curr_items.wrapping_add(one.curr_items);
                t.total_items += one.total_items;
                t.bytes += one.bytes;
                t.curr_connections = t.curr_connections.wrapping_add(one.curr_connections);
                t.total_connections += one.total_connections;
                t.connection_structures = t
                    .connection_structures
                    .wrapping_add(one.connection_structures);
                t.cmd_get += one.cmd_get;
                t.cmd_set += one.cmd_set;
                t.get_hits += one.get_hits;
                t.get_misses += one.get_misses;
                t.bytes_read += one.bytes_read;
                t.bytes_written += one.bytes_written;
                t.limit_maxbytes += one.limit_maxbytes;
                mcm_server_stats_free(ctxt, s);
            }
        }
        drop(inner);
        finish(scope, ctxt, Some(&st), false);
        total
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_stats(mc: *mut memcache) -> *mut memcache_server_stats {
    // SAFETY: forwarded contract.
    unsafe { mcm_stats(global(), mc) }
}

/// Frees `s->version` and `s`. NULL is ignored.
///
/// # Safety
/// `s` is NULL or a result of mc_stats()/mc_server_stats() not used after this call.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_stats_free(
    ctxt: *const memcache_ctxt,
    s: *mut memcache_server_stats,
) {
    ffi_body!((), {
        check_null!((); s);
        // SAFETY: ctxt is NULL (libc's allocator) or the live context the C caller passes; only its
        // allocator fields are read.
        let alloc = unsafe { Alloc::of(ctxt) };
        // SAFETY: s was NULL-checked above and is a result of mcm_stats()/mcm_server_stats(), whose
        // version is NULL or from this allocator.
        alloc.free(unsafe { (*s).version });
        alloc.free(s);
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_stats_free(s: *mut memcache_server_stats) {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_stats_free(global(), s) }
}

/// Empties one server's cache. 0 on OK; -1 if it cannot be reached (or `ms` is NULL); -3 for any
/// other reply (reported).
///
/// # Safety
/// `ctxt` and `mc` are live; `ms` is NULL or a server of `mc`.
#[no_mangle]
pub unsafe extern "C" fn mcm_flush(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    ms: *mut memcache_server,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        let scope = Scope::enter(c"mcm_flush");
        let st = state::handle(mc);
        let rc = if ms.is_null() {
            report!(ctxt, MCM_ERR_MC_VALID_SERVER, 0, 0, "no server to flush");
            -1
        } else {
            // SAFETY: ctxt and mc were NULL-checked above and ms just now; ms is a server of mc
            // (the documented argument) and lock_exclusive() holds mc's guard for the call.
            unsafe { flush_one(ctxt, &mut st.lock_exclusive(), ms) }
        };
        finish(scope, ctxt, Some(&st), rc != 0).ret(rc)
    })
}

/// Flushes `ms`: 0 on OK; -1 if it cannot be reached; -3 for any other reply (reported).
///
/// # Safety
/// `ctxt` is live; `ms` is a live server of the handle whose locked state is `inner`.
unsafe fn flush_one(
    ctxt: *const memcache_ctxt,
    inner: &mut HandleInner,
    ms: *mut memcache_server,
) -> c_int {
    let mut reached = false;
    // SAFETY: ctxt and ms are as on_server_locked() needs: mcm_flush() passes its NULL-checked
    // ms, mcm_flush_all() a member of server_slice(mc) read under the same guard.
    let r = unsafe {
        on_server_locked(ctxt, inner, ms, |conn, wbuf| {
            reached = true;
            command::flush(conn, wbuf)
        })
    };
    match (r, reached) {
        (Some(()), _) => 0,
        (None, true) => -3,
        (None, false) => -1,
    }
}

#[no_mangle]
pub unsafe extern "C" fn mc_flush(mc: *mut memcache, ms: *mut memcache_server) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_flush(global(), mc, ms) }
}

/// Flushes every server; the first non-zero result, or 0.
///
/// # Safety
/// `ctxt` and `mc` are live.
#[no_mangle]
pub unsafe extern "C" fn mcm_flush_all(ctxt: *mut memcache_ctxt, mc: *mut memcache) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        let scope = Scope::enter(c"mcm_flush_all");
        let st = state::handle(mc);
        // One guard for the whole walk, as in mcm_stats().
        let mut inner = st.lock_exclusive();
        // SAFETY: ctxt and mc were NULL-checked above; inner is mc's exclusively locked state.
        unsafe { super::operation::begin(ctxt, mc, &st, &mut inner) };
        let mut first = 0;
        // SAFETY: mc is live and its list cannot change under the guard.
        for &ms in unsafe { state::server_slice(mc) } {
            // SAFETY: as above.
            let rc = unsafe { flush_one(ctxt, &mut inner, ms) };
            if first == 0 {
                first = rc;
            }
        }
        drop(inner);
        finish(scope, ctxt, Some(&st), first != 0).ret(first)
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_flush_all(mc: *mut memcache) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_flush_all(global(), mc) }
}

/// The `version` reply of `ms` as a new C string, NULL when unreachable.
///
/// # Safety
/// `ctxt` is live; `ms` is a server of the handle with state `st`.
pub unsafe fn version_of(
    ctxt: *mut memcache_ctxt,
    st: &HandleState,
    ms: *mut memcache_server,
) -> *mut libc::c_char {
    // SAFETY: ctxt is non-NULL: the only caller, mcm_server_version(), NULL-checks it; only its
    // allocator fields are read.
    let alloc = unsafe { Alloc::of(ctxt) };
    // SAFETY: ctxt and ms were NULL-checked by mcm_server_version(), and ms is a server of the
    // handle whose state is st (its documented argument).
    unsafe {
        on_server(ctxt, st, ms, |conn, wbuf| {
            command::version(conn, wbuf).map(|v| alloc.cstring(&v))
        })
    }
    .unwrap_or(ptr::null_mut())
}
