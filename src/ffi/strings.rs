//! String helpers of the 1.4 API (spec §9.9); copies come from `mcMallocAtomic`.

use libc::{c_char, c_int, size_t};

use super::context::{global, Alloc};

/// A copy of the first `len` bytes of `str`, NUL-terminated. Caller owns the returned buffer;
/// release it with the context's free function. NULL if `str` is NULL or allocation fails.
///
/// # Safety
/// `str` is NULL or has `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_strndup(
    ctxt: *const super::types::memcache_ctxt,
    str: *const c_char,
    len: size_t,
) -> *mut c_char {
    ffi_body!(std::ptr::null_mut(), {
        check_null!(std::ptr::null_mut(); str);
        // SAFETY: str was NULL-checked above and has len readable bytes (the documented argument;
        // mcm_strdup() passes its strlen()).
        let bytes = unsafe { std::slice::from_raw_parts(str as *const u8, len) };
        // SAFETY: ctxt is NULL (libc's allocator) or the live context the C caller passes; only its
        // allocator fields are read.
        unsafe { Alloc::of(ctxt) }.cstring(bytes)
    })
}

/// mcm_strndup(ctxt, str, strlen(str)).
///
/// # Safety
/// `str` is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn mcm_strdup(
    ctxt: *const super::types::memcache_ctxt,
    str: *const c_char,
) -> *mut c_char {
    ffi_body!(std::ptr::null_mut(), {
        check_null!(std::ptr::null_mut(); str);
        // SAFETY: forwarded contract; str is a C string.
        unsafe { mcm_strndup(ctxt, str, libc::strlen(str)) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_strdup(str: *const c_char) -> *mut c_char {
    // SAFETY: forwarded contract.
    unsafe { mcm_strdup(global(), str) }
}

#[no_mangle]
pub unsafe extern "C" fn mc_strndup(str: *const c_char, len: size_t) -> *mut c_char {
    // SAFETY: forwarded contract.
    unsafe { mcm_strndup(global(), str, len) }
}

/// The first `c` among the first `len` bytes of `str`, stopping at a NUL; NULL if absent.
///
/// # Safety
/// `str` is NULL or readable up to `len` bytes or its NUL, whichever comes first.
#[no_mangle]
pub unsafe extern "C" fn mcm_strnchr(
    _ctxt: *const super::types::memcache_ctxt,
    str: *const c_char,
    c: c_int,
    len: size_t,
) -> *mut c_char {
    ffi_body!(std::ptr::null_mut(), {
        check_null!(std::ptr::null_mut(); str);
        for i in 0..len {
            // SAFETY: str was NULL-checked above, i < len and no NUL came before i, so str + i is
            // among the bytes the documented argument makes readable.
            let b = unsafe { *str.add(i) };
            if b == c as c_char {
                return str.wrapping_add(i) as *mut c_char;
            }
            if b == 0 {
                break;
            }
        }
        std::ptr::null_mut()
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_strnchr(str: *const c_char, c: c_int, len: size_t) -> *mut c_char {
    // SAFETY: forwarded contract.
    unsafe { mcm_strnchr(global(), str, c, len) }
}

/// BSD strnstr(): the first `find` within the first `slen` bytes of `s` (stopping at a NUL);
/// `s` itself when `find` is empty; NULL otherwise.
///
/// # Safety
/// `s` is NULL or readable up to `slen` bytes or its NUL; `find` is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn mcm_strnstr(
    _ctxt: *const super::types::memcache_ctxt,
    s: *const c_char,
    find: *const c_char,
    slen: size_t,
) -> *mut c_char {
    ffi_body!(std::ptr::null_mut(), {
        check_null!(std::ptr::null_mut(); s, find);
        // SAFETY: find is a C string.
        let needle = unsafe { std::ffi::CStr::from_ptr(find) }.to_bytes();
        if needle.is_empty() {
            return s as *mut c_char;
        }
        // SAFETY: read s only up to slen bytes or its NUL.
        let hay_len = (0..slen)
            .find(|&i| unsafe { *s.add(i) } == 0)
            .unwrap_or(slen);
        // SAFETY: hay_len bytes are readable and contain no NUL.
        let hay = unsafe { std::slice::from_raw_parts(s as *const u8, hay_len) };
        hay.windows(needle.len())
            .position(|w| w == needle)
            .map_or(std::ptr::null_mut(), |at| s.wrapping_add(at) as *mut c_char)
    })
}
