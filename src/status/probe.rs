//! Asking one server how it is: a connect, a timed `version` (the round trip) and `stats`, all
//! servers at once, none allowed past the caller's deadline.
#![forbid(unsafe_code)]

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use super::printable;
use crate::address::ServerAddr;
use crate::command;
use crate::propagate;
use crate::protocol::parse_u64;

/// The longest version string kept: memcached's is a few bytes; anything longer is not one.
const MAX_VERSION_LEN: usize = 64;

/// What a server that answered says about itself. A statistic the server did not report (or
/// reported as something else than a number) is `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerHealth {
    /// How long the `version` exchange took on a fresh connection.
    pub rtt: Duration,
    /// The `version` reply, control characters replaced (it is shown on terminals).
    pub version: String,
    /// `uptime`: seconds since the server started.
    pub uptime: Option<u64>,
    /// `curr_items`.
    pub items: Option<u64>,
    pub get_hits: Option<u64>,
    pub get_misses: Option<u64>,
    pub evictions: Option<u64>,
}

impl ServerHealth {
    /// `get_hits / (get_hits + get_misses)`; `None` before the first get (or without the
    /// statistics).
    pub fn hit_ratio(&self) -> Option<f64> {
        let (hits, misses) = (self.get_hits?, self.get_misses?);
        let gets = hits.checked_add(misses)?;
        (gets > 0).then(|| hits as f64 / gets as f64)
    }

    fn take_stat(&mut self, name: &[u8], value: &[u8]) {
        let field = match name {
            b"uptime" => &mut self.uptime,
            b"curr_items" => &mut self.items,
            b"get_hits" => &mut self.get_hits,
            b"get_misses" => &mut self.get_misses,
            b"evictions" => &mut self.evictions,
            _ => return,
        };
        *field = parse_u64(value).ok();
    }
}

/// Asks every server at once, each on a thread of its own, and returns in `servers`' order
/// what each answered or why it counts as down. Returns within `timeout` (plus scheduling) of
/// the call whatever the servers do: a server that has not finished by then, trickling or
/// silent, is reported as not answering, and its thread, whose every wait is bounded by
/// `timeout`, is left to end on its own.
pub fn probe_all(servers: &[ServerAddr], timeout: Duration) -> Vec<Result<ServerHealth, String>> {
    let deadline = Instant::now() + timeout;
    let (sender, answers) = mpsc::channel();
    let mut results: Vec<Option<Result<ServerHealth, String>>> = vec![None; servers.len()];
    for (at, server) in servers.iter().enumerate() {
        let (sender, server) = (sender.clone(), server.clone());
        let spawned = thread::Builder::new()
            .name(format!("status {server}"))
            .spawn(move || {
                // The receiver is gone once the deadline passed: the answer is too late.
                let _ = sender.send((at, probe(&server, timeout)));
            });
        if let Err(e) = spawned {
            results[at] = Some(Err(format!("cannot start a thread to ask it: {e}")));
        }
    }
    drop(sender);
    while results.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(Instant::now());
        match answers.recv_timeout(left) {
            Ok((at, result)) => results[at] = Some(result),
            Err(_) => break,
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(format!(
                    "no complete answer within {}s",
                    timeout.as_secs_f64()
                ))
            })
        })
        .collect()
}

/// One server, on a connection of its own that ends with the call.
fn probe(server: &ServerAddr, timeout: Duration) -> Result<ServerHealth, String> {
    let mut slot = propagate::connect(server, timeout).map_err(|e| e.to_string())?;
    let mut wbuf = Vec::new();
    let asked = Instant::now();
    let version = slot
        .exchange(&mut wbuf, command::version)
        .map_err(|e| format!("version: {e}"))?;
    let mut health = ServerHealth {
        rtt: asked.elapsed(),
        version: printable(&version, MAX_VERSION_LEN),
        uptime: None,
        items: None,
        get_hits: None,
        get_misses: None,
        evictions: None,
    };
    slot.exchange(&mut wbuf, |conn, wbuf| {
        command::stats(conn, wbuf, None, &mut |name, value| {
            health.take_stat(name, value)
        })
    })
    .map_err(|e| format!("stats: {e}"))?;
    Ok(health)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> ServerHealth {
        ServerHealth {
            rtt: Duration::ZERO,
            version: String::new(),
            uptime: None,
            items: None,
            get_hits: None,
            get_misses: None,
            evictions: None,
        }
    }

    #[test]
    fn statistics_and_hit_ratio() {
        let mut h = health();
        assert_eq!(h.hit_ratio(), None, "no statistics");
        for (name, value) in [
            ("uptime", "42"),
            ("curr_items", "7"),
            ("get_hits", "3"),
            ("get_misses", "1"),
            ("evictions", "x"),
            ("pid", "99"),
        ] {
            h.take_stat(name.as_bytes(), value.as_bytes());
        }
        assert_eq!((h.uptime, h.items, h.evictions), (Some(42), Some(7), None));
        assert_eq!(h.hit_ratio(), Some(0.75));
        h.take_stat(b"get_hits", b"0");
        h.take_stat(b"get_misses", b"0");
        assert_eq!(h.hit_ratio(), None, "no gets yet");
        h.take_stat(b"get_hits", b"18446744073709551615");
        h.take_stat(b"get_misses", b"1");
        assert_eq!(h.hit_ratio(), None, "an overflowing sum is not a ratio");
    }
}
