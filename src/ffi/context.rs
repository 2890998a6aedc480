//! Contexts: the global one behind every `mc_*` call, `mcMemNewCtxt` ones, and the allocators
//! every structure and string is taken from (spec §5). A new context starts with the default
//! hooks of `hooks.rs` and `error.rs`; the error calls that act on the global context
//! (`mcErrSetup`, `mc_err_filter_*`, ...) are here, the pipeline below them is `error.rs`.

use std::cell::UnsafeCell;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use libc::{c_void, size_t};

use super::error::{
    default_err_handler, mcErrSetupCtxt, mcm_err_filter_add, mcm_err_filter_del,
    mcm_err_filter_get, mcm_err_filter_test, mcm_err_test,
};
use super::hooks::{default_hash, default_key_valid, default_server_find};
use super::types::*;

/// A process-wide C object whose address is handed out; all access goes through raw pointers.
#[repr(transparent)]
pub struct Global<T>(UnsafeCell<T>);

// SAFETY: the cells are only reached through raw pointers given to C, exactly like a C global;
// the fields Rust itself writes concurrently (errnum) are written atomically.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}

static GLOBAL_ECTXT: Global<memcache_err_ctxt> = Global(UnsafeCell::new(memcache_err_ctxt {
    misc: ptr::null_mut(),
    funcname: ptr::null(),
    lineno: 0,
    errnum: 0,
    errcode: 0,
    severity: 0,
    cont: 0,
    retcode: 0,
    sysexit: 0,
    errstr: ptr::null(),
    errmsg: ptr::null(),
    errlen: 0,
    ctxt: ptr::null(),
}));

/// A context with the given allocators and the library's default handler, key validator, hash
/// and finder (spec 5.1). `mallocAtomic` NULL means `malloc`.
const fn context(
    free: mcFreeFunc,
    malloc: mcMallocFunc,
    malloc_atomic: mcMallocFunc,
    realloc: mcReallocFunc,
    ectxt: *mut memcache_err_ctxt,
    mask: u32,
) -> memcache_ctxt {
    memcache_ctxt {
        mcFree: free,
        mcMalloc: malloc,
        mcMallocAtomic: if malloc_atomic.is_some() {
            malloc_atomic
        } else {
            malloc
        },
        mcRealloc: realloc,
        mcErr: Some(default_err_handler),
        mcKeyValid: Some(default_key_valid),
        mcHashKey: Some(default_hash),
        mcServerFind: Some(default_server_find),
        errnum: 0,
        _rbuf: ptr::null_mut(),
        _wbuf: ptr::null_mut(),
        _last_hash: 0,
        ectxt,
        md5fc9f4e2249ad88de0081136fef04defa: mask,
    }
}

// Nothing filtered: the 1.4 global context prints INFO, NOTICE and WARN too.
static GLOBAL_CTXT: Global<memcache_ctxt> = Global(UnsafeCell::new(context(
    Some(libc::free),
    Some(libc::malloc),
    Some(libc::malloc),
    Some(libc::realloc),
    GLOBAL_ECTXT.get(),
    0,
)));

pub fn global() -> *mut memcache_ctxt {
    GLOBAL_CTXT.get()
}

/// Stores `ctxt->errnum` with one atomic write (D9: the global context is shared by threads).
///
/// # Safety
/// `ctxt` is a live context.
pub unsafe fn set_errnum(ctxt: *mut memcache_ctxt, value: u32) {
    // SAFETY: errnum is an aligned u32 inside a live context; every writer uses this atomic.
    unsafe { AtomicU32::from_ptr(&raw mut (*ctxt).errnum) }.store(value, Ordering::Relaxed);
}

/// Reports that the context's allocator refused `what` (spec §5.2).
pub fn report_oom(ctxt: *const memcache_ctxt, what: &'static str) {
    let ctxt = if ctxt.is_null() {
        global() as *const memcache_ctxt
    } else {
        ctxt
    };
    super::error::report!(ctxt, MCM_ERR_MEM_MALLOC, 0, libc::ENOMEM, what);
}

/// The context's allocators, read from the structure at each use (clients assign them
/// directly), with the 1.4 fallbacks for fields a client left NULL.
#[derive(Clone, Copy)]
pub struct Alloc {
    free: unsafe extern "C" fn(*mut c_void),
    malloc: unsafe extern "C" fn(size_t) -> *mut c_void,
    atomic: unsafe extern "C" fn(size_t) -> *mut c_void,
    realloc: unsafe extern "C" fn(*mut c_void, size_t) -> *mut c_void,
}

impl Alloc {
    /// # Safety
    /// `ctxt` is NULL or points to a live context.
    pub unsafe fn of(ctxt: *const memcache_ctxt) -> Alloc {
        // SAFETY: the caller guarantees ctxt is NULL or valid; NULL means libc's allocator.
        let c = unsafe { ctxt.as_ref() };
        let malloc = c.and_then(|c| c.mcMalloc).unwrap_or(libc::malloc);
        Alloc {
            free: c.and_then(|c| c.mcFree).unwrap_or(libc::free),
            malloc,
            atomic: c.and_then(|c| c.mcMallocAtomic).unwrap_or(malloc),
            realloc: c.and_then(|c| c.mcRealloc).unwrap_or(libc::realloc),
        }
    }

    /// A zeroed structure from `mcMalloc`, or NULL.
    pub fn new_zeroed<T>(&self) -> *mut T {
        // SAFETY: calling the context's malloc; the result is checked before it is written.
        let p = unsafe { (self.malloc)(std::mem::size_of::<T>()) } as *mut T;
        if !p.is_null() {
            // SAFETY: p is a fresh allocation of size_of::<T>() bytes; all-zero is valid for
            // every repr(C) type of this ABI (pointers NULL, integers 0).
            unsafe { ptr::write_bytes(p, 0, 1) };
        }
        p
    }

    /// `len` bytes from `mcMallocAtomic` (strings and values), or NULL.
    pub fn bytes(&self, len: usize) -> *mut u8 {
        // SAFETY: calling the context's allocator with a size; the caller checks for NULL.
        unsafe { (self.atomic)(len.max(1)) as *mut u8 }
    }

    /// A NUL-terminated copy of `src` from `mcMallocAtomic`, or NULL.
    pub fn cstring(&self, src: &[u8]) -> *mut libc::c_char {
        let p = self.bytes(src.len() + 1);
        if !p.is_null() {
            // SAFETY: p has src.len() + 1 bytes; src is a valid slice that cannot overlap a
            // fresh allocation.
            unsafe {
                ptr::copy_nonoverlapping(src.as_ptr(), p, src.len());
                *p.add(src.len()) = 0;
            }
        }
        p as *mut libc::c_char
    }

    /// `len` bytes for a structure or an array of pointers, from `mcMalloc`, or NULL.
    pub fn block(&self, len: usize) -> *mut c_void {
        // SAFETY: calling the context's allocator with a size; the caller checks for NULL.
        unsafe { (self.malloc)(len.max(1)) }
    }

    // The pointer is only handed to the context's own allocator, never dereferenced here.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    /// Grows or shrinks with `mcRealloc`; NULL on failure (the old block is then untouched).
    /// A NULL `p` is a first allocation and goes to `mcMalloc`: host allocators (PostgreSQL's
    /// `repalloc`, a mail server's wrapper) crash or panic on a NULL realloc (spec §5.2).
    pub fn realloc(&self, p: *mut c_void, len: usize) -> *mut c_void {
        if p.is_null() {
            return self.block(len);
        }
        // SAFETY: p is non-NULL and came from this context's allocator, as realloc requires.
        unsafe { (self.realloc)(p, len.max(1)) }
    }

    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    /// Releases with `mcFree`; NULL is ignored.
    pub fn free<T>(&self, p: *mut T) {
        if !p.is_null() {
            // SAFETY: p came from this context's allocator and is not used after this call.
            unsafe { (self.free)(p as *mut c_void) }
        }
    }
}

// ---- exported: memory setup (spec §5.1) ----

/// A new context using these allocators (`mallocAtomic` NULL means `malloc`), the default
/// error handler, hash and finder, and filter mask INFO|NOTICE. NULL if `free`, `malloc` or
/// `realloc` is NULL or allocation fails. Release it with mcMemFreeCtxt().
#[no_mangle]
pub extern "C" fn mcMemNewCtxt(
    freeFunc: mcFreeFunc,
    mallocFunc: mcMallocFunc,
    mallocAtomicFunc: mcMallocFunc,
    reallocFunc: mcReallocFunc,
) -> *mut memcache_ctxt {
    ffi_body!(ptr::null_mut(), {
        let (Some(_), Some(malloc), Some(_)) = (freeFunc, mallocFunc, reallocFunc) else {
            return ptr::null_mut();
        };
        // SAFETY: calling the client's malloc for the two records; results are checked.
        let (c, e) = unsafe {
            (
                malloc(std::mem::size_of::<memcache_ctxt>()) as *mut memcache_ctxt,
                malloc(std::mem::size_of::<memcache_err_ctxt>()) as *mut memcache_err_ctxt,
            )
        };
        if c.is_null() || e.is_null() {
            let free = freeFunc.unwrap_or(libc::free);
            // SAFETY: freeing what the client's malloc returned (NULL is skipped).
            unsafe {
                if !c.is_null() {
                    free(c as *mut c_void);
                }
                if !e.is_null() {
                    free(e as *mut c_void);
                }
            }
            return ptr::null_mut();
        }
        // SAFETY: c and e are fresh allocations of the right sizes; all-zero is valid for both.
        unsafe {
            ptr::write_bytes(e, 0, 1);
            ptr::write_bytes(c, 0, 1);
            *c = context(
                freeFunc,
                mallocFunc,
                mallocAtomicFunc,
                reallocFunc,
                e,
                MCM_ERR_LVL_INFO | MCM_ERR_LVL_NOTICE,
            );
        }
        c
    })
}

/// Replaces `ctxt`'s allocators. 1 if `ctxt`, `free`, `malloc` or `realloc` is NULL, else 0.
///
/// # Safety
/// `ctxt` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn mcMemSetupCtxt(
    ctxt: *mut memcache_ctxt,
    freeFunc: mcFreeFunc,
    mallocFunc: mcMallocFunc,
    mallocAtomicFunc: mcMallocFunc,
    reallocFunc: mcReallocFunc,
) -> i32 {
    ffi_body!(1, {
        check_null!(1; ctxt);
        if freeFunc.is_none() || mallocFunc.is_none() || reallocFunc.is_none() {
            return 1;
        }
        // SAFETY: non-NULL live context.
        let c = unsafe { &mut *ctxt };
        c.mcFree = freeFunc;
        c.mcMalloc = mallocFunc;
        c.mcMallocAtomic = mallocAtomicFunc.or(mallocFunc);
        c.mcRealloc = reallocFunc;
        0
    })
}

/// mcMemSetupCtxt() on the global context.
#[no_mangle]
pub extern "C" fn mcMemSetup(
    freeFunc: mcFreeFunc,
    mallocFunc: mcMallocFunc,
    mallocAtomicFunc: mcMallocFunc,
    reallocFunc: mcReallocFunc,
) -> i32 {
    // SAFETY: the global context is live.
    unsafe {
        mcMemSetupCtxt(
            global(),
            freeFunc,
            mallocFunc,
            mallocAtomicFunc,
            reallocFunc,
        )
    }
}

/// Copies the global context's allocators into the non-NULL out-parameters; returns 0.
///
/// # Safety
/// Each pointer is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mcMemGet(
    freeFunc: *mut mcFreeFunc,
    mallocFunc: *mut mcMallocFunc,
    mallocAtomicFunc: *mut mcMallocFunc,
    reallocFunc: *mut mcReallocFunc,
) -> i32 {
    ffi_body!(1, {
        // SAFETY: the global context is live; each out-pointer is NULL or writable.
        unsafe {
            let g = &*global();
            if !freeFunc.is_null() {
                *freeFunc = g.mcFree;
            }
            if !mallocFunc.is_null() {
                *mallocFunc = g.mcMalloc;
            }
            if !mallocAtomicFunc.is_null() {
                *mallocAtomicFunc = g.mcMallocAtomic;
            }
            if !reallocFunc.is_null() {
                *reallocFunc = g.mcRealloc;
            }
        }
        0
    })
}

/// Releases a context from mcMemNewCtxt() and its error record with its own free function.
/// NULL (and the global context) are ignored.
///
/// # Safety
/// `ctxt` is NULL or a context from mcMemNewCtxt() not used after this call.
#[no_mangle]
pub unsafe extern "C" fn mcMemFreeCtxt(ctxt: *mut memcache_ctxt) {
    ffi_body!((), {
        check_null!((); ctxt);
        if ctxt == global() {
            return;
        }
        // SAFETY: ctxt was NULL-checked above and is not the global context, so it is a context
        // from mcMemNewCtxt() that the caller gives up (the documented argument), live until freed
        // below; only its allocator fields are read.
        let alloc = unsafe { Alloc::of(ctxt) };
        // SAFETY: as above; ectxt was allocated with the context.
        let ectxt = unsafe { (*ctxt).ectxt };
        super::error::forget_messages(ectxt);
        alloc.free(ectxt);
        alloc.free(ctxt);
    })
}

// ---- exported: the error API on the global context (spec §6; see `error.rs`) ----

/// Sets the global context's error handler. 1 if `errFunc` is NULL, else 0.
#[no_mangle]
pub extern "C" fn mcErrSetup(errFunc: mcErrFunc) -> i32 {
    // SAFETY: the global context is always live.
    unsafe { mcErrSetupCtxt(global(), errFunc) }
}

/// Stores the global context's error handler in `*errFunc`; 0 (1 for a NULL out-pointer).
///
/// # Safety
/// `errFunc` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mcErrGet(errFunc: *mut mcErrFunc) -> i32 {
    ffi_body!(1, {
        check_null!(1; errFunc);
        // SAFETY: errFunc was NULL-checked above and is writable (the documented out-pointer);
        // the global context is a static, always live.
        unsafe { *errFunc = (*global()).mcErr };
        0
    })
}

/// mcm_err_filter_add() on the global context.
#[no_mangle]
pub extern "C" fn mc_err_filter_add(err_mask: u32) -> i32 {
    // SAFETY: the global context is always live.
    unsafe { mcm_err_filter_add(global(), err_mask) }
}

/// mcm_err_filter_del() on the global context.
#[no_mangle]
pub extern "C" fn mc_err_filter_del(err_mask: u32) -> i32 {
    // SAFETY: the global context is always live.
    unsafe { mcm_err_filter_del(global(), err_mask) }
}

/// mcm_err_filter_get() on the global context.
#[no_mangle]
pub extern "C" fn mc_err_filter_get() -> u32 {
    // SAFETY: the global context is always live.
    unsafe { mcm_err_filter_get(global()) }
}

/// mcm_err_filter_test() on the global context.
#[no_mangle]
pub extern "C" fn mc_err_filter_test(err_lvl: u32) -> i32 {
    // SAFETY: the global context is always live.
    unsafe { mcm_err_filter_test(global(), err_lvl) }
}

/// mcm_err_test() on the global context.
#[no_mangle]
pub extern "C" fn mc_err_test() {
    // SAFETY: the global context is always live.
    unsafe { mcm_err_test(global()) }
}
