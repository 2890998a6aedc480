//! Health you can see (`mcadmin status`): for one domain, its settings, each server's state
//! (answering or not, and since when, as far as this host has observed), round trip, version,
//! uptime, items, hit ratio and evictions, and the local processes attached to it.
//!
//! [`status()`] gathers it all as values and prints nothing; `mcadmin` prints. The servers are
//! asked at once ([`probe`]), the local processes found through `/proc` ([`attached`]) at the
//! same time, and the call returns within its timeout whatever the servers do. "Since when" is
//! kept in the state directory ([`health_log`]), by this command and by `watch`.
#![forbid(unsafe_code)]

mod attached;
mod health_log;
mod probe;

pub use attached::{attached, Attached, Processes};
pub use health_log::{HealthLog, Observed, Seen, HEALTH_SUFFIX, MAX_HEALTH_LEN};
pub use probe::{probe_all, ServerHealth};

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::address::ServerAddr;
use crate::propagate::now_unix_secs;
use crate::registry::{civil_date, DomainList, DomainName, Namespace, RegistryError};
use crate::state_dir::StateDir;

/// One server of the domain.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerStatus {
    pub server: ServerAddr,
    /// What it said about itself, or why it counts as down.
    pub health: Result<ServerHealth, String>,
    /// Since when (seconds since the epoch, UTC) it has been up, or down, at least: `None`
    /// when unknown (no state directory, or one this user cannot write to note a change).
    pub since: Option<u64>,
}

impl ServerStatus {
    pub fn is_up(&self) -> bool {
        self.health.is_ok()
    }
}

/// A domain as [`status()`] saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct DomainStatus {
    pub domain: DomainName,
    /// The list as this host has it: version, distribution, copies, servers.
    pub list: DomainList,
    /// In list order.
    pub servers: Vec<ServerStatus>,
    /// The attached processes, or why they could not be found.
    pub processes: Result<Processes, String>,
    /// Why "since" times are missing or may be: no state directory, or a health file that could
    /// not be read or written.
    pub since_problem: Option<String>,
}

impl DomainStatus {
    /// Whether every server answered (true for a domain without servers).
    pub fn all_up(&self) -> bool {
        self.servers.iter().all(ServerStatus::is_up)
    }
}

/// The status of `domain` in `ns`: its list, each server asked at once (every wait, and the
/// whole call, bounded by `timeout`), the processes that have its segment mapped, and since
/// when each server has been in its state, noted in `state`'s health file of the domain when
/// there is a state directory. `Err` only when the domain's list cannot be read
/// ([`RegistryError::NotFound`]: it has no segment).
pub fn status(
    ns: &Namespace,
    domain: &DomainName,
    state: Option<&StateDir>,
    timeout: Duration,
) -> Result<DomainStatus, RegistryError> {
    let list = match ns.open_reader(domain)? {
        Some(reader) => reader.read()?,
        None => return Err(RegistryError::NotFound),
    };
    let deadline = Instant::now() + timeout;
    // Reading /proc does not wait on the network: it runs while the servers are asked.
    let segment = ns.segment_path(domain);
    let (sender, scanned) = mpsc::channel();
    let scan = thread::Builder::new()
        .name("status /proc".into())
        .spawn(move || {
            let _ = sender.send(attached(&segment).map_err(|e| format!("/proc: {e}")));
        });
    let answers = probe_all(&list.servers, timeout);
    let processes = match scan {
        Ok(_) => scanned
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| {
                Err(format!(
                    "the scan of /proc did not end within {}s",
                    timeout.as_secs_f64()
                ))
            }),
        Err(e) => Err(format!("cannot start a thread to scan /proc: {e}")),
    };
    let observed: Vec<(String, Seen)> = list
        .servers
        .iter()
        .zip(&answers)
        .map(|(server, answer)| {
            let seen = if answer.is_ok() { Seen::Up } else { Seen::Down };
            (server.to_string(), seen)
        })
        .collect();
    let (since, since_problem) = match state {
        Some(dir) => {
            let log = HealthLog::new(dir.clone(), domain.clone());
            let current: Vec<String> = observed.iter().map(|(s, _)| s.clone()).collect();
            let noted = log.observe(&observed, &current, now_unix_secs());
            (noted.since, noted.problem)
        }
        None => (
            vec![None; observed.len()],
            Some(format!(
                "the namespace {} has no state directory ({}): no \"since\" times",
                ns.prefix(),
                crate::state_dir::ENV_VAR
            )),
        ),
    };
    let servers = list
        .servers
        .iter()
        .zip(answers)
        .zip(since)
        .map(|((server, health), since)| ServerStatus {
            server: server.clone(),
            health,
            since,
        })
        .collect();
    Ok(DomainStatus {
        domain: domain.clone(),
        list,
        servers,
        processes,
        since_problem,
    })
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a time in seconds since the epoch.
pub fn utc_time(unix_secs: u64) -> String {
    let (y, m, d) = civil_date(unix_secs / 86_400);
    let secs = unix_secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Text a server or another process chose, made safe for a terminal: at most `max` characters
/// of its lossy UTF-8, every control character replaced by `?`.
pub(crate) fn printable(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_text() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00");
        assert_eq!(utc_time(951_827_696), "2000-02-29 12:34:56");
        assert_eq!(printable(b"1.6.18\r\n\x1b[2J", 64), "1.6.18???[2J");
        assert_eq!(printable(b"\xffabc", 2), "\u{fffd}a");
    }
}
