//! Calls beyond libmemcache 1.4 (the marked section of memcache.h): distribution choice, weighted servers, the
//! per-handle last error, the retry interval and server versions. The storage-side additions
//! (append, prepend, cas, touch, 64-bit counters, gets) live beside their 1.4 relatives.

use libc::{c_char, c_int, size_t};

use super::context::global;
use super::error::Scope;
use super::operation::finish;
use super::server_list::{c_len, mcm_server_add5};
use super::state;
use super::types::*;
use crate::hash::Distribution;

/// Chooses how keys are placed on the handle's servers: MC_DIST_CRC32_MODULO (1.4's rule, the
/// default) or MC_DIST_KETAMA_MD5 (libmemcached-compatible consistent hashing with weights).
/// 0 on success, -1 for a NULL handle or an unknown value. Takes effect with the next call.
///
/// # Safety
/// `mc` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn mc_distribution(mc: *mut memcache, distribution: c_int) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; mc);
        let dist = match distribution {
            MC_DIST_CRC32_MODULO => Distribution::Crc32Modulo,
            MC_DIST_KETAMA_MD5 => Distribution::KetamaMd5,
            _ => return -1,
        };
        let st = state::handle(mc);
        let mut inner = st.lock();
        inner.distribution_explicit = true;
        st.set_distribution(dist);
        // SAFETY: mc is live and its server array consistent (only changed under the lock).
        unsafe { st.rebuild_selector(mc, &inner) };
        0
    })
}

/// The handle's distribution (MC_DIST_*), -1 for NULL.
///
/// # Safety
/// `mc` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn mc_distribution_get(mc: *const memcache) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; mc);
        match state::handle(mc).distribution() {
            Distribution::Crc32Modulo => MC_DIST_CRC32_MODULO,
            Distribution::KetamaMd5 => MC_DIST_KETAMA_MD5,
        }
    })
}

/// mc_server_add5() with a weight for ketama-md5 (0 counts as 1; ignored by crc32-modulo).
///
/// # Safety
/// `ctxt` and `mc` are live; `hostport` is NULL or `hostlen` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_add_weighted(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    hostport: *const c_char,
    hostlen: size_t,
    weight: u32,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        // SAFETY: forwarded contract.
        let rc = unsafe { mcm_server_add5(ctxt, mc, hostport, hostlen) };
        if rc == 0 {
            let st = state::handle(mc);
            let mut inner = st.lock();
            // SAFETY: the server just added is the last of the array.
            let ms = unsafe { *state::server_slice(mc).last().expect("just added") };
            inner.side(ms).weight = weight.max(1);
            // SAFETY: mc is live.
            unsafe { st.rebuild_selector(mc, &inner) };
        }
        rc
    })
}

/// The global-context form of mcm_server_add_weighted() for a NUL-terminated address.
///
/// # Safety
/// `mc` is live; `hostport` is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn mc_server_add_weighted(
    mc: *mut memcache,
    hostport: *const c_char,
    weight: u32,
) -> c_int {
    ffi_body!(-1, {
        // SAFETY: forwarded contract.
        unsafe { mcm_server_add_weighted(global(), mc, hostport, c_len(hostport), weight) }
    })
}

/// The MCM_ERR_* code with which the handle's most recent call failed: its last report of
/// severity WARN or worse (0 when that call had none: a success, a miss, NOT_STORED, or a
/// failover that ended well). The message ("description: details: errno text") is copied
/// NUL-terminated, and truncated, into `buf` of `buflen` bytes when `buf` is not NULL.
/// -1 for a NULL handle. mc_strerror() gives a code's description.
///
/// # Safety
/// `mc` is NULL or live; `buf` is NULL or `buflen` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn mc_last_error(
    mc: *const memcache,
    buf: *mut c_char,
    buflen: size_t,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; mc);
        let (code, msg) = state::handle(mc).last_error();
        if !buf.is_null() && buflen > 0 {
            let n = msg.len().min(buflen - 1);
            // SAFETY: buf has buflen writable bytes and n < buflen.
            unsafe {
                std::ptr::copy_nonoverlapping(msg.as_ptr(), buf as *mut u8, n);
                *buf.add(n) = 0;
            }
        }
        code as c_int
    })
}

/// How long a server that failed to connect is skipped before it is tried again (D8; default
/// 5 s). 0, or -1 for a NULL handle.
///
/// # Safety
/// `mc` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn mc_retry_interval(mc: *mut memcache, sec: c_int, usec: c_int) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; mc);
        let st = state::handle(mc);
        st.lock().retry = std::time::Duration::from_secs(sec.max(0) as u64)
            + std::time::Duration::from_micros(usec.max(0) as u64);
        0
    })
}

/// The server's version string (the `version` command). Caller owns the returned buffer;
/// release it with the context's free function. NULL when unreachable (reported).
///
/// # Safety
/// `ctxt` and `mc` are live; `ms` is a server of `mc`.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_version(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    ms: *mut memcache_server,
) -> *mut c_char {
    ffi_body!(std::ptr::null_mut(), {
        check_null!(std::ptr::null_mut(); ctxt, mc, ms);
        let scope = Scope::enter(c"mcm_server_version");
        let st = state::handle(mc);
        // SAFETY: ctxt, mc and ms were NULL-checked above; ms is a server of mc (the documented
        // argument) and st is mc's state, as version_of() needs.
        let v = unsafe { super::stats::version_of(ctxt, &st, ms) };
        finish(scope, ctxt, Some(&st), v.is_null());
        v
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_version(
    mc: *mut memcache,
    ms: *mut memcache_server,
) -> *mut c_char {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_version(global(), mc, ms) }
}

/// Keeps `count` copies of every key (1..=16; 1 = no redundancy, the default unless the
/// handle's domain says otherwise). Writes (set, add, replace, append, prepend, cas, delete,
/// touch, incr, decr) go to `count` distinct servers chosen by the distribution (ketama: the
/// next distinct servers on the ring; crc32-modulo: the next indexes); reads try the primary
/// and then each copy until found, and mc_get() does the same per key.
///
/// When copies disagree the rule is: a write returns the answer of the first server that
/// answered, in copy order (the primary's, unless it failed); the other copies' answers are
/// not compared. So `add` returns 0 if the primary stored it even where a copy already had the
/// key, and incr returns the primary's counter even if a copy's counter has diverged. Copies
/// are not repaired: a key written while a copy's server was down is missing there until the
/// next write. Ignored (one copy) when the context has its own mcServerFind hook.
/// 0, or -1 for a NULL handle or a count outside 1..=16.
///
/// # Safety
/// `mc` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn mc_replicas(mc: *mut memcache, count: u32) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; mc);
        if !(1..=16).contains(&count) {
            return -1;
        }
        let st = state::handle(mc);
        let mut inner = st.lock();
        inner.replicas = count;
        inner.replicas_explicit = true;
        0
    })
}

/// Brings a handle that follows a domain up to date with it now (every operation does this
/// first anyway) and returns the list version it shows: 0 for a private handle or a domain
/// whose segment does not exist yet. Useful before walking `mc->servers` between operations.
///
/// # Safety
/// `mc` is NULL (returns 0) or a live handle.
#[no_mangle]
pub unsafe extern "C" fn mc_domain_version(mc: *mut memcache) -> u64 {
    ffi_body!(0, {
        check_null!(0; mc);
        let ctxt = global();
        let scope = Scope::enter(c"mc_domain_version");
        let st = state::handle(mc);
        let version = {
            let mut inner = st.lock();
            // SAFETY: mc was NULL-checked above and is a live handle (the documented argument);
            // ctxt is the global context, always live; inner is mc's locked state.
            unsafe { super::operation::begin(ctxt, mc, &st, &mut inner) };
            inner.domain.as_ref().map_or(0, |d| d.applied())
        };
        let failed = scope.serious();
        finish(scope, ctxt, Some(&st), failed);
        version
    })
}
