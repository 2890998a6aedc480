//! The hooks every context starts with (spec §5.1, §8): the key check, the hash and the server
//! finder, and how the library calls a context's hook or its own default directly. The default
//! error handler is `error.rs`'s; contexts that install them are `context.rs`.

use libc::{c_char, c_void, size_t};

use super::error::report;
use super::state::{self, server_slice, HandleState, Locked};
use super::types::*;
use crate::hash::{libmemcache_hash, md5_hash, Distribution};
use crate::key;

// The 1.4 `active` field of a server (defined with the structures, in types.rs).
pub(super) use super::types::{STATE_DOWN, STATE_NO_HOST, STATE_TRY, STATE_UP};

/// The default `mcKeyValid` hook: the built-in check of D2. 0 for a valid key; otherwise the
/// 1-based position of the first offending byte (1 for an empty key, 251 for a key that is too
/// long), as 1.4's validator answered. The library runs the same check itself after any hook,
/// so this exists for clients that save and call `ctxt->mcKeyValid`.
///
/// # Safety
/// `key` is NULL or `len` readable bytes.
pub unsafe extern "C" fn default_key_valid(
    _ctxt: *const libc::c_void,
    key: *mut c_char,
    len: size_t,
) -> i32 {
    ffi_body!(1, {
        // SAFETY: key_bytes() returns an empty slice for a NULL key, else key is readable for len
        // bytes: the mcKeyValidFunc arguments a program passes when it calls the saved hook.
        match key::check(unsafe { key_bytes(key, len) }) {
            Ok(()) => 0,
            Err(key::KeyError::Empty) => 1,
            Err(key::KeyError::TooLong) => key::MAX_KEY_LEN as i32 + 1,
            Err(key::KeyError::BadByte(at)) => at as i32 + 1,
            Err(key::KeyError::Reserved) => 1,
        }
    })
}

/// A key as bytes.
///
/// # Safety
/// `key` is NULL or points to `len` readable bytes.
pub unsafe fn key_bytes<'a>(key: *const c_char, len: size_t) -> &'a [u8] {
    if key.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: key is non-NULL (tested above) and readable for len bytes: the callers pass a
    // pointer with the length the C caller gave for it (memcache.h), or a request's own key
    // and length.
    unsafe { std::slice::from_raw_parts(key as *const u8, len) }
}

/// The 1.4 hash with the handle's distribution: 1 for 0 or 1 servers, then CRC-32 bits 16..30
/// (crc32-modulo) or the MD5 key hash (ketama-md5).
///
/// # Safety
/// `mc` is NULL or a live handle.
pub unsafe fn hash_of(mc: *const memcache, st: Option<&HandleState>, key: &[u8]) -> u32 {
    // SAFETY: mc is NULL (as_ref() gives None) or a live handle: default_hash() passes its hook
    // argument, route.rs and hash_key() a handle NULL-checked by the exported call.
    if let Some(m) = unsafe { mc.as_ref() } {
        if m.num_servers <= 1 {
            return 1;
        }
        if st.is_some_and(|s| s.distribution() == Distribution::KetamaMd5) {
            return md5_hash(key);
        }
    }
    libmemcache_hash(key)
}

/// The default `mcHashKey` hook (spec §8.1).
///
/// # Safety
/// `mc` is NULL or a live handle; `key` is NULL or `len` readable bytes.
pub unsafe extern "C" fn default_hash(
    _ctxt: *const c_void,
    mc: *const c_void,
    key: *const c_char,
    len: size_t,
) -> u32 {
    ffi_body!(1, {
        let mc = mc as *const memcache;
        let st = (!mc.is_null()).then(|| state::handle(mc));
        // SAFETY: mc is NULL or the live handle this hook was called for (the mcHashKeyFunc
        // argument); key_bytes() returns an empty slice for a NULL key, else len readable bytes.
        unsafe { hash_of(mc, st.as_deref(), key_bytes(key, len)) }
    })
}

/// The default `mcServerFind` hook (spec §8.2): modulo over all servers with a linear probe
/// over dead ones, or the ketama ring's next live point.
///
/// # Safety
/// `ctxt` is NULL or a live context; `mc` is NULL or a live handle.
pub unsafe extern "C" fn default_server_find(
    ctxt: *const c_void,
    mc: *mut c_void,
    hash: u32,
) -> *mut c_void {
    ffi_body!(std::ptr::null_mut(), {
        let mc = mc as *mut memcache;
        check_null!(std::ptr::null_mut(); mc);
        let st = state::handle(mc);
        // SAFETY: mc was NULL-checked above and is the live handle this hook was called for (the
        // mcServerFindFunc argument); ctxt is only handed to report!, which accepts NULL.
        unsafe { find_in(ctxt as *const memcache_ctxt, mc, &st, hash) as *mut c_void }
    })
}

/// # Safety
/// `mc` is a live handle.
pub unsafe fn find_in(
    ctxt: *const memcache_ctxt,
    mc: *mut memcache,
    st: &HandleState,
    hash: u32,
) -> *mut memcache_server {
    // SAFETY: mc is a live handle: default_server_find() NULL-checks its hook argument, and
    // route.rs and find() pass a handle the exported call NULL-checked.
    let servers = unsafe { server_slice(mc) };
    let n = servers.len();
    if n == 0 {
        return std::ptr::null_mut();
    }
    // SAFETY: every entry of mc->servers is a live server.
    let state_of = |i: usize| unsafe { (*servers[i]).active };
    let live = |i: usize| matches!(state_of(i), STATE_UP | STATE_TRY);
    let chosen = if n == 1 && live(0) {
        Some(0)
    } else if st.distribution() == Distribution::KetamaMd5 {
        st.pick(n, hash, live)
    } else {
        let mut idx = hash as usize % n;
        let mut found = None;
        for _ in 0..n {
            match state_of(idx) {
                STATE_UP | STATE_TRY => {
                    found = Some(idx);
                    break;
                }
                STATE_DOWN => idx = (idx + 1) % n,
                _ => {
                    report!(ctxt, MCM_ERR_ASSERT, 0, 0, "server has no usable host");
                    return std::ptr::null_mut();
                }
            }
        }
        found
    };
    match chosen {
        Some(i) => {
            // SAFETY: a live server of this handle.
            unsafe { (*servers[i])._last_hash = hash };
            servers[i]
        }
        None => std::ptr::null_mut(),
    }
}

/// The key's hash through the context's hook (the default one is called directly).
///
/// # Safety
/// `ctxt` and `mc` are live.
pub unsafe fn hash_key(
    ctxt: *const memcache_ctxt,
    mc: *const memcache,
    st: &HandleState,
    key: &[u8],
) -> u32 {
    // SAFETY: ctxt is non-NULL and live: the only caller, mcm_hash(), NULL-checks it; mc was
    // NULL-checked there too.
    match unsafe { (*ctxt).mcHashKey } {
        Some(h) if h as usize != default_hash as *const () as usize => {
            // SAFETY: the client's hook, called with the documented mcHashKeyFunc arguments.
            unsafe { h(ctxt as _, mc as _, key.as_ptr() as _, key.len()) }
        }
        // SAFETY: as above.
        _ => unsafe { hash_of(mc, Some(st), key) },
    }
}

/// The server for `hash` through the context's hook (the default one is called directly, under
/// the lock; the program's own one with the lock released, as it may call the library).
///
/// # Safety
/// `ctxt` and `mc` are live; `inner` is `mc`'s locked state.
pub unsafe fn find(
    ctxt: *const memcache_ctxt,
    mc: *mut memcache,
    st: &HandleState,
    inner: &mut Locked<'_>,
    hash: u32,
) -> *mut memcache_server {
    // SAFETY: ctxt is non-NULL and live: the only caller, mcm_server_find(), NULL-checks it
    // and mc.
    match unsafe { (*ctxt).mcServerFind } {
        Some(f) if f as usize != default_server_find as *const () as usize => {
            // SAFETY: the client's hook, called with the documented mcServerFindFunc arguments.
            inner.unlocked(|| unsafe { f(ctxt as _, mc as _, hash) as *mut memcache_server })
        }
        // SAFETY: mc is live and inner its locked state, so no other thread replaces or frees
        // the server array find_in() walks.
        _ => unsafe { find_in(ctxt, mc, st, hash) },
    }
}
