//! Placement with failover, and the servers holding a key's copies.

use super::Slot;
use crate::command::Failure;
use crate::conn::Conn;

/// What a front end gives the engine: its servers' slots, how it picks among the live ones,
/// and what it does when a connect or an exchange fails (its reports, its error type, the
/// 1.4 structures a C program reads).
pub trait Servers {
    type Error;

    /// How many servers there are; bounds the attempts of one operation.
    fn count(&self) -> usize;

    /// The live server for `hash`; None when no server is live.
    fn pick(&mut self, hash: u32) -> Option<usize>;

    /// Up to `count` distinct live servers for `hash`, primary first.
    fn pick_copies(&mut self, hash: u32, count: usize, out: &mut Vec<usize>);

    /// Whether `server` holds a connection ready for the next command (see
    /// [`Slot::has_ready_conn`](super::Slot::has_ready_conn)).
    fn ready(&mut self, server: usize) -> bool;

    /// Connects `server` (see [`Slot::connect`](super::Slot::connect)), reporting a failure.
    fn connect(&mut self, server: usize) -> Result<(), Self::Error>;

    /// One exchange on the connected `server` (see [`Slot::exchange`](super::Slot::exchange)),
    /// reporting a failure.
    fn exchange<T>(
        &mut self,
        server: usize,
        op: impl FnOnce(&mut Conn, &mut Vec<u8>) -> Result<T, Failure>,
    ) -> Result<T, Self::Error>;

    /// Every server's slot, by index, and the write buffer: for an operation that drives
    /// several connections at once (a multi-get), which then settles each one it used.
    fn slots(&mut self) -> (Vec<&mut Slot>, &mut Vec<u8>);

    /// After `server`'s connection was driven directly: the reply was read whole (the
    /// connection is checked to be at a command boundary, as after an exchange) or it failed
    /// (closed, and down after a timeout; reported): then the front end's error.
    fn settle(&mut self, server: usize, outcome: Result<(), Failure>) -> Result<(), Self::Error>;
}

/// Why no server could be routed to.
#[derive(Debug)]
pub enum RouteError<E> {
    /// No server was live to begin with.
    NoneLive,
    /// Every live server failed to connect; the last failure.
    Unreachable(E),
}

/// The connected server for `hash`: the front end's pick among live servers, connected on
/// first use. A server whose connect fails is down, and the pick is made again without it, so
/// each server is tried at most once per operation.
#[inline]
pub fn route<S: Servers>(servers: &mut S, hash: u32) -> Result<usize, RouteError<S::Error>> {
    let mut failed = None;
    // Each round either returns or puts one more server down: n + 1 rounds are plenty (and a
    // C program's finder that keeps returning a down server is bounded too).
    for _ in 0..=servers.count() {
        let Some(server) = servers.pick(hash) else {
            break;
        };
        if servers.ready(server) {
            return Ok(server);
        }
        match servers.connect(server) {
            Ok(()) => return Ok(server),
            Err(e) => failed = Some(e),
        }
    }
    Err(failed.map_or(RouteError::NoneLive, RouteError::Unreachable))
}

/// The connected servers holding the copies of the keys of `hash`, primary first, in `out`:
/// the front end's next distinct live servers. A server whose connect fails is down and the
/// copies are chosen again without it (the next live server takes its place). Empty when no
/// server could be connected; then the last failure, if there was one.
pub fn connect_copies<S: Servers>(
    servers: &mut S,
    hash: u32,
    count: usize,
    out: &mut Vec<usize>,
) -> Option<S::Error> {
    let mut picks = Vec::with_capacity(count);
    let mut failed = None;
    out.clear();
    'passes: for _ in 0..=servers.count() {
        servers.pick_copies(hash, count, &mut picks);
        out.clear();
        for &server in &picks {
            if !servers.ready(server) {
                if let Err(e) = servers.connect(server) {
                    failed = Some(e);
                    continue 'passes;
                }
            }
            out.push(server);
        }
        return None;
    }
    out.clear();
    failed
}

/// Runs `op` on each server holding a copy of the keys of `hash` (see [`connect_copies`]), in
/// copy order, and stops at the first result for which `done` is true (a read's hit). Returns
/// that result and its server, else the first result in copy order (a write's answer: the
/// primary's unless the primary failed), else the first failure. Each server is asked once.
pub fn on_copies<S: Servers, T>(
    servers: &mut S,
    hash: u32,
    count: usize,
    done: impl Fn(&T) -> bool,
    mut op: impl FnMut(&mut Conn, &mut Vec<u8>) -> Result<T, Failure>,
) -> Result<(usize, T), RouteError<S::Error>> {
    let mut targets = Vec::with_capacity(count);
    if let Some(e) = connect_copies(servers, hash, count, &mut targets) {
        return Err(RouteError::Unreachable(e));
    }
    let mut answer = None;
    let mut first_error = None;
    for server in targets {
        match servers.exchange(server, &mut op) {
            Ok(v) if done(&v) => return Ok((server, v)),
            Ok(v) => {
                answer.get_or_insert((server, v));
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match (answer, first_error) {
        (Some(found), _) => Ok(found),
        (None, Some(e)) => Err(RouteError::Unreachable(e)),
        (None, None) => Err(RouteError::NoneLive),
    }
}
