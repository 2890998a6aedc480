//! Library-private state of the public structures, kept beside them and keyed by their address
//! (spec D9: the 1.4 structures have no room for a lock, a connection or a retry timer).
//!
//! A handle's state is created by `mcm_new` and dropped by `mcm_free`; a handle allocated from a
//! pool that is reset without `mcm_free` (PostgreSQL memory contexts) leaves its entry behind
//! until a new handle is created at the same address, which replaces it.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use once_cell::sync::Lazy;

use super::lock::{ForkLock, OwnerGuard, OwnerLock};
use super::types::*;
use crate::conn::Security;
use crate::domain_security::Loaded;
use crate::engine::Slot;
use crate::hash::{Distribution, RingServer, Selector};
use crate::registry::{DomainName, Follower};

/// Addresses are already well spread; a multiply is all the hashing they need.
#[derive(Default)]
pub struct AddrHasher(u64);

impl Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub type AddrMap<V> = HashMap<usize, V, BuildHasherDefault<AddrHasher>>;

/// How long a server that failed to connect is skipped before it is tried again (D8).
pub const DEFAULT_RETRY: Duration = crate::engine::DEFAULT_RETRY;

/// The per-server part of a handle's state: the engine's slot for the C server structure,
/// whose `fd` and `active` fields mirror the slot (see `route.rs`).
pub struct ServerSide {
    pub ms: *mut memcache_server,
    pub slot: Slot,
    pub weight: u32,
    /// Added as `tls://HOST:PORT` (or by a domain's TLS entry): spoken to over TLS.
    pub tls: bool,
}

impl ServerSide {
    pub fn new(ms: *mut memcache_server) -> ServerSide {
        ServerSide {
            ms,
            slot: Slot::new(),
            weight: 1,
            tls: false,
        }
    }
}

/// A handle's attachment to a domain. What to check and when (new versions, a segment removed
/// or replaced, a missing one looked for once a second) is the registry's [`Follower`]; acting
/// on what it finds is `domain.rs`.
pub struct DomainLink {
    pub name: DomainName,
    pub follower: Follower,
    /// The context the handle was created with (NULL: the libc allocator): the servers the
    /// domain brings are made and freed with its allocator.
    pub owner: *mut memcache_ctxt,
    /// Made by mc_new(): the first explicit mc_server_add*() detaches the handle and makes it
    /// private, so 1.4 programs keep working unchanged.
    pub legacy: bool,
    /// The domain's TLS and login settings the handle uses (`crate::domain_security`), as read
    /// with the last list; None: the domain has none.
    pub security: Option<Loaded>,
}

impl DomainLink {
    /// The version whose list the handle shows (0 before any).
    pub fn applied(&self) -> u64 {
        self.follower.applied()
    }

    pub fn new(name: DomainName, legacy: bool, owner: *mut memcache_ctxt) -> DomainLink {
        DomainLink {
            follower: Follower::new(name.clone()),
            name,
            owner,
            legacy,
            security: None,
        }
    }
}

/// What only the thread holding the handle's lock touches.
pub struct HandleInner {
    pub servers: Vec<ServerSide>,
    /// Request bytes are encoded here: one allocation reused by every command.
    pub wbuf: Vec<u8>,
    pub retry: Duration,
    /// Copies of each key (D: redundancy); 1 = none. Set by mc_replicas() or the domain.
    pub replicas: u32,
    /// mc_replicas() was called: the domain's count no longer applies.
    pub replicas_explicit: bool,
    /// mc_distribution() was called: neither a domain's nor 1.4's default applies any more.
    pub distribution_explicit: bool,
    /// The shared list the handle follows, if any (None: a private list).
    pub domain: Option<DomainLink>,
    /// The fork generation the connections belong to; another one means this is a child
    /// process holding its parent's sockets.
    pub fork_gen: u64,
    /// Calls under way that need their servers' connections alone (see
    /// [`Locked::make_exclusive`]); while there are any, no request is pipelined.
    pub exclusive: u32,
    /// TLS and login for new connections (mc_tls_*, mc_auth, or the domain's settings).
    pub security: Security,
    /// mc_tls*() (but mc_tls_resumption) or mc_auth*() was called: the domain's TLS and login
    /// settings no longer apply.
    pub security_explicit: bool,
    /// mc_tls_resumption()'s choice (default on). Kept apart from `security` because it is not
    /// a TLS or login setting of its own: it applies to whichever settings are in force, the
    /// program's or its domain's.
    pub resumption: bool,
}

impl HandleInner {
    /// Puts `next` in force for new connections, with the program's mc_tls_resumption()
    /// choice applied (it holds over the program's own settings and its domain's alike), and
    /// returns the settings it replaces.
    pub fn install_security(&mut self, mut next: Security) -> Security {
        if !self.resumption {
            next.set_resumption(false);
        }
        std::mem::replace(&mut self.security, next)
    }

    /// The state of server `ms`, created on first use (a client's own finder may return a
    /// server that was never added through us).
    pub fn side(&mut self, ms: *mut memcache_server) -> &mut ServerSide {
        let at = self.side_index(ms);
        &mut self.servers[at]
    }

    /// Drops connections inherited from a parent process (see `operation::begin`).
    pub fn forget_after_fork(&mut self) {
        let generation = super::fork::generation();
        if self.fork_gen != generation {
            self.fork_gen = generation;
            // The parent's TLS sessions stay the parent's: the child's reconnects start anew.
            self.security.after_fork();
            for side in &mut self.servers {
                if side.slot.forget() {
                    // SAFETY: sides belong to the handle's live servers.
                    unsafe { (*side.ms).fd = -1 };
                }
            }
        }
    }

    /// Closes every open connection, so that each later command runs over a connection made
    /// with the handle's current TLS and login settings.
    pub fn close_connections(&mut self) {
        for side in &mut self.servers {
            if side.slot.close() {
                // SAFETY: sides belong to the handle's live servers.
                unsafe { (*side.ms).fd = -1 };
            }
        }
    }

    /// The index of server `ms`'s state in `servers`, created on first use.
    pub fn side_index(&mut self, ms: *mut memcache_server) -> usize {
        match self.servers.iter().position(|s| s.ms == ms) {
            Some(at) => at,
            None => {
                self.servers.push(ServerSide::new(ms));
                self.servers.len() - 1
            }
        }
    }
}

pub struct HandleState {
    lock: OwnerLock,
    inner: UnsafeCell<HandleInner>,
    dist: AtomicU8,
    /// Rebuilt when the server list changes; read by the default hash and finder without the
    /// handle's lock, since a client may call those hooks while the lock is held.
    selector: ForkLock<Option<Arc<Selector>>>,
    /// Code and message of the most recent failed call on the handle (0 and empty after a
    /// call that reported nothing).
    last_error: ForkLock<(u32, String)>,
    /// Whether `last_error` holds an error (so a success has something to clear).
    has_error: std::sync::atomic::AtomicBool,
}

// SAFETY: `inner` is only reached through `Locked`, which holds `lock`; the other fields are
// atomics and locks.
unsafe impl Sync for HandleState {}
// SAFETY: the raw pointers inside refer to C objects owned by the handle, which the C caller
// may use from any thread (spec D9).
unsafe impl Send for HandleState {}

/// Exclusive access to a handle's inner state for the length of one call.
///
/// A client's hook (its finder, its hash) runs through [`unlocked`](Self::unlocked), with the
/// lock released and no borrow of the state alive, so a hook that calls the library on the same
/// handle gets the lock like any call, and one that leaves by longjmp leaves nothing locked.
/// The lock's same-thread takeover (see `lock.rs`) is then only ever met after a non-local exit
/// left a guard behind, when the frame that held it is gone: never two live borrows.
pub struct Locked<'a> {
    /// None only while a hook runs, when `&mut self` is lent to [`unlocked`](Self::unlocked).
    guard: Option<OwnerGuard<'a>>,
    state: &'a HandleState,
    /// This call counts in `exclusive` (see [`make_exclusive`](Self::make_exclusive)).
    counted: bool,
    /// A pipelined caller whose turn came, unparked once the lock is released.
    unpark: Option<std::thread::Thread>,
}

impl Locked<'_> {
    /// Runs `hook` with the handle's lock released, then takes the lock again. What was read
    /// from the state before may have changed meanwhile (another thread's call, or the hook's
    /// own): callers look again.
    pub fn unlocked<R>(&mut self, hook: impl FnOnce() -> R) -> R {
        self.guard = None;
        self.unpark_now();
        let result = hook();
        self.guard = Some(self.state.lock.lock());
        result
    }

    /// Makes this call one that uses its servers' connections alone (a multi-get, stats, a
    /// flush, a write to several copies): waits, with the lock released, until no reply of a
    /// pipelined request is awaited on any of them, and keeps new requests from being
    /// pipelined until the call ends, even while one of its hooks runs unlocked. A
    /// connection whose replies are still awaited after twice its timeout is closed as timed
    /// out (its callers get the error).
    pub fn make_exclusive(&mut self) {
        // A child process does not wait for its parent's callers: it drops their connections.
        self.forget_after_fork();
        if !self.counted {
            self.counted = true;
            self.exclusive += 1;
        }
        let mut waited = None;
        let mut round = 0u32;
        // A reply left half read by a caller that jumped out is never coming: its connection
        // is closed at once (has_ready_conn) rather than waited for.
        let busy = |inner: &mut HandleInner| {
            inner
                .servers
                .iter_mut()
                .any(|side| side.slot.busy() && side.slot.has_ready_conn() && side.slot.busy())
        };
        while busy(self) {
            let longest = self
                .servers
                .iter()
                .filter_map(|side| side.slot.busy().then(|| side.slot.timeout()).flatten())
                .max()
                .unwrap_or(crate::engine::DEFAULT_TIMEOUT);
            let since = *waited.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() >= 2 * longest {
                let late = crate::command::Failure::Recv(crate::conn::Fail::Timeout);
                for side in &mut self.servers {
                    if side.slot.busy() {
                        side.slot.failed(&late);
                        // SAFETY: sides belong to the handle's live servers; a timed-out
                        // server is down (as route.rs keeps the 1.4 fields).
                        unsafe {
                            (*side.ms).fd = -1;
                            (*side.ms).active = STATE_DOWN;
                        }
                    }
                }
                break;
            }
            // The callers awaiting replies need the lock to take them: short naps, longer
            // as the wait goes on (those replies take one round trip each).
            round += 1;
            let nap = std::time::Duration::from_micros((20 * round as u64).min(1000));
            self.unlocked(|| std::thread::park_timeout(nap));
        }
    }

    /// Unparks `thread` as soon as the lock is released (see
    /// [`Shared::unpark_unlocked`](crate::engine::Shared::unpark_unlocked)).
    pub fn unpark_unlocked(&mut self, thread: std::thread::Thread) {
        if let Some(earlier) = self.unpark.replace(thread) {
            earlier.unpark();
        }
    }

    fn unpark_now(&mut self) {
        if let Some(thread) = self.unpark.take() {
            thread.unpark();
        }
    }

    /// Whether requests may be pipelined now: no call that needs connections alone is
    /// under way.
    pub fn shared(&self) -> bool {
        self.exclusive == 0
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if self.counted && self.guard.is_some() {
            self.exclusive -= 1;
        }
        self.guard = None;
        self.unpark_now();
    }
}

impl std::ops::Deref for Locked<'_> {
    type Target = HandleInner;
    fn deref(&self) -> &HandleInner {
        debug_assert!(self.guard.is_some());
        // SAFETY: the guard holds the handle's lock (a Locked without one is mutably lent to
        // unlocked() and cannot be dereferenced), so no other thread reaches inner; and no hook
        // runs while a borrow of it is alive (see unlocked()), so no call on this thread either.
        unsafe { &*self.state.inner.get() }
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut HandleInner {
        debug_assert!(self.guard.is_some());
        // SAFETY: as for deref.
        unsafe { &mut *self.state.inner.get() }
    }
}

impl HandleState {
    fn new(dist: Distribution) -> HandleState {
        HandleState {
            lock: OwnerLock::new(),
            inner: UnsafeCell::new(HandleInner {
                servers: Vec::new(),
                wbuf: Vec::with_capacity(1024),
                retry: DEFAULT_RETRY,
                replicas: 1,
                replicas_explicit: false,
                distribution_explicit: false,
                domain: None,
                fork_gen: super::fork::generation(),
                exclusive: 0,
                security: Security::default(),
                security_explicit: false,
                resumption: true,
            }),
            dist: AtomicU8::new(dist as u8),
            selector: ForkLock::new(None),
            last_error: ForkLock::new((0, String::new())),
            has_error: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn lock(&self) -> Locked<'_> {
        Locked {
            guard: Some(self.lock.lock()),
            state: self,
            counted: false,
            unpark: None,
        }
    }

    /// [`lock`](Self::lock) for a call that uses its servers' connections alone (see
    /// [`Locked::make_exclusive`]).
    pub fn lock_exclusive(&self) -> Locked<'_> {
        let mut locked = self.lock();
        locked.make_exclusive();
        locked
    }

    pub fn distribution(&self) -> Distribution {
        match self.dist.load(Ordering::Relaxed) {
            1 => Distribution::KetamaMd5,
            _ => Distribution::Crc32Modulo,
        }
    }

    pub fn set_distribution(&self, dist: Distribution) {
        self.dist.store(dist as u8, Ordering::Relaxed);
    }

    pub fn set_last_error(&self, last: Option<(u32, String)>) {
        // Most calls succeed on a handle with no error recorded: then nothing is written.
        if last.is_none() && !self.has_error.load(Ordering::Relaxed) {
            return;
        }
        self.has_error.store(last.is_some(), Ordering::Relaxed);
        *self.last_error.lock() = last.unwrap_or_default();
    }

    pub fn last_error(&self) -> (u32, String) {
        self.last_error.lock().clone()
    }

    /// Picks with the current selector under its read lock (no reference count traffic on the
    /// hot path); None when there is none or it does not match `n` servers.
    pub fn pick(&self, n: usize, hash: u32, live: impl Fn(usize) -> bool) -> Option<usize> {
        let guard = self.selector.lock();
        let sel = guard.as_ref().filter(|sel| sel.num_servers() == n)?;
        sel.pick(hash, live)
    }

    /// Up to `count` distinct live servers for `hash`, primary first (ketama: the next distinct
    /// servers on the ring; crc32-modulo: the next indexes), as indexes into `mc->servers`.
    pub fn pick_n(
        &self,
        n: usize,
        hash: u32,
        count: usize,
        live: impl Fn(usize) -> bool,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        if let Some(sel) = self
            .selector
            .lock()
            .as_ref()
            .filter(|sel| sel.num_servers() == n)
        {
            sel.pick_n(hash, count, live, out);
        }
    }

    /// Rebuilds the placement from the handle's servers, in `mc->servers` order.
    ///
    /// # Safety
    /// `mc` is a live handle whose `servers` array holds `num_servers` live servers.
    pub unsafe fn rebuild_selector(&self, mc: *const memcache, inner: &HandleInner) {
        // SAFETY: mc is a live handle its exported function NULL-checked, and every caller holds
        // its lock (inner), under which alone the array of num_servers live servers changes.
        let servers = unsafe { server_slice(mc) };
        let names: Vec<(String, u16, u32)> = servers
            .iter()
            .map(|&ms| {
                // SAFETY: each entry is a live server; hostname/port are NULL or C strings.
                let (host, port) = unsafe { (cstr_lossy((*ms).hostname), cstr_lossy((*ms).port)) };
                let weight = inner
                    .servers
                    .iter()
                    .find(|s| s.ms == ms)
                    .map_or(1, |s| s.weight);
                (host, port.parse().unwrap_or(0), weight)
            })
            .collect();
        let ring: Vec<RingServer<'_>> = names
            .iter()
            .map(|(host, port, weight)| RingServer {
                host,
                port: *port,
                weight: *weight,
            })
            .collect();
        *self.selector.lock() = Some(Arc::new(Selector::new(self.distribution(), &ring)));
    }
}

/// The handle's servers as a slice of `mc->servers`.
///
/// # Safety
/// `mc` is a live handle; `servers` is NULL or holds `num_servers` entries.
pub unsafe fn server_slice<'a>(mc: *const memcache) -> &'a [*mut memcache_server] {
    // SAFETY: mc is non-NULL and live: every caller passes a handle its exported function
    // NULL-checked, or a hook's own handle argument; the reference ends with this function.
    let mc = unsafe { &*mc };
    if mc.servers.is_null() || mc.num_servers == 0 {
        return &[];
    }
    // SAFETY: the array has num_servers entries (plus a NULL) maintained by mcm_server_add3.
    unsafe { std::slice::from_raw_parts(mc.servers, mc.num_servers as usize) }
}

/// A C string as text (lossy), empty for NULL.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
pub unsafe fn cstr_lossy(p: *const libc::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: p is non-NULL (tested above) and NUL-terminated: callers pass a server's
    // hostname or port (set by the adds to NUL-terminated copies) or a C string argument that
    // memcache.h documents as NULL or NUL-terminated.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

static HANDLES: Lazy<ForkLock<AddrMap<Arc<HandleState>>>> = Lazy::new(Default::default);

/// The state of handle `mc`, created on first use for a handle this library did not create.
pub fn handle(mc: *const memcache) -> Arc<HandleState> {
    HANDLES
        .lock()
        .entry(mc as usize)
        .or_insert_with(|| Arc::new(HandleState::new(Distribution::Crc32Modulo)))
        .clone()
}

/// Starts fresh state for a new handle, replacing anything left at that address.
pub fn handle_created(mc: *const memcache) {
    let old = HANDLES.lock().insert(
        mc as usize,
        Arc::new(HandleState::new(Distribution::Crc32Modulo)),
    );
    drop(old); // closes the sockets of a handle that was reclaimed without mcm_free
}

/// Forgets handle `mc`; its connections close when the last call using it ends.
pub fn handle_freed(mc: *const memcache) {
    let old = HANDLES.lock().remove(&(mc as usize));
    drop(old);
}

/// Which handle each added server belongs to, for the calls that are given only a server.
static OWNERS: Lazy<ForkLock<AddrMap<usize>>> = Lazy::new(Default::default);

pub fn set_owner(ms: *const memcache_server, mc: *const memcache) {
    OWNERS.lock().insert(ms as usize, mc as usize);
}

pub fn owner(ms: *const memcache_server) -> Option<*const memcache> {
    OWNERS
        .lock()
        .get(&(ms as usize))
        .map(|&mc| mc as *const memcache)
}

pub fn forget_owner(ms: *const memcache_server) {
    OWNERS.lock().remove(&(ms as usize));
}

/// Value buffers this library allocated for results (D4, D11): lets `mc_get` and `mc_res_free`
/// tell them from caller buffers without adding bits to `_flags`. Kept per request (by its
/// address), so a fetch or a release of a whole request costs one lookup, not one per key.
static LIB_VALUES: Lazy<ForkLock<AddrMap<Vec<Record>>>> = Lazy::new(Default::default);

/// A result and the value buffer it points at.
pub type ResultValue = (*const memcache_res, *const libc::c_void);

/// A [`ResultValue`] as addresses (0 for a record already asked about).
type Record = (usize, usize);

fn record((res, val): ResultValue) -> Record {
    (res as usize, val as usize)
}

/// Records the value buffers this library allocated for results of `req` (one lock for a whole
/// fetch).
pub fn values_allocated(req: *const memcache_req, values: impl IntoIterator<Item = ResultValue>) {
    let mut values = values.into_iter().peekable();
    if values.peek().is_some() {
        let mut map = LIB_VALUES.lock();
        map.entry(req as usize)
            .or_default()
            .extend(values.map(record));
    }
}

/// Takes all of `req`'s records (the request is being fetched again or freed: each of its
/// values is then released or handed to the caller), to be asked about without the lock.
pub fn take_request(req: *const memcache_req) -> Records {
    let list = LIB_VALUES.lock().remove(&(req as usize));
    Records {
        list: list.unwrap_or_default(),
        cursor: 0,
    }
}

/// Whether `value`'s buffer is one this library allocated for its result, forgetting that
/// record. `req` is the request holding the result; NULL when the caller does not say (then
/// every request's records are searched).
pub fn take_value(req: *const memcache_req, value: ResultValue) -> bool {
    let value = record(value);
    let mut map = LIB_VALUES.lock();
    let found = if req.is_null() {
        let found = map.values_mut().any(|list| take_from(list, value));
        map.retain(|_, list| !list.is_empty());
        found
    } else {
        map.get_mut(&(req as usize))
            .is_some_and(|list| take_from(list, value))
    };
    found && value.1 != 0
}

fn take_from(list: &mut Vec<Record>, value: Record) -> bool {
    let at = list.iter().position(|&r| r == value);
    at.map(|at| list.swap_remove(at)).is_some()
}

/// A request's records, taken out of the registry by [`take_request`].
pub struct Records {
    list: Vec<Record>,
    /// Records are in the order values were filled in (server by server) and results are
    /// asked about in request order: the search starts after the previous find.
    cursor: usize,
}

impl Records {
    /// Whether `value`'s buffer is one this library allocated for its result.
    pub fn owns(&mut self, value: ResultValue) -> bool {
        let value = record(value);
        let n = self.list.len();
        let Some(at) = (self.cursor..n)
            .chain(0..self.cursor.min(n))
            .find(|&i| self.list[i] == value)
        else {
            return false;
        };
        self.list[at].0 = 0; // asked: a result is released once
        self.cursor = at + 1;
        value.1 != 0
    }
}

/// Takes this file's process-wide registries before fork() (pthread_atfork prepare), so no other
/// thread can be inside one when the child's copy is made.
pub fn lock_registries() {
    HANDLES.hold();
    OWNERS.hold();
    LIB_VALUES.hold();
}

/// Frees what lock_registries() took (pthread_atfork parent and child; see `atfork.rs`).
pub fn unlock_registries() {
    LIB_VALUES.release();
    OWNERS.release();
    HANDLES.release();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// A thread that parks once (as a pipelined caller waits for its turn), then says so.
    fn waiter() -> (std::thread::JoinHandle<()>, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            std::thread::park();
            tx.send(()).unwrap();
        });
        (handle, rx)
    }

    #[test]
    fn a_deferred_unpark_waits_for_the_lock_and_is_never_lost() {
        let st = HandleState::new(Distribution::Crc32Modulo);
        let (held, bound) = (Duration::from_millis(50), Duration::from_secs(10));

        // Not while the lock is held; before a hook runs unlocked.
        let (first, woken) = waiter();
        let mut locked = st.lock();
        locked.unpark_unlocked(first.thread().clone());
        assert!(woken.recv_timeout(held).is_err(), "woken under the lock");
        locked.unlocked(|| woken.recv_timeout(bound).expect("woken before the hook"));
        first.join().unwrap();

        // Not while the lock is held; when the call's guard goes.
        let (second, woken) = waiter();
        locked.unpark_unlocked(second.thread().clone());
        assert!(woken.recv_timeout(held).is_err(), "woken under the lock");
        drop(locked);
        woken
            .recv_timeout(bound)
            .expect("woken when the call ended");
        second.join().unwrap();
    }
}
