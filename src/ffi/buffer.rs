//! The buffer API of `memcache/buffer.h` (spec §4.4): a growable byte buffer whose storage is
//! always NUL-terminated, with a read cursor. No known client calls it; it is exported because
//! 1.4 exported it, with the semantics 1.4 programs can observe (sizes, the 1/0 comparisons), and
//! every function is total: NULL arguments and allocation failures return the function's failure
//! value.
//!
//! `size` is the number of bytes of the storage block, the terminating NUL's byte included, as in
//! 1.4: `mcm_buf_new()`'s 4096-byte block holds up to 4095 bytes of contents, an append grows the
//! block as soon as the contents and their NUL would no longer fit, and `mcm_buf_compact()` leaves
//! `size == len + 1`. So every buffer this file creates or accepts keeps one invariant: `ptr` is
//! either NULL (a structure zeroed by hand: no storage, empty, `size` 0) or a block of `size`
//! bytes from the context's allocator, with `len < size`, `off <= len` and `ptr[len] == 0`.
//! Programs that set fields by hand (`mcm_buf_len_set()`, ...) must keep it too.
//!
//! The structure and its storage both come from `mcMalloc`, as in 1.4 (spec §4.4 and §5.2 list
//! buffers with the structures; `mcMallocAtomic` is for strings and values); growth and shrinking
//! use `mcRealloc`, release `mcFree`. Neither of those two is ever given NULL: a buffer without
//! storage gets its first block from `mcMalloc` (spec §5.2).
//!
//! Conventions shared by the whole family:
//! - `ctxt` may be NULL: libc's `malloc`/`realloc`/`free` are then used. A buffer must always be
//!   used with the context (or NULL) it was created with.
//! - Any other NULL pointer argument makes the call return its failure value and change nothing.
//! - `int` results are 1 for success and 0 for failure; the comparisons return 1 for "equal" (or
//!   "ends with") and 0 otherwise, as in 1.4 (not memcmp's sign).
//! - Byte arguments (a `const char *` and a length, a C string, a source buffer) are read as they
//!   were when the call began and may point into the destination buffer itself.
//! - A pointer into a buffer (`ptr`, `mcm_buf_find()`, `mcm_buf_tail()`, ...) is invalidated by
//!   any call that writes to that buffer.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::ffi::CStr;
use std::{mem, ptr, slice};

use libc::{c_char, c_int, c_void, size_t};

use super::context::Alloc;
use super::types::*;

/// The `flags` bit set once the read cursor `off` has been advanced (`MCM_BUF_OFF_USED`).
pub const MCM_BUF_OFF_USED: c_char = 0x1;

/// The `size` of `mcm_buf_new()`: 1.4's `INIT_GET_BUF_SIZE` (declared in memcache.h).
const INIT_GET_BUF_SIZE: usize = 4096;

// ---- byte logic, no pointers ----

/// 1 if `a` and `b` hold the same bytes, else 0 (1.4's comparison result).
fn equal(a: &[u8], b: &[u8]) -> c_int {
    c_int::from(a == b)
}

/// 1 if `hay` ends with `suffix` (always for an empty suffix), else 0.
fn ends_with(hay: &[u8], suffix: &[u8]) -> c_int {
    c_int::from(hay.ends_with(suffix))
}

/// The index of the first occurrence of `needle` in `hay`; an empty needle is found at 0.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `hay` with every occurrence of `pat`, scanning left to right without overlap, replaced by
/// `rep`. An empty `pat` matches nothing.
fn replace_all(hay: &[u8], pat: &[u8], rep: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut rest = hay;
    if !pat.is_empty() {
        while let Some(at) = find(rest, pat) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(rep);
            rest = &rest[at + pat.len()..];
        }
    }
    out.extend_from_slice(rest);
    out
}

/// The offset just past the first `\n` at or after `from` (so past a whole `\r\n` too).
fn line_end(bytes: &[u8], from: usize) -> Option<usize> {
    let from = from.min(bytes.len());
    bytes[from..]
        .iter()
        .position(|&c| c == b'\n')
        .map(|at| from + at + 1)
}

/// Whether the address ranges `[a, a + alen)` and `[b, b + blen)` share a byte.
fn overlaps(a: usize, alen: usize, b: usize, blen: usize) -> bool {
    alen > 0 && blen > 0 && a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

// ---- views of C memory: the only places raw pointers become slices ----

/// `len` bytes passed by a C caller.
///
/// # Safety
/// `data` is readable for `len` bytes (it may be NULL only when `len` is 0) and is not modified
/// during `'a`.
unsafe fn caller_bytes<'a>(data: *const c_char, len: usize) -> &'a [u8] {
    if data.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: data is non-NULL (tested above) and readable for len bytes: the callers pass an
    // argument their exported function NULL-checked with the length buffer.h documents for it,
    // or a buffer's storage and len, which the module invariant keeps inside the block.
    unsafe { slice::from_raw_parts(data as *const u8, len) }
}

/// The bytes of a C string, without its NUL.
///
/// # Safety
/// `s` is non-NULL, NUL-terminated and not modified during `'a`.
unsafe fn cstr_bytes<'a>(s: *const c_char) -> &'a [u8] {
    // SAFETY: s is non-NULL and NUL-terminated: every caller passes a `const char *` argument
    // that its exported function NULL-checked and buffer.h documents as a C string.
    unsafe { CStr::from_ptr(s) }.to_bytes()
}

/// A buffer's storage and used length, `(NULL, 0)` when it has no storage.
///
/// # Safety
/// `buf` is non-NULL and points to a live `memcache_buf`.
unsafe fn parts(buf: *const memcache_buf) -> (*const c_char, usize) {
    // SAFETY: buf is non-NULL and live: every caller passes a buffer argument its exported
    // function NULL-checked; two fields are copied out, no reference is kept.
    let (data, len) = unsafe { ((*buf).ptr, (*buf).len) };
    if data.is_null() {
        (ptr::null(), 0)
    } else {
        (data, len)
    }
}

/// The used bytes `ptr[0..len]` of a buffer; empty when it has no storage.
///
/// # Safety
/// `buf` is non-NULL, satisfies the module invariant and is not modified during `'a`.
unsafe fn used_bytes<'a>(buf: *const memcache_buf) -> &'a [u8] {
    // SAFETY: buf is a NULL-checked live buffer, as parts() needs; by the module invariant its
    // storage holds size > len initialised bytes, and the exported callers only read buf while
    // the view lives.
    unsafe {
        let (data, len) = parts(buf);
        caller_bytes(data, len)
    }
}

/// Bytes about to be written into `dst`: borrowed, or copied first when they lie inside `dst`'s
/// structure or storage, which the write may move or overwrite.
///
/// # Safety
/// `dst` is non-NULL and satisfies the invariant; `data` is readable for `len` bytes (NULL only
/// when `len` is 0) and, unless it lies inside `dst`, not modified during `'a`.
unsafe fn source<'a>(dst: *const memcache_buf, data: *const c_char, len: usize) -> Cow<'a, [u8]> {
    // SAFETY: write() passes a NULL-checked argument with its documented length, a buffer's
    // storage and len (inside the block by the invariant) or a local byte; a view inside dst is
    // copied below before anything writes to dst.
    let bytes = unsafe { caller_bytes(data, len) };
    // SAFETY: dst was NULL-checked by the exported function and is a live buffer; two fields
    // are copied out.
    let (storage, size) = unsafe { ((*dst).ptr, (*dst).size) };
    let storage_len = if storage.is_null() { 0 } else { size };
    let at = bytes.as_ptr() as usize;
    let inside = overlaps(at, bytes.len(), storage as usize, storage_len)
        || overlaps(
            at,
            bytes.len(),
            dst as usize,
            mem::size_of::<memcache_buf>(),
        );
    if inside {
        Cow::Owned(bytes.to_vec())
    } else {
        Cow::Borrowed(bytes)
    }
}

// ---- the buffer itself ----

/// Exclusive access to a buffer that satisfies the module invariant, with the allocator that owns
/// its storage. Every method keeps the invariant; a method that fails leaves the buffer unchanged.
struct BufMut<'a> {
    buf: &'a mut memcache_buf,
    alloc: &'a Alloc,
}

impl<'a> BufMut<'a> {
    /// # Safety
    /// `buf` is non-NULL, satisfies the module invariant with storage from `alloc`, and nothing
    /// else reads or writes it (structure or storage) during `'a`.
    unsafe fn new(alloc: &'a Alloc, buf: *mut memcache_buf) -> Self {
        // SAFETY: buf is non-NULL and live: create() passes its fresh structure, write() and
        // with_buf() a buffer their exported function NULL-checked; no other reference to it exists
        // during 'a (source() copied any bytes of the caller that lie inside it).
        let buf = unsafe { &mut *buf };
        if buf.ptr.is_null() {
            // No storage means empty, whatever a structure filled in by hand says.
            buf.len = 0;
            buf.size = 0;
            buf.off = 0;
        }
        BufMut { buf, alloc }
    }

    fn used(&self) -> &[u8] {
        // SAFETY: self.buf satisfies the invariant and stays borrowed from self, so it is not
        // modified while the slice lives.
        unsafe { used_bytes(&*self.buf) }
    }

    fn used_mut(&mut self) -> &mut [u8] {
        if self.buf.ptr.is_null() || self.buf.len == 0 {
            return &mut [];
        }
        // SAFETY: by the invariant the storage holds size > len bytes, all initialised; &mut self
        // makes the access exclusive while the slice lives.
        unsafe { slice::from_raw_parts_mut(self.buf.ptr as *mut u8, self.buf.len) }
    }

    /// Writes the NUL at `ptr[len]`.
    fn terminate(&mut self) {
        if !self.buf.ptr.is_null() {
            // SAFETY: the storage holds size > len bytes.
            unsafe { *self.buf.ptr.add(self.buf.len) = 0 };
        }
    }

    fn rewind(&mut self) {
        self.buf.off = 0;
        self.buf.flags &= !MCM_BUF_OFF_USED;
    }

    /// 1.4's `mcm_buf_realloc()`: makes the block `n` bytes (NUL included). `n == 0` and
    /// `n == size` change nothing; a buffer without storage gets `mcMalloc(n)`; a larger `n`
    /// grows the block to `max(n, 2 * size)` (so n appends cost O(log n) reallocations); a
    /// smaller one shrinks it to exactly `n`, dropping the contents that no longer fit with their
    /// NUL (1.4 left `len` past the block).
    fn realloc(&mut self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        if self.buf.ptr.is_null() {
            // A first allocation: never realloc(NULL), which host allocators crash on (§5.2).
            let block = self.alloc.block(n) as *mut c_char;
            if block.is_null() {
                return false;
            }
            self.buf.ptr = block;
            self.buf.size = n;
            self.terminate(); // len is 0: the block is an empty string
            return true;
        }
        let size = self.buf.size;
        let target = match n.cmp(&size) {
            Ordering::Equal => return true,
            Ordering::Greater => n.max(size.saturating_mul(2)),
            Ordering::Less => n,
        };
        let block = self.alloc.realloc(self.buf.ptr as *mut c_void, target) as *mut c_char;
        if block.is_null() {
            return false;
        }
        self.buf.ptr = block;
        self.buf.size = target;
        if self.buf.len >= target {
            self.buf.len = target - 1;
            self.buf.off = self.buf.off.min(self.buf.len);
            self.terminate();
        }
        true
    }

    /// 1.4's append: nothing to do for no bytes; otherwise, when the contents and their NUL would
    /// not fit, first `realloc(len + src.len() + 1)`. `src` must not lie inside this buffer (see
    /// [`source`]).
    fn append(&mut self, src: &[u8]) -> bool {
        if src.is_empty() {
            return true;
        }
        let Some(needed) = self.buf.len.checked_add(src.len()) else {
            return false;
        };
        if needed >= self.buf.size {
            let Some(total) = needed.checked_add(1) else {
                return false;
            };
            if !self.realloc(total) {
                return false;
            }
        }
        // SAFETY: the storage now holds size > needed bytes, so [len, needed) and the NUL at
        // needed are inside it, and src does not overlap it: source() copies bytes that would.
        unsafe {
            let tail = (self.buf.ptr as *mut u8).add(self.buf.len);
            ptr::copy_nonoverlapping(src.as_ptr(), tail, src.len());
        }
        self.buf.len = needed;
        self.terminate();
        true
    }

    /// 1.4's reset: the cursor rewound (`MCM_BUF_OFF_USED` cleared, other flags kept), no
    /// contents, `ptr[0]` NUL; the block is kept.
    fn reset(&mut self) {
        self.rewind();
        self.buf.len = 0;
        self.terminate();
    }

    /// 1.4's replace: reset, then append. The growth that append makes on the emptied buffer
    /// (the same `size`, so the same figures) comes first, so that a failure leaves the old
    /// contents. `src` must not lie inside this buffer (see [`source`]).
    fn replace(&mut self, src: &[u8]) -> bool {
        if !src.is_empty() && src.len() >= self.buf.size {
            let Some(total) = src.len().checked_add(1) else {
                return false;
            };
            if !self.realloc(total) {
                return false;
            }
        }
        self.reset();
        self.append(src)
    }

    /// 1.4's compact: `realloc(len + 1)`, the block fitted to the contents and their NUL. The
    /// cursor and the contents are kept.
    fn compact(&mut self) -> bool {
        // len < size, so len + 1 cannot overflow for a buffer that keeps the invariant.
        self.buf.len.checked_add(1).is_some_and(|n| self.realloc(n))
    }

    /// 1.4's resize: `realloc(n + 1)`, then `len = n`. Bytes that lengthening exposes are zeroed
    /// (1.4 left whatever the block held); a cursor past the new end moves back to it.
    fn resize(&mut self, n: usize) -> bool {
        let Some(total) = n.checked_add(1) else {
            return false;
        };
        if !self.realloc(total) {
            return false;
        }
        let old = self.buf.len;
        if n > old {
            // SAFETY: realloc(n + 1) left a block of at least n + 1 bytes, so [old, n) is inside
            // it; &mut self makes the write exclusive.
            unsafe { ptr::write_bytes(self.buf.ptr.add(old), 0, n - old) };
        }
        self.buf.len = n;
        self.buf.off = self.buf.off.min(n);
        self.terminate();
        true
    }

    /// Drops the bytes before the cursor and rewinds it; the block is kept.
    fn drop_consumed(&mut self) {
        let off = self.buf.off.min(self.buf.len);
        if off > 0 {
            self.used_mut().copy_within(off.., 0);
            self.buf.len -= off;
        }
        self.rewind();
        self.terminate();
    }

    /// Moves the cursor past the next line end, if there is a whole line after it.
    fn eat_line(&mut self) {
        if let Some(end) = line_end(self.used(), self.buf.off) {
            self.buf.off = end;
            self.buf.flags |= MCM_BUF_OFF_USED;
        }
    }

    /// The storage, allocating a 1-byte block (just the NUL) for a buffer that has none; NULL if
    /// that fails.
    fn storage(&mut self) -> *mut c_char {
        if self.buf.ptr.is_null() && !self.realloc(1) {
            return ptr::null_mut();
        }
        self.buf.ptr
    }

    /// Whether there is no room for one more byte besides the NUL.
    fn is_full(&self) -> bool {
        self.buf.len.saturating_add(1) >= self.buf.size
    }

    /// One read(2) into the free space. A full buffer first drops the bytes its cursor has
    /// consumed (when `MCM_BUF_OFF_USED` is set), then grows if it is still full.
    fn read_from(&mut self, fd: c_int) -> usize {
        if self.is_full() && self.buf.flags & MCM_BUF_OFF_USED != 0 {
            self.drop_consumed();
        }
        if self.is_full() {
            let Some(n) = self.buf.len.checked_add(2) else {
                return 0;
            };
            if !self.realloc(n) {
                return 0;
            }
        }
        let spare = self.buf.size - self.buf.len - 1;
        // SAFETY: the storage holds size bytes, so the spare bytes [len, size - 1) are ours to
        // write (the last one stays for the NUL), and read(2) writes at most `spare` of them.
        let got = unsafe {
            let tail = self.buf.ptr.add(self.buf.len) as *mut c_void;
            libc::read(fd, tail, spare)
        };
        if got <= 0 {
            return 0;
        }
        let got = got as usize;
        self.buf.len += got;
        self.terminate();
        got
    }
}

/// 1.4's `mcm_buf_new()` then append of `content`: a buffer of `INIT_GET_BUF_SIZE` bytes, more if
/// `content` and its NUL do not fit; NULL when the allocator fails.
fn create(alloc: &Alloc, content: &[u8]) -> *mut memcache_buf {
    let raw: *mut memcache_buf = alloc.new_zeroed();
    if raw.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: raw is a fresh zeroed structure from alloc (no storage, so the invariant holds)
    // that nothing else can reach yet; content is a separate slice.
    let mut buf = unsafe { BufMut::new(alloc, raw) };
    if buf.realloc(INIT_GET_BUF_SIZE) && buf.append(content) {
        return raw;
    }
    // SAFETY: raw came from alloc and is not returned.
    unsafe { destroy(alloc, raw) };
    ptr::null_mut()
}

/// Frees a buffer's storage, then its structure.
///
/// # Safety
/// `buf` is non-NULL, was allocated (with its storage) by `alloc`, and is not used afterwards.
unsafe fn destroy(alloc: &Alloc, buf: *mut memcache_buf) {
    // SAFETY: buf is non-NULL and live: create() passes its own fresh structure, mcm_buf_free()
    // the *buf it NULL-checked; by the module invariant its storage is NULL or from alloc.
    alloc.free(unsafe { (*buf).ptr });
    alloc.free(buf);
}

/// What a write of caller bytes does to the destination.
#[derive(Clone, Copy)]
enum Write {
    Append,
    Replace,
}

/// The core of the append and replace families.
///
/// # Safety
/// `ctxt` is NULL or the live context `buf` belongs to; `buf` is non-NULL and satisfies the
/// invariant; `data` is readable for `len` bytes (NULL only when `len` is 0).
unsafe fn write(
    ctxt: *const memcache_ctxt,
    buf: *mut memcache_buf,
    data: *const c_char,
    len: usize,
    how: Write,
) -> c_int {
    // SAFETY: ctxt is NULL or buf's context and buf non-NULL, both checked by the exported
    // caller; data is NULL-checked there too, with its documented length. source() copies bytes
    // lying inside buf, so src no longer aliases buf when BufMut takes it over.
    let (alloc, src) = unsafe { (Alloc::of(ctxt), source(buf, data, len)) };
    // SAFETY: as above: buf is valid and src does not alias it.
    let mut dst = unsafe { BufMut::new(&alloc, buf) };
    let done = match how {
        Write::Append => dst.append(&src),
        Write::Replace => dst.replace(&src),
    };
    c_int::from(done)
}

/// The pointer to the first occurrence of `needle` in `buf`'s used bytes, or NULL.
///
/// # Safety
/// `buf` is non-NULL and satisfies the invariant.
unsafe fn find_in(buf: *const memcache_buf, needle: &[u8]) -> *mut c_char {
    // SAFETY: buf was NULL-checked by every exported caller and is only read; the view ends
    // before this function returns.
    let (found, base) = unsafe { (find(used_bytes(buf), needle), (*buf).ptr) };
    match found {
        Some(at) => base.wrapping_add(at),
        None => ptr::null_mut(),
    }
}

/// The core of the find-and-replace pair.
///
/// # Safety
/// `ctxt` is NULL or a live context; `buf` and `rep` are non-NULL and satisfy the invariant.
unsafe fn find_replace_in(
    ctxt: *const memcache_ctxt,
    buf: *const memcache_buf,
    pat: &[u8],
    rep: *const memcache_buf,
) -> *mut memcache_buf {
    // SAFETY: buf and rep were NULL-checked by mcm_buf_find_replace{,2} and are only read; the
    // views end before this function returns.
    let (alloc, out) = unsafe {
        let out = replace_all(used_bytes(buf), pat, used_bytes(rep));
        (Alloc::of(ctxt), out)
    };
    create(&alloc, &out)
}

/// Runs `f` on `buf` with its context's allocator.
///
/// # Safety
/// `ctxt` is NULL or the live context `buf` belongs to; `buf` is non-NULL, satisfies the invariant
/// and is not accessed elsewhere during the call.
unsafe fn with_buf<T>(
    ctxt: *const memcache_ctxt,
    buf: *mut memcache_buf,
    f: impl FnOnce(&mut BufMut<'_>) -> T,
) -> T {
    // SAFETY: ctxt is NULL (libc's allocator) or the context buf was created with, as buffer.h
    // requires of the exported caller's argument; only its allocator fields are read.
    let alloc = unsafe { Alloc::of(ctxt) };
    // SAFETY: buf was NULL-checked by the exported caller, which passes no other view of it;
    // its storage came from alloc, the allocator of the context it was created with.
    let mut buf = unsafe { BufMut::new(&alloc, buf) };
    f(&mut buf)
}

// ---- creation and release ----

/// Creates an empty buffer: `len` 0, `size` `INIT_GET_BUF_SIZE` (4096 bytes, the terminating NUL
/// included, so 4095 bytes of contents fit before it grows), `ptr[0]` NUL, `off` and `flags` 0.
/// The structure and its storage come from the context's `mcMalloc`.
///
/// Returns the buffer, or NULL when the allocator fails. Caller owns the returned buffer; release
/// it with mcm_buf_free().
///
/// # Safety
/// `ctxt` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_new(ctxt: *mut memcache_ctxt) -> *mut memcache_buf {
    ffi_body!(ptr::null_mut(), {
        // SAFETY: ctxt is NULL (libc's allocator) or the live context the C caller passes; only its
        // allocator fields are read.
        let alloc = unsafe { Alloc::of(ctxt) };
        create(&alloc, &[])
    })
}

/// Creates a buffer holding a copy of the `len` bytes at `data` (which may include NULs): as
/// mcm_buf_new() then mcm_buf_append(), so `size` is 4096 unless the bytes and their NUL need
/// more (then `max(len + 1, 8192)`).
///
/// Returns the buffer, or NULL when `data` is NULL or the allocator fails. Caller owns the
/// returned buffer; release it with mcm_buf_free().
///
/// # Safety
/// `ctxt` is NULL or a live context; `data` is NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_new2(
    ctxt: *mut memcache_ctxt,
    data: *const c_char,
    len: u32,
) -> *mut memcache_buf {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); data);
        // SAFETY: ctxt is NULL or live; data is non-NULL and readable for len bytes.
        let (alloc, bytes) = unsafe { (Alloc::of(ctxt), caller_bytes(data, len as usize)) };
        create(&alloc, bytes)
    })
}

/// Creates a buffer holding a copy of the C string `cstr` (without its NUL), as mcm_buf_new2()
/// with `strlen(cstr)`.
///
/// Returns the buffer, or NULL when `cstr` is NULL or the allocator fails. Caller owns the
/// returned buffer; release it with mcm_buf_free().
///
/// # Safety
/// `ctxt` is NULL or a live context; `cstr` is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_new3(
    ctxt: *mut memcache_ctxt,
    cstr: *const c_char,
) -> *mut memcache_buf {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); cstr);
        // SAFETY: ctxt is NULL or live; cstr is a non-NULL C string.
        let (alloc, bytes) = unsafe { (Alloc::of(ctxt), cstr_bytes(cstr)) };
        create(&alloc, bytes)
    })
}

/// Creates a buffer holding a copy of the used bytes of `buf`: mcm_buf_new2() of them, so the
/// copy's `size` follows mcm_buf_new2() (not `buf`'s) and its `off` and `flags` are 0.
///
/// Returns the copy, or NULL when `buf` is NULL or the allocator fails. Caller owns the returned
/// buffer; release it with mcm_buf_free().
///
/// # Safety
/// `ctxt` is NULL or a live context; `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_copy(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
) -> *mut memcache_buf {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); buf);
        // SAFETY: ctxt is NULL or live; buf is a live buffer, only read while the copy, a fresh
        // block, is filled.
        let (alloc, bytes) = unsafe { (Alloc::of(ctxt), used_bytes(buf)) };
        create(&alloc, bytes)
    })
}

/// Releases `*buf` (its storage, then the structure) and sets `*buf` to NULL.
///
/// Returns 1 when a buffer was released, 0 when `buf` or `*buf` is NULL. Takes ownership of
/// `*buf`.
///
/// # Safety
/// `ctxt` is NULL or the context `*buf` was created with; `buf` is NULL or points to NULL or to
/// a live buffer that is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_free(
    ctxt: *mut memcache_ctxt,
    buf: *mut *mut memcache_buf,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf);
        // SAFETY: buf is a valid pointer to a buffer pointer; a non-NULL *buf is a live buffer
        // from ctxt's allocator, which the caller gives up.
        unsafe {
            let victim = *buf;
            check_null!(0; victim);
            destroy(&Alloc::of(ctxt), victim);
            *buf = ptr::null_mut();
        }
        1
    })
}

// ---- appending ----

/// Appends the `len` bytes at `data` to `buf`; the contents stay NUL-terminated and the read
/// cursor is kept. Appending 0 bytes changes nothing. When the contents and their NUL would not
/// fit in `size` bytes, the storage first grows as mcm_buf_realloc() with `len + n + 1`, i.e. to
/// `max(len + n + 1, 2 * size)`.
///
/// Returns 1 on success, 0 when `buf` or `data` is NULL or the storage cannot grow (`buf` is then
/// unchanged). Borrowed: `data` is only read, and may point into `buf`.
///
/// # Safety
/// `ctxt` is NULL or the context `buf` was created with; `buf` is NULL or a live buffer; `data`
/// is NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_append(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
    data: *const c_char,
    len: u32,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf, data);
        // SAFETY: buf is a live buffer of ctxt; data is readable for len bytes.
        unsafe { write(ctxt, buf, data, len as usize, Write::Append) }
    })
}

/// Appends the C string `cstr` (without its NUL) to `buf`, as mcm_buf_append().
///
/// Returns 1 on success, 0 when `buf` or `cstr` is NULL or the storage cannot grow. Borrowed:
/// `cstr` is only read, and may point into `buf`.
///
/// # Safety
/// `ctxt` is NULL or the context `buf` was created with; `buf` is NULL or a live buffer; `cstr`
/// is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_append2(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
    cstr: *const c_char,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf, cstr);
        // SAFETY: cstr is a C string, so readable for its length; buf is a live buffer of ctxt.
        unsafe {
            let len = cstr_bytes(cstr).len();
            write(ctxt, buf, cstr, len, Write::Append)
        }
    })
}

/// Appends the used bytes of `src` to `dst`, as mcm_buf_append(); `src` may be `dst`.
///
/// Returns 1 on success, 0 when `dst` or `src` is NULL or the storage cannot grow. Borrowed:
/// `src` is only read.
///
/// # Safety
/// `ctxt` is NULL or the context `dst` was created with; `dst` and `src` are NULL or live buffers.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_append_buf(
    ctxt: *mut memcache_ctxt,
    dst: *mut memcache_buf,
    src: *mut memcache_buf,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; dst, src);
        // SAFETY: src is a live buffer whose storage holds len bytes; dst is a live buffer of ctxt.
        unsafe {
            let (data, len) = parts(src);
            write(ctxt, dst, data, len, Write::Append)
        }
    })
}

/// Appends the byte `c` (which may be NUL) to `buf`, as mcm_buf_append(): the buffer stays
/// NUL-terminated after the new byte.
///
/// Returns 1 on success, 0 when `buf` is NULL or the storage cannot grow.
///
/// # Safety
/// `ctxt` is NULL or the context `buf` was created with; `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_append_char(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
    c: c_char,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf);
        // SAFETY: &c is a local byte, readable for 1 byte; buf is a live buffer of ctxt.
        unsafe { write(ctxt, buf, &c, 1, Write::Append) }
    })
}

// ---- replacing ----

/// Sets the contents of `buf` to the `len` bytes at `data`: mcm_buf_reset() then
/// mcm_buf_append(), so the read cursor is rewound (`off` 0, `MCM_BUF_OFF_USED` cleared) and the
/// storage grows as an append to an empty buffer would, never shrinks.
///
/// Returns 1 on success, 0 when `buf` or `data` is NULL or the storage cannot grow (`buf` is then
/// unchanged). Borrowed: `data` is only read, and may point into `buf` (it is read as it was
/// before the reset).
///
/// # Safety
/// `ctxt` is NULL or the context `buf` was created with; `buf` is NULL or a live buffer; `data`
/// is NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_replace(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
    data: *const c_char,
    len: u32,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf, data);
        // SAFETY: buf is a live buffer of ctxt; data is readable for len bytes.
        unsafe { write(ctxt, buf, data, len as usize, Write::Replace) }
    })
}

/// Sets the contents of `buf` to the C string `cstr` (without its NUL), as mcm_buf_replace().
///
/// Returns 1 on success, 0 when `buf` or `cstr` is NULL or the storage cannot grow. Borrowed:
/// `cstr` is only read, and may point into `buf`.
///
/// # Safety
/// `ctxt` is NULL or the context `buf` was created with; `buf` is NULL or a live buffer; `cstr`
/// is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_replace2(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
    cstr: *const c_char,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf, cstr);
        // SAFETY: cstr is a C string, so readable for its length; buf is a live buffer of ctxt.
        unsafe {
            let len = cstr_bytes(cstr).len();
            write(ctxt, buf, cstr, len, Write::Replace)
        }
    })
}

/// Sets the contents of `dst` to the used bytes of `src`, as mcm_buf_replace(); `src` may be
/// `dst`.
///
/// Returns 1 on success, 0 when `dst` or `src` is NULL or the storage cannot grow. Borrowed:
/// `src` is only read.
///
/// # Safety
/// `ctxt` is NULL or the context `dst` was created with; `dst` and `src` are NULL or live buffers.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_replace_buf(
    ctxt: *mut memcache_ctxt,
    dst: *mut memcache_buf,
    src: *mut memcache_buf,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; dst, src);
        // SAFETY: src is a live buffer whose storage holds len bytes; dst is a live buffer of ctxt.
        unsafe {
            let (data, len) = parts(src);
            write(ctxt, dst, data, len, Write::Replace)
        }
    })
}

// ---- comparing ----

/// Tells whether the used bytes of `buf` equal the `len` bytes at `data` (1.4's convention, not
/// memcmp's sign).
///
/// Returns 1 when they are equal, or when `data` is `buf->ptr` whatever `len` says; 0 when they
/// differ (lengths first, then bytes) or when `buf` or `data` is NULL.
///
/// # Safety
/// `buf` is NULL or a live buffer; `data` is NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_cmp(
    _ctxt: *mut memcache_ctxt,
    buf: *const memcache_buf,
    data: *const c_char,
    len: size_t,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf, data);
        // SAFETY: buf is a live buffer, only read; data is readable for len bytes, and viewed only
        // once the identity and the lengths have been checked.
        unsafe {
            if ptr::eq((*buf).ptr, data) {
                return 1;
            }
            let bytes = used_bytes(buf);
            if bytes.len() != len {
                return 0;
            }
            equal(bytes, caller_bytes(data, len))
        }
    })
}

/// Tells whether the used bytes of `buf` equal the C string `cstr` (without its NUL), as
/// mcm_buf_cmp() with `strlen(cstr)`.
///
/// Returns 1 when equal (or `cstr` is `buf->ptr`), 0 when different or when `buf` or `cstr` is
/// NULL.
///
/// # Safety
/// `buf` is NULL or a live buffer; `cstr` is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_cmp2(
    _ctxt: *mut memcache_ctxt,
    buf: *const memcache_buf,
    cstr: *const c_char,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf, cstr);
        // SAFETY: buf is a live buffer; cstr is a C string; both only read.
        unsafe {
            if ptr::eq((*buf).ptr, cstr) {
                return 1;
            }
            equal(used_bytes(buf), cstr_bytes(cstr))
        }
    })
}

/// Tells whether the used bytes of `a` and `b` are equal, as mcm_buf_cmp().
///
/// Returns 1 when equal (always when `a` and `b` are the same buffer), 0 when different or when
/// `a` or `b` is NULL.
///
/// # Safety
/// `a` and `b` are NULL or live buffers.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_cmp_buf(
    _ctxt: *mut memcache_ctxt,
    a: *const memcache_buf,
    b: *const memcache_buf,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; a, b);
        if ptr::eq(a, b) {
            return 1;
        }
        // SAFETY: a and b are live buffers, only read.
        unsafe { equal(used_bytes(a), used_bytes(b)) }
    })
}

/// Tells whether the used bytes of `buf` end with the `len` bytes at `data`, with the 1/0
/// convention of mcm_buf_cmp().
///
/// Returns 1 if they do (always for `len` 0), 0 if not (`len` longer than the contents, or
/// different bytes) or when `buf` or `data` is NULL.
///
/// # Safety
/// `buf` is NULL or a live buffer; `data` is NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_end(
    _ctxt: *mut memcache_ctxt,
    buf: *const memcache_buf,
    data: *const c_char,
    len: size_t,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf, data);
        // SAFETY: buf is a live buffer; data is readable for len bytes; both only read.
        unsafe { ends_with(used_bytes(buf), caller_bytes(data, len)) }
    })
}

/// Tells whether the used bytes of `buf` end with the C string `cstr`, as mcm_buf_end().
///
/// Returns 1 or 0; 0 when `buf` or `cstr` is NULL.
///
/// # Safety
/// `buf` is NULL or a live buffer; `cstr` is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_end2(
    _ctxt: *mut memcache_ctxt,
    buf: *const memcache_buf,
    cstr: *const c_char,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf, cstr);
        // SAFETY: buf is a live buffer; cstr is a C string; both only read.
        unsafe { ends_with(used_bytes(buf), cstr_bytes(cstr)) }
    })
}

/// Tells whether the used bytes of `buf` end with the used bytes of `suffix`, as mcm_buf_end().
///
/// Returns 1 or 0; 0 when `buf` or `suffix` is NULL.
///
/// # Safety
/// `buf` and `suffix` are NULL or live buffers.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_end_buf(
    _ctxt: *mut memcache_ctxt,
    buf: *const memcache_buf,
    suffix: *mut memcache_buf,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf, suffix);
        // SAFETY: buf and suffix are live buffers, only read.
        unsafe { ends_with(used_bytes(buf), used_bytes(suffix)) }
    })
}

// ---- searching ----

/// Finds the first occurrence of the used bytes of `needle` in the used bytes of `buf` (the whole
/// contents, ignoring the read cursor).
///
/// Returns a pointer to it inside `buf` (`buf->ptr` for an empty needle), NULL when there is none
/// or `buf` or `needle` is NULL. Borrowed: points into `buf`, valid until `buf` is next written
/// or freed.
///
/// # Safety
/// `buf` and `needle` are NULL or live buffers.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_find_buf(
    _ctxt: *mut memcache_ctxt,
    buf: *const memcache_buf,
    needle: *const memcache_buf,
) -> *mut c_char {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); buf, needle);
        // SAFETY: buf and needle are live buffers, only read.
        unsafe { find_in(buf, used_bytes(needle)) }
    })
}

/// Finds the first occurrence of the C string `cstr` (without its NUL) in the used bytes of
/// `buf`, as mcm_buf_find_buf().
///
/// Returns a pointer into `buf`, or NULL when there is none or `buf` or `cstr` is NULL.
/// Borrowed: points into `buf`, valid until `buf` is next written or freed.
///
/// # Safety
/// `buf` is NULL or a live buffer; `cstr` is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_find(
    _ctxt: *mut memcache_ctxt,
    buf: *const memcache_buf,
    cstr: *const c_char,
) -> *mut c_char {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); buf, cstr);
        // SAFETY: buf is a live buffer; cstr is a C string; both only read.
        unsafe { find_in(buf, cstr_bytes(cstr)) }
    })
}

/// Finds the first occurrence of the `len` bytes at `data` in the used bytes of `buf`, as
/// mcm_buf_find_buf().
///
/// Returns a pointer into `buf`, or NULL when there is none or `buf` or `data` is NULL.
/// Borrowed: points into `buf`, valid until `buf` is next written or freed.
///
/// # Safety
/// `buf` is NULL or a live buffer; `data` is NULL or readable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_find2(
    _ctxt: *mut memcache_ctxt,
    buf: *const memcache_buf,
    data: *const c_char,
    len: size_t,
) -> *mut c_char {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); buf, data);
        // SAFETY: buf is a live buffer; data is readable for len bytes; both only read.
        unsafe { find_in(buf, caller_bytes(data, len)) }
    })
}

/// Builds a NEW buffer: the used bytes of `buf` with every occurrence of the used bytes of `find`
/// replaced by the used bytes of `replace`, scanning left to right without overlap. `buf` is left
/// unchanged; an empty `find` matches nothing (the result is a copy).
///
/// Returns the new buffer, or NULL when an argument is NULL or the allocator fails. Caller owns
/// the returned buffer; release it with mcm_buf_free().
///
/// # Safety
/// `ctxt` is NULL or a live context; `buf`, `find` and `replace` are NULL or live buffers.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_find_replace(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
    find: *mut memcache_buf,
    replace: *mut memcache_buf,
) -> *mut memcache_buf {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); buf, find, replace);
        // SAFETY: ctxt is NULL or live; the three buffers are live and only read.
        unsafe { find_replace_in(ctxt, buf, used_bytes(find), replace) }
    })
}

/// Builds a NEW buffer from `buf` with every occurrence of the C string `find` replaced by the
/// used bytes of `replace`, as mcm_buf_find_replace().
///
/// Returns the new buffer, or NULL when an argument is NULL or the allocator fails. Caller owns
/// the returned buffer; release it with mcm_buf_free().
///
/// # Safety
/// `ctxt` is NULL or a live context; `buf` and `replace` are NULL or live buffers; `find` is NULL
/// or a C string.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_find_replace2(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
    find: *const c_char,
    replace: *mut memcache_buf,
) -> *mut memcache_buf {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); buf, find, replace);
        // SAFETY: ctxt is NULL or live; buf and replace are live buffers and find a C string, all
        // only read.
        unsafe { find_replace_in(ctxt, buf, cstr_bytes(find), replace) }
    })
}

// ---- sizes and the read cursor ----

/// The number of used bytes of `buf`.
///
/// Returns `buf->len` (saturated at 4294967295), or 0 when `buf` is NULL.
///
/// # Safety
/// `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_len(_ctxt: *const memcache_ctxt, buf: *const memcache_buf) -> u32 {
    ffi_body!(0, {
        check_null!(0; buf);
        // SAFETY: buf is a live buffer; one field is read.
        let (_, len) = unsafe { parts(buf) };
        u32::try_from(len).unwrap_or(u32::MAX)
    })
}

/// The free space of `buf`, as 1.4 counted it: `size` includes the byte the terminating NUL
/// occupies, so `remain - 1` more bytes can be appended before the storage must grow.
///
/// Returns `buf->size - buf->len`, or 0 when `buf` is NULL.
///
/// # Safety
/// `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_remain(
    _ctxt: *const memcache_ctxt,
    buf: *const memcache_buf,
) -> size_t {
    ffi_body!(0, {
        check_null!(0; buf);
        // SAFETY: buf is a live buffer; two fields are read.
        let (size, len) = unsafe { ((*buf).size, (*buf).len) };
        size.saturating_sub(len)
    })
}

/// The number of used bytes after the read cursor. The buffer is `const`, so this only reads
/// (`MCM_BUF_OFF_USED` is set by the calls that move the cursor).
///
/// Returns `buf->len - buf->off`, or 0 when `buf` is NULL.
///
/// # Safety
/// `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_remain_off(
    _ctxt: *const memcache_ctxt,
    buf: *const memcache_buf,
) -> size_t {
    ffi_body!(0, {
        check_null!(0; buf);
        // SAFETY: buf is a live buffer; two fields are read.
        let (len, off) = unsafe { ((*buf).len, (*buf).off) };
        len.saturating_sub(off)
    })
}

/// Moves the read cursor of `buf` past the next line end (`\n`, which ends `\r\n` too) at or after
/// it, and sets `MCM_BUF_OFF_USED`. Without a whole line after the cursor nothing changes.
///
/// Returns nothing; a NULL `buf` is ignored.
///
/// # Safety
/// `ctxt` is NULL or the context `buf` was created with; `buf` is NULL or a live buffer.
#[no_mangle]
#[allow(clippy::unused_unit)] // check_null!((); ..) is how a void function fails
pub unsafe extern "C" fn mcm_buf_eat_line(ctxt: *mut memcache_ctxt, buf: *mut memcache_buf) {
    ffi_body!((), {
        check_null!((); buf);
        // SAFETY: buf is a live buffer of ctxt, ours for the call.
        unsafe { with_buf(ctxt, buf, |b| b.eat_line()) }
    })
}

/// Fits the storage of `buf` to its contents: mcm_buf_realloc() with `len + 1`, so `size`
/// becomes `len + 1` (a buffer of length 1 ends with `size` 2). The contents, `off` and `flags`
/// are kept.
///
/// Returns 1 on success, 0 when `buf` is NULL or the allocator fails (`buf` is then unchanged).
///
/// # Safety
/// `ctxt` is NULL or the context `buf` was created with; `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_compact(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf);
        // SAFETY: buf is a live buffer of ctxt, ours for the call.
        let done = unsafe { with_buf(ctxt, buf, |b| b.compact()) };
        c_int::from(done)
    })
}

/// Empties `buf`: `off` becomes 0, the `MCM_BUF_OFF_USED` flag is cleared (other `flags` bits
/// are kept), `len` becomes 0 and `ptr[0]` NUL. The storage and `size` are kept.
///
/// Returns 1, or 0 when `buf` is NULL.
///
/// # Safety
/// `ctxt` is NULL or the context `buf` was created with; `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_reset(ctxt: *mut memcache_ctxt, buf: *mut memcache_buf) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf);
        // SAFETY: buf is a live buffer of ctxt, ours for the call.
        unsafe { with_buf(ctxt, buf, |b| b.reset()) };
        1
    })
}

/// Calls read(2) once on `fd`, appending what it returns to `buf` (at most `remain - 1` bytes:
/// the NUL keeps its byte). A full buffer first drops the bytes before the read cursor (when
/// `MCM_BUF_OFF_USED` is set: the rest moves to the front and the cursor is rewound), then grows
/// by doubling if it is still full.
///
/// Returns the number of bytes read; 0 on end of file, on a read(2) error (`errno` is left as
/// read(2) set it), when `buf` is NULL or when the storage cannot grow.
///
/// # Safety
/// `ctxt` is NULL or the context `buf` was created with; `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_read(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
    fd: c_int,
) -> size_t {
    ffi_body!(0, {
        check_null!(0; buf);
        // SAFETY: buf is a live buffer of ctxt, ours for the call.
        unsafe { with_buf(ctxt, buf, |b| b.read_from(fd)) }
    })
}

/// Sets the storage of `buf` to `size` bytes (the terminating NUL's byte included), as 1.4 did:
/// - `size` 0, or equal to `buf->size`: nothing changes;
/// - a buffer without storage (`buf->size` 0): a block from the context's `mcMalloc(size)`;
/// - larger than `buf->size`: grows with `mcRealloc` to `max(size, 2 * buf->size)`;
/// - smaller: shrinks with `mcRealloc` to exactly `size`. Contents that no longer fit with their
///   NUL are dropped (`len` becomes `size - 1`, `off` at most that).
///
/// The contents stay NUL-terminated.
///
/// Returns 1 on success (including the cases that change nothing), 0 when `buf` is NULL or the
/// allocator fails (`buf` is then unchanged).
///
/// # Safety
/// `ctxt` is NULL or the context `buf` was created with; `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_realloc(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
    size: u32,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf);
        // SAFETY: buf is a live buffer of ctxt, ours for the call.
        let done = unsafe { with_buf(ctxt, buf, |b| b.realloc(size as usize)) };
        c_int::from(done)
    })
}

/// Sets the length of `buf` to `size`: mcm_buf_realloc() with `size + 1`, then `len = size`, so
/// the logical length shortens or lengthens (a 4-byte buffer resized to 2 has `len` 2 and `size`
/// 3). Bytes that lengthening exposes are zeroed, `ptr[size]` is NUL, and a read cursor past the
/// new end moves back to it.
///
/// Returns 1 on success, 0 when `buf` is NULL or the allocator fails (`buf` is then unchanged).
///
/// # Safety
/// `ctxt` is NULL or the context `buf` was created with; `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_resize(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
    size: u32,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; buf);
        // SAFETY: buf is a live buffer of ctxt, ours for the call.
        let done = unsafe { with_buf(ctxt, buf, |b| b.resize(size as usize)) };
        c_int::from(done)
    })
}

// ---- access ----

/// The NUL that ends the contents of `buf`: `buf->ptr + buf->len`, where the next bytes go.
/// A buffer without storage is first given a 1-byte block (just the NUL) from `mcMalloc`.
///
/// Returns that pointer, or NULL when `buf` is NULL or the allocator fails. Borrowed: points into
/// `buf`, valid until `buf` is next written or freed.
///
/// # Safety
/// `ctxt` is NULL or the context `buf` was created with; `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_tail(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
) -> *mut c_char {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); buf);
        // SAFETY: buf is a live buffer of ctxt, ours for the call.
        unsafe {
            with_buf(ctxt, buf, |b| {
                let base = b.storage();
                if base.is_null() {
                    base
                } else {
                    base.wrapping_add(b.buf.len)
                }
            })
        }
    })
}

/// The contents of `buf` as a NUL-terminated string (`buf->ptr`; it may hold earlier NULs).
/// A buffer without storage is first given a 1-byte block (just the NUL) from `mcMalloc`.
///
/// Returns `buf->ptr`, or NULL when `buf` is NULL or the allocator fails. Borrowed: points into
/// `buf`, valid until `buf` is next written or freed.
///
/// # Safety
/// `ctxt` is NULL or the context `buf` was created with; `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_to_cstr(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
) -> *mut c_char {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); buf);
        // SAFETY: buf is a live buffer of ctxt, ours for the call.
        unsafe { with_buf(ctxt, buf, |b| b.storage()) }
    })
}

/// Converts the used bytes of `buf` to upper case in place (ASCII letters only; other bytes are
/// kept).
///
/// Returns `buf`, or NULL when `buf` is NULL.
///
/// # Safety
/// `ctxt` is NULL or the context `buf` was created with; `buf` is NULL or a live buffer.
#[no_mangle]
pub unsafe extern "C" fn mcm_buf_to_upper(
    ctxt: *mut memcache_ctxt,
    buf: *mut memcache_buf,
) -> *mut memcache_buf {
    ffi_body!(ptr::null_mut(), {
        check_null!(ptr::null_mut(); buf);
        // SAFETY: buf is a live buffer of ctxt, ours for the call.
        unsafe { with_buf(ctxt, buf, |b| b.used_mut().make_ascii_uppercase()) };
        buf
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    const LIBC: *mut memcache_ctxt = ptr::null_mut();

    /// The used bytes of `b`, after checking the invariant: storage present, `len < size` (the
    /// NUL's byte is part of `size`), `off <= len` and the NUL at `ptr[len]`.
    ///
    /// # Safety
    /// `b` is a live buffer.
    unsafe fn contents(b: *const memcache_buf) -> Vec<u8> {
        // SAFETY: every test passes a buffer it just got non-NULL from mcm_buf_new* or
        // mcm_buf_copy and has not freed; by the invariant its storage holds size > len bytes.
        unsafe {
            let r = &*b;
            assert!(!r.ptr.is_null(), "no storage");
            assert!(r.len < r.size, "len {} >= size {}", r.len, r.size);
            assert!(r.off <= r.len, "off {} > len {}", r.off, r.len);
            assert_eq!(*r.ptr.add(r.len), 0, "not NUL-terminated");
            slice::from_raw_parts(r.ptr as *const u8, r.len).to_vec()
        }
    }

    /// Frees `b` and checks that the pointer was cleared.
    ///
    /// # Safety
    /// `b` is a live buffer of `ctxt`, not used afterwards.
    unsafe fn release(ctxt: *mut memcache_ctxt, mut b: *mut memcache_buf) {
        // SAFETY: b is a live buffer the test created with ctxt and does not use afterwards; &mut b
        // is a local.
        assert_eq!(unsafe { mcm_buf_free(ctxt, &mut b) }, 1);
        assert!(b.is_null());
    }

    #[test]
    fn byte_logic() {
        assert_eq!(equal(b"abc", b"abc"), 1);
        assert_eq!(equal(b"abc", b"abd"), 0);
        assert_eq!(equal(b"ab", b"abc"), 0);
        assert_eq!(equal(b"abc", b"ab"), 0);
        assert_eq!(equal(b"", b""), 1);
        assert_eq!(ends_with(b"abc", b"bc"), 1);
        assert_eq!(ends_with(b"abc", b""), 1);
        assert_eq!(ends_with(b"bc", b"abc"), 0);
        assert_eq!(find(b"hello", b"ll"), Some(2));
        assert_eq!(find(b"hello", b""), Some(0));
        assert_eq!(find(b"", b"x"), None);
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(replace_all(b"aaaa", b"aa", b"b"), b"bb");
        assert_eq!(replace_all(b"aaa", b"aa", b"xyz"), b"xyza");
        assert_eq!(replace_all(b"abc", b"", b"x"), b"abc");
        assert_eq!(line_end(b"ab\r\ncd\n", 0), Some(4));
        assert_eq!(line_end(b"ab\r\ncd\n", 4), Some(7));
        assert_eq!(line_end(b"ab\r\ncd\n", 7), None);
        assert_eq!(line_end(b"ab", 99), None);
        assert!(overlaps(10, 5, 14, 1));
        assert!(!overlaps(10, 5, 15, 1));
        assert!(!overlaps(10, 0, 10, 5));
    }

    #[test]
    fn growth_across_many_appends() {
        // SAFETY: every buffer here comes from mcm_buf_new* with the libc allocator, every byte
        // pointer is a live Rust slice or C string, and each buffer is freed once.
        unsafe {
            let b = mcm_buf_new(LIBC);
            assert!(!b.is_null());
            assert_eq!(contents(b), b"");
            assert_eq!((*b).size, INIT_GET_BUF_SIZE);
            let mut model = Vec::new();
            let mut sizes = vec![(*b).size];
            for i in 0..5000u32 {
                let chunk = format!("{i},");
                match i % 3 {
                    0 => {
                        let n = chunk.len() as u32;
                        assert_eq!(mcm_buf_append(LIBC, b, chunk.as_ptr().cast(), n), 1);
                        model.extend_from_slice(chunk.as_bytes());
                    }
                    1 => {
                        let c = std::ffi::CString::new(chunk.clone()).unwrap();
                        assert_eq!(mcm_buf_append2(LIBC, b, c.as_ptr()), 1);
                        model.extend_from_slice(chunk.as_bytes());
                    }
                    _ => {
                        assert_eq!(mcm_buf_append_char(LIBC, b, b'x' as c_char), 1);
                        model.push(b'x');
                    }
                }
                assert_eq!(contents(b), model);
                if *sizes.last().unwrap() != (*b).size {
                    sizes.push((*b).size);
                }
            }
            // Doubling: each new capacity is at least twice the previous one.
            assert!(sizes.windows(2).all(|w| w[1] >= 2 * w[0]), "{sizes:?}");
            assert!(sizes.len() < 16, "{sizes:?}");
            assert_eq!(mcm_buf_len(LIBC, b) as usize, model.len());
            assert_eq!(mcm_buf_remain(LIBC, b), (*b).size - model.len());
            // A NUL byte is content like any other.
            assert_eq!(mcm_buf_append_char(LIBC, b, 0), 1);
            model.push(0);
            assert_eq!(contents(b), model);
            release(LIBC, b);
        }
    }

    #[test]
    fn new_variants_and_copy() {
        // SAFETY: as in growth_across_many_appends.
        unsafe {
            let b2 = mcm_buf_new2(LIBC, b"a\0b".as_ptr().cast(), 3);
            assert_eq!(contents(b2), b"a\0b");
            assert_eq!((*b2).size, INIT_GET_BUF_SIZE);
            let b3 = mcm_buf_new3(LIBC, c"hello".as_ptr());
            assert_eq!(contents(b3), b"hello");
            let empty = mcm_buf_new2(LIBC, c"".as_ptr(), 0);
            assert_eq!(contents(empty), b"");

            mcm_buf_eat_line(LIBC, b3); // no line: unchanged
            assert_eq!((*b3).off, 0);
            assert_eq!(mcm_buf_append2(LIBC, b3, c"\nrest".as_ptr()), 1);
            mcm_buf_eat_line(LIBC, b3);
            assert_eq!((*b3).off, 6);
            // A copy is mcm_buf_new2() of the bytes: its own cursor and size.
            assert_eq!(mcm_buf_compact(LIBC, b3), 1);
            let copy = mcm_buf_copy(LIBC, b3);
            assert_eq!(contents(copy), b"hello\nrest");
            assert_eq!(((*copy).off, (*copy).flags), (0, 0));
            assert_eq!((*copy).size, INIT_GET_BUF_SIZE);
            assert_ne!((*copy).ptr, (*b3).ptr);
            // Independent storage.
            assert_eq!(mcm_buf_append_char(LIBC, copy, b'!' as c_char), 1);
            assert_eq!(contents(b3), b"hello\nrest");
            assert_eq!(contents(copy), b"hello\nrest!");
            for b in [b2, b3, empty, copy] {
                release(LIBC, b);
            }
        }
    }

    #[test]
    fn compare_and_end() {
        // SAFETY: as in growth_across_many_appends.
        unsafe {
            let b = mcm_buf_new3(LIBC, c"VALUE key 0 5\r\n".as_ptr());
            let same = mcm_buf_new3(LIBC, c"VALUE key 0 5\r\n".as_ptr());
            let suffix = mcm_buf_new3(LIBC, c"\r\n".as_ptr());
            assert_eq!(mcm_buf_cmp(LIBC, b, c"VALUE key 0 5\r\n".as_ptr(), 15), 1);
            assert_eq!(mcm_buf_cmp(LIBC, b, c"VALUE".as_ptr(), 5), 0);
            assert_eq!(mcm_buf_cmp(LIBC, b, c"VALUE key 0 6\r\n".as_ptr(), 15), 0);
            assert_eq!(mcm_buf_cmp(LIBC, b, c"W".as_ptr(), 1), 0);
            // Its own storage is equal whatever the length says.
            assert_eq!(mcm_buf_cmp(LIBC, b, (*b).ptr, 3), 1);
            assert_eq!(mcm_buf_cmp2(LIBC, b, c"VALUE key 0 5\r\n".as_ptr()), 1);
            assert_eq!(mcm_buf_cmp2(LIBC, b, c"VALUE key 0 5\r\nmore".as_ptr()), 0);
            assert_eq!(mcm_buf_cmp2(LIBC, b, (*b).ptr), 1);
            assert_eq!(mcm_buf_cmp_buf(LIBC, b, same), 1);
            assert_eq!(mcm_buf_cmp_buf(LIBC, b, b), 1);
            assert_eq!(mcm_buf_cmp_buf(LIBC, suffix, b), 0);
            assert_eq!(mcm_buf_end(LIBC, b, c"5\r\n".as_ptr(), 3), 1);
            assert_eq!(mcm_buf_end(LIBC, b, c"".as_ptr(), 0), 1);
            assert_eq!(mcm_buf_end(LIBC, b, c"5\r".as_ptr(), 2), 0);
            assert_eq!(mcm_buf_end2(LIBC, b, c"\r\n".as_ptr()), 1);
            assert_eq!(mcm_buf_end2(LIBC, b, c"x VALUE key 0 5\r\n".as_ptr()), 0);
            assert_eq!(mcm_buf_end_buf(LIBC, b, suffix), 1);
            assert_eq!(mcm_buf_end_buf(LIBC, suffix, b), 0);
            for b in [b, same, suffix] {
                release(LIBC, b);
            }
        }
    }

    #[test]
    fn find_family() {
        // SAFETY: as in growth_across_many_appends.
        unsafe {
            let b = mcm_buf_new2(LIBC, b"ab\0cd\0cd".as_ptr().cast(), 8);
            let base = (*b).ptr;
            assert_eq!(mcm_buf_find(LIBC, b, c"b".as_ptr()), base.add(1));
            assert_eq!(mcm_buf_find(LIBC, b, c"".as_ptr()), base);
            assert!(mcm_buf_find(LIBC, b, c"x".as_ptr()).is_null());
            // find2 sees past embedded NULs.
            assert_eq!(
                mcm_buf_find2(LIBC, b, b"\0cd".as_ptr().cast(), 3),
                base.add(2)
            );
            assert!(mcm_buf_find2(LIBC, b, b"cd\0cdx".as_ptr().cast(), 6).is_null());
            let needle = mcm_buf_new3(LIBC, c"cd".as_ptr());
            assert_eq!(mcm_buf_find_buf(LIBC, b, needle), base.add(3));
            assert_eq!(mcm_buf_find_buf(LIBC, b, b), base);
            release(LIBC, needle);
            release(LIBC, b);
        }
    }

    #[test]
    fn find_replace() {
        // SAFETY: as in growth_across_many_appends.
        unsafe {
            let b = mcm_buf_new3(LIBC, c"get a\r\nget b\r\nget".as_ptr());
            let find = mcm_buf_new3(LIBC, c"get".as_ptr());
            let longer = mcm_buf_new3(LIBC, c"gets".as_ptr());
            let empty = mcm_buf_new(LIBC);

            let r = mcm_buf_find_replace(LIBC, b, find, longer);
            assert_eq!(contents(r), b"gets a\r\ngets b\r\ngets");
            let r2 = mcm_buf_find_replace2(LIBC, b, c"\r\n".as_ptr(), empty);
            assert_eq!(contents(r2), b"get aget bget");
            let none = mcm_buf_find_replace2(LIBC, b, c"zzz".as_ptr(), longer);
            assert_eq!(contents(none), b"get a\r\nget b\r\nget");
            let empty_pat = mcm_buf_find_replace(LIBC, b, empty, longer);
            assert_eq!(contents(empty_pat), b"get a\r\nget b\r\nget");
            // Arguments may alias: replacing the whole buffer by itself.
            let same = mcm_buf_find_replace(LIBC, b, b, b);
            assert_eq!(contents(same), b"get a\r\nget b\r\nget");
            // The source is untouched.
            assert_eq!(contents(b), b"get a\r\nget b\r\nget");
            assert!(mcm_buf_find_replace(LIBC, b, find, ptr::null_mut()).is_null());
            assert!(mcm_buf_find_replace2(LIBC, b, ptr::null(), longer).is_null());
            for x in [b, find, longer, empty, r, r2, none, empty_pat, same] {
                release(LIBC, x);
            }
        }
    }

    #[test]
    fn eat_line_with_off_and_compact() {
        // SAFETY: as in growth_across_many_appends.
        unsafe {
            let b = mcm_buf_new3(LIBC, c"VALUE k 0 1\r\nx\nEND".as_ptr());
            assert_eq!(mcm_buf_remain_off(LIBC, b), 18);
            mcm_buf_eat_line(LIBC, b);
            assert_eq!((*b).off, 13);
            assert_eq!((*b).flags & MCM_BUF_OFF_USED, MCM_BUF_OFF_USED);
            assert_eq!(mcm_buf_remain_off(LIBC, b), 5);
            mcm_buf_eat_line(LIBC, b);
            assert_eq!((*b).off, 15);
            // "END" has no line end yet: the cursor stays.
            mcm_buf_eat_line(LIBC, b);
            assert_eq!((*b).off, 15);
            assert_eq!(contents(b), b"VALUE k 0 1\r\nx\nEND");
            // Compacting fits the storage to the contents; the cursor stays.
            assert_eq!((*b).size, INIT_GET_BUF_SIZE);
            assert_eq!(mcm_buf_compact(LIBC, b), 1);
            assert_eq!(contents(b), b"VALUE k 0 1\r\nx\nEND");
            assert_eq!((*b).size, 19);
            assert_eq!(((*b).off, (*b).flags), (15, MCM_BUF_OFF_USED));
            assert_eq!(mcm_buf_remain_off(LIBC, b), 3);
            assert_eq!(mcm_buf_remain(LIBC, b), 1);
            // A compact buffer grows on the next append.
            assert_eq!(mcm_buf_append2(LIBC, b, c"\r\n".as_ptr()), 1);
            assert_eq!((*b).size, 38);
            mcm_buf_eat_line(LIBC, b);
            assert_eq!(mcm_buf_remain_off(LIBC, b), 0);
            assert_eq!(mcm_buf_compact(LIBC, b), 1);
            assert_eq!((*b).size, 21);
            // Compacting a compact buffer changes nothing.
            assert_eq!(mcm_buf_replace2(LIBC, b, c"abc".as_ptr()), 1);
            assert_eq!(mcm_buf_compact(LIBC, b), 1);
            assert_eq!(((*b).size, (*b).off), (4, 0));
            assert_eq!(mcm_buf_compact(LIBC, b), 1);
            assert_eq!(contents(b), b"abc");
            assert_eq!((*b).size, 4);
            release(LIBC, b);
        }
    }

    #[test]
    fn replace_family_and_self_aliasing() {
        // SAFETY: as in growth_across_many_appends; aliasing arguments point into live buffers.
        unsafe {
            let b = mcm_buf_new3(LIBC, c"0123456789".as_ptr());
            mcm_buf_eat_line(LIBC, b); // no line: off stays 0
            assert_eq!(mcm_buf_replace(LIBC, b, c"abc".as_ptr(), 3), 1);
            assert_eq!(contents(b), b"abc");
            assert_eq!(mcm_buf_replace2(LIBC, b, c"line\nrest".as_ptr()), 1);
            mcm_buf_eat_line(LIBC, b);
            assert_eq!((*b).off, 5);
            // Replace rewinds the cursor.
            let other = mcm_buf_new3(LIBC, c"other".as_ptr());
            assert_eq!(mcm_buf_replace_buf(LIBC, b, other), 1);
            assert_eq!(contents(b), b"other");
            assert_eq!(((*b).off, (*b).flags), (0, 0));
            // Sources inside the destination itself.
            assert_eq!(mcm_buf_replace(LIBC, b, (*b).ptr.add(2), 3), 1);
            assert_eq!(contents(b), b"her");
            assert_eq!(mcm_buf_replace_buf(LIBC, b, b), 1);
            assert_eq!(contents(b), b"her");
            for _ in 0..6 {
                assert_eq!(mcm_buf_append_buf(LIBC, b, b), 1); // doubles, growing past capacity
            }
            assert_eq!(contents(b), b"her".repeat(64));
            let n = (*b).len as u32;
            assert_eq!(mcm_buf_append(LIBC, b, (*b).ptr, n), 1);
            assert_eq!(contents(b), b"her".repeat(128));
            assert_eq!(mcm_buf_append2(LIBC, b, (*b).ptr.add(382)), 1);
            assert_eq!(contents(b), [b"her".repeat(128), b"er".to_vec()].concat());
            release(LIBC, other);
            release(LIBC, b);
        }
    }

    #[test]
    fn realloc_resize_reset_tail_cstr_upper() {
        // SAFETY: as in growth_across_many_appends.
        unsafe {
            let b = mcm_buf_new3(LIBC, c"Hello, wOrld! \xe9\x01z".as_ptr());
            assert_eq!(mcm_buf_to_upper(LIBC, b), b);
            assert_eq!(contents(b), b"HELLO, WORLD! \xe9\x01Z");
            assert_eq!(mcm_buf_tail(LIBC, b), (*b).ptr.add(17));
            assert_eq!(*mcm_buf_tail(LIBC, b), 0);
            assert_eq!(mcm_buf_to_cstr(LIBC, b), (*b).ptr);
            assert_eq!(
                CStr::from_ptr(mcm_buf_to_cstr(LIBC, b)).to_bytes().len(),
                17
            );

            // realloc: shrinks to exactly n, changes nothing for 0 or the current size, grows
            // to max(n, 2 * size).
            assert_eq!(mcm_buf_realloc(LIBC, b, 1000), 1);
            assert_eq!((*b).size, 1000);
            assert_eq!(mcm_buf_remain(LIBC, b), 983);
            assert_eq!(mcm_buf_realloc(LIBC, b, 0), 1);
            assert_eq!(mcm_buf_realloc(LIBC, b, 1000), 1);
            assert_eq!((*b).size, 1000);
            assert_eq!(mcm_buf_realloc(LIBC, b, 1001), 1);
            assert_eq!((*b).size, 2000);
            assert_eq!(mcm_buf_realloc(LIBC, b, 5000), 1);
            assert_eq!((*b).size, 5000);
            assert_eq!(mcm_buf_realloc(LIBC, b, 18), 1); // exactly the contents and the NUL
            assert_eq!((*b).size, 18);
            assert_eq!(mcm_buf_remain(LIBC, b), 1);
            assert_eq!(contents(b), b"HELLO, WORLD! \xe9\x01Z");
            // Shrinking below the contents drops what no longer fits with the NUL.
            assert_eq!(mcm_buf_realloc(LIBC, b, 16), 1);
            assert_eq!((*b).size, 16);
            assert_eq!(contents(b), b"HELLO, WORLD! \xe9");
            // resize: realloc(n + 1), then len = n, lengthening with zeroes.
            assert_eq!(mcm_buf_resize(LIBC, b, 100), 1);
            assert_eq!(((*b).len, (*b).size), (100, 101));
            assert_eq!(
                contents(b),
                [b"HELLO, WORLD! \xe9".to_vec(), vec![0; 85]].concat()
            );
            assert_eq!(mcm_buf_resize(LIBC, b, 5), 1);
            assert_eq!(((*b).len, (*b).size), (5, 6));
            assert_eq!(contents(b), b"HELLO");
            assert_eq!(mcm_buf_append2(LIBC, b, c", WORLD! \xe9\x01Z".as_ptr()), 1);
            assert_eq!(contents(b), b"HELLO, WORLD! \xe9\x01Z");
            assert_eq!((*b).size, 18);
            assert_eq!(mcm_buf_realloc(LIBC, b, 100), 1);

            mcm_buf_eat_line(LIBC, b);
            assert_eq!(mcm_buf_append2(LIBC, b, c"\nx".as_ptr()), 1);
            mcm_buf_eat_line(LIBC, b);
            assert_ne!((*b).off, 0);
            (*b).flags |= 0x2; // a bit reset does not own
            assert_eq!(mcm_buf_reset(LIBC, b), 1);
            assert_eq!(contents(b), b"");
            assert_eq!(((*b).off, (*b).flags, (*b).size), (0, 0x2, 100));
            assert_eq!(*(*b).ptr, 0);
            assert_eq!(mcm_buf_tail(LIBC, b), (*b).ptr);
            assert_eq!(mcm_buf_to_upper(LIBC, b), b);
            release(LIBC, b);
        }
    }

    #[test]
    fn structure_zeroed_by_hand_gets_storage() {
        // SAFETY: the structure is zeroed (no storage), a valid empty buffer; its storage comes
        // from the libc allocator and is freed with it.
        unsafe {
            let b: *mut memcache_buf = libc::calloc(1, mem::size_of::<memcache_buf>()).cast();
            assert!(!b.is_null());
            assert_eq!(mcm_buf_len(LIBC, b), 0);
            assert!(mcm_buf_find(LIBC, b, c"x".as_ptr()).is_null());
            assert_eq!(mcm_buf_cmp2(LIBC, b, c"".as_ptr()), 1);
            assert_eq!(mcm_buf_cmp2(LIBC, b, c"x".as_ptr()), 0);
            // Appending nothing needs no storage.
            assert_eq!(mcm_buf_append(LIBC, b, c"".as_ptr(), 0), 1);
            assert!((*b).ptr.is_null());
            let s = mcm_buf_to_cstr(LIBC, b);
            assert!(!s.is_null());
            assert_eq!(*s, 0);
            assert_eq!((*b).size, 1);
            assert_eq!(mcm_buf_append2(LIBC, b, c"abc".as_ptr()), 1);
            assert_eq!(contents(b), b"abc");
            assert_eq!((*b).size, 4);
            release(LIBC, b);
        }
    }

    #[test]
    fn read_from_fd() {
        // SAFETY: as in growth_across_many_appends; fds come from pipe(2) and are closed here.
        unsafe {
            let mut fds = [0 as c_int; 2];
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            let [rd, wr] = fds;
            let data = b"line one\r\nline two\r\n".repeat(10);
            assert_eq!(
                libc::write(wr, data.as_ptr().cast(), data.len()),
                data.len() as isize
            );
            assert_eq!(libc::close(wr), 0);

            // A full buffer (no byte free besides the NUL's) grows before reading.
            let b = mcm_buf_new2(LIBC, c"abc".as_ptr(), 3);
            assert_eq!(mcm_buf_compact(LIBC, b), 1);
            assert_eq!((*b).size, 4);
            let mut model = b"abc".to_vec();
            loop {
                let before = (*b).len;
                let got = mcm_buf_read(LIBC, b, rd);
                if got == 0 {
                    break;
                }
                assert_eq!((*b).len, before + got);
                model.extend_from_slice(&data[model.len() - 3..][..got]);
                assert_eq!(contents(b), model);
            }
            assert_eq!(contents(b), [b"abc".to_vec(), data].concat());
            assert_eq!(mcm_buf_read(LIBC, b, rd), 0); // EOF
            assert_eq!(libc::close(rd), 0);
            assert_eq!(mcm_buf_read(LIBC, b, -1), 0); // read(2) error
            release(LIBC, b);

            // A full buffer whose cursor has consumed a line drops it instead of growing.
            let mut fds = [0 as c_int; 2];
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            let [rd, wr] = fds;
            assert_eq!(libc::write(wr, b"0123456789".as_ptr().cast(), 10), 10);
            let b = mcm_buf_new3(LIBC, c"done\nrest".as_ptr());
            mcm_buf_eat_line(LIBC, b);
            assert_eq!(mcm_buf_compact(LIBC, b), 1);
            assert_eq!(mcm_buf_read(LIBC, b, rd), 5);
            assert_eq!(contents(b), b"rest01234");
            assert_eq!(((*b).off, (*b).size), (0, 10));
            assert_eq!(libc::close(rd), 0);
            assert_eq!(libc::close(wr), 0);
            release(LIBC, b);
        }
    }

    #[test]
    fn null_arguments_return_the_failure_value() {
        let nb: *mut memcache_buf = ptr::null_mut();
        let ns: *const c_char = ptr::null();
        // SAFETY: every call gets at least one NULL pointer and must return before using any;
        // the other arguments are valid.
        unsafe {
            let b = mcm_buf_new3(LIBC, c"abc".as_ptr());
            let s = c"abc".as_ptr();
            assert!(mcm_buf_new2(LIBC, ns, 3).is_null());
            assert!(mcm_buf_new3(LIBC, ns).is_null());
            assert!(mcm_buf_copy(LIBC, nb).is_null());
            assert_eq!(mcm_buf_free(LIBC, ptr::null_mut()), 0);
            let mut none = nb;
            assert_eq!(mcm_buf_free(LIBC, &mut none), 0);
            assert_eq!(mcm_buf_append(LIBC, nb, s, 3), 0);
            assert_eq!(mcm_buf_append(LIBC, b, ns, 3), 0);
            assert_eq!(mcm_buf_append2(LIBC, nb, s), 0);
            assert_eq!(mcm_buf_append2(LIBC, b, ns), 0);
            assert_eq!(mcm_buf_append_buf(LIBC, nb, b), 0);
            assert_eq!(mcm_buf_append_buf(LIBC, b, nb), 0);
            assert_eq!(mcm_buf_append_char(LIBC, nb, 1), 0);
            assert_eq!(mcm_buf_replace(LIBC, nb, s, 3), 0);
            assert_eq!(mcm_buf_replace(LIBC, b, ns, 0), 0);
            assert_eq!(mcm_buf_replace2(LIBC, b, ns), 0);
            assert_eq!(mcm_buf_replace_buf(LIBC, b, nb), 0);
            assert_eq!(mcm_buf_replace_buf(LIBC, nb, b), 0);
            assert_eq!(mcm_buf_cmp(LIBC, nb, s, 3), 0);
            assert_eq!(mcm_buf_cmp(LIBC, b, ns, 0), 0);
            assert_eq!(mcm_buf_cmp2(LIBC, b, ns), 0);
            assert_eq!(mcm_buf_cmp2(LIBC, nb, s), 0);
            assert_eq!(mcm_buf_cmp_buf(LIBC, nb, nb), 0);
            assert_eq!(mcm_buf_cmp_buf(LIBC, b, nb), 0);
            assert_eq!(mcm_buf_end(LIBC, nb, s, 0), 0);
            assert_eq!(mcm_buf_end2(LIBC, b, ns), 0);
            assert_eq!(mcm_buf_end_buf(LIBC, b, nb), 0);
            assert!(mcm_buf_find(LIBC, nb, s).is_null());
            assert!(mcm_buf_find(LIBC, b, ns).is_null());
            assert!(mcm_buf_find2(LIBC, b, ns, 0).is_null());
            assert!(mcm_buf_find_buf(LIBC, nb, b).is_null());
            assert!(mcm_buf_find_replace(LIBC, nb, b, b).is_null());
            assert!(mcm_buf_find_replace2(LIBC, b, s, nb).is_null());
            assert_eq!(mcm_buf_len(LIBC, nb), 0);
            assert_eq!(mcm_buf_remain(LIBC, nb), 0);
            assert_eq!(mcm_buf_remain_off(LIBC, nb), 0);
            mcm_buf_eat_line(LIBC, nb);
            assert_eq!(mcm_buf_compact(LIBC, nb), 0);
            assert_eq!(mcm_buf_reset(LIBC, nb), 0);
            assert_eq!(mcm_buf_read(LIBC, nb, 0), 0);
            assert_eq!(mcm_buf_realloc(LIBC, nb, 10), 0);
            assert_eq!(mcm_buf_resize(LIBC, nb, 10), 0);
            assert!(mcm_buf_tail(LIBC, nb).is_null());
            assert!(mcm_buf_to_cstr(LIBC, nb).is_null());
            assert!(mcm_buf_to_upper(LIBC, nb).is_null());
            // b was never touched.
            assert_eq!(contents(b), b"abc");
            release(LIBC, b);
        }
    }

    static MALLOCS: AtomicUsize = AtomicUsize::new(0);
    static ATOMICS: AtomicUsize = AtomicUsize::new(0);
    static REALLOCS: AtomicUsize = AtomicUsize::new(0);
    static FREES: AtomicUsize = AtomicUsize::new(0);
    /// realloc(NULL) and free(NULL) calls, which host allocators crash on (spec §5.2).
    static NULLS: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn counting_malloc(n: size_t) -> *mut c_void {
        MALLOCS.fetch_add(1, SeqCst);
        // SAFETY: plain malloc.
        unsafe { libc::malloc(n) }
    }

    unsafe extern "C" fn counting_atomic(n: size_t) -> *mut c_void {
        ATOMICS.fetch_add(1, SeqCst);
        // SAFETY: plain malloc.
        unsafe { libc::malloc(n) }
    }

    unsafe extern "C" fn counting_realloc(p: *mut c_void, n: size_t) -> *mut c_void {
        REALLOCS.fetch_add(1, SeqCst);
        if p.is_null() {
            NULLS.fetch_add(1, SeqCst);
        }
        // SAFETY: p came from counting_malloc/realloc, i.e. libc.
        unsafe { libc::realloc(p, n) }
    }

    unsafe extern "C" fn counting_free(p: *mut c_void) {
        FREES.fetch_add(1, SeqCst);
        if p.is_null() {
            NULLS.fetch_add(1, SeqCst);
        }
        // SAFETY: p came from counting_malloc/realloc, i.e. libc.
        unsafe { libc::free(p) }
    }

    unsafe extern "C" fn failing_realloc(_p: *mut c_void, _n: size_t) -> *mut c_void {
        ptr::null_mut()
    }

    fn ctxt_with(
        realloc: unsafe extern "C" fn(*mut c_void, size_t) -> *mut c_void,
    ) -> memcache_ctxt {
        memcache_ctxt {
            mcFree: Some(counting_free),
            mcMalloc: Some(counting_malloc),
            mcMallocAtomic: Some(counting_atomic),
            mcRealloc: Some(realloc),
            mcErr: None,
            mcKeyValid: None,
            mcHashKey: None,
            mcServerFind: None,
            errnum: 0,
            _rbuf: ptr::null_mut(),
            _wbuf: ptr::null_mut(),
            _last_hash: 0,
            ectxt: ptr::null_mut(),
            md5fc9f4e2249ad88de0081136fef04defa: 0,
        }
    }

    /// The only test using the counting allocator, so the counters are its own.
    #[test]
    fn allocates_through_the_context() {
        let mut ctxt = ctxt_with(counting_realloc);
        let c = &mut ctxt as *mut memcache_ctxt;
        // SAFETY: c is a live context; every buffer here is created and freed with it.
        unsafe {
            let b = mcm_buf_new(c);
            assert_eq!(MALLOCS.load(SeqCst), 2); // structure and storage, both from mcMalloc
            for _ in 0..100_000 {
                assert_eq!(mcm_buf_append_char(c, b, b'a' as c_char), 1);
            }
            // Doubling from 4096: 8192, 16384, 32768, 65536, 131072.
            let reallocs = REALLOCS.load(SeqCst);
            assert_eq!(reallocs, 5, "{reallocs} reallocations");
            assert_eq!((*b).size, 131_072);
            let copy = mcm_buf_copy(c, b); // 4096 bytes, then one realloc to 100_001
            let pat = mcm_buf_new3(c, c"aa".as_ptr());
            let rep = mcm_buf_new2(c, c"b".as_ptr(), 1);
            let r = mcm_buf_find_replace(c, b, pat, rep);
            assert_eq!(contents(r), b"b".repeat(50_000));
            for x in [b, copy, pat, rep, r] {
                release(c, x);
            }
            assert_eq!(MALLOCS.load(SeqCst), 10);
            assert_eq!(ATOMICS.load(SeqCst), 0);
            assert_eq!(REALLOCS.load(SeqCst), 7); // b's 5, the copy's, the result's
            assert_eq!(FREES.load(SeqCst), 10);
            assert_eq!(NULLS.load(SeqCst), 0);
            // A structure zeroed by hand gets its storage from mcMalloc, and frees no NULL.
            let mut zeroed: *mut memcache_buf =
                libc::calloc(1, mem::size_of::<memcache_buf>()).cast();
            assert_eq!(mcm_buf_append2(c, zeroed, c"xyz".as_ptr()), 1);
            assert_eq!(((*zeroed).len, (*zeroed).size), (3, 4));
            assert_eq!((MALLOCS.load(SeqCst), REALLOCS.load(SeqCst)), (11, 7));
            assert_eq!(mcm_buf_free(c, &mut zeroed), 1);
            let mut bare: *mut memcache_buf =
                libc::calloc(1, mem::size_of::<memcache_buf>()).cast();
            assert_eq!(mcm_buf_free(c, &mut bare), 1);
            assert_eq!(FREES.load(SeqCst), 13);
            assert_eq!(NULLS.load(SeqCst), 0);
        }
    }

    #[test]
    fn allocation_failure_leaves_the_buffer_unchanged() {
        let mut ctxt = ctxt_with(failing_realloc);
        ctxt.mcMalloc = Some(libc::malloc);
        ctxt.mcMallocAtomic = Some(libc::malloc);
        ctxt.mcFree = Some(libc::free);
        let c = &mut ctxt as *mut memcache_ctxt;
        // SAFETY: c is a live context whose realloc always fails; the buffer is created and
        // freed with it.
        unsafe {
            // Full: 4095 bytes and the NUL in mcm_buf_new()'s 4096.
            let full = vec![b'a'; 4095];
            let b = mcm_buf_new2(c, full.as_ptr().cast(), 4095);
            assert_eq!((*b).size, INIT_GET_BUF_SIZE);
            assert_eq!(mcm_buf_append2(c, b, c"\n".as_ptr()), 0);
            assert_eq!(mcm_buf_append(c, b, c"d".as_ptr(), 1), 0);
            assert_eq!(mcm_buf_append_char(c, b, b'd' as c_char), 0);
            let longer = [full.clone(), b"d".to_vec()].concat();
            assert_eq!(mcm_buf_replace(c, b, longer.as_ptr().cast(), 4096), 0);
            assert_eq!(mcm_buf_realloc(c, b, 64), 0);
            assert_eq!(mcm_buf_realloc(c, b, 4097), 0);
            assert_eq!(mcm_buf_resize(c, b, 64), 0);
            assert_eq!(mcm_buf_resize(c, b, 4096), 0);
            assert_eq!(contents(b), full);
            assert_eq!((*b).size, INIT_GET_BUF_SIZE);
            // What needs no reallocation still works.
            assert_eq!(mcm_buf_compact(c, b), 1); // len + 1 == size already
            assert_eq!(mcm_buf_realloc(c, b, 0), 1);
            assert_eq!(mcm_buf_resize(c, b, 4095), 1);
            assert_eq!(mcm_buf_replace2(c, b, c"xy".as_ptr()), 1);
            assert_eq!(contents(b), b"xy");
            assert_eq!((*b).size, INIT_GET_BUF_SIZE);
            release(c, b);
        }
    }
}
