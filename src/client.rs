//! The safe Rust client: a server list with its placement over the [`crate::engine`], one lazily
//! opened connection per server. `mclient` and the benchmarks use it; the C ABI is the other
//! front end of the same engine.
//!
//! Rules, in the order an operation meets them:
//! - the key is checked ([`key::check`]) before a server is chosen or a socket touched;
//! - the key's server comes from the distribution, skipping servers marked dead; a server is
//!   resolved and connected on first use, and a failed resolve or connect marks it dead for the
//!   retry interval and sends the key to the next live server;
//! - any [`Failure`] (I/O error, timeout, reply that does not parse or fit) closes that server's
//!   connection and is returned; nothing is re-sent, so an `incr` can never count twice;
//! - a miss, NOT_STORED or a server's refusal keeps the connection.
//!
//! With several copies ([`Client::set_replicas`]) a key lives on that many distinct servers, the
//! distribution's next live ones (ketama: the next distinct servers on the ring; crc32-modulo: the
//! next indexes), as the C library's `mc_replicas()` places them. A write goes to each in copy
//! order and answers what the first server that answered said (the primary's answer unless the
//! primary failed); the other answers are not compared. A read asks each copy in order until one
//! has the key.
#![forbid(unsafe_code)]

use std::fmt;
use std::time::{Duration, Instant};

use crate::command::{self, Counter, Failure, Stored, ValueSink, PREALLOC_LIMIT};
use crate::conn::{self, Conn, Fail, Security};
use crate::engine::{self, RouteError, Servers, Slot};
use crate::hash::{Distribution, Selector};
use crate::key::{self, KeyError};
use crate::protocol::{Event, Reply, StoreCmd};

/// libmemcache's default timeout for every wait on a server: 2 s + 600 µs.
pub const DEFAULT_TIMEOUT: Duration = engine::DEFAULT_TIMEOUT;

/// How long a server whose connect failed is left out of placement.
pub const DEFAULT_RETRY_INTERVAL: Duration = engine::DEFAULT_RETRY;

/// One server's `STAT name value` lines, in the order it sent them.
pub type StatLines = Vec<(String, String)>;

/// One server of the list: the library's one address type, [`crate::address::ServerAddr`].
pub use crate::address::ServerAddr as ServerSpec;
pub use crate::engine::{Answer, Bulk, BulkOp, Dialect};

/// One key of a [`Client::bulk`] call: what to store (the value, flags and expiry; a delete
/// uses only the key, a touch the key and the expiry).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Write<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u32,
    pub exptime: u64,
}

impl From<crate::address::AddressError> for ClientError {
    fn from(e: crate::address::AddressError) -> ClientError {
        ClientError::BadServer(format!("{:?}: {}", e.address(), e.reason()))
    }
}

/// A value as stored: its bytes, its client flags and (from [`Client::gets`]) its cas unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Item {
    pub value: Vec<u8>,
    pub flags: u32,
    /// The cas unique from `gets`; 0 from a plain `get`.
    pub cas: u64,
}

/// Why an operation failed. `Display` is one line naming the problem (and the server).
#[derive(Debug)]
pub enum ClientError {
    /// The key was refused before any I/O.
    BadKey(KeyError),
    /// A server address that cannot name a server; the text says which and why.
    BadServer(String),
    /// No server to send to: the list is empty, or every server is marked dead for the retry
    /// interval.
    NoServer,
    /// Resolving or connecting to `server` failed during this operation (and no other live
    /// server was left), or `server` is marked dead; it stays dead for the retry interval.
    Connect { server: String, message: String },
    /// The exchange with `server` failed; its connection was closed.
    Server { server: String, failure: Failure },
    /// `server` refused the command (CLIENT_ERROR/SERVER_ERROR, e.g. `incr` of a non-number);
    /// the connection is still in sync and kept.
    Refused { server: String, message: String },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::BadKey(e) => f.write_str(&e.message()),
            ClientError::BadServer(what) => write!(f, "bad server address {what}"),
            ClientError::NoServer => f.write_str(
                "no live server (the list is empty or every server failed to connect recently)",
            ),
            ClientError::Connect { server, message } => {
                write!(f, "{server}: cannot connect: {message}")
            }
            // Failure's own text for a send shows the io::Error's Debug form; say it plainly.
            ClientError::Server { server, failure } => match failure {
                Failure::Send(Fail::Timeout) => write!(f, "{server}: write timed out"),
                Failure::Send(Fail::Closed) => write!(f, "{server}: connection closed on write"),
                Failure::Send(Fail::Io(e)) => write!(f, "{server}: write failed: {e}"),
                other => write!(f, "{server}: {other}"),
            },
            ClientError::Refused { server, message } => {
                write!(f, "{server}: server refused: {message}")
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// A memcached client over a list of servers. Not thread-safe by itself (`&mut self`): give each
/// thread its own, or put one behind a lock.
pub struct Client {
    specs: Vec<ServerSpec>,
    /// Each server's `ServerSpec` Display, made once: errors and admin results carry it.
    names: Vec<String>,
    slots: Vec<Slot>,
    selector: Selector,
    timeout: Duration,
    retry: Duration,
    /// How many slots are down; while 0, placement needs no clock read.
    down: usize,
    /// The instant liveness is judged at during one operation, read when first needed: a
    /// server put down during the operation stays out of the picks made after it.
    now: Option<Instant>,
    /// Copies of each key (1: none).
    replicas: usize,
    /// How bulk calls speak to the servers.
    dialect: Dialect,
    /// The one request buffer, reused by every command.
    wbuf: Vec<u8>,
    /// TLS and login for new connections.
    security: Security,
}

impl Client {
    /// A client for `servers` (in this order; the order is part of the placement) with keys
    /// placed by `distribution`. Nothing is resolved or connected until first use. An empty
    /// list is allowed; every key operation then fails with [`ClientError::NoServer`].
    pub fn new(
        servers: Vec<ServerSpec>,
        distribution: Distribution,
    ) -> Result<Client, ClientError> {
        for spec in &servers {
            spec.check()?;
        }
        let selector = Selector::for_servers(distribution, &servers);
        Ok(Client {
            names: servers.iter().map(ToString::to_string).collect(),
            slots: servers.iter().map(|_| Slot::new()).collect(),
            specs: servers,
            selector,
            timeout: DEFAULT_TIMEOUT,
            retry: DEFAULT_RETRY_INTERVAL,
            down: 0,
            now: None,
            replicas: 1,
            dialect: Dialect::Auto,
            wbuf: Vec::with_capacity(4096),
            security: Security::default(),
        })
    }

    /// TLS and login for new connections (see [`Security`]); the open ones are closed, so
    /// every later command runs over a connection made with these settings.
    pub fn set_security(&mut self, security: Security) {
        self.security = security;
        self.close_all();
    }

    /// Closes every open connection: the next command of each server connects anew.
    fn close_all(&mut self) {
        for slot in &mut self.slots {
            slot.close();
        }
    }

    /// Bounds every connect, write and read wait (default 2 s + 600 µs); applies to open
    /// connections too.
    pub fn set_timeout(&mut self, t: Duration) {
        self.timeout = t;
        for slot in &mut self.slots {
            slot.set_timeout(t);
        }
    }

    /// How long a server whose connect failed is skipped (default 5 s).
    pub fn set_retry_interval(&mut self, t: Duration) {
        self.retry = t;
    }

    /// Keeps `n` copies of every key on distinct servers (default 1, no redundancy; 0 counts as
    /// 1; with fewer live servers than `n`, every live server holds a copy). Writes (storage
    /// commands, delete, touch, incr, decr) go to every copy and return the first answer in copy
    /// order, the primary's unless it failed; [`get`](Self::get) and [`gets`](Self::gets) ask
    /// the copies in order until one has the key; [`get_multi`](Self::get_multi) asks the keys
    /// still missing of their next copy, round by round. Copies are not repaired: a key written
    /// while one of its servers was down is missing there until it is written again.
    pub fn set_replicas(&mut self, n: usize) {
        self.replicas = n.max(1);
    }

    /// The number of copies kept of each key.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    pub fn servers(&self) -> &[ServerSpec] {
        &self.specs
    }

    /// The index of the server that `key` would go to now (skipping servers marked dead), without
    /// any I/O. `None` for an invalid key or when no server is live.
    pub fn server_for(&self, key: &[u8]) -> Option<usize> {
        key::check(key).ok()?;
        let hash = self.selector.hash(key);
        let now = Instant::now();
        self.selector
            .pick(hash, |i| self.slots[i].health.is_live(now, self.retry))
    }

    /// The indexes of the servers that hold the copies of `key` now (see
    /// [`set_replicas`](Self::set_replicas)), primary first, without any I/O. Empty for an
    /// invalid key or when no server is live.
    pub fn copies_for(&self, key: &[u8]) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.replicas);
        if key::check(key).is_ok() {
            let now = Instant::now();
            let live = |i: usize| self.slots[i].health.is_live(now, self.retry);
            self.selector
                .pick_n(self.selector.hash(key), self.replicas, live, &mut out);
        }
        out
    }

    pub fn get(&mut self, key: &[u8]) -> Result<Option<Item>, ClientError> {
        self.fetch_one(key, false)
    }

    /// Like [`get`](Self::get), with the item's cas unique for a later `StoreCmd::Cas`.
    pub fn gets(&mut self, key: &[u8]) -> Result<Option<Item>, ClientError> {
        self.fetch_one(key, true)
    }

    /// Groups keys per server, writes every server's `get` before reading any reply; result in
    /// key order, `None` for a miss. Duplicate keys are allowed. If a server fails, the other
    /// servers' replies are still read (their connections stay in sync). With several copies,
    /// the keys still missing are then asked of their next copy, round by round. The first
    /// error is returned when some key got no answer from any server.
    pub fn get_multi(&mut self, keys: &[&[u8]]) -> Result<Vec<Option<Item>>, ClientError> {
        for k in keys {
            key::check(k).map_err(ClientError::BadKey)?;
        }
        let out: Vec<Option<Item>> = vec![None; keys.len()];
        if keys.is_empty() {
            return Ok(out);
        }
        self.now = None;
        // Which requested keys (their indexes in `keys`) each server answers, in request order.
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); self.slots.len()];
        let hashes: Vec<u32> = keys.iter().map(|k| self.selector.hash(k)).collect();
        for (i, &hash) in hashes.iter().enumerate() {
            let server = self.route(hash)?;
            groups[server].push(i);
        }
        let mut wanted = MultiKeys { keys, hashes, out };
        let replicas = self.replicas;
        let fetched = engine::multi_get(self, &mut wanted, keys.len(), &mut groups, replicas);
        if fetched.answered.iter().all(|&a| a) {
            return Ok(wanted.out);
        }
        Err(fetched.first_error.unwrap_or(ClientError::NoServer))
    }

    /// Many writes in one call, an answer per key (in the order of `writes`): each server's
    /// keys are written in one go, to every server before any reply is read (memcached 1.6's
    /// quiet meta commands where the server speaks them). `Err` only for a bad key, before
    /// any I/O; a key whose server failed is [`Answer::Failed`], with the first failure in
    /// [`Bulk::first_error`]. Not for `StoreCmd::Cas`.
    pub fn bulk(
        &mut self,
        op: BulkOp,
        writes: &[Write<'_>],
    ) -> Result<Bulk<ClientError>, ClientError> {
        if matches!(op, BulkOp::Store(StoreCmd::Cas(_))) {
            return Err(ClientError::Refused {
                server: String::new(),
                message: "cas is not a bulk command".into(),
            });
        }
        for w in writes {
            key::check(w.key).map_err(ClientError::BadKey)?;
        }
        self.now = None;
        let items = BulkWrites {
            hashes: writes.iter().map(|w| self.selector.hash(w.key)).collect(),
            writes,
        };
        let (replicas, dialect) = (self.replicas, self.dialect);
        Ok(engine::bulk(self, op, &items, replicas, dialect))
    }

    /// Bulk calls in text commands only, never meta (for a proxy that passes only the text
    /// protocol); `Dialect::Auto` (the default) asks each connection once.
    pub fn set_bulk_dialect(&mut self, dialect: Dialect) {
        self.dialect = dialect;
    }

    /// Any storage command; `StoreCmd::Cas(unique)` with the `cas` of a [`gets`](Self::gets).
    pub fn store(
        &mut self,
        cmd: StoreCmd,
        key: &[u8],
        value: &[u8],
        flags: u32,
        exptime: u64,
    ) -> Result<Stored, ClientError> {
        self.on_key(key, never_done, |conn, wbuf| {
            command::store(conn, wbuf, cmd, key, flags, exptime, value)
        })
        .map(|(_, stored)| stored)
    }

    pub fn set(
        &mut self,
        key: &[u8],
        value: &[u8],
        flags: u32,
        exptime: u64,
    ) -> Result<Stored, ClientError> {
        self.store(StoreCmd::Set, key, value, flags, exptime)
    }

    /// True when deleted, false when there was no such key.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, ClientError> {
        self.on_key(key, never_done, |conn, wbuf| {
            command::delete(conn, wbuf, key)
        })
        .map(|(_, deleted)| deleted)
    }

    /// True when touched, false when there was no such key.
    pub fn touch(&mut self, key: &[u8], exptime: u64) -> Result<bool, ClientError> {
        self.on_key(key, never_done, |conn, wbuf| {
            command::touch(conn, wbuf, key, exptime)
        })
        .map(|(_, touched)| touched)
    }

    /// The new value, or `None` when the key does not exist.
    pub fn incr(&mut self, key: &[u8], delta: u64) -> Result<Option<u64>, ClientError> {
        self.arith(true, key, delta)
    }

    /// The new value (memcached stops at 0), or `None` when the key does not exist.
    pub fn decr(&mut self, key: &[u8], delta: u64) -> Result<Option<u64>, ClientError> {
        self.arith(false, key, delta)
    }

    /// Every server, in list order: its name and its stats (or the error). `group` = None for
    /// plain `stats`, Some(b"conns") etc.; a group is one or more words that would be valid
    /// keys, else every entry is [`ClientError::BadKey`].
    pub fn stats(&mut self, group: Option<&[u8]>) -> Vec<(String, Result<StatLines, ClientError>)> {
        let group_check = group.map_or(Ok(()), check_stats_group);
        (0..self.slots.len())
            .map(|server| {
                let name = self.names[server].clone();
                let result = match group_check {
                    Err(e) => Err(ClientError::BadKey(e)),
                    Ok(()) => self.on_server(server, |conn, wbuf| {
                        let mut lines = Vec::new();
                        command::stats(conn, wbuf, group, &mut |name, value| {
                            lines.push((text(name), text(value)));
                        })?;
                        Ok(lines)
                    }),
                };
                (name, result)
            })
            .collect()
    }

    /// `flush_all` on every server, in list order.
    pub fn flush_all(&mut self) -> Vec<(String, Result<(), ClientError>)> {
        (0..self.slots.len())
            .map(|server| {
                let name = self.names[server].clone();
                (name, self.on_server(server, command::flush))
            })
            .collect()
    }

    /// Every server's version string, in list order.
    pub fn version(&mut self) -> Vec<(String, Result<String, ClientError>)> {
        (0..self.slots.len())
            .map(|server| {
                let name = self.names[server].clone();
                let result = self.on_server(server, |conn, wbuf| {
                    command::version(conn, wbuf).map(|v| text(&v))
                });
                (name, result)
            })
            .collect()
    }

    fn fetch_one(&mut self, key: &[u8], cas: bool) -> Result<Option<Item>, ClientError> {
        self.on_key(key, Option::is_some, |conn, wbuf| {
            command::send_get(conn, wbuf, [key], cas)?;
            read_one(conn, key)
        })
        .map(|(_, item)| item)
    }

    fn arith(&mut self, incr: bool, key: &[u8], delta: u64) -> Result<Option<u64>, ClientError> {
        let (server, counter) = self.on_key(key, never_done, |conn, wbuf| {
            command::arith(conn, wbuf, incr, key, delta)
        })?;
        match counter {
            Counter::Value(n) => Ok(Some(n)),
            Counter::NotFound => Ok(None),
            Counter::Refused(message) => Err(ClientError::Refused {
                server: self.names[server].clone(),
                message,
            }),
        }
    }

    /// Checks `key`, finds and connects its server, runs `op` there; returns the index of the
    /// server that answered with the result. With several copies, see [`engine::on_copies`];
    /// `done` says which result ends a read.
    fn on_key<T>(
        &mut self,
        key: &[u8],
        done: impl Fn(&T) -> bool,
        op: impl FnMut(&mut Conn, &mut Vec<u8>) -> Result<T, Failure>,
    ) -> Result<(usize, T), ClientError> {
        key::check(key).map_err(ClientError::BadKey)?;
        self.now = None;
        let hash = self.selector.hash(key);
        if self.replicas > 1 {
            return engine::on_copies(self, hash, self.replicas, done, op).map_err(route_error);
        }
        let server = self.route(hash)?;
        Servers::exchange(self, server, op).map(|v| (server, v))
    }

    /// The connected server for `hash` (see [`engine::route`]).
    fn route(&mut self, hash: u32) -> Result<usize, ClientError> {
        engine::route(self, hash).map_err(route_error)
    }

    /// Runs `op` on one given server (admin commands), connecting it if needed; a server marked
    /// dead is not tried before its retry time.
    fn on_server<T>(
        &mut self,
        server: usize,
        op: impl FnOnce(&mut Conn, &mut Vec<u8>) -> Result<T, Failure>,
    ) -> Result<T, ClientError> {
        if !self.slots[server].has_ready_conn() {
            let health = &self.slots[server].health;
            if !health.is_live(Instant::now(), self.retry) {
                return Err(ClientError::Connect {
                    server: self.names[server].clone(),
                    message: format!("{} (not retried yet)", health.why()),
                });
            }
            Servers::connect(self, server)?;
        }
        Servers::exchange(self, server, op)
    }

    /// What a failed exchange does: the slot closes the connection (and puts the server down
    /// after a timeout, as the C API does), and the error names the server.
    fn server_failed(&mut self, server: usize, failure: Failure) -> ClientError {
        on_slot(&mut self.slots, &mut self.down, server, |slot| {
            slot.failed(&failure)
        });
        self.server_error(server, failure)
    }

    fn server_error(&self, server: usize, failure: Failure) -> ClientError {
        ClientError::Server {
            server: self.names[server].clone(),
            failure,
        }
    }
}

impl Servers for Client {
    type Error = ClientError;

    fn count(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn pick(&mut self, hash: u32) -> Option<usize> {
        if self.down == 0 {
            return self.selector.pick(hash, |_| true);
        }
        let now = *self.now.get_or_insert_with(Instant::now);
        let (slots, retry) = (&self.slots, self.retry);
        self.selector
            .pick(hash, |i| slots[i].health.is_live(now, retry))
    }

    fn pick_copies(&mut self, hash: u32, count: usize, out: &mut Vec<usize>) {
        if self.down == 0 {
            return self.selector.pick_n(hash, count, |_| true, out);
        }
        let now = *self.now.get_or_insert_with(Instant::now);
        let (slots, retry) = (&self.slots, self.retry);
        self.selector
            .pick_n(hash, count, |i| slots[i].health.is_live(now, retry), out);
    }

    #[inline]
    fn ready(&mut self, server: usize) -> bool {
        self.slots[server].has_ready_conn()
    }

    /// Resolves (first time) and connects `server`; on failure it is down for the retry
    /// interval.
    fn connect(&mut self, server: usize) -> Result<(), ClientError> {
        // The first connect attempt fixes the operation's instant (see `now`).
        self.now.get_or_insert_with(Instant::now);
        let timeout = self.timeout;
        let spec = &self.specs[server];
        let (host, port, tls) = (spec.host.clone(), spec.port, spec.tls);
        let resolve = || conn::resolve(&host, &port.to_string());
        let Client {
            slots,
            down,
            security,
            names,
            ..
        } = self;
        let failed = |message: String| ClientError::Connect {
            server: names[server].clone(),
            message,
        };
        let greeting = security
            .greeting(tls, &host)
            .map_err(|e| failed(e.to_string()))?;
        on_slot(slots, down, server, |slot| {
            slot.connect_with(timeout, &greeting, resolve)
        })
        .map(|_reconnected| ())
        .map_err(|e| failed(e.to_string()))
    }

    #[inline]
    fn exchange<T>(
        &mut self,
        server: usize,
        op: impl FnOnce(&mut Conn, &mut Vec<u8>) -> Result<T, Failure>,
    ) -> Result<T, ClientError> {
        let Client {
            slots, down, wbuf, ..
        } = self;
        if !slots[server].has_conn() {
            return Err(ClientError::NoServer);
        }
        // On a failure the slot has closed the connection, and put the server down after a
        // timeout.
        on_slot(slots, down, server, |slot| slot.exchange(wbuf, op))
            .map_err(|failure| self.server_error(server, failure))
    }

    fn slots(&mut self) -> (Vec<&mut Slot>, &mut Vec<u8>) {
        (self.slots.iter_mut().collect(), &mut self.wbuf)
    }

    fn settle(&mut self, server: usize, outcome: Result<(), Failure>) -> Result<(), ClientError> {
        match outcome {
            Ok(()) => {
                self.slots[server].replied();
                Ok(())
            }
            Err(failure) => Err(self.server_failed(server, failure)),
        }
    }
}

/// Runs `f` on slot `server`, keeping `down`, the count of servers down, in step with its
/// health.
#[inline]
fn on_slot<R>(
    slots: &mut [Slot],
    down: &mut usize,
    server: usize,
    f: impl FnOnce(&mut Slot) -> R,
) -> R {
    let slot = &mut slots[server];
    let was_down = slot.health.is_down();
    let result = f(slot);
    match (was_down, slot.health.is_down()) {
        (false, true) => *down += 1,
        (true, false) => *down -= 1,
        _ => {}
    }
    result
}

/// The client's error for a failed route: the last connect failure, or no server at all.
fn route_error(e: RouteError<ClientError>) -> ClientError {
    match e {
        RouteError::NoneLive => ClientError::NoServer,
        RouteError::Unreachable(e) => e,
    }
}

/// A write is never ended early: every copy gets it.
fn never_done<T>(_: &T) -> bool {
    false
}

/// Reads the reply to a one-key `get`/`gets` without the bookkeeping that
/// [`command::read_values`] needs for many keys (this is the hot path).
fn read_one(conn: &mut Conn, key: &[u8]) -> Result<Option<Item>, Failure> {
    let mut item = None;
    loop {
        match conn.next_event()? {
            Event::Reply(Reply::End) => return Ok(item),
            Event::Value {
                key: answered,
                flags,
                cas,
                data,
            } if answered == key && item.is_none() => {
                item = Some(Item {
                    value: data.to_vec(),
                    flags,
                    cas: cas.unwrap_or(0),
                });
            }
            Event::Reply(Reply::Value {
                key: answered,
                flags,
                bytes,
                cas,
            }) if answered == key && item.is_none() => {
                let mut value = Vec::with_capacity(bytes.min(PREALLOC_LIMIT));
                loop {
                    match conn.next_event()? {
                        Event::Data(d) => value.extend_from_slice(d),
                        Event::DataLast(d) => {
                            value.extend_from_slice(d);
                            break;
                        }
                        Event::DataEnd => break,
                        Event::Reply(_) | Event::Value { .. } => {
                            return Err(Failure::Unexpected("reply inside a value".into()))
                        }
                    }
                }
                item = Some(Item {
                    value,
                    flags,
                    cas: cas.unwrap_or(0),
                });
            }
            Event::Reply(Reply::Value { key: answered, .. })
            | Event::Value { key: answered, .. } => {
                return Err(Failure::Unexpected(format!(
                    "VALUE for a key not requested (or twice): {}",
                    text(answered)
                )))
            }
            Event::Reply(other) => return Err(Failure::Unexpected(other.to_string())),
            Event::Data(_) | Event::DataLast(_) | Event::DataEnd => {
                return Err(Failure::Unexpected("stray data".into()))
            }
        }
    }
}

/// The writes of [`Client::bulk`] with their placement hashes.
struct BulkWrites<'w> {
    writes: &'w [Write<'w>],
    hashes: Vec<u32>,
}

impl engine::BulkItems for BulkWrites<'_> {
    fn count(&self) -> usize {
        self.writes.len()
    }

    fn key(&self, index: usize) -> &[u8] {
        self.writes[index].key
    }

    fn value(&self, index: usize) -> &[u8] {
        self.writes[index].value
    }

    fn flags(&self, index: usize) -> u32 {
        self.writes[index].flags
    }

    fn exptime(&self, index: usize) -> u64 {
        self.writes[index].exptime
    }

    fn hash(&self, index: usize) -> u32 {
        self.hashes[index]
    }
}

/// The keys of [`Client::get_multi`] and the items found for them, by position.
struct MultiKeys<'k> {
    keys: &'k [&'k [u8]],
    hashes: Vec<u32>,
    out: Vec<Option<Item>>,
}

impl engine::Wanted for MultiKeys<'_> {
    type Sink = MultiSink;

    fn key(&self, index: usize) -> &[u8] {
        self.keys[index]
    }

    fn hash(&self, index: usize) -> u32 {
        self.hashes[index]
    }

    fn found(&self, index: usize) -> bool {
        self.out[index].is_some()
    }

    fn sink(&mut self, _group: &[usize]) -> MultiSink {
        MultiSink::default()
    }

    /// The items of a server that failed part way are dropped with it: its keys are not
    /// answered.
    fn absorb(&mut self, sink: MultiSink, group: &[usize], answered: bool) {
        if answered {
            for (at, item) in sink.items {
                self.out[group[at]] = Some(item);
            }
        }
    }
}

/// The items one server sent in a multi-get, by position in the keys it was sent.
#[derive(Default)]
struct MultiSink {
    items: Vec<(usize, Item)>,
    current: Option<(usize, Item)>,
}

impl ValueSink for MultiSink {
    fn begin(&mut self, index: usize, flags: u32, bytes: usize, cas: Option<u64>) -> bool {
        let item = Item {
            value: Vec::with_capacity(bytes.min(PREALLOC_LIMIT)),
            flags,
            cas: cas.unwrap_or(0),
        };
        self.current = Some((index, item));
        true
    }

    fn data(&mut self, chunk: &[u8]) {
        if let Some((_, item)) = &mut self.current {
            item.value.extend_from_slice(chunk);
        }
    }

    fn end(&mut self) {
        self.items.extend(self.current.take());
    }

    fn whole(&mut self, index: usize, flags: u32, cas: Option<u64>, value: &[u8]) {
        let cas = cas.unwrap_or(0);
        let value = value.to_vec();
        self.items.push((index, Item { value, flags, cas }));
    }
}

/// A stats group is one or more space-separated words, each a valid key: it goes on the command
/// line as is, so nothing in it may end or split the line.
fn check_stats_group(group: &[u8]) -> Result<(), KeyError> {
    if group.is_empty() {
        return Err(KeyError::Empty);
    }
    let mut offset = 0;
    for word in group.split(|&b| b == b' ') {
        key::check(word).map_err(|e| match e {
            KeyError::BadByte(at) => KeyError::BadByte(offset + at),
            other => other,
        })?;
        offset += word.len() + 1;
    }
    Ok(())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn spec(s: &str) -> ServerSpec {
        ServerSpec::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn three() -> Vec<ServerSpec> {
        vec![
            spec("10.0.0.1:11211"),
            spec("10.0.0.2:11211"),
            spec("10.0.0.3:11300"),
        ]
    }

    #[test]
    fn placement_is_stable_and_follows_the_distribution() {
        for dist in [Distribution::KetamaMd5, Distribution::Crc32Modulo] {
            let a = Client::new(three(), dist).unwrap();
            let b = Client::new(three(), dist).unwrap();
            let selector = Selector::for_servers(dist, a.servers());
            let mut used = [0usize; 3];
            for i in 0..3000 {
                let key = format!("key:{i}");
                let k = key.as_bytes();
                let at = a.server_for(k).unwrap();
                assert_eq!(Some(at), a.server_for(k));
                assert_eq!(Some(at), b.server_for(k));
                assert_eq!(Some(at), selector.pick(selector.hash(k), |_| true));
                used[at] += 1;
            }
            assert!(used.iter().all(|&n| n > 500), "{dist}: {used:?}");
        }
        let c = Client::new(three(), Distribution::KetamaMd5).unwrap();
        assert_eq!(c.server_for(b"bad key"), None);
        assert_eq!(c.server_for(b""), None);
        let empty = Client::new(Vec::new(), Distribution::KetamaMd5).unwrap();
        assert_eq!(empty.server_for(b"k"), None);
    }

    #[test]
    fn bad_keys_are_refused_before_any_io() {
        // A listener that would see any connection attempt.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut c = Client::new(vec![spec(&addr.to_string())], Distribution::KetamaMd5).unwrap();
        let long = [b'k'; 251];
        for key in [&b""[..], b"a b", b"a\r\nflush_all", b"\0", &long[..]] {
            assert!(matches!(c.get(key), Err(ClientError::BadKey(_))));
            assert!(matches!(c.gets(key), Err(ClientError::BadKey(_))));
            assert!(matches!(
                c.set(key, b"v", 0, 0),
                Err(ClientError::BadKey(_))
            ));
            assert!(matches!(c.delete(key), Err(ClientError::BadKey(_))));
            assert!(matches!(c.touch(key, 1), Err(ClientError::BadKey(_))));
            assert!(matches!(c.incr(key, 1), Err(ClientError::BadKey(_))));
            assert!(matches!(c.decr(key, 1), Err(ClientError::BadKey(_))));
            assert!(matches!(
                c.get_multi(&[b"good", key]),
                Err(ClientError::BadKey(_))
            ));
        }
        for group in [&b""[..], b"conns\r\nflush_all", b"a  b", b"x\0"] {
            let stats = c.stats(Some(group));
            assert_eq!(stats.len(), 1);
            assert!(matches!(stats[0].1, Err(ClientError::BadKey(_))));
        }
        assert!(!c.slots[0].has_conn());
        assert!(!c.slots[0].is_resolved());
        assert!(matches!(
            listener.accept(),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        ));
        assert_eq!(
            ClientError::BadKey(KeyError::TooLong).to_string(),
            "invalid key: longer than 250 bytes"
        );
    }

    #[test]
    fn extreme_durations_do_not_panic() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut c = Client::new(
            vec![spec(&format!("127.0.0.1:{port}"))],
            Distribution::Crc32Modulo,
        )
        .unwrap();
        c.set_timeout(Duration::MAX);
        c.set_retry_interval(Duration::MAX);
        assert!(matches!(c.get(b"k"), Err(ClientError::Connect { .. })));
        assert!(matches!(c.get(b"k"), Err(ClientError::NoServer)));
        // A zero retry interval: each operation tries the server again, once.
        let mut c = Client::new(c.servers().to_vec(), Distribution::Crc32Modulo).unwrap();
        c.set_timeout(Duration::ZERO);
        c.set_retry_interval(Duration::ZERO);
        for _ in 0..3 {
            assert!(matches!(c.get(b"k"), Err(ClientError::Connect { .. })));
        }
    }

    #[test]
    fn no_servers_means_no_server() {
        let mut c = Client::new(Vec::new(), Distribution::Crc32Modulo).unwrap();
        assert!(matches!(c.get(b"k"), Err(ClientError::NoServer)));
        assert!(matches!(c.get_multi(&[b"k"]), Err(ClientError::NoServer)));
        assert!(c.get_multi(&[]).unwrap().is_empty());
        assert!(c.stats(None).is_empty());
        assert!(c.version().is_empty());
        assert!(c.flush_all().is_empty());
    }

    #[test]
    fn stats_group_check() {
        assert_eq!(check_stats_group(b"conns"), Ok(()));
        assert_eq!(check_stats_group(b"detail dump"), Ok(()));
        assert_eq!(check_stats_group(b"detail  dump"), Err(KeyError::Empty));
        assert_eq!(check_stats_group(b"a b\nc"), Err(KeyError::BadByte(3)));
        assert_eq!(check_stats_group(b" a"), Err(KeyError::Empty));
    }

    #[test]
    fn error_lines() {
        let e = ClientError::Connect {
            server: "127.0.0.1:1".into(),
            message: "Connection refused (os error 111)".into(),
        };
        assert_eq!(
            e.to_string(),
            "127.0.0.1:1: cannot connect: Connection refused (os error 111)"
        );
        let e = ClientError::Server {
            server: "h:1".into(),
            failure: Failure::Recv(Fail::Timeout),
        };
        assert_eq!(e.to_string(), "h:1: no reply within the timeout");
        let e = ClientError::Server {
            server: "h:1".into(),
            failure: Failure::Send(Fail::Io(std::io::Error::from_raw_os_error(libc::EPIPE))),
        };
        assert!(
            e.to_string().starts_with("h:1: write failed: Broken pipe"),
            "{e}"
        );
    }
}
