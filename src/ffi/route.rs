//! Reaching a server for a command: the C handle as the engine's front end ([`Front`]), routing
//! a key to a connected server with 1.4's failover and D8's automatic retry, connecting one
//! given server, and the 1.4 structure's `fd` and `active` kept in step with the engine's slot.

use std::time::{Duration, Instant};

use libc::timeval;

use super::error::report;
use super::hooks::{
    default_hash, default_server_find, find_in, hash_of, STATE_DOWN, STATE_NO_HOST, STATE_TRY,
    STATE_UP,
};
use super::state::{cstr_lossy, server_slice, HandleInner, HandleState, Locked, ServerSide};
use super::types::*;
use crate::conn::{self, Conn, Fail, Security};
use crate::engine::{self, ConnectError, RouteError, Servers, Shared, Slot};

pub use crate::command::Failure;

pub fn timeout_of(tv: &timeval) -> Duration {
    if tv.tv_sec <= 0 && tv.tv_usec <= 0 {
        return Duration::new(2, 600_000);
    }
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

/// `host:port` of a server for messages.
///
/// # Safety
/// `ms` is a live server.
pub unsafe fn server_name(ms: *const memcache_server) -> String {
    // SAFETY: ms is a live server: callers pass a side's ms (sides exist only for live servers
    // of the locked handle) or connect_one()'s NULL-checked ms; hostname and port are NULL or
    // NUL-terminated, as mcm_server_new() and the 1.4 structure leave them.
    unsafe { format!("{}:{}", cstr_lossy((*ms).hostname), cstr_lossy((*ms).port)) }
}

/// Puts servers that failed a retry interval ago back into selection (D8). Every operation
/// asks; while no server is down that is one look at each slot.
#[inline]
fn promote_due(inner: &mut HandleInner) {
    if inner.servers.iter().any(|side| side.slot.health.is_down()) {
        promote_down(inner);
    }
}

#[cold]
#[inline(never)]
fn promote_down(inner: &mut HandleInner) {
    let retry = inner.retry;
    let mut now = None;
    for side in &mut inner.servers {
        // SAFETY: sides only exist for live servers of the locked handle.
        let m = unsafe { &mut *side.ms };
        if m.active == STATE_DOWN && side.slot.health.is_down() {
            let now = *now.get_or_insert_with(Instant::now);
            if side.slot.health.retry_if_due(now, retry) {
                m.active = STATE_TRY;
            }
        }
    }
}

/// Keeps the 1.4 structure's `fd` and `active` in step with the slot after it may have closed
/// its connection: a closed server goes back to 't' (1.4's disconnect), or to 'd' when it was
/// put down (a timeout).
fn mirror(side: &mut ServerSide) {
    // SAFETY: sides only exist for live servers of the locked handle.
    let m = unsafe { &mut *side.ms };
    let fd = side.slot.fd();
    if fd == -1 && m.fd != -1 {
        m.active = if side.slot.health.is_down() {
            STATE_DOWN
        } else {
            STATE_TRY
        };
    }
    m.fd = fd;
}

/// Makes sure `side` has a connection ready for a command; the errno (after a report) when it
/// cannot have one.
///
/// # Safety
/// `ctxt` is live; `side.ms` is a live server.
unsafe fn connect(
    ctxt: *const memcache_ctxt,
    side: &mut ServerSide,
    security: &mut Security,
) -> Result<(), i32> {
    let had = side.slot.has_conn();
    if side.slot.has_ready_conn() {
        return Ok(());
    }
    if had {
        // Bytes nobody asked for, or closed by the server: never reused (D1).
        mirror(side);
    }
    let ms = side.ms;
    // SAFETY: side.ms is live: Front::connect() passes a side of the locked handle, whose sides
    // exist only for its live servers, and connect_one() the side of the caller's NULL-checked
    // ms; the handle's lock is held, so no other thread touches the structure.
    let m = unsafe { &mut *ms };
    if m.active == STATE_DOWN || m.active == STATE_NO_HOST {
        return Err(0);
    }
    // SAFETY: hostname and port are NULL or C strings.
    let (host, port) = unsafe { (cstr_lossy(m.hostname), cstr_lossy(m.port)) };
    let greeting = match security.greeting(side.tls, &host) {
        Ok(greeting) => greeting,
        Err(e) => {
            side.slot.health.mark_down(e.to_string());
            m.active = STATE_DOWN;
            report!(
                ctxt,
                MCM_ERR_SYS_CONNECT,
                0,
                0,
                format!("{host}:{port}: {e}")
            );
            return Err(0);
        }
    };
    match side
        .slot
        .connect_with(timeout_of(&m.tv), &greeting, || conn::resolve(&host, &port))
    {
        Ok(reconnected) => {
            m.fd = side.slot.fd();
            if reconnected {
                report!(ctxt, MCM_ERR_MC_RECONN, 0, 0, format!("{host}:{port}"));
            }
            Ok(())
        }
        Err(ConnectError::Resolve(e)) => {
            m.active = STATE_NO_HOST;
            let message = format!("{host}:{port}: {}", e.message());
            report!(ctxt, MCM_ERR_NET_HOST, 0, 0, message);
            Err(0)
        }
        Err(e) => {
            m.active = STATE_DOWN;
            m.fd = -1;
            let errno = e.errno();
            // A failed handshake or login has no errno to say why: the report does.
            let message = match e {
                ConnectError::Greeting(_) => format!("{host}:{port}: {e}"),
                _ => format!("{host}:{port}"),
            };
            report!(ctxt, MCM_ERR_SYS_CONNECT, 0, errno, message);
            Err(errno)
        }
    }
}

/// Why a C call found no answer: 1.4's return codes tell these apart.
pub enum CallError {
    /// No server could be chosen or reached (reported).
    NoServer,
    /// The exchange failed and the connection was closed (reported).
    Failed,
}

/// The C handle as the engine's front end ([`Servers`]): picks through the context's finder
/// (the default one, or the program's own hook, run with the handle unlocked), liveness from
/// the 1.4 `active` field, reports as 1.4 made them, and the 1.4 structures kept in step.
pub struct Front<'a, 'g> {
    pub ctxt: *const memcache_ctxt,
    pub mc: *mut memcache,
    pub st: &'a HandleState,
    pub inner: &'a mut Locked<'g>,
}

impl Front<'_, '_> {
    /// The key's hash through the context's hook (the program's own one run with the handle
    /// unlocked, as it may call the library; the default one directly).
    pub fn hash(&mut self, key: &[u8]) -> u32 {
        let (ctxt, mc) = (self.ctxt, self.mc);
        // SAFETY: ctxt is live for the front's life.
        match unsafe { (*ctxt).mcHashKey } {
            Some(h) if h as usize != default_hash as *const () as usize => {
                // SAFETY: the program's hook with the documented mcHashKeyFunc arguments.
                self.inner
                    .unlocked(|| unsafe { h(ctxt as _, mc as _, key.as_ptr() as _, key.len()) })
            }
            // SAFETY: mc is live for the front's life.
            _ => unsafe { hash_of(mc, Some(self.st), key) },
        }
    }

    /// The context's own finder, if it installed one.
    fn own_finder(&self) -> mcServerFindFunc {
        // SAFETY: ctxt is live for the front's life.
        unsafe { (*self.ctxt).mcServerFind }
            .filter(|&f| f as usize != default_server_find as *const () as usize)
    }
}

impl Servers for Front<'_, '_> {
    type Error = CallError;

    fn count(&self) -> usize {
        // SAFETY: mc is live for the front's life.
        unsafe { (*self.mc).num_servers as usize }
    }

    fn pick(&mut self, hash: u32) -> Option<usize> {
        let (ctxt, mc) = (self.ctxt, self.mc);
        let ms = match self.own_finder() {
            Some(finder) => {
                // SAFETY: mc is live.
                let list = unsafe { (*mc).servers };
                // SAFETY: the program's hook with the documented mcServerFindFunc arguments,
                // run with the handle unlocked (it may call the library).
                let ms = self
                    .inner
                    .unlocked(|| unsafe { finder(ctxt as _, mc as _, hash) })
                    as *mut memcache_server;
                // A list replaced meanwhile may have freed what the hook read: a server
                // that is not in the new list is not trusted.
                // SAFETY: mc is live.
                let replaced = unsafe { (*mc).servers } != list;
                // SAFETY: as above.
                if replaced && !unsafe { server_slice(mc) }.contains(&ms) {
                    return None;
                }
                ms
            }
            // SAFETY: ctxt and mc are live for the front's life.
            None => unsafe { find_in(ctxt, mc, self.st, hash) },
        };
        (!ms.is_null()).then(|| self.inner.side_index(ms))
    }

    fn pick_copies(&mut self, hash: u32, count: usize, out: &mut Vec<usize>) {
        out.clear();
        if count <= 1 || self.own_finder().is_some() {
            out.extend(self.pick(hash));
            return;
        }
        promote_due(self.inner);
        // SAFETY: mc is live.
        let servers = unsafe { server_slice(self.mc) };
        // SAFETY: the handle's live servers.
        let live = |i: usize| matches!(unsafe { (*servers[i]).active }, STATE_UP | STATE_TRY);
        let mut picks = Vec::with_capacity(count);
        self.st.pick_n(servers.len(), hash, count, live, &mut picks);
        out.extend(picks.into_iter().map(|i| self.inner.side_index(servers[i])));
    }

    #[inline]
    fn ready(&mut self, at: usize) -> bool {
        let side = &mut self.inner.servers[at];
        let had = side.slot.has_conn();
        if side.slot.has_ready_conn() {
            return true;
        }
        if had {
            mirror(side);
        }
        false
    }

    fn connect(&mut self, at: usize) -> Result<(), CallError> {
        let inner: &mut HandleInner = self.inner;
        let side = &mut inner.servers[at];
        // SAFETY: ctxt is live; side.ms is a server of the locked handle.
        if let Err(errno) = unsafe { connect(self.ctxt, side, &mut inner.security) } {
            // SAFETY: as above.
            let name = unsafe { server_name(side.ms) };
            report!(self.ctxt, MCM_ERR_NET_CONNECT, 0, errno, name);
            return Err(CallError::NoServer);
        }
        Ok(())
    }

    #[inline]
    fn exchange<T>(
        &mut self,
        at: usize,
        op: impl FnOnce(&mut Conn, &mut Vec<u8>) -> Result<T, Failure>,
    ) -> Result<T, CallError> {
        let HandleInner { servers, wbuf, .. } = &mut **self.inner;
        // SAFETY: ctxt is live for the front's life; the side is a server of the locked handle.
        unsafe { exchange(self.ctxt, &mut servers[at], wbuf, op) }
    }

    fn slots(&mut self) -> (Vec<&mut Slot>, &mut Vec<u8>) {
        let HandleInner { servers, wbuf, .. } = &mut **self.inner;
        (
            servers.iter_mut().map(|side| &mut side.slot).collect(),
            wbuf,
        )
    }

    fn settle(&mut self, at: usize, outcome: Result<(), Failure>) -> Result<(), CallError> {
        let side = &mut self.inner.servers[at];
        let result = match outcome {
            Ok(()) => {
                side.slot.replied();
                Ok(())
            }
            Err(failure) => {
                side.slot.failed(&failure);
                // SAFETY: ctxt is live for the front's life; side.ms is a server of the locked
                // handle.
                unsafe { report_failure(self.ctxt, side.ms, &failure) };
                Err(CallError::Failed)
            }
        };
        if !side.slot.has_conn() {
            mirror(side);
        }
        result
    }
}

/// Callers sharing the handle pipeline their requests ([`engine::pipelined`]): a waiting
/// caller releases the handle's lock, and finds its server again by its structure's address.
impl Shared for Front<'_, '_> {
    type Id = *mut memcache_server;

    fn unlocked<R>(&mut self, wait: impl FnOnce() -> R) -> R {
        self.inner.unlocked(wait)
    }

    fn unpark_unlocked(&mut self, thread: std::thread::Thread) {
        self.inner.unpark_unlocked(thread);
    }

    #[inline]
    fn slot(&mut self, at: usize) -> (&mut Slot, &mut Vec<u8>) {
        let HandleInner { servers, wbuf, .. } = &mut **self.inner;
        (&mut servers[at].slot, wbuf)
    }

    #[inline]
    fn id(&self, at: usize) -> *mut memcache_server {
        self.inner.servers[at].ms
    }

    #[inline]
    fn find(&mut self, ms: *mut memcache_server) -> Option<usize> {
        self.inner.servers.iter().position(|side| side.ms == ms)
    }

    fn lost(&mut self, at: Option<usize>, failure: Failure) -> CallError {
        match at {
            Some(at) => {
                let side = &mut self.inner.servers[at];
                // SAFETY: ctxt is live for the front's life; the side is a server of the
                // locked handle.
                unsafe { report_failure(self.ctxt, side.ms, &failure) };
                if !side.slot.has_conn() {
                    mirror(side);
                }
            }
            // The server left the list while the caller waited: its structure may be gone.
            None => report!(
                self.ctxt,
                MCM_ERR_SYS_READ,
                0,
                failure_errno(&failure),
                format!("server removed while awaiting its reply: {failure}")
            ),
        }
        CallError::Failed
    }
}

fn failure_errno(failure: &Failure) -> i32 {
    match failure {
        Failure::Send(f) | Failure::Recv(f) => f.errno(),
        Failure::Unexpected(_) => 0,
    }
}

/// One exchange with `side`'s open connection through its slot (the engine's connection rules:
/// idle check after the reply, closed on any failure, down after a timeout), the failure
/// reported as 1.4 did and the 1.4 structure kept in step.
///
/// # Safety
/// `ctxt` is live; `side.ms` is a live server of the locked handle.
#[inline]
pub unsafe fn exchange<T>(
    ctxt: *const memcache_ctxt,
    side: &mut ServerSide,
    wbuf: &mut Vec<u8>,
    op: impl FnOnce(&mut Conn, &mut Vec<u8>) -> Result<T, Failure>,
) -> Result<T, CallError> {
    let result = side.slot.exchange(wbuf, op);
    if let Err(failure) = &result {
        // SAFETY: the caller guarantees ctxt is live and side.ms a live server of the handle it
        // holds locked, which is all report_failure reads.
        unsafe { report_failure(ctxt, side.ms, failure) };
    }
    if !side.slot.has_conn() {
        mirror(side);
    }
    result.map_err(|_| CallError::Failed)
}

/// Chooses and connects the server for `hash` (spec §7.4, [`engine::route`]): on a failed
/// connect the server is marked down and the finder is asked again, until a connect succeeds
/// or no server is left. Returns the index of the server's state in `inner.servers`.
///
/// # Safety
/// `front.ctxt` and `front.mc` are live and `front.inner` is `mc`'s locked state.
pub unsafe fn route(front: &mut Front<'_, '_>, hash: u32) -> Option<usize> {
    let n = front.count();
    if n == 0 {
        let ctxt = front.ctxt;
        report!(
            ctxt,
            MCM_ERR_MC_SERV_LIST,
            0,
            0,
            "the handle has no servers"
        );
        return None;
    }
    promote_due(front.inner);
    match engine::route(front, hash) {
        Ok(at) => Some(at),
        Err(RouteError::NoneLive) => {
            let retry = front.inner.retry.as_secs_f64();
            // Why a server is down, so that every call skipping it still says why (a TLS
            // certificate nobody trusts, a refused login), not only the call that failed.
            let why = front
                .inner
                .servers
                .iter()
                .map(|side| &side.slot.health)
                .find(|health| health.is_down() && !health.why().is_empty())
                .map_or(String::new(), |health| {
                    format!("; it failed: {}", health.why())
                });
            let msg = format!(
                "no live server for the key among {n} (a server that failed is retried {retry:.1} \
                 s after it failed{why})"
            );
            report!(front.ctxt, MCM_ERR_MC_VALID_SERVER, 0, 0, msg);
            None
        }
        Err(RouteError::Unreachable(_)) => {
            report_unreachable(front.ctxt);
            None
        }
    }
}

/// The summary of a call that found no server it could connect to. It quotes the last
/// failure (a refused connect, a TLS certificate the CA did not sign, a refused login), because
/// programs and bindings that read only the last report (mc_last_error()) must still say why.
pub fn report_unreachable(ctxt: *const memcache_ctxt) {
    // Each failed connect is reported twice, as 1.4 did: why (MCM_ERR_SYS_CONNECT), then that
    // the server could not be used (MCM_ERR_NET_CONNECT, which says only its name).
    let msg = match super::error::latest_queued(MCM_ERR_NET_CONNECT) {
        Some(why) => format!("no server could be reached (last failure: {why})"),
        None => "no server could be reached".to_owned(),
    };
    report!(ctxt, MCM_ERR_MC_SERV_LIST, 0, 0, msg);
}

/// The 1.4 report of a failed exchange with server `ms`.
///
/// # Safety
/// `ctxt` is live; `ms` is a live server.
unsafe fn report_failure(
    ctxt: *const memcache_ctxt,
    ms: *const memcache_server,
    failure: &Failure,
) {
    // SAFETY: every caller passes side.ms of a side of the locked handle, and sides exist only
    // for its live servers.
    let name = unsafe { server_name(ms) };
    match failure {
        Failure::Send(f) => report!(
            ctxt,
            MCM_ERR_MC_SEND_CMD,
            MCM_ERR_LVL_FATAL,
            f.errno(),
            format!("{name}: write failed")
        ),
        Failure::Recv(Fail::Timeout) => report!(
            ctxt,
            MCM_ERR_TIMEOUT,
            0,
            libc::ETIMEDOUT,
            format!("{name}: no reply within the timeout")
        ),
        Failure::Recv(Fail::Closed) => report!(
            ctxt,
            MCM_ERR_SYS_READ,
            0,
            0,
            format!("{name}: server unexpectedly closed connection")
        ),
        Failure::Recv(f @ Fail::Unheard { .. }) => {
            report!(ctxt, MCM_ERR_SYS_READ, 0, f.errno(), format!("{name}: {f}"))
        }
        Failure::Recv(Fail::Io(e)) => report!(
            ctxt,
            MCM_ERR_SYS_READ,
            0,
            conn::errno_of(e),
            format!("{name}: read failed")
        ),
        Failure::Recv(Fail::Proto(p)) => {
            report!(
                ctxt,
                MCM_ERR_PROTO,
                0,
                0,
                format!("{name}: {}", p.message())
            )
        }
        Failure::Unexpected(what) => {
            report!(
                ctxt,
                MCM_ERR_PROTO,
                0,
                0,
                format!("{name}: unexpected reply: {what}")
            )
        }
    }
}

/// Closes a server's connection and re-initialises it like 1.4's disconnect.
pub fn close(side: &mut ServerSide) {
    if side.slot.close() {
        // SAFETY: sides only exist for live servers.
        unsafe {
            (*side.ms).fd = -1;
            (*side.ms).active = STATE_TRY;
        }
    }
}

/// Connects a specific server of the handle (stats, flush, version), with no failover.
///
/// # Safety
/// `ctxt` is live; `inner` is the locked state of the handle owning `ms`.
pub unsafe fn connect_one(
    ctxt: *const memcache_ctxt,
    inner: &mut HandleInner,
    ms: *mut memcache_server,
) -> bool {
    inner.forget_after_fork();
    promote_due(inner);
    // side_index() only compares ms with the sides' pointers, adding a side when it has none.
    let at = inner.side_index(ms);
    // SAFETY: ctxt is live and ms a live server of this handle: the callers pass the ctxt and
    // ms their exported function NULL-checked, or a member of server_slice(mc) read under this
    // guard; inner is the locked state, so nothing else touches the side.
    let result = unsafe { connect(ctxt, &mut inner.servers[at], &mut inner.security) };
    if let Err(errno) = result {
        // SAFETY: ms is live.
        let name = unsafe { server_name(ms) };
        report!(ctxt, MCM_ERR_NET_CONNECT, 0, errno, name);
    }
    result.is_ok()
}
