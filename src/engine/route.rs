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
    route_known(servers, hash, &mut [])
}

/// [`route`] for one of many keys of a call that sends nothing until all are routed (a bulk
/// write): `known[server]` marks a server whose connection this call already found ready or
/// made, which is not asked again for each of its keys (asking is a system call).
#[inline]
pub fn route_known<S: Servers>(
    servers: &mut S,
    hash: u32,
    known: &mut [bool],
) -> Result<usize, RouteError<S::Error>> {
    let mut failed = None;
    // Each round either returns or puts one more server down: n + 1 rounds are plenty (and a
    // C program's finder that keeps returning a down server is bounded too).
    for _ in 0..=servers.count() {
        let Some(server) = servers.pick(hash) else {
            break;
        };
        let reached = if known.get(server) == Some(&true) || servers.ready(server) {
            Ok(())
        } else {
            servers.connect(server)
        };
        match reached {
            Ok(()) => {
                mark_known(known, server);
                return Ok(server);
            }
            Err(e) => failed = Some(e),
        }
    }
    Err(failed.map_or(RouteError::NoneLive, RouteError::Unreachable))
}

/// Notes that this call found `server` ready or connected it (nothing when `known` is empty).
#[inline]
fn mark_known(known: &mut [bool], server: usize) {
    if let Some(mark) = known.get_mut(server) {
        *mark = true;
    }
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
    connect_copies_known(servers, hash, count, out, &mut [])
}

/// [`connect_copies`] for one of many keys of a call that sends nothing until all are routed,
/// with `known` as in [`route_known`].
pub fn connect_copies_known<S: Servers>(
    servers: &mut S,
    hash: u32,
    count: usize,
    out: &mut Vec<usize>,
    known: &mut [bool],
) -> Option<S::Error> {
    let mut picks = Vec::with_capacity(count);
    let mut failed = None;
    out.clear();
    'passes: for _ in 0..=servers.count() {
        servers.pick_copies(hash, count, &mut picks);
        out.clear();
        for &server in &picks {
            if known.get(server) != Some(&true) && !servers.ready(server) {
                if let Err(e) = servers.connect(server) {
                    failed = Some(e);
                    continue 'passes;
                }
            }
            mark_known(known, server);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Servers that only route: `refused` fails to connect (and is down after), every other
    /// server connects; `asked` counts the readiness checks, each a system call in life.
    struct Routing {
        down: Vec<bool>,
        connected: Vec<bool>,
        asked: Vec<u32>,
        refused: usize,
    }

    impl Routing {
        fn new(count: usize, refused: usize) -> Routing {
            Routing {
                down: vec![false; count],
                connected: vec![false; count],
                asked: vec![0; count],
                refused,
            }
        }
    }

    impl Servers for Routing {
        type Error = usize;
        fn count(&self) -> usize {
            self.down.len()
        }
        fn pick(&mut self, hash: u32) -> Option<usize> {
            let n = self.count();
            (0..n)
                .map(|i| (hash as usize + i) % n)
                .find(|&s| !self.down[s])
        }
        fn pick_copies(&mut self, hash: u32, count: usize, out: &mut Vec<usize>) {
            let n = self.count();
            out.clear();
            out.extend(
                (0..n)
                    .map(|i| (hash as usize + i) % n)
                    .filter(|&s| !self.down[s])
                    .take(count),
            );
        }
        fn ready(&mut self, server: usize) -> bool {
            self.asked[server] += 1;
            self.connected[server]
        }
        fn connect(&mut self, server: usize) -> Result<(), usize> {
            if server == self.refused {
                self.down[server] = true;
                return Err(server);
            }
            self.connected[server] = true;
            Ok(())
        }
        fn exchange<T>(
            &mut self,
            _: usize,
            _: impl FnOnce(&mut Conn, &mut Vec<u8>) -> Result<T, Failure>,
        ) -> Result<T, usize> {
            unreachable!("routing only")
        }
        fn slots(&mut self) -> (Vec<&mut Slot>, &mut Vec<u8>) {
            unreachable!("routing only")
        }
        fn settle(&mut self, _: usize, _: Result<(), Failure>) -> Result<(), usize> {
            unreachable!("routing only")
        }
    }

    #[test]
    fn many_keys_ask_each_server_once_and_single_routes_ask_each_time() {
        let mut servers = Routing::new(3, 1);
        let mut known = vec![false; 3];
        let placed: Vec<usize> = (0..30)
            .map(|hash| route_known(&mut servers, hash, &mut known).unwrap())
            .collect();
        // Server 1's keys fail over to server 2 once its connect fails.
        assert_eq!(&placed[..6], &[0, 2, 2, 0, 2, 2]);
        assert_eq!(servers.asked, [1, 1, 1]);
        assert_eq!(known, [true, false, true]);

        for hash in [0, 3, 6] {
            assert_eq!(route(&mut servers, hash).unwrap(), 0);
        }
        assert_eq!(servers.asked, [4, 1, 1], "one check per single route");
    }

    #[test]
    fn many_keys_with_copies_ask_each_server_once() {
        let mut servers = Routing::new(3, 1);
        let mut known = vec![false; 3];
        let mut picks = Vec::new();
        for hash in 0..30 {
            let failed = connect_copies_known(&mut servers, hash, 2, &mut picks, &mut known);
            // Server 1's failed connect is chosen around: the copies go to the other two.
            assert!(failed.is_none());
            assert_eq!(picks.len(), 2, "two live servers hold the copies");
        }
        assert!(servers.down[1]);
        assert_eq!(servers.asked, [1, 1, 1]);
        connect_copies(&mut servers, 0, 2, &mut picks);
        assert_eq!(
            servers.asked,
            [2, 1, 2],
            "one check per copy without memory"
        );
    }

    #[test]
    fn no_live_server_and_no_connect_are_told_apart() {
        let mut servers = Routing::new(1, 0);
        assert!(matches!(
            route_known(&mut servers, 7, &mut [false]),
            Err(RouteError::Unreachable(0))
        ));
        assert!(matches!(route(&mut servers, 7), Err(RouteError::NoneLive)));
    }
}
