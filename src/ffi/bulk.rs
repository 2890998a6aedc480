//! Beyond 1.4: many writes in one call, an answer per key ([`crate::engine::bulk`]). The C
//! program fills an array of `struct memcache_bulk`; each item gets its `result`.

use libc::{c_char, c_int, c_void, size_t, time_t};

use super::context::global;
use super::error::{report, report_bad_key, Scope};
use super::operation::{begin, finish};
use super::route::{report_unreachable, Front};
use super::state;
use super::types::*;
use crate::engine::{self, Answer, BulkItems, BulkOp, Dialect};
use crate::key;
use crate::protocol::StoreCmd;

/// One key of a bulk call (beyond 1.4): what to write, and `result`, set by the call.
#[repr(C)]
pub struct memcache_bulk {
    pub key: *const c_char,
    pub key_len: size_t,
    /// The value of a store (not read for delete and touch); NULL only with `val_len` 0.
    pub val: *const c_void,
    pub val_len: size_t,
    /// The client flags of a store (32 bits, as memcached keeps them).
    pub flags: u32,
    /// The expiry of a store or a touch.
    pub exptime: time_t,
    /// Set by the call: one of the MC_BULK_* results.
    pub result: c_int,
}

/// mc_bulk() operations.
pub const MC_BULK_SET: c_int = 1;
pub const MC_BULK_ADD: c_int = 2;
pub const MC_BULK_REPLACE: c_int = 3;
pub const MC_BULK_APPEND: c_int = 4;
pub const MC_BULK_PREPEND: c_int = 5;
pub const MC_BULK_DELETE: c_int = 6;
pub const MC_BULK_TOUCH: c_int = 7;

/// `memcache_bulk.result`: stored, deleted or touched.
pub const MC_BULK_DONE: c_int = 0;
/// add of a key that exists; replace, append or prepend of one that does not.
pub const MC_BULK_NOT_STORED: c_int = 1;
/// The server refused the item (SERVER_ERROR, e.g. larger than its item size); reported.
pub const MC_BULK_REFUSED: c_int = 4;
/// delete or touch of a key that is not there.
pub const MC_BULK_NOT_FOUND: c_int = 6;
/// No server took the item, or its server failed before answering (reported); it may or may
/// not have been written.
pub const MC_BULK_FAILED: c_int = -1;
/// The key failed the key check (reported); nothing was sent for it.
pub const MC_BULK_BAD_KEY: c_int = -9;

/// The items of one call whose keys passed the check, as the engine reads them.
struct Items<'a> {
    keys: Vec<&'a [u8]>,
    values: Vec<&'a [u8]>,
    meta: Vec<(u32, u64)>,
    hashes: Vec<u32>,
}

impl BulkItems for Items<'_> {
    fn count(&self) -> usize {
        self.keys.len()
    }
    fn key(&self, index: usize) -> &[u8] {
        self.keys[index]
    }
    fn value(&self, index: usize) -> &[u8] {
        self.values[index]
    }
    fn flags(&self, index: usize) -> u32 {
        self.meta[index].0
    }
    fn exptime(&self, index: usize) -> u64 {
        self.meta[index].1
    }
    fn hash(&self, index: usize) -> u32 {
        self.hashes[index]
    }
}

fn op_of(op: c_int) -> Option<BulkOp> {
    Some(match op {
        MC_BULK_SET => BulkOp::Store(StoreCmd::Set),
        MC_BULK_ADD => BulkOp::Store(StoreCmd::Add),
        MC_BULK_REPLACE => BulkOp::Store(StoreCmd::Replace),
        MC_BULK_APPEND => BulkOp::Store(StoreCmd::Append),
        MC_BULK_PREPEND => BulkOp::Store(StoreCmd::Prepend),
        MC_BULK_DELETE => BulkOp::Delete,
        MC_BULK_TOUCH => BulkOp::Touch,
        _ => return None,
    })
}

/// Writes the `n` items by `op` (an MC_BULK_* operation) in one call: each server's items
/// are written in one go, to every server before any reply is read (memcached 1.6's quiet
/// meta commands where the server speaks them, pipelined text commands elsewhere), and each
/// item gets its `result`. Keys are checked by the built-in check (an mcKeyValid hook is not
/// run: it may rewrite keys, and these are const). A failed connection, a refused item and
/// bad keys are each reported once per call. With copies (mc_replicas), an item's result is
/// that of its first copy that answered.
///
/// Returns how many items did not end in MC_BULK_DONE (0: all written), or -1 for a NULL
/// handle, an unknown `op`, or NULL `items` with `n` > 0 (then no result is set).
///
/// # Safety
/// `ctxt` and `mc` are live; `items` points to `n` items whose keys and values are readable
/// for their lengths.
#[no_mangle]
pub unsafe extern "C" fn mcm_bulk(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    op: c_int,
    items: *mut memcache_bulk,
    n: size_t,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        let Some(op) = op_of(op) else {
            return -1;
        };
        if n == 0 {
            return 0;
        }
        if items.is_null() {
            return -1;
        }
        // SAFETY: the caller gives `n` items at `items`, which no one else touches during the
        // call.
        let items = unsafe { std::slice::from_raw_parts_mut(items, n) };
        // SAFETY: ctxt and mc are live.
        unsafe { bulk(ctxt, mc, op, items) }
    })
}

/// The global-context form of mcm_bulk().
///
/// # Safety
/// As mcm_bulk().
#[no_mangle]
pub unsafe extern "C" fn mc_bulk(
    mc: *mut memcache,
    op: c_int,
    items: *mut memcache_bulk,
    n: size_t,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_bulk(global(), mc, op, items, n) }
}

/// # Safety
/// `ctxt` and `mc` are live; every item's key and value are readable for their lengths.
unsafe fn bulk(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    op: BulkOp,
    items: &mut [memcache_bulk],
) -> c_int {
    let scope = Scope::enter(c"mcm_bulk");
    // The items whose keys pass, by position in `items`.
    let mut sent = Vec::with_capacity(items.len());
    let mut bad = (0, None);
    let mut checked = Items {
        keys: Vec::with_capacity(items.len()),
        values: Vec::with_capacity(items.len()),
        meta: Vec::with_capacity(items.len()),
        hashes: Vec::with_capacity(items.len()),
    };
    for (at, item) in items.iter_mut().enumerate() {
        // SAFETY: the caller's key is `key_len` readable bytes (or NULL: an empty key).
        let key = unsafe { super::hooks::key_bytes(item.key, item.key_len) };
        if let Err(e) = key::check(key) {
            item.result = MC_BULK_BAD_KEY;
            bad.0 += 1;
            bad.1.get_or_insert(e);
            continue;
        }
        let value: &[u8] = if item.val.is_null() || item.val_len == 0 || op == BulkOp::Delete {
            &[]
        } else {
            // SAFETY: the caller's value is `val_len` readable bytes.
            unsafe { std::slice::from_raw_parts(item.val as *const u8, item.val_len) }
        };
        checked.keys.push(key);
        checked.values.push(value);
        checked.meta.push((item.flags, item.exptime as u64));
        sent.push(at);
    }
    if let (n, Some(e)) = bad {
        report_bad_key(
            ctxt,
            format!("{} ({n} of the bulk call's keys)", e.reason()),
        );
    }
    let st = state::handle(mc);
    // The connections are this call's alone: no pipelined reply is awaited on them meanwhile.
    let mut inner = st.lock_exclusive();
    // SAFETY: ctxt and mc are live; inner is mc's locked state.
    unsafe { begin(ctxt, mc, &st, &mut inner) };
    let copies = inner.replicas as usize;
    let mut front = Front {
        ctxt,
        mc,
        st: &st,
        inner: &mut inner,
    };
    checked.hashes = checked.keys.iter().map(|k| front.hash(k)).collect();
    let done = engine::bulk(&mut front, op, &checked, copies, Dialect::Auto);
    drop(inner);
    let mut refused = (0, None);
    for (answer, &at) in done.answers.into_iter().zip(&sent) {
        items[at].result = match answer {
            Answer::Done => MC_BULK_DONE,
            Answer::NotStored | Answer::Exists => MC_BULK_NOT_STORED,
            Answer::NotFound => MC_BULK_NOT_FOUND,
            Answer::Refused(why) => {
                refused.0 += 1;
                refused.1.get_or_insert(why);
                MC_BULK_REFUSED
            }
            Answer::Failed => MC_BULK_FAILED,
        };
    }
    if let (n, Some(why)) = refused {
        report!(
            ctxt,
            MCM_ERR_MC_STORE,
            0,
            0,
            format!("{why} ({n} of the bulk call's items)")
        );
    }
    // Keys no server could take, because none was live or none could be connected to: one
    // summary, which quotes the last failure (a TLS certificate, a login) as a single call's does.
    if done.no_server || done.first_error.is_some() {
        report_unreachable(ctxt);
    }
    let failed = items.iter().filter(|i| i.result != MC_BULK_DONE).count();
    let errors = items
        .iter()
        .any(|i| matches!(i.result, MC_BULK_FAILED | MC_BULK_REFUSED | MC_BULK_BAD_KEY));
    finish(scope, ctxt, Some(&st), errors);
    failed.min(c_int::MAX as usize) as c_int
}
