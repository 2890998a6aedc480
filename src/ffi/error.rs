//! The error-reporting pipeline of spec §6 with the D1 and D5 changes: a handler is called with a
//! fully filled `memcache_err_ctxt`, may set `retcode`, and only a user handler that explicitly
//! asks for `exit`/`abort` ends the process.
//!
//! Library code never calls a handler while it holds a lock or is half-way through a change: it
//! queues a [`Report`] in a per-thread list, and the exported function delivers the queue
//! ([`Scope::deliver`]) after it has released everything, so a handler that longjmps out leaves
//! every handle and context usable.

use std::borrow::Cow;
use std::cell::RefCell;
use std::ffi::CStr;
use std::io::Write;
use std::ptr;

use libc::{c_char, c_void};

use super::lock::OwnerLock;
use super::repeats::Verdict;
use super::types::*;

struct ErrInfo {
    text: &'static CStr,
    severity: u32,
    sysexit: i32,
}

/// Description, default severity and `<sysexits.h>` status of each code (spec §6.2).
fn info(code: u32) -> ErrInfo {
    let (text, severity, sysexit): (&'static CStr, u32, i32) = match code {
        MCM_ERR_NONE => (c"no error", MCM_ERR_LVL_NONE, 0),
        MCM_ERR_ASSERT => (c"internal memcache(3) assertion", MCM_ERR_LVL_FATAL, 70),
        MCM_ERR_LIB_SNPRINTF => (c"snprintf(3) failed", MCM_ERR_LVL_ERR, 65),
        MCM_ERR_LIB_STRTOL => (c"strtol(3) failed", MCM_ERR_LVL_ERR, 65),
        MCM_ERR_LIB_STRTOLL => (c"strtoll(3) failed", MCM_ERR_LVL_ERR, 65),
        MCM_ERR_MC_RECONN => (
            c"connection re-established with server",
            MCM_ERR_LVL_INFO,
            0,
        ),
        MCM_ERR_MC_SEND_CMD => (
            c"failed to send command to the memcache server",
            MCM_ERR_LVL_NOTICE,
            74,
        ),
        MCM_ERR_MC_SERV_LIST => (c"no available servers in server list", MCM_ERR_LVL_WARN, 65),
        MCM_ERR_MC_STORE => (c"unable to store value", MCM_ERR_LVL_NOTICE, 73),
        MCM_ERR_MC_VALID_SERVER => (
            c"unable to find a server to connect to",
            MCM_ERR_LVL_NOTICE,
            69,
        ),
        MCM_ERR_MEM_MALLOC => (c"malloc(3) failed", MCM_ERR_LVL_ERR, 71),
        MCM_ERR_MEM_REALLOC => (c"realloc(3) failed", MCM_ERR_LVL_ERR, 71),
        MCM_ERR_NET_CONNECT => (c"unable to connect to a server", MCM_ERR_LVL_NOTICE, 75),
        MCM_ERR_NET_HOST => (c"unable to lookup/resolve host", MCM_ERR_LVL_WARN, 68),
        MCM_ERR_PROTO => (c"memcache(4) protocol error", MCM_ERR_LVL_FATAL, 76),
        MCM_ERR_SYS_CLOSE => (c"close(2) failed", MCM_ERR_LVL_ERR, 71),
        MCM_ERR_SYS_CONNECT => (c"connect(2) failed", MCM_ERR_LVL_NOTICE, 71),
        MCM_ERR_SYS_FCNTL => (c"fcntl(2) failed", MCM_ERR_LVL_ERR, 71),
        MCM_ERR_SYS_READ => (c"read(2) failed", MCM_ERR_LVL_ERR, 71),
        MCM_ERR_SYS_SELECT => (c"select(2) failed", MCM_ERR_LVL_ERR, 71),
        MCM_ERR_SYS_SETSOCKOPT => (c"setsockopt(2) failed", MCM_ERR_LVL_ERR, 71),
        MCM_ERR_SYS_SOCKET => (c"socket(2) failed", MCM_ERR_LVL_ERR, 71),
        // 1.4 shares the TEST entry for SYS_WRITEV; kept.
        MCM_ERR_SYS_WRITEV | MCM_ERR_TEST => {
            (c"internal memcache(3) test message", MCM_ERR_LVL_WARN, 0)
        }
        MCM_ERR_TIMEOUT => (c"timeout", MCM_ERR_LVL_WARN, 69),
        MCM_ERR_TRACE => (c"trace", MCM_ERR_LVL_INFO, 0),
        MCM_ERR_UNKNOWN_STAT => (c"unknown stat variable", MCM_ERR_LVL_WARN, 76),
        _ => (c"unknown error code", MCM_ERR_LVL_FATAL, 70),
    };
    ErrInfo {
        text,
        severity,
        sysexit,
    }
}

/// Serializes handler calls so one context's `ectxt` is filled and read by one report at a time.
static DELIVERY: OwnerLock = OwnerLock::new();

/// The message each error record's `errmsg` points at, kept until the next report on that
/// record replaces it, so a client may read `ectxt->errmsg` after the call returned.
static MESSAGES: once_cell::sync::Lazy<super::lock::ForkLock<super::state::AddrMap<Box<[u8]>>>> =
    once_cell::sync::Lazy::new(Default::default);

/// See state::lock_registries().
pub fn hold_messages() {
    MESSAGES.hold();
}

/// See state::unlock_registries().
pub fn release_messages() {
    MESSAGES.release();
}

/// Forgets the message kept for an error record that is being freed.
pub fn forget_messages(ectxt: *const memcache_err_ctxt) {
    MESSAGES.lock().remove(&(ectxt as usize));
}

/// Everything `mcm_err` needs, owned, so it can wait in the queue until locks are released.
pub struct Report {
    pub ctxt: *const memcache_ctxt,
    pub code: u32,
    /// 0 keeps the code's default severity.
    pub level: u32,
    pub errnum: u32,
    /// The Rust line that queued it; the function name is the C call's, known to its [`Scope`].
    pub line: u32,
    /// Replaces the code's description (`errstr`) where the code alone would mislead.
    pub errstr: Option<&'static CStr>,
    pub msg: Cow<'static, str>,
}

thread_local! {
    static QUEUE: RefCell<Vec<Report>> = const { RefCell::new(Vec::new()) };
}

/// Reports queued in all threads and not yet delivered. While it is 0, a call needs no access
/// to its thread's queue at all: in a shared library every thread-local access is a call to
/// `__tls_get_addr`, and most calls report nothing.
static QUEUED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn nothing_queued() -> bool {
    // A thread sees its own increments, so 0 means this thread's queue is empty.
    QUEUED.load(std::sync::atomic::Ordering::Relaxed) == 0
}

/// Queues a report for delivery when the current exported call finishes.
pub fn queue(report: Report) {
    QUEUED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    QUEUE.with(|q| q.borrow_mut().push(report));
}

/// `report!(ctxt, CODE, level, errnum, msg)`: queue a report of this line.
macro_rules! report {
    ($ctxt:expr, $code:expr, $level:expr, $errnum:expr, $msg:expr) => {
        $crate::ffi::error::queue($crate::ffi::error::Report {
            ctxt: $ctxt as *const $crate::ffi::types::memcache_ctxt,
            code: $code,
            level: $level,
            errnum: $errnum as u32,
            line: line!(),
            errstr: None,
            msg: ::std::borrow::Cow::from($msg),
        })
    };
}
pub(crate) use report;

/// Queues the report of a key refused before anything was sent (D2): `MCM_ERR_PROTO` at ERR,
/// the code 1.4 used, but described as what it is, since no server spoke any protocol. The
/// description says "invalid key", so `msg` says only why (a handler prints
/// "invalid key: empty"; see [`crate::key::KeyError::reason`]).
#[track_caller]
pub fn report_bad_key(ctxt: *const memcache_ctxt, msg: impl Into<Cow<'static, str>>) {
    queue(Report {
        ctxt,
        code: MCM_ERR_PROTO,
        level: MCM_ERR_LVL_ERR,
        errnum: 0,
        line: std::panic::Location::caller().line(),
        errstr: Some(c"invalid key"),
        msg: msg.into(),
    });
}

/// A report as one line: the error's description, the site's details and errno's text.
fn described(r: &Report) -> String {
    let text = r.errstr.unwrap_or(info(r.code).text);
    let mut msg = text.to_string_lossy().into_owned();
    if !r.msg.is_empty() {
        msg.push_str(": ");
        msg.push_str(&r.msg);
    }
    if r.errnum != 0 {
        msg.push_str(": ");
        msg.push_str(&String::from_utf8_lossy(&strerror(r.errnum as i32)));
    }
    msg
}

/// The last report this thread queued and has not delivered yet whose code is not `skip`, as
/// one line: a summary report quotes it, so that mc_last_error(), which gives only the last
/// report, still says why.
pub fn latest_queued(skip: u32) -> Option<String> {
    if nothing_queued() {
        return None;
    }
    QUEUE.with(|q| {
        q.borrow()
            .iter()
            .rev()
            .find(|r| r.code != skip)
            .map(described)
    })
}

/// The span of one exported call: reports queued during it are delivered by [`Scope::deliver`],
/// under the name of the C function the program called (`memcache_err_ctxt.funcname`, which
/// host programs print in their logs as 1.4's `__FUNCTION__`).
pub struct Scope {
    start: usize,
    funcname: &'static CStr,
}

/// What delivery left behind: the handler's `retcode` if a report reached the call's context.
#[derive(Clone, Copy)]
pub struct Delivered {
    retcode: Option<i32>,
}

impl Delivered {
    /// `MCM_RET_CODE(v)`: the handler's non-zero `retcode` replaces the failure value `v`.
    pub fn ret(self, v: i32) -> i32 {
        match self.retcode {
            Some(rc) if rc != 0 => rc,
            _ => v,
        }
    }
}

impl Scope {
    /// `funcname` is the `mcm_*` form of the exported function (an `mc_*` call is its `mcm_*`
    /// twin on the global context, spec §4.5).
    pub fn enter(funcname: &'static CStr) -> Scope {
        if nothing_queued() {
            return Scope { start: 0, funcname };
        }
        Scope {
            start: QUEUE.with(|q| q.borrow().len()),
            funcname,
        }
    }

    /// Code and message of the last report queued during this call, if any.
    /// The last report queued during this call, as its code and a message naming the error,
    /// the site's details and errno's text (for `mc_last_error()`).
    pub fn last(&self) -> Option<(u32, String)> {
        if nothing_queued() {
            return None;
        }
        QUEUE.with(|q| {
            let q = q.borrow();
            let r = q.get(self.start..)?.last()?;
            Some((r.code, described(r)))
        })
    }

    /// Whether this call queued a report of severity WARN or worse.
    pub fn serious(&self) -> bool {
        if nothing_queued() {
            return false;
        }
        QUEUE.with(|q| {
            q.borrow().get(self.start..).is_some_and(|mine| {
                mine.iter().any(|r| {
                    let severity = if r.level != 0 {
                        r.level
                    } else {
                        info(r.code).severity
                    };
                    severity >= MCM_ERR_LVL_WARN
                })
            })
        })
    }

    /// Delivers this call's reports in order. Call it after every lock has been released.
    /// `ctxt` is the call's context, already checked by the exported function.
    #[allow(clippy::not_unsafe_ptr_arg_deref)]
    pub fn deliver(self, ctxt: *const memcache_ctxt) -> Delivered {
        if nothing_queued() {
            return Delivered { retcode: None };
        }
        let mine: Vec<Report> = QUEUE.with(|q| {
            let mut q = q.borrow_mut();
            let start = self.start.min(q.len());
            q.drain(start..).collect()
        });
        QUEUED.fetch_sub(mine.len(), std::sync::atomic::Ordering::Relaxed);
        let mut retcode = None;
        for r in &mine {
            // SAFETY: r.ctxt was a valid context pointer when the report was queued during this
            // call; contexts outlive the calls that use them.
            unsafe {
                deliver_one(
                    r.ctxt,
                    &Entry {
                        code: r.code,
                        level: r.level,
                        errnum: r.errnum,
                        funcname: self.funcname.as_ptr(),
                        line: r.line,
                        msg: r.msg.as_bytes(),
                        errstr: r.errstr,
                    },
                )
            };
            if r.ctxt == ctxt && !ctxt.is_null() {
                // SAFETY: ctxt is non-NULL and valid for this call; ectxt is read only if set.
                retcode = Some(unsafe { (*ctxt).ectxt.as_ref() }.map_or(0, |e| e.retcode));
            }
        }
        Delivered { retcode }
    }
}

/// One report as the error record receives it.
struct Entry<'a> {
    code: u32,
    /// 0 keeps the code's default severity.
    level: u32,
    errnum: u32,
    /// NULL or a C string valid for the call.
    funcname: *const c_char,
    line: u32,
    msg: &'a [u8],
    errstr: Option<&'static CStr>,
}

/// Steps 1-8 of spec §6.1 with D1.
///
/// # Safety
/// `ctxt` is NULL or a live context.
unsafe fn deliver_one(ctxt: *const memcache_ctxt, entry: &Entry) {
    let &Entry {
        code,
        level,
        errnum,
        funcname,
        line,
        msg,
        errstr,
    } = entry;
    // SAFETY: per the function contract ctxt is NULL or valid.
    let Some(c) = (unsafe { ctxt.as_ref() }) else {
        return;
    };
    if c.ectxt.is_null() {
        return;
    }
    let _serial = DELIVERY.lock();
    let e = c.ectxt;
    let info = info(code);
    let severity = if level != 0 { level } else { info.severity };
    // SAFETY: e is the context's non-NULL error record, a live memcache_err_ctxt.
    unsafe {
        ptr::write_bytes(e, 0, 1);
        let e = &mut *e;
        e.ctxt = ctxt as *const c_void;
        e.funcname = funcname;
        e.lineno = line;
        e.errcode = code;
        e.errmsg = if msg.is_empty() {
            ptr::null()
        } else {
            let kept: Box<[u8]> = msg.into();
            let p = kept.as_ptr() as *const c_char;
            MESSAGES
                .lock()
                .insert(e as *mut memcache_err_ctxt as usize, kept);
            p
        };
        e.errlen = msg.len();
        e.errnum = errnum;
        e.errstr = errstr.unwrap_or(info.text).as_ptr();
        e.severity = severity as c_char;
        e.sysexit = info.sysexit;
    }
    if c.md5fc9f4e2249ad88de0081136fef04defa & severity != 0 {
        if code == MCM_ERR_MC_RECONN {
            // Unprinted, the server is still back: its next failure is news for the handler.
            let _ = super::repeats::check(code, msg);
        }
        return;
    }
    // SAFETY: as above.
    unsafe { (*e).cont = b'y' as c_char };
    let handler = c.mcErr;
    if let Some(h) = handler {
        // SAFETY: calling the client's handler with the context and its filled error record,
        // the documented mcErrFunc contract.
        unsafe { h(ctxt as *const c_void, e as *mut c_void) };
    }
    let user_handler =
        handler.is_some_and(|h| h as usize != default_err_handler as *const () as usize);
    // SAFETY: as above; the handler may have changed cont and sysexit.
    let (cont, sysexit) = unsafe { ((*e).cont as u8, (*e).sysexit) };
    if !user_handler || code == MCM_ERR_MC_SERV_LIST && cont == b'n' {
        return;
    }
    match cont {
        b'n' => {
            drop(_serial);
            // SAFETY: the client's handler explicitly asked for exit(sysexit) (spec D1).
            unsafe { libc::exit(sysexit) }
        }
        // SAFETY: the client's handler explicitly asked for abort() (spec D1).
        b'a' => unsafe { libc::abort() },
        _ => {}
    }
}

/// strerror(3)'s text for `errnum` (thread-safe variant).
fn strerror(errnum: i32) -> Vec<u8> {
    let mut buf = [0 as c_char; 128];
    // SAFETY: buf is writable for its length; the XSI strerror_r NUL-terminates within it.
    let rc = unsafe { libc::strerror_r(errnum, buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return format!("error {errnum}").into_bytes();
    }
    // SAFETY: strerror_r succeeded, so buf holds a NUL-terminated string.
    unsafe { CStr::from_ptr(buf.as_ptr()) }.to_bytes().to_vec()
}

fn level_name(severity: u32) -> &'static str {
    match severity {
        MCM_ERR_LVL_INFO => "INFO",
        MCM_ERR_LVL_NOTICE => "NOTICE",
        MCM_ERR_LVL_WARN => "WARN",
        MCM_ERR_LVL_ERR => "ERROR",
        _ => "FATAL",
    }
}

/// The default handler: one line on stderr (never stdout, D10), written with a single write so
/// lines from several threads do not interleave.
///
/// # Safety
/// `ectxt` is NULL or a filled `memcache_err_ctxt`.
pub unsafe extern "C" fn default_err_handler(_ctxt: *const c_void, ectxt: *mut c_void) -> i32 {
    ffi_body!(0, {
        // SAFETY: called by the pipeline with the context's error record, or by a client with
        // NULL or a valid record.
        let Some(e) = (unsafe { (ectxt as *const memcache_err_ctxt).as_ref() }) else {
            return 0;
        };
        // SAFETY: errmsg points to errlen readable bytes, per the err_ctxt contract.
        let msg = unsafe {
            (!e.errmsg.is_null())
                .then(|| std::slice::from_raw_parts(e.errmsg as *const u8, e.errlen))
        };
        let msg = msg.unwrap_or_default();
        let quieted = match super::repeats::check(e.errcode, msg) {
            Verdict::Quiet => return 0,
            Verdict::Print { quieted } => quieted,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut line: Vec<u8> = Vec::with_capacity(160);
        let _ = write!(
            line,
            "[{}@{}.{:06}] ",
            level_name(e.severity as u8 as u32),
            now.as_secs(),
            now.subsec_micros()
        );
        // SAFETY: funcname and errstr are NULL or NUL-terminated strings set by the pipeline.
        let text = |p: *const c_char| unsafe { p.as_ref().map(|_| CStr::from_ptr(p).to_bytes()) };
        line.extend_from_slice(text(e.funcname).unwrap_or(b"?"));
        let _ = write!(line, "():{}: ", e.lineno);
        line.extend_from_slice(text(e.errstr).unwrap_or(b"?"));
        if e.errnum != 0 {
            line.extend_from_slice(b": ");
            line.extend_from_slice(&strerror(e.errnum as i32));
        }
        if !msg.is_empty() {
            line.extend_from_slice(b": ");
            line.extend_from_slice(msg);
        }
        if quieted > 0 {
            let _ = write!(line, " ({quieted} more like it not shown)");
        }
        line.push(b'\n');
        // SAFETY: writing an owned buffer to fd 2.
        let _ = unsafe { libc::write(2, line.as_ptr() as *const c_void, line.len()) };
        0
    })
}

/// The description of an MCM_ERR_* code (spec 6.2's table), a static string; "unknown error
/// code" for other values. Beyond 1.4.
#[no_mangle]
pub extern "C" fn mc_strerror(errcode: u32) -> *const c_char {
    ffi_body!(c"unknown error code".as_ptr(), {
        info(errcode).text.as_ptr()
    })
}

/// Reports an error through `ctxt`'s pipeline (spec §6.1). `msg` need not be NUL-terminated.
///
/// # Safety
/// `ctxt` is NULL (nothing happens) or a live context; `funcname` is NULL or a C string; `msg`
/// is NULL or `msglen` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_err(
    ctxt: *const memcache_ctxt,
    flags: u32,
    funcname: *const c_char,
    lineno: u32,
    errcode: u32,
    msg: *const c_char,
    msglen: u32,
    errlvl: u32,
) {
    ffi_body!((), {
        check_null!((); ctxt);
        let errnum = if flags & NO_ERRNO_FLAG != 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0) as u32
        };
        let text: &[u8] = if msg.is_null() {
            &[]
        } else {
            // SAFETY: the caller guarantees msglen readable bytes at msg.
            unsafe { std::slice::from_raw_parts(msg as *const u8, msglen as usize) }
        };
        // SAFETY: contract of this function.
        unsafe {
            deliver_one(
                ctxt,
                &Entry {
                    code: errcode,
                    level: errlvl,
                    errnum,
                    funcname,
                    line: lineno,
                    msg: text,
                    errstr: None,
                },
            )
        }
    })
}

/// Reports `MCM_ERR_TEST` at WARN without errno, to exercise a handler.
///
/// # Safety
/// `ctxt` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn mcm_err_test(ctxt: *const memcache_ctxt) {
    ffi_body!((), {
        check_null!((); ctxt);
        let msg = "per-error message specific to this line of code";
        // SAFETY: ctxt was NULL-checked above and is the live context the C caller passes (a
        // context stays live until mcMemFreeCtxt(), the global one always).
        unsafe {
            deliver_one(
                ctxt,
                &Entry {
                    code: MCM_ERR_TEST,
                    level: 0,
                    errnum: 0,
                    funcname: c"mcm_err_test".as_ptr(),
                    line: line!(),
                    msg: msg.as_bytes(),
                    errstr: None,
                },
            )
        }
    })
}

/// Adds levels to the filter mask (`mask |= m`, D5). 0 on success, 1 for a NULL context.
///
/// # Safety
/// `ctxt` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn mcm_err_filter_add(ctxt: *mut memcache_ctxt, err_mask: u32) -> i32 {
    ffi_body!(1, {
        check_null!(1; ctxt);
        // SAFETY: non-NULL live context.
        unsafe { (*ctxt).md5fc9f4e2249ad88de0081136fef04defa |= err_mask };
        0
    })
}

/// Removes levels from the filter mask (`mask &= ~m`, D5). 0 on success, 1 for a NULL context.
///
/// # Safety
/// `ctxt` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn mcm_err_filter_del(ctxt: *mut memcache_ctxt, err_mask: u32) -> i32 {
    ffi_body!(1, {
        check_null!(1; ctxt);
        // SAFETY: non-NULL live context.
        unsafe { (*ctxt).md5fc9f4e2249ad88de0081136fef04defa &= !err_mask };
        0
    })
}

/// The filter mask; 0 for a NULL context.
///
/// # Safety
/// `ctxt` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn mcm_err_filter_get(ctxt: *const memcache_ctxt) -> u32 {
    ffi_body!(0, {
        check_null!(0; ctxt);
        // SAFETY: non-NULL live context.
        unsafe { (*ctxt).md5fc9f4e2249ad88de0081136fef04defa }
    })
}

/// 1 if reports of level `err_lvl` are filtered out, else 0.
///
/// # Safety
/// `ctxt` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn mcm_err_filter_test(ctxt: *const memcache_ctxt, err_lvl: u32) -> i32 {
    ffi_body!(0, {
        check_null!(0; ctxt);
        // SAFETY: non-NULL live context.
        (unsafe { (*ctxt).md5fc9f4e2249ad88de0081136fef04defa } & err_lvl != 0) as i32
    })
}

/// Sets `ctxt`'s error handler. 1 if either argument is NULL, else 0.
///
/// # Safety
/// `ctxt` is NULL or a live context.
#[no_mangle]
pub unsafe extern "C" fn mcErrSetupCtxt(ctxt: *mut memcache_ctxt, errFunc: mcErrFunc) -> i32 {
    ffi_body!(1, {
        check_null!(1; ctxt);
        if errFunc.is_none() {
            return 1;
        }
        // SAFETY: non-NULL live context.
        unsafe { (*ctxt).mcErr = errFunc };
        0
    })
}
