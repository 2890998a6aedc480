//! One server's connection and health, and what happens to a connection.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::pipe::{next_conn_id, Pipe};
use super::Health;
use crate::command::Failure;
use crate::conn::{self, Conn, Endpoint, Fail, Greeting, ResolveError};

/// What the engine needs to know of an exchange's error to decide the connection's fate.
pub trait Fate: fmt::Display {
    /// The server did not answer in time: it goes down for the retry interval.
    fn is_timeout(&self) -> bool;

    /// The exchange's failure, told to the other callers awaiting replies on the connection.
    fn as_failure(&self) -> Option<&Failure> {
        None
    }
}

impl Fate for Failure {
    fn is_timeout(&self) -> bool {
        Failure::is_timeout(self)
    }

    fn as_failure(&self) -> Option<&Failure> {
        Some(self)
    }
}

/// Why a connect failed.
#[derive(Debug)]
pub enum ConnectError {
    /// The name did not resolve.
    Resolve(ResolveError),
    Connect(io::Error),
    /// Connected, but the TLS handshake or the login failed.
    Greeting(Fail),
}

impl ConnectError {
    /// The errno for a C report (0 for a name that did not resolve).
    pub fn errno(&self) -> i32 {
        match self {
            ConnectError::Resolve(_) => 0,
            ConnectError::Connect(e) => conn::errno_of(e),
            ConnectError::Greeting(e) => e.errno(),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Resolve(e) => f.write_str(&e.message()),
            ConnectError::Connect(e) => write!(f, "{e}"),
            ConnectError::Greeting(Fail::Closed) => {
                f.write_str("the server closed the connection before it was set up")
            }
            ConnectError::Greeting(Fail::Timeout) => {
                f.write_str("no answer to the TLS handshake or login within the timeout")
            }
            ConnectError::Greeting(e) => write!(f, "{e}"),
        }
    }
}

/// One server as the engine sees it: its resolved address, its connection and its health.
///
/// The rules for a connection live here and nowhere else: a connection is reused only when it
/// is at a command boundary with nothing waiting in its socket; a reply followed by bytes nobody
/// asked for, and any failure, close it; a timeout or a failed connect also puts the server
/// down for the retry interval; nothing is ever re-sent.
#[derive(Default)]
pub struct Slot {
    /// Resolved at the first connect; forgotten after a failed connect, so a retry resolves
    /// the name afresh.
    endpoint: Option<Endpoint>,
    pub(super) conn: Option<Conn>,
    /// Which connection `conn` is (unique in the process), for callers that wait without the
    /// front end's lock.
    conn_id: u64,
    /// The callers awaiting replies on the connection (see [`super::pipelined`]).
    pub(super) pipe: Pipe,
    pub health: Health,
}

impl Slot {
    pub fn new() -> Slot {
        Slot::default()
    }

    /// Whether the slot holds a connection ready for the next command. One that is not (stray
    /// bytes, closed by the server) is closed here, never reused.
    ///
    /// A connection on which replies are awaited is ready for one more request behind them
    /// ([`super::pipelined`]); bytes in it are those replies.
    #[inline]
    pub fn has_ready_conn(&mut self) -> bool {
        if self.pipe.busy() {
            if self.pipe.abandoned() {
                // A caller left in the middle of its reply: the stream is out of step.
                self.drop_conn(Some(&Failure::Unexpected("a reply left half read".into())));
            }
            return self.conn.is_some();
        }
        if self.conn.as_mut().is_some_and(|c| !c.ready_for_command()) {
            self.drop_conn(None);
        }
        self.conn.is_some()
    }

    /// Whether callers await replies on the connection: it is not free for a caller that needs
    /// it alone (a multi-get, stats) until they have them.
    #[inline]
    pub fn busy(&self) -> bool {
        self.pipe.busy()
    }

    /// The open connection's timeout.
    pub fn timeout(&self) -> Option<Duration> {
        self.conn.as_ref().map(Conn::timeout)
    }

    /// Which connection the slot holds (0: none yet).
    #[inline]
    pub fn conn_id(&self) -> u64 {
        if self.conn.is_some() {
            self.conn_id
        } else {
            0
        }
    }

    /// Closes the connection; every caller awaiting a reply on it gets `failure` (or
    /// "closed"), and a reader waiting on its lent read side is woken.
    fn drop_conn(&mut self, failure: Option<&Failure>) {
        if self.pipe.busy() {
            if self.pipe.lent() {
                if let Some(conn) = &self.conn {
                    conn.shut_down();
                }
            }
            self.pipe.lose_all(self.conn_id, failure);
        }
        self.conn = None;
    }

    /// In a child process after fork(): closes the connection inherited from the parent
    /// without a word to its socket (shared with the parent) or to the parent's threads.
    pub fn forget(&mut self) -> bool {
        self.pipe.forget();
        self.conn.take().is_some()
    }

    /// Uses `endpoint` for the next connect instead of resolving the name then.
    pub fn set_endpoint(&mut self, endpoint: Endpoint) {
        self.endpoint = Some(endpoint);
    }

    /// Whether the name has been resolved (by a connect that succeeded).
    pub fn is_resolved(&self) -> bool {
        self.endpoint.is_some()
    }

    #[inline]
    pub fn has_conn(&self) -> bool {
        self.conn.is_some()
    }

    /// The connection's descriptor, -1 without one (1.4's `memcache_server.fd`).
    #[inline]
    pub fn fd(&self) -> RawFd {
        self.conn.as_ref().map_or(-1, Conn::fd)
    }

    pub fn conn_mut(&mut self) -> Option<&mut Conn> {
        debug_assert!(
            !self.pipe.busy(),
            "a connection used alone while replies are awaited"
        );
        self.conn.as_mut()
    }

    /// Closes the connection; true when there was one.
    pub fn close(&mut self) -> bool {
        let had = self.conn.is_some();
        self.drop_conn(None);
        had
    }

    /// Bounds every later wait of the open connection by `timeout`; a connection that cannot
    /// take it is closed.
    pub fn set_timeout(&mut self, timeout: Duration) {
        if let Some(conn) = &mut self.conn {
            if conn.set_timeout(timeout).is_err() {
                self.drop_conn(None);
            }
        }
    }

    /// Connects, resolving the name with `resolve` first if needed. On success the server is
    /// up; `Ok(true)` when that ended a retry (a reconnect). On failure it is down for the retry
    /// interval.
    pub fn connect(
        &mut self,
        timeout: Duration,
        resolve: impl FnOnce() -> Result<Endpoint, ResolveError>,
    ) -> Result<bool, ConnectError> {
        self.connect_with(timeout, &Greeting::default(), resolve)
    }

    /// [`connect`](Self::connect), and `greeting` (TLS, login) on the new connection before it
    /// carries a command. A failed greeting is a failed connect.
    pub fn connect_with(
        &mut self,
        timeout: Duration,
        greeting: &Greeting<'_>,
        resolve: impl FnOnce() -> Result<Endpoint, ResolveError>,
    ) -> Result<bool, ConnectError> {
        self.drop_conn(None);
        let endpoint = match self.endpoint.take() {
            Some(ep) => ep,
            None => match resolve() {
                Ok(ep) => ep,
                Err(e) => {
                    self.health.mark_down(e.message());
                    return Err(ConnectError::Resolve(e));
                }
            },
        };
        let connected = Conn::connect(&endpoint, timeout)
            .map_err(ConnectError::Connect)
            .and_then(|mut conn| match greeting.run(&mut conn) {
                Ok(()) => Ok(conn),
                Err(e) => Err(ConnectError::Greeting(e)),
            });
        match connected {
            Ok(conn) => {
                self.conn = Some(conn);
                self.conn_id = next_conn_id();
                self.endpoint = Some(endpoint);
                Ok(self.health.connected())
            }
            Err(e) => {
                self.health.mark_down(e.to_string());
                Err(e)
            }
        }
    }

    /// One request and its reply on the open connection. A failure closes the connection (its
    /// state is unknown), and a timeout also puts the server down; a reply followed by bytes
    /// nobody asked for closes it too (the stream is out of step).
    #[inline]
    pub fn exchange<T, E: Fate + From<Failure>>(
        &mut self,
        wbuf: &mut Vec<u8>,
        op: impl FnOnce(&mut Conn, &mut Vec<u8>) -> Result<T, E>,
    ) -> Result<T, E> {
        let Some(conn) = self.conn.as_mut() else {
            return Err(Failure::Send(Fail::Closed).into());
        };
        wbuf.clear();
        let result = op(conn, wbuf);
        match &result {
            Ok(_) => self.replied(),
            Err(e) => self.failed(e),
        }
        result
    }

    /// After a reply (see [`exchange`](Self::exchange); also for a front end that drove the
    /// connection itself, as a multi-get over several servers does): a connection that is not
    /// at a command boundary is closed.
    #[inline]
    pub fn replied(&mut self) {
        if !self.conn.as_ref().is_none_or(Conn::is_idle) {
            self.drop_conn(None);
        }
    }

    /// After a failure: the connection is closed, and a timeout puts the server down.
    pub fn failed<E: Fate + ?Sized>(&mut self, failure: &E) {
        self.drop_conn(failure.as_failure());
        if failure.is_timeout() {
            self.health.mark_down(failure.to_string());
        }
    }
}

impl Drop for Slot {
    /// A server removed while callers await replies on it: they are told, not left waiting.
    fn drop(&mut self) {
        self.drop_conn(None);
    }
}
