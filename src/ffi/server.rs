//! Servers: adding them (spec §7.1, D3), their states (§7.3), the default hash and finder (§8),
//! and routing a key to a connected server with 1.4's failover and D8's automatic retry.

use std::ffi::CStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use libc::{c_char, c_int, c_void, size_t, timeval};

use super::context::{global, Alloc};
use super::error::{report, Scope};
use super::state::{self, cstr_lossy, server_slice, HandleInner, HandleState, Locked, ServerSide};
use super::types::*;
use crate::conn::{self, Conn, Fail};
use crate::engine::{self, ConnectError, RouteError, Servers};
use crate::hash::{libmemcache_hash, md5_hash, Distribution};

const STATE_UP: c_char = b'u' as c_char;
const STATE_TRY: c_char = b't' as c_char;
const STATE_DOWN: c_char = b'd' as c_char;
const STATE_NO_HOST: c_char = b'n' as c_char;

pub use crate::command::Failure;

/// Stores `ctxt->errnum` with one atomic write (D9: the global context is shared by threads).
///
/// # Safety
/// `ctxt` is a live context.
pub unsafe fn set_errnum(ctxt: *mut memcache_ctxt, value: u32) {
    // SAFETY: errnum is an aligned u32 inside a live context; every writer uses this atomic.
    unsafe { AtomicU32::from_ptr(&raw mut (*ctxt).errnum) }.store(value, Ordering::Relaxed);
}

/// `strlen(s)`, 0 for NULL (the entry points that take C strings pass a NULL on to the
/// checks of their length-taking forms).
///
/// # Safety
/// `s` is NULL or a NUL-terminated string.
pub unsafe fn c_len(s: *const c_char) -> usize {
    if s.is_null() {
        0
    } else {
        // SAFETY: a NUL-terminated string per the contract (NULL was checked).
        unsafe { libc::strlen(s) }
    }
}

/// A key as bytes.
///
/// # Safety
/// `key` is NULL or points to `len` readable bytes.
pub unsafe fn key_bytes<'a>(key: *const c_char, len: size_t) -> &'a [u8] {
    if key.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: per the contract.
    unsafe { std::slice::from_raw_parts(key as *const u8, len) }
}

/// The 1.4 hash with the handle's distribution: 1 for 0 or 1 servers, then CRC-32 bits 16..30
/// (crc32-modulo) or the MD5 key hash (ketama-md5).
///
/// # Safety
/// `mc` is NULL or a live handle.
unsafe fn hash_of(mc: *const memcache, st: Option<&HandleState>, key: &[u8]) -> u32 {
    // SAFETY: per the contract.
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
        // SAFETY: per the contract.
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
        // SAFETY: per the contract.
        unsafe { find_in(ctxt as *const memcache_ctxt, mc, &st, hash) as *mut c_void }
    })
}

/// # Safety
/// `mc` is a live handle.
unsafe fn find_in(
    ctxt: *const memcache_ctxt,
    mc: *mut memcache,
    st: &HandleState,
    hash: u32,
) -> *mut memcache_server {
    // SAFETY: per the contract.
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
    // SAFETY: ctxt is live per the contract.
    match unsafe { (*ctxt).mcHashKey } {
        Some(h) if h as usize != default_hash as *const () as usize => {
            // SAFETY: the client's hook, called with the documented mcHashKeyFunc arguments.
            unsafe { h(ctxt as _, mc as _, key.as_ptr() as _, key.len()) }
        }
        // SAFETY: as above.
        _ => unsafe { hash_of(mc, Some(st), key) },
    }
}

/// The server for `hash` through the context's hook (the default one is called directly).
///
/// # Safety
/// `ctxt` and `mc` are live.
unsafe fn find(
    ctxt: *const memcache_ctxt,
    mc: *mut memcache,
    st: &HandleState,
    hash: u32,
) -> *mut memcache_server {
    // SAFETY: ctxt is live per the contract.
    match unsafe { (*ctxt).mcServerFind } {
        Some(f) if f as usize != default_server_find as *const () as usize => {
            // SAFETY: the client's hook, called with the documented mcServerFindFunc arguments.
            unsafe { f(ctxt as _, mc as _, hash) as *mut memcache_server }
        }
        // SAFETY: as above.
        _ => unsafe { find_in(ctxt, mc, st, hash) },
    }
}

fn timeout_of(tv: &timeval) -> Duration {
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
    // SAFETY: per the contract; hostname and port are NULL or C strings.
    unsafe { format!("{}:{}", cstr_lossy((*ms).hostname), cstr_lossy((*ms).port)) }
}

/// Puts servers that failed a retry interval ago back into selection (D8).
fn promote_due(inner: &mut HandleInner) {
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
unsafe fn connect(ctxt: *const memcache_ctxt, side: &mut ServerSide) -> Result<(), i32> {
    let had = side.slot.has_conn();
    if side.slot.has_ready_conn() {
        return Ok(());
    }
    if had {
        // Bytes nobody asked for, or closed by the server: never reused (D1).
        mirror(side);
    }
    let ms = side.ms;
    // SAFETY: per the contract.
    let m = unsafe { &mut *ms };
    if m.active == STATE_DOWN || m.active == STATE_NO_HOST {
        return Err(0);
    }
    // SAFETY: hostname and port are NULL or C strings.
    let (host, port) = unsafe { (cstr_lossy(m.hostname), cstr_lossy(m.port)) };
    match side
        .slot
        .connect(timeout_of(&m.tv), || conn::resolve(&host, &port))
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
            report!(
                ctxt,
                MCM_ERR_SYS_CONNECT,
                0,
                errno,
                format!("{host}:{port}")
            );
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
        let side = &mut self.inner.servers[at];
        // SAFETY: ctxt is live; side.ms is a server of the locked handle.
        if let Err(errno) = unsafe { connect(self.ctxt, side) } {
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
        let side = &mut servers[at];
        let result = side.slot.exchange(wbuf, op);
        if let Err(failure) = &result {
            // SAFETY: ctxt is live; side.ms is a server of the locked handle.
            unsafe { report_failure(self.ctxt, side.ms, failure) };
        }
        if !side.slot.has_conn() {
            mirror(side);
        }
        result.map_err(|_| CallError::Failed)
    }
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
            let msg = format!(
                "no live server for the key among {n} (a server that failed is retried {retry:.1} \
                 s after it failed)"
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

pub fn report_unreachable(ctxt: *const memcache_ctxt) {
    report!(
        ctxt,
        MCM_ERR_MC_SERV_LIST,
        0,
        0,
        "no server could be reached"
    );
}

/// Chooses and connects the `count` distinct servers that hold copies of the keys of `hash`,
/// primary first (D8's redundancy, [`engine::connect_copies`]). With one copy, or when the
/// client installed its own finder, this is [`route`]. `out` receives indexes of the servers'
/// states in `inner.servers`; empty when no server is available (reported).
///
/// # Safety
/// As [`route`].
pub unsafe fn route_copies(
    front: &mut Front<'_, '_>,
    hash: u32,
    count: usize,
    out: &mut Vec<usize>,
) {
    out.clear();
    if count <= 1 || front.own_finder().is_some() {
        // SAFETY: per the contract.
        out.extend(unsafe { route(front, hash) });
        return;
    }
    promote_due(front.inner);
    engine::connect_copies(front, hash, count, out);
    if out.is_empty() {
        report_unreachable(front.ctxt);
    }
}

/// Reports a failed exchange, closes the connection and keeps the 1.4 structure in step, so no
/// later command can read a reply meant for this one (D1). The server goes back to 't' and is
/// tried again next time, except after a timeout: then it is down for the retry interval (D8)
/// and retried automatically.
///
/// # Safety
/// `ctxt` is live; `side.ms` is a live server.
pub unsafe fn drop_conn(ctxt: *const memcache_ctxt, side: &mut ServerSide, failure: Failure) {
    side.slot.ended(Some(&failure));
    // SAFETY: per the contract.
    unsafe { report_failure(ctxt, side.ms, &failure) };
    mirror(side);
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
    // SAFETY: per the contract.
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
fn close(side: &mut ServerSide) {
    if side.slot.close() {
        // SAFETY: sides only exist for live servers.
        unsafe {
            (*side.ms).fd = -1;
            (*side.ms).active = STATE_TRY;
        }
    }
}

// ---- exported: creating and adding servers ----

/// A new, unattached server in state 't' with no socket. Caller owns it: add it with
/// mc_server_add3() (the handle then owns it) or release it with mc_server_free().
///
/// # Safety
/// `ctxt` is NULL (libc allocator) or a live context.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_new(ctxt: *mut memcache_ctxt) -> *mut memcache_server {
    ffi_body!(std::ptr::null_mut(), {
        let scope = Scope::enter(c"mcm_server_new");
        // SAFETY: per the contract.
        let ms = new_server(&unsafe { Alloc::of(ctxt) });
        if ms.is_null() {
            super::context::report_oom(ctxt, "struct memcache_server");
        }
        scope.deliver(if ctxt.is_null() { global() } else { ctxt });
        ms
    })
}

/// A zeroed server from `mcMalloc` in state 't' with no socket, or NULL.
fn new_server(alloc: &Alloc) -> *mut memcache_server {
    let ms = alloc.new_zeroed::<memcache_server>();
    // SAFETY: ms is NULL or a fresh zeroed server that nothing else refers to.
    if let Some(m) = unsafe { ms.as_mut() } {
        m.fd = -1;
        m.active = STATE_TRY;
    }
    ms
}

#[no_mangle]
pub extern "C" fn mc_server_new() -> *mut memcache_server {
    // SAFETY: the global context is live.
    unsafe { mcm_server_new(global()) }
}

/// Releases a server that is not part of a handle (a handle frees its own servers in
/// mc_free()): its socket, hostname, port and the structure. NULL is ignored.
///
/// # Safety
/// `ms` is NULL or a server from mc_server_new() not used after this call.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_free(ctxt: *mut memcache_ctxt, ms: *mut memcache_server) {
    ffi_body!((), {
        check_null!((); ms);
        if let Some(mc) = state::owner(ms) {
            let st = state::handle(mc);
            st.lock().servers.retain(|s| s.ms != ms);
            state::forget_owner(ms);
        }
        // SAFETY: per the contract.
        unsafe { free_server(&Alloc::of(ctxt), ms) };
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_free(ms: *mut memcache_server) {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_free(global(), ms) }
}

/// # Safety
/// `ms` is a live server whose connection state was already dropped.
pub unsafe fn free_server(alloc: &Alloc, ms: *mut memcache_server) {
    // SAFETY: per the contract; hostname and port came from the context's allocator.
    unsafe {
        alloc.free((*ms).hostname);
        alloc.free((*ms).port);
    }
    alloc.free(ms);
}

/// Adds `hostname` (`hostname_len` bytes, need not be NUL-terminated; NULL or 0 means
/// "localhost") and `port` (likewise; NULL or 0 means "11211"). A hostname starting with `/`
/// is a unix socket. Returns 0, -1 (allocation), -2/-3 (copies), -4 (unresolvable host, not
/// added) or -5 (array growth).
///
/// # Safety
/// `mc` is a live handle; the strings are NULL or readable for their lengths.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_add2(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    hostname: *const c_char,
    hostname_len: size_t,
    port: *const c_char,
    port_len: size_t,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        // SAFETY: per the contract.
        unsafe {
            add_parts(
                ctxt,
                mc,
                hostname,
                hostname_len,
                port,
                port_len,
                c"mcm_server_add2",
            )
        }
    })
}

/// mcm_server_add2()'s work, reported under `funcname`.
///
/// # Safety
/// As mcm_server_add2(), with `ctxt` and `mc` checked.
unsafe fn add_parts(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    hostname: *const c_char,
    hostname_len: size_t,
    port: *const c_char,
    port_len: size_t,
    funcname: &'static CStr,
) -> c_int {
    // SAFETY: per the contract.
    let (host, port) = unsafe { (key_bytes(hostname, hostname_len), key_bytes(port, port_len)) };
    let host: &[u8] = if host.is_empty() { b"localhost" } else { host };
    let port: &[u8] = if port.is_empty() || host[0] == b'/' && port.is_empty() {
        conn::DEFAULT_PORT.as_bytes()
    } else {
        port
    };
    // A unix socket path has no TCP port: store "0" so host + ":" + port round-trips.
    let port: &[u8] = if host[0] == b'/' { b"0" } else { port };
    // SAFETY: per the contract.
    unsafe { add_host_port(ctxt, mc, host, port, funcname) }
}

/// mcm_server_add5()'s work, reported under `funcname`.
///
/// # Safety
/// As mcm_server_add5(), with `ctxt` and `mc` checked.
unsafe fn add_spec(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    hostport: *const c_char,
    hostlen: size_t,
    funcname: &'static CStr,
) -> c_int {
    // SAFETY: per the contract.
    let spec = unsafe { key_bytes(hostport, hostlen) };
    let (host, port) = conn::split_host_port(spec);
    // SAFETY: per the contract.
    unsafe { add_host_port(ctxt, mc, host, port, funcname) }
}

/// Builds a server for `host` and `port` and appends it, under one report scope named after
/// the C function the program called.
///
/// # Safety
/// `ctxt` and `mc` are live.
unsafe fn add_host_port(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    host: &[u8],
    port: &[u8],
    funcname: &'static CStr,
) -> c_int {
    let scope = Scope::enter(funcname);
    // SAFETY: per the contract.
    let rc = unsafe { build_and_add(ctxt, mc, host, port) };
    state::handle(mc).set_last_error(if rc != 0 { scope.last() } else { None });
    scope.deliver(ctxt).ret(rc)
}

/// # Safety
/// As add_host_port().
unsafe fn build_and_add(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    host: &[u8],
    port: &[u8],
) -> c_int {
    // SAFETY: per the contract.
    let alloc = unsafe { Alloc::of(ctxt) };
    let ms = new_server(&alloc);
    if ms.is_null() {
        super::context::report_oom(ctxt, "struct memcache_server");
        return -1;
    }
    let h = alloc.cstring(host);
    if h.is_null() {
        alloc.free(ms);
        super::context::report_oom(ctxt, "server hostname");
        return -2;
    }
    let p = alloc.cstring(port);
    if p.is_null() {
        alloc.free(h);
        alloc.free(ms);
        super::context::report_oom(ctxt, "server port");
        return -3;
    }
    // SAFETY: ms is a fresh server; the strings are ours to hand over.
    unsafe {
        (*ms).hostname = h;
        (*ms).port = p;
        add3(ctxt, mc, ms)
    }
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_add2(
    mc: *mut memcache,
    hostname: *const c_char,
    hostname_len: size_t,
    port: *const c_char,
    port_len: size_t,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_add2(global(), mc, hostname, hostname_len, port, port_len) }
}

/// NUL-terminated form of mc_server_add2().
///
/// # Safety
/// `mc` is a live handle; the strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_add(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    hostname: *const c_char,
    port: *const c_char,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        let (hlen, plen) = (c_len(hostname), c_len(port));
        // SAFETY: per the contract.
        unsafe { add_parts(ctxt, mc, hostname, hlen, port, plen, c"mcm_server_add") }
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_add(
    mc: *mut memcache,
    hostname: *const c_char,
    port: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_add(global(), mc, hostname, port) }
}

/// Adds `"host:port"` (`hostlen` bytes): no port means 11211, `[v6]:port` and bare IPv6
/// literals work, a path starting with `/` is a unix socket (D3). Results as mc_server_add2().
///
/// # Safety
/// `mc` is a live handle; `hostport` is NULL or `hostlen` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_add5(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    hostport: *const c_char,
    hostlen: size_t,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        // SAFETY: per the contract.
        unsafe { add_spec(ctxt, mc, hostport, hostlen, c"mcm_server_add5") }
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_add5(
    mc: *mut memcache,
    hostport: *const c_char,
    hostlen: size_t,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_add5(global(), mc, hostport, hostlen) }
}

/// NUL-terminated form of mc_server_add5().
///
/// # Safety
/// `mc` is a live handle; `hostport` is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_add4(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    hostport: *const c_char,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        let len = c_len(hostport);
        // SAFETY: per the contract.
        unsafe { add_spec(ctxt, mc, hostport, len, c"mcm_server_add4") }
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_add4(mc: *mut memcache, hostport: *const c_char) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_add4(global(), mc, hostport) }
}

/// Resolves `ms->hostname`/`ms->port` now and appends the server to the handle, which then
/// owns it. 0 on success; -1 for NULL arguments. When the server is not added it is freed:
/// -4 the host does not resolve; -5 the array cannot grow; -6 the handle follows a shared
/// domain, whose list belongs to mcadmin(8). The strings must come from the context's
/// allocator.
///
/// # Safety
/// `mc` is a live handle; `ms` a server from mc_server_new() not yet added anywhere.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_add3(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    ms: *mut memcache_server,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc, ms);
        let scope = Scope::enter(c"mcm_server_add3");
        // SAFETY: per the contract.
        let rc = unsafe { add3(ctxt, mc, ms) };
        let st = state::handle(mc);
        st.set_last_error(if rc != 0 { scope.last() } else { None });
        scope.deliver(ctxt).ret(rc)
    })
}

/// # Safety
/// As mcm_server_add3().
unsafe fn add3(ctxt: *mut memcache_ctxt, mc: *mut memcache, ms: *mut memcache_server) -> c_int {
    // SAFETY: per the contract.
    let alloc = unsafe { Alloc::of(ctxt) };
    // SAFETY: ms is live; hostname and port are NULL or C strings.
    let (host, port) = unsafe { (cstr_lossy((*ms).hostname), cstr_lossy((*ms).port)) };
    let endpoint = match conn::resolve(&host, &port) {
        Ok(ep) => ep,
        Err(e) => {
            report!(
                ctxt,
                MCM_ERR_NET_HOST,
                0,
                0,
                format!("{host}:{port}: {}", e.message())
            );
            // SAFETY: the server is not added; 1.4 frees it here.
            unsafe { free_server(&alloc, ms) };
            return -4;
        }
    };
    let st = state::handle(mc);
    let mut inner = st.lock();
    // SAFETY: mc is live and inner its locked state.
    if !unsafe { super::domain::before_explicit_add(ctxt, mc, &st, &mut inner) } {
        // SAFETY: not added; freed like an unresolvable server.
        unsafe { free_server(&alloc, ms) };
        return -6;
    }
    // SAFETY: mc and ms are live; the array is only changed under the handle's lock.
    unsafe {
        let m = &mut *mc;
        let n = m.num_servers as usize;
        let grown = alloc.realloc(
            m.servers as *mut c_void,
            (n + 2) * std::mem::size_of::<*mut memcache_server>(),
        ) as *mut *mut memcache_server;
        if grown.is_null() {
            report!(
                ctxt,
                MCM_ERR_MEM_REALLOC,
                0,
                libc::ENOMEM,
                "growing the server array"
            );
            // Not added: freed like a server that does not resolve.
            free_server(&alloc, ms);
            return -5;
        }
        *grown.add(n) = ms;
        *grown.add(n + 1) = std::ptr::null_mut();
        m.servers = grown;
        m.num_servers += 1;
        let s = &mut *ms;
        if s.tv.tv_sec == 0 && s.tv.tv_usec == 0 {
            s.tv = m.tv;
        }
        s.num_addrs = match &endpoint {
            conn::Endpoint::Tcp(a) => a.len() as u32,
            conn::Endpoint::Unix(_) => 1,
        };
        // TAILQ_INSERT_TAIL(&mc->server_list, ms, entries)
        if m.server_list.tqh_last.is_null() {
            m.server_list.tqh_last = &raw mut m.server_list.tqh_first;
        }
        s.entries.tqe_next = std::ptr::null_mut();
        s.entries.tqe_prev = m.server_list.tqh_last;
        *m.server_list.tqh_last = ms;
        m.server_list.tqh_last = &raw mut s.entries.tqe_next;
    }
    inner.side(ms).slot.set_endpoint(endpoint);
    state::set_owner(ms, mc);
    // SAFETY: mc is live and its array was just made consistent.
    unsafe { st.rebuild_selector(mc, &inner) };
    0
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_add3(mc: *mut memcache, ms: *mut memcache_server) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_add3(global(), mc, ms) }
}

// ---- exported: finding and states ----

/// `ctxt->mcServerFind(ctxt, mc, hash)`: the server for a hash, or NULL. Borrowed: owned by
/// the handle.
///
/// # Safety
/// `ctxt` and `mc` are live.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_find(
    ctxt: *const memcache_ctxt,
    mc: *mut memcache,
    hash: u32,
) -> *mut memcache_server {
    ffi_body!(std::ptr::null_mut(), {
        check_null!(std::ptr::null_mut(); ctxt, mc);
        let scope = Scope::enter(c"mcm_server_find");
        // SAFETY: per the contract.
        unsafe { super::call::sync_handle(ctxt, mc) };
        let st = state::handle(mc);
        // SAFETY: per the contract.
        let ms = unsafe { find(ctxt, mc, &st, hash) };
        scope.deliver(ctxt);
        ms
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_find(mc: *mut memcache, hash: u32) -> *mut memcache_server {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_find(global(), mc, hash) }
}

/// Marks a down server ('d') up ('u'): 0. A server with no host ('n'): -1; one in state 't':
/// -2; one already up: -3 (each reported).
///
/// # Safety
/// `ctxt` and `mc` are live; `ms` is a server of `mc`.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_activate(
    ctxt: *const memcache_ctxt,
    mc: *mut memcache,
    ms: *mut memcache_server,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc, ms);
        let scope = Scope::enter(c"mcm_server_activate");
        let st = state::handle(mc);
        let rc = {
            let mut inner = st.lock();
            // SAFETY: per the contract.
            match unsafe { (*ms).active } {
                STATE_DOWN => {
                    inner.side(ms).slot.health.set_user_down(false);
                    // SAFETY: as above.
                    unsafe { (*ms).active = STATE_UP };
                    0
                }
                STATE_NO_HOST => {
                    report!(
                        ctxt,
                        MCM_ERR_ASSERT,
                        0,
                        0,
                        "activating a server with no host"
                    );
                    -1
                }
                STATE_TRY => {
                    report!(
                        ctxt,
                        MCM_ERR_ASSERT,
                        MCM_ERR_LVL_INFO,
                        0,
                        "server is not down"
                    );
                    -2
                }
                _ => {
                    report!(
                        ctxt,
                        MCM_ERR_ASSERT,
                        MCM_ERR_LVL_INFO,
                        0,
                        "server already up"
                    );
                    -3
                }
            }
        };
        scope.deliver(ctxt).ret(rc)
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_activate(mc: *mut memcache, ms: *mut memcache_server) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_activate(global(), mc, ms) }
}

/// Activates every down server of the handle; returns 0.
///
/// # Safety
/// `ctxt` and `mc` are live.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_activate_all(
    ctxt: *const memcache_ctxt,
    mc: *mut memcache,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        let st = state::handle(mc);
        let mut inner = st.lock();
        // SAFETY: per the contract.
        for &ms in unsafe { server_slice(mc) } {
            // SAFETY: a live server of the handle.
            if unsafe { (*ms).active } == STATE_DOWN {
                inner.side(ms).slot.health.set_user_down(false);
                // SAFETY: as above.
                unsafe { (*ms).active = STATE_UP };
            }
        }
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_activate_all(mc: *mut memcache) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_activate_all(global(), mc) }
}

/// Marks a server down ('d') and disconnects it. It is not retried automatically (D8) until
/// mc_server_activate(); a server with an open connection goes back to 't' as in 1.4.
///
/// # Safety
/// `mc` is live; `ms` is a server of `mc`.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_deactivate(
    _ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    ms: *mut memcache_server,
) {
    ffi_body!((), {
        check_null!((); mc, ms);
        let st = state::handle(mc);
        let mut inner = st.lock();
        let side = inner.side(ms);
        // SAFETY: per the contract.
        unsafe {
            if matches!((*ms).active, STATE_UP | STATE_TRY) {
                (*ms).active = STATE_DOWN;
            }
        }
        side.slot.health.set_user_down(true);
        close(side);
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_deactivate(mc: *mut memcache, ms: *mut memcache_server) {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_deactivate(global(), mc, ms) }
}

/// Closes the server's connection if open (it goes back to 't'); the next operation
/// reconnects.
///
/// # Safety
/// `ms` is NULL or a live server.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_disconnect(
    _ctxt: *const memcache_ctxt,
    ms: *mut memcache_server,
) {
    ffi_body!((), {
        check_null!((); ms);
        if let Some(mc) = state::owner(ms) {
            let st = state::handle(mc);
            let mut inner = st.lock();
            close(inner.side(ms));
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_disconnect(ms: *mut memcache_server) {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_disconnect(global(), ms) }
}

/// Disconnects every server of the handle (down servers stay down).
///
/// # Safety
/// `mc` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_disconnect_all(
    _ctxt: *const memcache_ctxt,
    mc: *const memcache,
) {
    ffi_body!((), {
        check_null!((); mc);
        let st = state::handle(mc);
        let mut inner = st.lock();
        inner.servers.iter_mut().for_each(close);
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_disconnect_all(mc: *const memcache) {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_disconnect_all(global(), mc) }
}

/// Sets the server's I/O timeout (`usec` is microseconds) and applies it to an open socket.
/// 1 on success (also for a server not connected: applied at connect, D1); 0 if the socket
/// refuses it.
///
/// # Safety
/// `ms` is NULL or a live server.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_timeout(
    ctxt: *const memcache_ctxt,
    ms: *mut memcache_server,
    sec: c_int,
    usec: c_int,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; ms);
        let scope = Scope::enter(c"mcm_server_timeout");
        // SAFETY: per the contract.
        unsafe {
            (*ms).tv = timeval {
                tv_sec: sec.into(),
                tv_usec: usec.into(),
            }
        };
        let mut rc = 1;
        if let Some(mc) = state::owner(ms) {
            let st = state::handle(mc);
            let mut inner = st.lock();
            let side = inner.side(ms);
            if let Some(c) = side.slot.conn_mut() {
                // SAFETY: ms is live.
                if let Err(e) = c.set_timeout(timeout_of(unsafe { &(*ms).tv })) {
                    report!(ctxt, MCM_ERR_SYS_SETSOCKOPT, 0, conn::errno_of(&e), "");
                    rc = 0;
                }
            }
        }
        scope.deliver(ctxt).ret(rc)
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_timeout(
    ms: *mut memcache_server,
    sec: c_int,
    usec: c_int,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_timeout(global(), ms, sec, usec) }
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
    super::call::forget_after_fork(inner);
    promote_due(inner);
    // SAFETY: per the contract.
    let result = unsafe { connect(ctxt, inner.side(ms)) };
    if let Err(errno) = result {
        // SAFETY: ms is live.
        let name = unsafe { server_name(ms) };
        report!(ctxt, MCM_ERR_NET_CONNECT, 0, errno, name);
    }
    result.is_ok()
}
