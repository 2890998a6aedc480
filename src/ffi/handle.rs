//! Handles: creating and freeing `struct memcache`, timeouts, version numbers and hashing
//! (spec §1.1, §5.3, §7.2, §4.5).

use libc::{c_char, c_int, size_t, timeval};

use super::context::{global, Alloc};
use super::hooks::{hash_key, key_bytes};
use super::server::free_server;
use super::state::{self, server_slice};
use super::types::*;

/// A zeroed handle with its private state: what every constructor starts from.
///
/// # Safety
/// `ctxt` is NULL (libc allocator) or a live context.
pub unsafe fn new_plain(ctxt: *mut memcache_ctxt) -> *mut memcache {
    // SAFETY: ctxt is NULL or live: the only caller, new_attached(), passes the context its
    // mcm_new*() caller gave (NULL or live, their documented argument); only its allocator
    // fields are read.
    let mc = unsafe { Alloc::of(ctxt) }.new_zeroed::<memcache>();
    // SAFETY: mc is NULL or a fresh zeroed handle.
    if let Some(m) = unsafe { mc.as_mut() } {
        m.tv = timeval {
            tv_sec: 2,
            tv_usec: 600,
        };
        m.server_list.tqh_last = &raw mut m.server_list.tqh_first;
        super::atfork::install();
        state::handle_created(mc);
    } else {
        super::context::report_oom(ctxt, "struct memcache");
    }
    mc
}

/// Closes the handle's connections and frees its servers, their array and the handle. NULL is
/// a no-op.
///
/// # Safety
/// `mc` is NULL or a handle from mc_new() that no other thread is using.
#[no_mangle]
pub unsafe extern "C" fn mcm_free(ctxt: *mut memcache_ctxt, mc: *mut memcache) {
    ffi_body!((), {
        check_null!((); mc);
        state::handle_freed(mc);
        // SAFETY: ctxt is NULL (libc's allocator) or the context mc was made with, the documented
        // argument; only its allocator fields are read.
        let alloc = unsafe { Alloc::of(ctxt) };
        // SAFETY: mc is live; its servers were allocated by this library for it.
        unsafe {
            for &ms in server_slice(mc) {
                state::forget_owner(ms);
                free_server(&alloc, ms);
            }
            alloc.free((*mc).servers);
        }
        alloc.free(mc);
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_free(mc: *mut memcache) {
    // SAFETY: forwarded contract.
    unsafe { mcm_free(global(), mc) }
}

/// Stores the timeout (`usec` in microseconds) for servers added after this call; servers
/// already added keep theirs (1.4 semantics).
///
/// # Safety
/// `mc` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn mcm_timeout(
    _ctxt: *const memcache_ctxt,
    mc: *mut memcache,
    sec: c_int,
    usec: c_int,
) {
    ffi_body!((), {
        check_null!((); mc);
        // Adds and domain updates of other threads copy mc->tv into new servers under the
        // handle's lock: write it under that lock too.
        let st = state::handle(mc);
        let _inner = st.lock();
        // SAFETY: mc was NULL-checked above and is a live handle (the documented argument); its
        // lock is held, so no add or domain update reads tv meanwhile.
        unsafe {
            (*mc).tv = timeval {
                tv_sec: sec.into(),
                tv_usec: usec.into(),
            }
        };
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_timeout(mc: *mut memcache, sec: c_int, usec: c_int) {
    // SAFETY: forwarded contract.
    unsafe { mcm_timeout(global(), mc, sec, usec) }
}

/// `ctxt->mcHashKey(ctxt, mc, key, len)`: 1 for a handle with 0 or 1 servers.
///
/// # Safety
/// `ctxt` is live; `mc` is NULL or live; `key` is NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_hash(
    ctxt: *const memcache_ctxt,
    mc: *const memcache,
    key: *const c_char,
    len: size_t,
) -> u32 {
    ffi_body!(0, {
        check_null!(0; ctxt);
        // SAFETY: key_bytes() returns an empty slice for a NULL key, else key is readable for len
        // bytes, mcm_hash()'s documented argument.
        let bytes = unsafe { key_bytes(key, len) };
        if mc.is_null() {
            // SAFETY: a client hook or the default hash, with a NULL handle.
            return match unsafe { (*ctxt).mcHashKey } {
                Some(h) => unsafe { h(ctxt as _, mc as _, key, len) },
                None => crate::hash::libmemcache_hash(bytes),
            };
        }
        let st = state::handle(mc);
        // SAFETY: ctxt and mc were NULL-checked above and are live (the documented arguments); st
        // is mc's state, as hash_key() needs.
        unsafe { hash_key(ctxt, mc, &st, bytes) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_hash(mc: *const memcache, key: *const c_char, len: size_t) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { mcm_hash(global(), mc, key, len) }
}

/// The key's hash without a handle: always hashed (spec §8.1 test vectors).
///
/// # Safety
/// `ctxt` is live; `key` is NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_hash_key(
    ctxt: *const memcache_ctxt,
    key: *const c_char,
    len: size_t,
) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { mcm_hash(ctxt, std::ptr::null(), key, len) }
}

/// Deprecated in 1.4 in favour of mc_hash().
#[no_mangle]
pub unsafe extern "C" fn mc_hash_key(key: *const c_char, len: size_t) -> u32 {
    // SAFETY: forwarded contract.
    unsafe { mcm_hash_key(global(), key, len) }
}

/// The global context used by every `mc_*` function; stable for the life of the process.
#[no_mangle]
pub extern "C" fn mc_global_ctxt() -> *mut memcache_ctxt {
    global()
}

/// "1.4.0.rc2": a static string.
#[no_mangle]
pub extern "C" fn mc_version() -> *const c_char {
    c"1.4.0.rc2".as_ptr()
}

#[no_mangle]
pub extern "C" fn mcm_version(_ctxt: *const memcache_ctxt) -> *const c_char {
    mc_version()
}

/// 10400.
#[no_mangle]
pub extern "C" fn mc_vernum() -> u32 {
    MEMCACHE_VERNUM
}

#[no_mangle]
pub extern "C" fn mcm_vernum(_ctxt: *const memcache_ctxt) -> u32 {
    MEMCACHE_VERNUM
}

/// 20060220.
#[no_mangle]
pub extern "C" fn mc_reldate() -> u32 {
    MEMCACHE_RELDATE
}

#[no_mangle]
pub extern "C" fn mcm_reldate(_ctxt: *const memcache_ctxt) -> u32 {
    MEMCACHE_RELDATE
}
