//! What keeps a dead server from flooding a program's stderr: the default handler prints a
//! server's change of state once (it failed; it is back), and the same report again at most
//! once per interval, with the count of those it kept quiet meanwhile.
//!
//! Only the default handler is limited. A program's own handler still receives every report,
//! as with 1.4: it may count failures or set `retcode` for each call.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::lock::ForkLock;
use super::types::*;

/// How often the same report about a server is printed: `MEMCACHE_REPORT_INTERVAL` seconds
/// (decimals allowed; 0 prints every report, as 1.4 did), 10 by default.
pub fn interval() -> Duration {
    static INTERVAL: once_cell::sync::OnceCell<Duration> = once_cell::sync::OnceCell::new();
    *INTERVAL.get_or_init(|| {
        std::env::var("MEMCACHE_REPORT_INTERVAL")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && (0.0..=86_400.0).contains(s))
            .map_or(Duration::from_secs(10), Duration::from_secs_f64)
    })
}

/// The reports that say something about a server's state (or that no server is usable): the
/// ones a dead or flapping server repeats at every operation.
fn about_servers(code: u32) -> bool {
    matches!(
        code,
        MCM_ERR_MC_RECONN
            | MCM_ERR_SYS_CONNECT
            | MCM_ERR_NET_CONNECT
            | MCM_ERR_NET_HOST
            | MCM_ERR_MC_VALID_SERVER
            | MCM_ERR_MC_SERV_LIST
            | MCM_ERR_TIMEOUT
            | MCM_ERR_SYS_READ
            | MCM_ERR_MC_SEND_CMD
    )
}

/// Whether to print a report, and how many like it were kept quiet since it was last printed.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Print { quieted: u32 },
    Quiet,
}

struct Seen {
    printed: Instant,
    quieted: u32,
}

/// The reports about servers printed lately, by code, then message (which names the server).
#[derive(Default)]
pub struct Repeats {
    seen: HashMap<u32, HashMap<Box<[u8]>, Seen>>,
    /// Messages remembered, over all codes.
    count: usize,
}

/// Distinct reports remembered at most; a program with more servers than this failing at once
/// gets some repeats printed early rather than a growing table.
const REMEMBERED: usize = 1024;

impl Repeats {
    pub fn check(&mut self, code: u32, msg: &[u8], now: Instant, every: Duration) -> Verdict {
        if !about_servers(code) || every.is_zero() {
            return Verdict::Print { quieted: 0 };
        }
        let verdict = self.limit(code, msg, now, every);
        if code == MCM_ERR_MC_RECONN && verdict != Verdict::Quiet {
            // The server is back: whatever it does next is news again. A server that comes
            // back again within the interval is flapping (or only accepts connections, as a
            // stopped process does): that is a repeat, and forgets nothing.
            self.forget_server(msg);
        }
        verdict
    }

    /// Print the first of a report, then again once `every` has passed since it was printed.
    fn limit(&mut self, code: u32, msg: &[u8], now: Instant, every: Duration) -> Verdict {
        if let Some(seen) = self.seen.get_mut(&code).and_then(|m| m.get_mut(msg)) {
            if now.saturating_duration_since(seen.printed) < every {
                seen.quieted = seen.quieted.saturating_add(1);
                return Verdict::Quiet;
            }
            let quieted = std::mem::take(&mut seen.quieted);
            seen.printed = now;
            return Verdict::Print { quieted };
        }
        if self.count >= REMEMBERED {
            self.retain(|_, _, seen| now.saturating_duration_since(seen.printed) < every);
            if self.count >= REMEMBERED {
                self.retain(|_, _, _| false);
            }
        }
        let seen = Seen {
            printed: now,
            quieted: 0,
        };
        self.seen.entry(code).or_default().insert(msg.into(), seen);
        self.count += 1;
        Verdict::Print { quieted: 0 }
    }

    fn retain(&mut self, mut keep: impl FnMut(u32, &[u8], &Seen) -> bool) {
        for (&code, by_msg) in &mut self.seen {
            by_msg.retain(|msg, seen| keep(code, msg, seen));
        }
        self.seen.retain(|_, by_msg| !by_msg.is_empty());
        self.count = self.seen.values().map(HashMap::len).sum();
    }

    /// Forgets the failures of server `name` ("host:port"), and the reports that said no
    /// server was usable.
    fn forget_server(&mut self, name: &[u8]) {
        let names = |msg: &[u8]| {
            msg.strip_prefix(name)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(b":"))
        };
        self.retain(|code, msg, _| match code {
            MCM_ERR_MC_RECONN => true,
            MCM_ERR_MC_VALID_SERVER | MCM_ERR_MC_SERV_LIST => false,
            _ => !names(msg),
        });
    }
}

/// The default handler's memory, process-wide (it serves every context).
static PRINTED: once_cell::sync::Lazy<ForkLock<Repeats>> =
    once_cell::sync::Lazy::new(Default::default);

/// The default handler's verdict on a report.
pub fn check(code: u32, msg: &[u8]) -> Verdict {
    let every = interval();
    if every.is_zero() {
        return Verdict::Print { quieted: 0 };
    }
    PRINTED.lock().check(code, msg, Instant::now(), every)
}

/// See state::lock_registries().
pub fn hold() {
    PRINTED.hold();
}

/// See state::unlock_registries().
pub fn release() {
    PRINTED.release();
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(10);

    #[test]
    fn a_repeat_is_quiet_until_the_interval_has_passed() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        let msg = b"127.0.0.1:1";
        let print = |quieted| Verdict::Print { quieted };
        assert_eq!(r.check(MCM_ERR_SYS_CONNECT, msg, t0, EVERY), print(0));
        for i in 1..=5 {
            let t = t0 + Duration::from_secs(i);
            assert_eq!(r.check(MCM_ERR_SYS_CONNECT, msg, t, EVERY), Verdict::Quiet);
        }
        // Another server, or another kind of report, is news.
        assert_eq!(
            r.check(MCM_ERR_SYS_CONNECT, b"127.0.0.1:2", t0, EVERY),
            print(0)
        );
        assert_eq!(r.check(MCM_ERR_TIMEOUT, msg, t0, EVERY), print(0));
        let later = t0 + EVERY;
        assert_eq!(r.check(MCM_ERR_SYS_CONNECT, msg, later, EVERY), print(5));
        assert_eq!(
            r.check(MCM_ERR_SYS_CONNECT, msg, later, EVERY),
            Verdict::Quiet
        );
    }

    #[test]
    fn a_server_back_makes_its_next_failure_news() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        let news = Verdict::Print { quieted: 0 };
        let down = b"127.0.0.1:1: no reply within the timeout";
        r.check(MCM_ERR_TIMEOUT, down, t0, EVERY);
        r.check(MCM_ERR_MC_VALID_SERVER, b"no live server", t0, EVERY);
        r.check(MCM_ERR_TIMEOUT, b"127.0.0.1:10: no reply", t0, EVERY);
        assert_eq!(r.check(MCM_ERR_MC_RECONN, b"127.0.0.1:1", t0, EVERY), news);
        assert_eq!(r.check(MCM_ERR_TIMEOUT, down, t0, EVERY), news);
        assert_eq!(
            r.check(MCM_ERR_MC_VALID_SERVER, b"no live server", t0, EVERY),
            news
        );
        // 127.0.0.1:10 is another server: still quiet.
        let other = r.check(MCM_ERR_TIMEOUT, b"127.0.0.1:10: no reply", t0, EVERY);
        assert_eq!(other, Verdict::Quiet);
        // Back again within the interval: flapping, a repeat; its failures stay quiet.
        assert_eq!(
            r.check(MCM_ERR_MC_RECONN, b"127.0.0.1:1", t0, EVERY),
            Verdict::Quiet
        );
        assert_eq!(r.check(MCM_ERR_TIMEOUT, down, t0, EVERY), Verdict::Quiet);
        // Once the interval has passed, the return is news again, with its count.
        let later = t0 + EVERY;
        let back = r.check(MCM_ERR_MC_RECONN, b"127.0.0.1:1", later, EVERY);
        assert_eq!(back, Verdict::Print { quieted: 1 });
        assert_eq!(r.check(MCM_ERR_TIMEOUT, down, later, EVERY), news);
    }

    #[test]
    fn reports_about_keys_and_protocol_are_never_limited() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            let v = r.check(MCM_ERR_PROTO, b"invalid key", t0, EVERY);
            assert_eq!(v, Verdict::Print { quieted: 0 });
        }
    }

    #[test]
    fn the_table_stays_bounded() {
        let mut r = Repeats::default();
        let t0 = Instant::now();
        for i in 0..3 * REMEMBERED {
            let msg = format!("127.0.0.1:{i}");
            r.check(MCM_ERR_SYS_CONNECT, msg.as_bytes(), t0, EVERY);
        }
        assert!(r.count <= REMEMBERED);
        assert_eq!(r.count, r.seen.values().map(HashMap::len).sum::<usize>());
    }
}
