//! "Up since", "down since": a one-shot command cannot know since when a server has been up or
//! down, so `status` and `watch` note what they observe in a small file per domain in the state
//! directory, `<dir>/<domain>.health`, with the time each server was first seen in its current
//! state. A time there is "since at least then, as observed on this host": nothing was looking
//! before, and between two observations the server may have gone down and come back unseen.
//!
//! The file is plain text, one line per server of the domain (lines starting with `#` are
//! comments), replaced atomically ([`StateDir::write_file`]) and only when something changed:
//!
//! ```text
//! up 1765000000 127.0.0.1:11211     state, since (seconds since the epoch, UTC), server
//! down 1765000321 10.0.0.2:11211
//! ```
//!
//! It is untrusted input like every file of the state directory ([`StateDir::read_file`]); one
//! that is not valid is ignored as a whole and replaced by the next observation. Two observers
//! writing at once may lose one's update; the next observation restores it (with a later time).
#![forbid(unsafe_code)]

use std::path::PathBuf;

use crate::registry::DomainName;
use crate::state_dir::StateDir;

/// What a domain's health file is called: `<domain>` followed by this.
pub const HEALTH_SUFFIX: &str = ".health";
/// Largest health file read: 256 servers with 255-byte hosts fit with room to spare.
pub const MAX_HEALTH_LEN: usize = 128 * 1024;

/// Whether a server answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Up,
    Down,
}

impl Seen {
    pub fn word(self) -> &'static str {
        match self {
            Seen::Up => "up",
            Seen::Down => "down",
        }
    }
}

/// One server's line.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    server: String,
    seen: Seen,
    since: u64,
}

/// What [`HealthLog::observe`] found out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// For each observed server, in order: since when (seconds since the epoch) it has been in
    /// the observed state, if known: known when the file already said so, or when this
    /// observation could be written.
    pub since: Vec<Option<u64>>,
    /// Why the file could not be read (it was then ignored) or written.
    pub problem: Option<String>,
}

/// The health file of one domain.
#[derive(Clone, Debug)]
pub struct HealthLog {
    dir: StateDir,
    domain: DomainName,
}

impl HealthLog {
    pub fn new(dir: StateDir, domain: DomainName) -> HealthLog {
        HealthLog { dir, domain }
    }

    fn name(&self) -> String {
        format!("{}{HEALTH_SUFFIX}", self.domain)
    }

    /// `<dir>/<domain>.health`.
    pub fn file(&self) -> PathBuf {
        self.dir.path().join(self.name())
    }

    /// Notes that each server of `observed` was seen in its state at `now` (seconds since the
    /// epoch), keeping the time of a server already noted in that state. Servers not in
    /// `current` (the domain's servers now) are forgotten; others keep their line. The file is
    /// written only when a line changes.
    pub fn observe(&self, observed: &[(String, Seen)], current: &[String], now: u64) -> Observed {
        let mut problem = None;
        let before = match self.dir.read_file(&self.name(), MAX_HEALTH_LEN) {
            Ok(bytes) => match parse(&bytes.unwrap_or_default()) {
                Ok(entries) => entries,
                Err(why) => {
                    problem = Some(format!("{}: {why}; ignored", self.file().display()));
                    Vec::new()
                }
            },
            Err(why) => {
                problem = Some(format!("{why}; ignored"));
                Vec::new()
            }
        };
        let mut after: Vec<Entry> = before
            .iter()
            .filter(|e| current.contains(&e.server))
            .cloned()
            .collect();
        let mut fresh = Vec::new();
        let since: Vec<u64> = observed
            .iter()
            .map(
                |(server, seen)| match after.iter_mut().find(|e| &e.server == server) {
                    Some(e) if e.seen == *seen => e.since,
                    Some(e) => {
                        (e.seen, e.since) = (*seen, now);
                        fresh.push(server);
                        now
                    }
                    None => {
                        after.push(Entry {
                            server: server.clone(),
                            seen: *seen,
                            since: now,
                        });
                        fresh.push(server);
                        now
                    }
                },
            )
            .collect();
        if after == before {
            return Observed {
                since: since.into_iter().map(Some).collect(),
                problem,
            };
        }
        let written = self
            .dir
            .write_file(&self.name(), format(&self.domain, &after).as_bytes());
        let since = observed
            .iter()
            .zip(since)
            .map(|((server, _), t)| (written.is_ok() || !fresh.contains(&server)).then_some(t))
            .collect();
        if let Err(e) = written {
            problem = Some(e.to_string());
        }
        Observed { since, problem }
    }
}

fn format(domain: &DomainName, entries: &[Entry]) -> String {
    let mut text = format!(
        "# when each server of domain {domain} was first seen up or down, by mcadmin status \
         and watch on this host (mcadmin(8))\n"
    );
    for e in entries {
        text.push_str(&format!("{} {} {}\n", e.seen.word(), e.since, e.server));
    }
    text
}

fn parse(bytes: &[u8]) -> Result<Vec<Entry>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
    let mut entries: Vec<Entry> = Vec::new();
    for (at, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || format!("line {}: not \"up|down SECONDS SERVER\"", at + 1);
        let mut fields = line.splitn(3, ' ');
        let seen = match fields.next() {
            Some("up") => Seen::Up,
            Some("down") => Seen::Down,
            _ => return Err(bad()),
        };
        let since = fields
            .next()
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse().ok())
            .ok_or_else(bad)?;
        let server = fields.next().filter(|s| !s.is_empty()).ok_or_else(bad)?;
        if server.bytes().any(|b| b <= 0x20 || b == 0x7f) {
            return Err(bad());
        }
        if entries.iter().any(|e| e.server == server) {
            return Err(format!("line {}: {server} is listed twice", at + 1));
        }
        entries.push(Entry {
            server: server.to_owned(),
            seen,
            since,
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn log(label: &str) -> HealthLog {
        let dir = std::env::temp_dir().join(format!("health-log-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        HealthLog::new(StateDir::new(dir), DomainName::parse("web").unwrap())
    }

    fn seen(list: &[(&str, Seen)]) -> Vec<(String, Seen)> {
        list.iter().map(|(s, x)| (s.to_string(), *x)).collect()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_state_keeps_its_first_time_and_a_change_starts_a_new_one() {
        let log = log("times");
        let all = strings(&["a:1", "b:2"]);
        let first = log.observe(&seen(&[("a:1", Seen::Up), ("b:2", Seen::Down)]), &all, 100);
        assert_eq!(first.since, [Some(100), Some(100)]);
        assert_eq!(first.problem, None);
        let modified = std::fs::metadata(log.file()).unwrap().modified().unwrap();

        let again = log.observe(&seen(&[("a:1", Seen::Up), ("b:2", Seen::Down)]), &all, 200);
        assert_eq!(again.since, [Some(100), Some(100)]);
        assert_eq!(
            std::fs::metadata(log.file()).unwrap().modified().unwrap(),
            modified,
            "nothing changed, nothing written"
        );

        // One server at a time (as watch observes) keeps the other's line.
        let back = log.observe(&seen(&[("b:2", Seen::Up)]), &all, 300);
        assert_eq!(back.since, [Some(300)]);
        let both = log.observe(&seen(&[("a:1", Seen::Up), ("b:2", Seen::Up)]), &all, 400);
        assert_eq!(both.since, [Some(100), Some(300)]);

        // A server leaving the list is forgotten.
        log.observe(&seen(&[("a:1", Seen::Up)]), &strings(&["a:1"]), 500);
        let text = std::fs::read_to_string(log.file()).unwrap();
        assert!(text.ends_with("\nup 100 a:1\n"), "{text}");
        assert_eq!(
            std::fs::metadata(log.file()).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let _ = std::fs::remove_dir_all(log.dir.path());
    }

    #[test]
    fn an_invalid_file_is_ignored_and_replaced() {
        for junk in [
            "up 1 a:1\nup 2 a:1\n",
            "sideways 1 a:1\n",
            "up -1 a:1\n",
            "up 1\n",
            "up 1 a:1 b\n",
            "\u{1b}[2J\n",
        ] {
            let log = log("junk");
            std::fs::create_dir_all(log.dir.path()).unwrap();
            std::fs::write(log.file(), junk).unwrap();
            let observed = log.observe(&seen(&[("a:1", Seen::Up)]), &strings(&["a:1"]), 7);
            assert_eq!(observed.since, [Some(7)], "{junk:?}");
            assert!(observed.problem.unwrap().contains("ignored"), "{junk:?}");
            assert_eq!(parse(&std::fs::read(log.file()).unwrap()).unwrap().len(), 1);
            let _ = std::fs::remove_dir_all(log.dir.path());
        }
    }

    #[test]
    fn a_directory_that_cannot_be_written_gives_only_known_times() {
        let log = log("readonly");
        let all = strings(&["a:1", "b:2"]);
        log.observe(&seen(&[("a:1", Seen::Up), ("b:2", Seen::Up)]), &all, 10);
        // A directory in the way of the temporary file: the write fails, for root too (which
        // a read-only mode would not stop).
        let blocked = log
            .dir
            .path()
            .join(format!(".{}.{}.tmp", log.name(), std::process::id()));
        std::fs::create_dir(&blocked).unwrap();
        let observed = log.observe(&seen(&[("a:1", Seen::Up), ("b:2", Seen::Down)]), &all, 20);
        assert_eq!(
            observed.since,
            [Some(10), None],
            "b's change could not be noted"
        );
        assert!(observed.problem.is_some());
        let _ = std::fs::remove_dir_all(log.dir.path());
    }
}
