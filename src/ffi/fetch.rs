//! Retrieval: `mc_aget`/`mc_aget2` (spec §9.5), requests and results, `mc_get` with its
//! single- and multi-server paths and fetch callbacks (§9.6, D4, D11).

use std::ffi::CStr;
use std::ptr;

use libc::{c_char, c_int, c_void, size_t};

use super::context::set_errnum;
use super::context::{global, Alloc};
use super::error::{report, report_bad_key, Scope};
use super::hooks::key_bytes;
use super::operation::{finish, on_copies_for, validate_key, Outcome};
use super::route::{route, Front};
use super::state;
use super::types::*;
use crate::command::{self, Failure, GetReply, Pending, ValueSink, PREALLOC_LIMIT};
use crate::conn::Conn;
use crate::engine::{self, Wanted};
use crate::key;

const FOD: c_char = MCM_RES_FREE_ON_DELETE as c_char;
const NO_FOD: c_char = MCM_RES_NO_FREE_ON_DELETE as c_char;
const FOUND: c_char = MCM_RES_FOUND as c_char;
const ATTEMPTED: c_char = MCM_RES_ATTEMPTED as c_char;
const NEED_FREE_KEY: c_char = MCM_RES_NEED_FREE_KEY as c_char;

/// A value being received into a buffer the library allocated: `bytes` of data and a NUL.
/// The buffer grows as the data arrives beyond [`PREALLOC_LIMIT`]: a length is only a claim,
/// and a server claiming a gigabyte gets memory only for what it actually sends.
struct Incoming {
    buf: *mut u8,
    /// Bytes allocated at `buf`.
    room: usize,
    filled: usize,
    bytes: usize,
    flags: u32,
    cas: u64,
    /// Growing the buffer failed (reported): the rest is read and dropped, the value is lost.
    lost: bool,
}

impl Incoming {
    /// A buffer for `bytes` bytes and a NUL from `mcMallocAtomic` (the first
    /// [`PREALLOC_LIMIT`] of them for a larger value); None (reported) if the allocator
    /// fails, in which case the value is read and dropped.
    fn start(
        ctxt: *const memcache_ctxt,
        alloc: &Alloc,
        bytes: usize,
        flags: u32,
        cas: u64,
    ) -> Option<Incoming> {
        let room = bytes.saturating_add(1).min(PREALLOC_LIMIT);
        let buf = alloc.bytes(room);
        if buf.is_null() {
            report_no_room(ctxt, bytes);
            return None;
        }
        Some(Incoming {
            buf,
            room,
            filled: 0,
            bytes,
            flags,
            cas,
            lost: false,
        })
    }

    fn push(&mut self, ctxt: *const memcache_ctxt, alloc: &Alloc, chunk: &[u8]) {
        let n = chunk.len().min(self.bytes - self.filled);
        if self.lost || n == 0 {
            return;
        }
        let need = self.filled + n + 1;
        if need > self.room {
            // Double, so a large value costs a few reallocations; never past what it claims.
            let room = need.max(self.room.saturating_mul(2)).min(self.bytes + 1);
            let grown = alloc.realloc(self.buf as *mut c_void, room) as *mut u8;
            if grown.is_null() {
                report_no_room(ctxt, self.bytes);
                self.lost = true;
                return;
            }
            self.buf = grown;
            self.room = room;
        }
        // SAFETY: buf has `room` >= filled + n + 1 bytes.
        unsafe { ptr::copy_nonoverlapping(chunk.as_ptr(), self.buf.add(self.filled), n) };
        self.filled += n;
    }

    /// NUL-terminates the buffer and hands it over; None (the buffer freed) for a value that
    /// could not be kept.
    fn finish(self, alloc: &Alloc) -> Option<*mut u8> {
        if self.lost || self.filled != self.bytes {
            alloc.free(self.buf);
            return None;
        }
        // SAFETY: push keeps room >= filled + 1, and filled == bytes.
        unsafe { *self.buf.add(self.bytes) = 0 };
        Some(self.buf)
    }
}

fn report_no_room(ctxt: *const memcache_ctxt, bytes: usize) {
    report!(
        ctxt,
        MCM_ERR_MEM_MALLOC,
        0,
        libc::ENOMEM,
        format!("value of {bytes} bytes")
    );
}

/// Receives the value of a single-key get into a new buffer. Whatever it still holds when
/// dropped (a value cut short by a failure) is freed.
struct NewBuffer<'a> {
    ctxt: *const memcache_ctxt,
    alloc: &'a Alloc,
    incoming: Option<Incoming>,
    hit: Option<Incoming>,
}

impl ValueSink for NewBuffer<'_> {
    fn begin(&mut self, _index: usize, flags: u32, bytes: usize, cas: Option<u64>) -> bool {
        self.incoming = Incoming::start(self.ctxt, self.alloc, bytes, flags, cas.unwrap_or(0));
        self.incoming.is_some()
    }
    fn data(&mut self, chunk: &[u8]) {
        if let Some(v) = &mut self.incoming {
            v.push(self.ctxt, self.alloc, chunk);
        }
    }
    fn end(&mut self) {
        if let Some(old) = std::mem::replace(&mut self.hit, self.incoming.take()) {
            self.alloc.free(old.buf);
        }
    }
    fn whole(&mut self, _index: usize, flags: u32, cas: Option<u64>, value: &[u8]) {
        let alloc = self.alloc;
        let cas = cas.unwrap_or(0);
        if let Some(mut v) = Incoming::start(self.ctxt, alloc, value.len(), flags, cas) {
            v.push(self.ctxt, alloc, value);
            if let Some(old) = self.hit.replace(v) {
                alloc.free(old.buf);
            }
        }
    }
}

impl Drop for NewBuffer<'_> {
    fn drop(&mut self) {
        for v in [self.incoming.take(), self.hit.take()]
            .into_iter()
            .flatten()
        {
            self.alloc.free(v.buf);
        }
    }
}

/// The reply to a single-key get, read as it arrives: the value, if any, in a new buffer.
struct OneValue<'a, 'k> {
    reply: GetReply<'k, [&'k [u8]]>,
    sink: NewBuffer<'a>,
}

impl Pending for OneValue<'_, '_> {
    type Output = Option<Incoming>;
    fn advance(&mut self, conn: &mut Conn) -> Result<Option<Option<Incoming>>, Failure> {
        let whole = self.reply.advance(conn, &mut self.sink)?;
        Ok(whole.then(|| self.sink.hit.take()))
    }
}

/// `get`/`gets` of one key into a new buffer.
///
/// # Safety
/// `ctxt` and `mc` are live; `key` is `len` bytes; the out-pointers are NULL or writable.
#[allow(clippy::too_many_arguments)] // the C signatures' arguments and the caller's name
pub(super) unsafe fn aget(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    len: size_t,
    retlen: *mut size_t,
    flags_out: *mut u16,
    cas_out: *mut u64,
    funcname: &'static CStr,
) -> *mut c_void {
    if !retlen.is_null() {
        // SAFETY: checked for NULL just above; a non-NULL `retlen` is writable (this function's
        // contract).
        unsafe { *retlen = 0 };
    }
    let scope = Scope::enter(funcname);
    // SAFETY: `ctxt` is live and `key` is `len` bytes (this function's contract), what
    // validate_key asks.
    let Ok(key) = (unsafe { validate_key(ctxt, key, len) }) else {
        finish(scope, ctxt, Some(&state::handle(mc)), true);
        return ptr::null_mut();
    };
    // SAFETY: `ctxt` is live (this function's contract); Alloc::of accepts NULL as well.
    let alloc = unsafe { Alloc::of(ctxt) };
    let st = state::handle(mc);
    let want_cas = !cas_out.is_null();
    let keys = [key];
    // SAFETY: `ctxt` and `mc` are live (this function's contract); the closures borrow only
    // locals and `alloc`, which outlive the call.
    let outcome = unsafe {
        on_copies_for(
            ctxt,
            mc,
            &st,
            key,
            Option::is_some,
            |conn, wbuf| command::send_get(conn, wbuf, keys, want_cas),
            || OneValue {
                reply: GetReply::new(&keys[..]),
                sink: NewBuffer {
                    ctxt,
                    alloc: &alloc,
                    incoming: None,
                    hit: None,
                },
            },
        )
    };
    finish(scope, ctxt, Some(&st), !matches!(outcome, Outcome::Done(_)));
    let Outcome::Done(Some(hit)) = outcome else {
        return ptr::null_mut();
    };
    let (bytes, flags, cas) = (hit.bytes, hit.flags, hit.cas);
    let Some(value) = hit.finish(&alloc) else {
        return ptr::null_mut();
    };
    // SAFETY: each out-pointer is checked for NULL before it is written; a non-NULL one is
    // writable (this function's contract).
    unsafe {
        if !retlen.is_null() {
            *retlen = bytes;
        }
        if !flags_out.is_null() {
            *flags_out = flags as u16;
        }
        if !cas_out.is_null() {
            *cas_out = cas;
        }
    }
    value as *mut c_void
}

/// The value of `key` in a new NUL-terminated buffer, its length in `*retlen`. NULL (and
/// `*retlen` 0) on a miss, a bad key or any failure. Caller owns the returned buffer; release it
/// with the context's free function (free() for the global context).
///
/// # Safety
/// `ctxt` and `mc` are live; `key` is `len` bytes; `retlen` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mcm_aget2(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    len: size_t,
    retlen: *mut size_t,
) -> *mut c_void {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); ctxt, mc);
        // SAFETY: forwarded contract.
        unsafe {
            aget(
                ctxt,
                mc,
                key,
                len,
                retlen,
                ptr::null_mut(),
                ptr::null_mut(),
                c"mcm_aget2",
            )
        }
    })
}

/// mcm_aget2() without the length.
///
/// # Safety
/// As mcm_aget2().
#[no_mangle]
pub unsafe extern "C" fn mcm_aget(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    len: size_t,
) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { mcm_aget2(ctxt, mc, key, len, ptr::null_mut()) }
}

/// The global-context form of mcm_aget2().
///
/// # Safety
/// As mcm_aget2().
#[no_mangle]
pub unsafe extern "C" fn mc_aget2(
    mc: *mut memcache,
    key: *mut c_char,
    len: size_t,
    retlen: *mut size_t,
) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { mcm_aget2(global(), mc, key, len, retlen) }
}

/// The global-context form of mcm_aget().
///
/// # Safety
/// As mcm_aget2().
#[no_mangle]
pub unsafe extern "C" fn mc_aget(mc: *mut memcache, key: *mut c_char, len: size_t) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { mcm_aget2(global(), mc, key, len, ptr::null_mut()) }
}

/// `gets` (beyond 1.4): as mc_aget2(), plus the item's flags and its cas value for mc_cas().
/// Caller owns the returned buffer; release it with the context's free function.
///
/// # Safety
/// As mcm_aget2(); `flags` and `cas` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mcm_agets(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    key: *mut c_char,
    len: size_t,
    retlen: *mut size_t,
    flags: *mut u16,
    cas: *mut u64,
) -> *mut c_void {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); ctxt, mc);
        let mut unique = 0u64;
        // SAFETY: forwarded contract; `unique` is a local out-value.
        let val = unsafe { aget(ctxt, mc, key, len, retlen, flags, &mut unique, c"mcm_agets") };
        if !cas.is_null() {
            // SAFETY: `cas` was checked for NULL just above; the caller passes writable memory.
            unsafe { *cas = unique };
        }
        val
    })
}

/// The global-context form of mcm_agets().
///
/// # Safety
/// As mcm_agets().
#[no_mangle]
pub unsafe extern "C" fn mc_agets(
    mc: *mut memcache,
    key: *mut c_char,
    len: size_t,
    retlen: *mut size_t,
    flags: *mut u16,
    cas: *mut u64,
) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { mcm_agets(global(), mc, key, len, retlen, flags, cas) }
}

// ---- requests and results ----

/// A new empty request. Caller owns it; release it with mc_req_free().
///
/// # Safety
/// `ctxt` is NULL (libc allocator) or live.
#[no_mangle]
pub unsafe extern "C" fn mcm_req_new(ctxt: *const memcache_ctxt) -> *mut memcache_req {
    ffi_body!(ptr::null_mut(), {
        let scope = Scope::enter(c"mcm_req_new");
        // SAFETY: `ctxt` is NULL or live (this function's contract), all Alloc::of asks.
        let req = unsafe { Alloc::of(ctxt) }.new_zeroed::<memcache_req>();
        // SAFETY: req is NULL or a fresh zeroed request.
        match unsafe { req.as_mut() } {
            Some(r) => {
                r.query.tqh_last = &raw mut r.query.tqh_first;
                r.cb.tqh_last = &raw mut r.cb.tqh_first;
            }
            None => super::context::report_oom(ctxt, "struct memcache_req"),
        }
        scope.deliver(if ctxt.is_null() { global() } else { ctxt });
        req
    })
}

#[no_mangle]
pub extern "C" fn mc_req_new() -> *mut memcache_req {
    // SAFETY: the global context is live.
    unsafe { mcm_req_new(global()) }
}

/// The results of a request, in order. Bounded so a corrupted list cannot loop forever.
///
/// # Safety
/// `req` is a live request.
unsafe fn results(req: *const memcache_req) -> Vec<*mut memcache_res> {
    // SAFETY: `req` is live (this function's contract). num_keys is only a size hint: the
    // list decides.
    let mut out = Vec::with_capacity(unsafe { (*req).num_keys }.into());
    // SAFETY: the request's list links live results (the request is live by this function's
    // contract, and mc_req_add/mc_res_free keep its links valid).
    let mut res = unsafe { (*req).query.tqh_first };
    while !res.is_null() && out.len() < 1 << 24 {
        out.push(res);
        // SAFETY: as above.
        res = unsafe { (*res).entries.tqe_next };
    }
    out
}

/// # Safety
/// `req` is live and `res` is a fresh result.
unsafe fn append_result(req: *mut memcache_req, res: *mut memcache_res) {
    // SAFETY: TAILQ_INSERT_TAIL on a live list with a fresh element.
    unsafe {
        let r = &mut *req;
        if r.query.tqh_last.is_null() {
            r.query.tqh_last = &raw mut r.query.tqh_first;
        }
        (*res).entries.tqe_next = ptr::null_mut();
        (*res).entries.tqe_prev = r.query.tqh_last;
        *r.query.tqh_last = res;
        r.query.tqh_last = &raw mut (*res).entries.tqe_next;
        r.num_keys = r.num_keys.wrapping_add(1);
    }
}

/// # Safety
/// `ctxt` is live; `req` is live; `key` is `len` bytes.
unsafe fn req_add(
    ctxt: *const memcache_ctxt,
    req: *mut memcache_req,
    key: *mut c_char,
    len: size_t,
    copy: bool,
    funcname: &'static CStr,
) -> *mut memcache_res {
    let scope = Scope::enter(funcname);
    // SAFETY: `ctxt` is live (its callers check it for NULL) and `key` is NULL or `len` bytes
    // (this function's contract), what validate_key asks.
    let res = match unsafe { validate_key(ctxt, key, len) } {
        Err(_) => ptr::null_mut(),
        Ok(bytes) => {
            // SAFETY: `ctxt` is live (this function's contract); Alloc::of accepts NULL as well.
            let alloc = unsafe { Alloc::of(ctxt) };
            let res = alloc.new_zeroed::<memcache_res>();
            let stored_key = if copy { alloc.cstring(bytes) } else { key };
            if res.is_null() || stored_key.is_null() {
                alloc.free(res);
                if copy {
                    // The copy may have succeeded where the result failed.
                    alloc.free(stored_key);
                }
                report!(ctxt, MCM_ERR_MEM_MALLOC, 0, libc::ENOMEM, "request result");
                ptr::null_mut()
            } else {
                // SAFETY: res is a fresh zeroed result; req is live.
                unsafe {
                    (*res).key = stored_key;
                    (*res).len = len;
                    (*res)._flags = FOD | NO_FOD | if copy { NEED_FREE_KEY } else { 0 };
                    append_result(req, res);
                }
                res
            }
        }
    };
    scope.deliver(ctxt);
    res
}

/// Adds a copy of `key` (exactly `len` bytes, need not be NUL-terminated) to the request.
/// Borrowed: the result is owned by the request and freed by mc_req_free(). NULL for a bad key
/// (reported; nothing allocated) or allocation failure.
///
/// # Safety
/// `ctxt` is live; `req` is live; `key` is `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_req_add(
    ctxt: *const memcache_ctxt,
    req: *mut memcache_req,
    key: *mut c_char,
    len: size_t,
) -> *mut memcache_res {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); ctxt, req);
        // SAFETY: forwarded contract.
        unsafe { req_add(ctxt, req, key, len, true, c"mcm_req_add") }
    })
}

/// As mc_req_add() but the request refers to the caller's key, which must stay valid until
/// the request is freed.
///
/// # Safety
/// As mcm_req_add(); `key` outlives the request.
#[no_mangle]
pub unsafe extern "C" fn mcm_req_add_ref(
    ctxt: *const memcache_ctxt,
    req: *mut memcache_req,
    key: *mut c_char,
    len: size_t,
) -> *mut memcache_res {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); ctxt, req);
        // SAFETY: forwarded contract.
        unsafe { req_add(ctxt, req, key, len, false, c"mcm_req_add_ref") }
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_req_add(
    req: *mut memcache_req,
    key: *mut c_char,
    len: size_t,
) -> *mut memcache_res {
    // SAFETY: forwarded contract.
    unsafe { mcm_req_add(global(), req, key, len) }
}

#[no_mangle]
pub unsafe extern "C" fn mc_req_add_ref(
    req: *mut memcache_req,
    key: *mut c_char,
    len: size_t,
) -> *mut memcache_res {
    // SAFETY: forwarded contract.
    unsafe { mcm_req_add_ref(global(), req, key, len) }
}

/// Whether the result's value is released with it: its free-on-delete bit is set and the
/// buffer is the library's, or the caller asked explicitly (D11).
fn frees_value(r: &memcache_res, ours: bool) -> bool {
    r._flags & FOD != 0 && !r.val.is_null() && (ours || r._flags & NO_FOD == 0 && r.size > 0)
}

/// Whether frees_value() depends on `ours` for this result.
fn owner_matters(r: &memcache_res) -> bool {
    frees_value(r, true) != frees_value(r, false)
}

/// Unlinks `res` from `req` (if given) and frees its key copy, its value when it is
/// free-on-delete, and the result.
///
/// # Safety
/// `req` is NULL or the live request holding `res`; `res` is a live result.
#[no_mangle]
pub unsafe extern "C" fn mcm_res_free(
    ctxt: *const memcache_ctxt,
    req: *mut memcache_req,
    res: *mut memcache_res,
) {
    ffi_body!((), {
        check_null!((); res);
        // SAFETY: `ctxt` is NULL or live, all Alloc::of asks.
        let alloc = unsafe { Alloc::of(ctxt) };
        // SAFETY: check_null above; `req` is NULL or the live request holding `res` (this
        // function's contract), so its list pointers lead to live results: TAILQ_REMOVE.
        unsafe {
            if let Some(q) = req.as_mut() {
                let r = &mut *res;
                if !r.entries.tqe_prev.is_null() {
                    if r.entries.tqe_next.is_null() {
                        q.query.tqh_last = r.entries.tqe_prev;
                    } else {
                        (*r.entries.tqe_next).entries.tqe_prev = r.entries.tqe_prev;
                    }
                    *r.entries.tqe_prev = r.entries.tqe_next;
                    q.num_keys = q.num_keys.saturating_sub(1);
                }
            }
            let ours = state::take_value(req, (res, (*res).val));
            free_result(&alloc, res, ours);
        }
    })
}

/// Frees a result's key copy, its value when it is free-on-delete (`ours`: the library
/// allocated it), and the result.
///
/// # Safety
/// `res` is a live result no longer linked anywhere it will be used from.
unsafe fn free_result(alloc: &Alloc, res: *mut memcache_res, ours: bool) {
    // SAFETY: `res` is live and unlinked (this function's contract); the reference ends before
    // the result is freed below.
    let r = unsafe { &*res };
    if frees_value(r, ours) {
        alloc.free(r.val);
    }
    if r._flags & NEED_FREE_KEY != 0 {
        alloc.free(r.key);
    }
    alloc.free(res);
}

#[no_mangle]
pub unsafe extern "C" fn mc_res_free(req: *mut memcache_req, res: *mut memcache_res) {
    // SAFETY: forwarded contract.
    unsafe { mcm_res_free(global(), req, res) }
}

/// Frees every result (as mc_res_free()) and callback record, then the request. NULL is
/// ignored.
///
/// # Safety
/// `req` is NULL or a live request not used after this call.
#[no_mangle]
pub unsafe extern "C" fn mcm_req_free(ctxt: *const memcache_ctxt, req: *mut memcache_req) {
    ffi_body!((), {
        check_null!((); req);
        // SAFETY: check_null above; `req` is a live request whose list links live results (this
        // function's contract), none used by the caller again; `ctxt` is NULL or live for Alloc::of.
        unsafe {
            let alloc = Alloc::of(ctxt);
            let all = results(req);
            let mut records = state::take_request(req);
            // Looked up only when it decides (after a fetch, never: the library's values are
            // free-on-delete with a size).
            let ours: Vec<bool> = all
                .iter()
                .map(|&r| owner_matters(&*r) && records.owns((r, (*r).val)))
                .collect();
            // Released before the results: freed after their small blocks, the records' block
            // can join the top of the heap, and glibc then consolidates those small blocks,
            // slowing the next request's allocations (measured: +30% instructions).
            drop(records);
            for (&res, ours) in all.iter().zip(ours) {
                free_result(&alloc, res, ours);
            }
            let mut cb = (*req).cb.tqh_first;
            while !cb.is_null() {
                let next = (*cb).entries.tqe_next;
                alloc.free(cb);
                cb = next;
            }
            alloc.free(req);
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_req_free(req: *mut memcache_req) {
    // SAFETY: forwarded contract.
    unsafe { mcm_req_free(global(), req) }
}

/// Non-zero: the result's value is freed with it; zero: the caller keeps it.
///
/// # Safety
/// `res` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn mcm_res_free_on_delete(
    _ctxt: *const memcache_ctxt,
    res: *mut memcache_res,
    free_on_delete: c_int,
) {
    ffi_body!((), {
        check_null!((); res);
        // SAFETY: check_null above; a non-NULL `res` is a live result the caller does not use
        // during this call, so a unique borrow is sound.
        let r = unsafe { &mut *res };
        r._flags &= !(FOD | NO_FOD);
        r._flags |= if free_on_delete != 0 { FOD } else { NO_FOD };
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_res_free_on_delete(res: *mut memcache_res, free_on_delete: c_int) {
    // SAFETY: forwarded contract.
    unsafe { mcm_res_free_on_delete(global(), res, free_on_delete) }
}

/// 1 if the last mc_get() sent this key, else 0.
///
/// # Safety
/// `res` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn mcm_res_attempted(
    _ctxt: *const memcache_ctxt,
    res: *const memcache_res,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; res);
        // SAFETY: check_null above; a non-NULL `res` is a live result (this function's contract).
        (unsafe { (*res)._flags } & ATTEMPTED != 0) as c_int
    })
}

/// 1 if the last mc_get() found this key, else 0.
///
/// # Safety
/// `res` is NULL or a live result.
#[no_mangle]
pub unsafe extern "C" fn mcm_res_found(
    _ctxt: *const memcache_ctxt,
    res: *const memcache_res,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; res);
        // SAFETY: check_null above; a non-NULL `res` is a live result (this function's contract).
        let f = unsafe { (*res)._flags };
        (f & ATTEMPTED != 0 && f & FOUND != 0) as c_int
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_res_attempted(res: *const memcache_res) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_res_attempted(global(), res) }
}

#[no_mangle]
pub unsafe extern "C" fn mc_res_found(res: *const memcache_res) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_res_found(global(), res) }
}

/// Registers `callback(ctxt, res, misc)` to run after each mc_get() of the request, for hits and
/// misses, in registration order. 0; -1 if `req`, `res` or `callback` is NULL; -2 if allocation
/// fails. The record is owned by the request.
///
/// # Safety
/// `req` and `res` are NULL or live.
#[no_mangle]
pub unsafe extern "C" fn mcm_res_register_fetch_cb(
    ctxt: *mut memcache_ctxt,
    req: *mut memcache_req,
    res: *mut memcache_res,
    callback: mcResCallback,
    misc: *mut c_void,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; req, res);
        if callback.is_none() {
            return -1;
        }
        // SAFETY: `ctxt` is NULL or live, all Alloc::of asks: mcm_* callers pass theirs or the
        // global context.
        let cb = unsafe { Alloc::of(ctxt) }.new_zeroed::<memcache_res_cb>();
        if cb.is_null() {
            return -2;
        }
        // SAFETY: cb is a fresh zeroed record; req is live: TAILQ_INSERT_TAIL.
        unsafe {
            *cb = memcache_res_cb {
                misc,
                ctxt,
                req,
                res,
                cb: callback,
                entries: memcache_res_cb_entry {
                    tqe_next: ptr::null_mut(),
                    tqe_prev: ptr::null_mut(),
                },
            };
            let r = &mut *req;
            if r.cb.tqh_last.is_null() {
                r.cb.tqh_last = &raw mut r.cb.tqh_first;
            }
            (*cb).entries.tqe_prev = r.cb.tqh_last;
            *r.cb.tqh_last = cb;
            r.cb.tqh_last = &raw mut (*cb).entries.tqe_next;
        }
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_res_register_fetch_cb(
    req: *mut memcache_req,
    res: *mut memcache_res,
    callback: mcResCallback,
    misc: *mut c_void,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_res_register_fetch_cb(global(), req, res, callback, misc) }
}

// ---- mc_get ----

/// Makes a result ready for a new fetch (D4): FOUND and ATTEMPTED cleared, a value the library
/// allocated earlier released (free-on-delete) or handed to the caller (otherwise).
///
/// # Safety
/// `res` is a live result.
unsafe fn reset_result(alloc: &Alloc, res: *mut memcache_res, ours: bool) {
    // SAFETY: `res` is live (this function's contract) and no other reference to it exists
    // while this function runs: its callers hold only raw pointers to it.
    let r = unsafe { &mut *res };
    r._flags &= !(FOUND | ATTEMPTED);
    if ours {
        if r._flags & FOD != 0 {
            alloc.free(r.val);
        }
        r.val = ptr::null_mut();
        r.size = 0;
        r.bytes = 0;
    }
}

/// Settles the "unset" free state when the key is sent and marks it attempted.
fn mark_sent(r: &mut memcache_res) {
    if r._flags & (FOD | NO_FOD) == FOD | NO_FOD {
        r._flags &= !(FOD | NO_FOD);
        r._flags |= if r.size > 0 { NO_FOD } else { FOD };
    }
    r._flags |= ATTEMPTED;
}

/// Where a value of a request's key goes (spec §9.6).
enum Target {
    /// `size` was 0: a new buffer the result will own.
    New(Incoming),
    /// The caller's buffer of `size` bytes: at most that much is kept, the rest dropped.
    Caller {
        dst: *mut u8,
        room: usize,
        filled: usize,
        flags: u32,
        bytes: usize,
    },
}

/// Receives the values of the keys sent to one server into the request's results.
struct ResultSink {
    ctxt: *const memcache_ctxt,
    alloc: Alloc,
    /// The results whose keys were sent, in the order they were.
    results: Vec<*mut memcache_res>,
    current: Option<(usize, Target)>,
    /// Which results got a buffer allocated here, registered together once the fetch is over
    /// (indexes: a small vector, kept apart from the values' sizes in the allocator).
    allocated: Vec<u32>,
}

impl ValueSink for ResultSink {
    fn begin(&mut self, index: usize, flags: u32, bytes: usize, _cas: Option<u64>) -> bool {
        // SAFETY: the results of a request being fetched are live for the whole call.
        let r = unsafe { &*self.results[index] };
        let target = if r.size == 0 {
            match Incoming::start(self.ctxt, &self.alloc, bytes, flags, 0) {
                Some(v) => Target::New(v),
                None => return false,
            }
        } else {
            Target::Caller {
                dst: r.val as *mut u8,
                room: r.size,
                filled: 0,
                flags,
                bytes,
            }
        };
        self.current = Some((index, target));
        true
    }

    fn data(&mut self, chunk: &[u8]) {
        match &mut self.current {
            Some((_, Target::New(v))) => v.push(self.ctxt, &self.alloc, chunk),
            Some((
                _,
                Target::Caller {
                    dst, room, filled, ..
                },
            )) => {
                let n = chunk.len().min(room.saturating_sub(*filled));
                if n > 0 && !dst.is_null() {
                    // SAFETY: the caller's buffer has `size` (= room) bytes; n keeps within it.
                    unsafe { ptr::copy_nonoverlapping(chunk.as_ptr(), dst.add(*filled), n) };
                }
                *filled += n;
            }
            None => {}
        }
    }

    fn end(&mut self) {
        if let Some((index, target)) = self.current.take() {
            self.found(index, target);
        }
    }

    /// A value that arrived whole goes into a new buffer in one step (the common case); a
    /// caller's buffer takes the general path, which copies what fits.
    fn whole(&mut self, index: usize, flags: u32, cas: Option<u64>, value: &[u8]) {
        // SAFETY: as in begin().
        if unsafe { (*self.results[index]).size } != 0 {
            if self.begin(index, flags, value.len(), cas) {
                self.data(value);
                self.end();
            }
            return;
        }
        if let Some(mut v) = Incoming::start(self.ctxt, &self.alloc, value.len(), flags, 0) {
            v.push(self.ctxt, &self.alloc, value);
            self.found(index, Target::New(v));
        }
    }
}

impl ResultSink {
    /// Stores a received value in result `index` and marks it found.
    fn found(&mut self, index: usize, target: Target) {
        let res = self.results[index];
        // SAFETY: as in begin().
        let r = unsafe { &mut *res };
        let (flags, bytes) = match target {
            Target::New(v) => {
                let (flags, bytes) = (v.flags, v.bytes);
                let Some(value) = v.finish(&self.alloc) else {
                    return;
                };
                r.val = value as *mut c_void;
                r.size = bytes;
                self.allocated.push(index as u32);
                (flags, bytes)
            }
            Target::Caller { flags, bytes, .. } => (flags, bytes),
        };
        r.flags = flags as u16;
        r.bytes = bytes;
        r._flags |= FOUND;
    }
}

impl Drop for ResultSink {
    fn drop(&mut self) {
        if let Some((_, Target::New(v))) = self.current.take() {
            self.alloc.free(v.buf);
        }
    }
}

/// The key bytes of a live result.
fn key_of<'a>(r: *mut memcache_res) -> &'a [u8] {
    // SAFETY: results of a request being fetched are live; their keys are `len` bytes.
    unsafe { key_bytes((*r).key, (*r).len) }
}

/// A request's keys as the engine's multi-get wants them: the results whose keys are sent,
/// and the request whose records keep the values allocated for them.
struct Fetching {
    ctxt: *const memcache_ctxt,
    alloc: Alloc,
    req: *const memcache_req,
    /// The results whose keys are sent (they passed the key check), in request order.
    asked: Vec<*mut memcache_res>,
}

impl Wanted for Fetching {
    type Sink = ResultSink;

    fn key(&self, index: usize) -> &[u8] {
        key_of(self.asked[index])
    }

    fn hash(&self, index: usize) -> u32 {
        // SAFETY: a live result of the request being fetched.
        unsafe { (*self.asked[index]).hash }
    }

    fn found(&self, index: usize) -> bool {
        // SAFETY: as above.
        unsafe { (*self.asked[index])._flags & FOUND != 0 }
    }

    /// The keys are about to be sent: they are attempted from now on.
    fn sink(&mut self, group: &[usize]) -> ResultSink {
        let results: Vec<_> = group.iter().map(|&i| self.asked[i]).collect();
        for &r in &results {
            // SAFETY: as above.
            mark_sent(unsafe { &mut *r });
        }
        ResultSink {
            ctxt: self.ctxt,
            alloc: self.alloc,
            allocated: Vec::with_capacity(results.len()),
            results,
            current: None,
        }
    }

    /// Values stored before a server failed stay found: they arrived whole. The buffers
    /// allocated for them are recorded with the request, one lock per server.
    fn absorb(&mut self, sink: ResultSink, _group: &[usize], _answered: bool) {
        let values = sink.allocated.iter().map(|&i| {
            let res = sink.results[i as usize];
            // SAFETY: as above.
            (res as *const memcache_res, unsafe { (*res).val }
                as *const c_void)
        });
        state::values_allocated(self.req, values);
    }
}

/// Fetches every key of the request, then runs its callbacks (spec §9.6 with D4 and D11).
///
/// # Safety
/// `ctxt`, `mc` and `req` are live.
unsafe fn get(ctxt: *mut memcache_ctxt, mc: *mut memcache, req: *mut memcache_req) {
    let scope = Scope::enter(c"mcm_get");
    // SAFETY: `ctxt`, `mc` and `req` are live (this function's contract, checked for NULL by
    // mcm_get); set_errnum writes the context's errnum field.
    unsafe { set_errnum(ctxt, 0) };
    // SAFETY: as above.
    let alloc = unsafe { Alloc::of(ctxt) };
    // SAFETY: as above.
    let all = unsafe { results(req) };
    // Every value of ours is released or handed over here, so the records go: any left over
    // are stale (values the caller took off a result itself).
    let mut records = state::take_request(req);
    for &r in &all {
        // SAFETY: a live result of the request.
        let val = unsafe { (*r).val };
        let ours = !val.is_null() && records.owns((r, val));
        // SAFETY: as above.
        unsafe { reset_result(&alloc, r, ours) };
    }
    drop(records);
    let st = state::handle(mc);
    // One guard from bringing the list up to date to the last reply: the server array and the
    // server structures read below are only replaced under it, by another thread's begin().
    // The connections are this call's alone: no pipelined reply is awaited on them meanwhile.
    let mut inner = st.lock_exclusive();
    // SAFETY: mc is live and inner its locked state.
    unsafe { super::operation::begin(ctxt, mc, &st, &mut inner) };
    // SAFETY: mc is live.
    let n_servers = unsafe { (*mc).num_servers } as usize;
    let single = all.len() == 1 || n_servers == 1;
    if all.is_empty() || (!single && n_servers == 0) {
        drop(inner);
        finish(scope, ctxt, Some(&st), !all.is_empty());
        return;
    }
    // Keys that fail the built-in check are not sent and stay neither attempted nor found.
    let mut sendable = Vec::with_capacity(all.len());
    for &r in &all {
        // SAFETY: a live result; its key is len bytes.
        let k = unsafe { key_bytes((*r).key, (*r).len) };
        match key::check(k) {
            Ok(()) => {
                // SAFETY: as above.
                if unsafe { (*r).hash } == 0 {
                    let mut front = Front {
                        ctxt,
                        mc,
                        st: &st,
                        inner: &mut inner,
                    };
                    let hash = front.hash(k);
                    // SAFETY: as above.
                    unsafe { (*r).hash = hash };
                }
                sendable.push(r);
            }
            Err(e) => report_bad_key(ctxt, e.reason()),
        }
    }
    // A hash hook runs with the handle unlocked: the list may have changed meanwhile.
    // SAFETY: mc is live.
    let n_servers = unsafe { (*mc).num_servers } as usize;
    // Group as 1.4 does: one group, or one per `hash % num_servers`; each group's server is
    // chosen from its first key's hash, with failover. Groups hold indexes into `sendable`.
    let mut groups: Vec<Vec<usize>> = Vec::new();
    if single {
        groups.push((0..sendable.len()).collect());
    } else {
        groups.resize_with(n_servers, Vec::new);
        // crc32-modulo: keys with the same hash % n share a server (1.4's grouping). Under
        // ketama that is not so: each key goes to the group of the server the ring picks for
        // it, unless the client installed its own finder (then 1.4's grouping applies).
        // SAFETY: ctxt is live.
        let own_finder = unsafe { (*ctxt).mcServerFind }
            .is_some_and(|f| f as usize != super::hooks::default_server_find as *const () as usize);
        let ring = st.distribution() == crate::hash::Distribution::KetamaMd5 && !own_finder;
        // SAFETY: mc is live; its servers are live.
        let servers = unsafe { state::server_slice(mc) };
        // SAFETY: as above.
        let live = |i: usize| matches!(unsafe { (*servers[i]).active } as u8, b'u' | b't');
        for (index, &r) in sendable.iter().enumerate() {
            // SAFETY: a live result.
            let hash = unsafe { (*r).hash };
            let group = if ring {
                st.pick(n_servers, hash, live)
            } else {
                None
            };
            groups[group.unwrap_or(hash as usize % n_servers)].push(index);
        }
    }
    // The same groups by the server each is routed to (groups routed to one server merge).
    let mut by_server: Vec<Vec<usize>> = Vec::new();
    for group in groups.into_iter().filter(|g| !g.is_empty()) {
        // SAFETY: a live result.
        let hash = unsafe { (*sendable[group[0]]).hash };
        let mut front = Front {
            ctxt,
            mc,
            st: &st,
            inner: &mut inner,
        };
        // SAFETY: ctxt and mc are live; inner is mc's locked state.
        let Some(side) = (unsafe { route(&mut front, hash) }) else {
            continue;
        };
        if by_server.len() <= side {
            by_server.resize_with(side + 1, Vec::new);
        }
        if by_server[side].is_empty() {
            by_server[side] = group;
        } else {
            by_server[side].extend(group);
        }
    }
    // A hook run unlocked may have let the list change: the groups cover today's servers.
    by_server.resize_with(inner.servers.len(), Vec::new);
    let copies = inner.replicas as usize;
    let count = sendable.len();
    let mut fetching = Fetching {
        ctxt,
        alloc,
        req,
        asked: sendable,
    };
    let mut front = Front {
        ctxt,
        mc,
        st: &st,
        inner: &mut inner,
    };
    let fetched = engine::multi_get(&mut front, &mut fetching, count, &mut by_server, copies);
    let any_server = fetched.asked;
    drop(inner);
    let failed = !any_server || scope.serious();
    finish(scope, ctxt, Some(&st), failed);
    if single && !any_server {
        return;
    }
    // SAFETY: req is live; callbacks run with nothing locked, after the values are in place.
    unsafe {
        let mut cb = (*req).cb.tqh_first;
        while !cb.is_null() {
            let next = (*cb).entries.tqe_next;
            let c = &*cb;
            if let Some(f) = c.cb {
                let cctxt = if c.ctxt.is_null() {
                    ctxt as *const memcache_ctxt
                } else {
                    c.ctxt
                };
                f(cctxt, c.res, c.misc);
            }
            cb = next;
        }
    }
}

/// Fetches every key of `req` (grouped per server; all requests are written before any reply
/// is read), fills the results and runs the fetch callbacks. A request can be fetched again.
///
/// # Safety
/// `ctxt`, `mc` and `req` are live.
#[no_mangle]
pub unsafe extern "C" fn mcm_get(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    req: *mut memcache_req,
) {
    ffi_body!((), {
        check_null!((); ctxt, mc, req);
        // SAFETY: forwarded contract.
        unsafe { get(ctxt, mc, req) }
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_get(mc: *mut memcache, req: *mut memcache_req) {
    // SAFETY: forwarded contract.
    unsafe { mcm_get(global(), mc, req) }
}
