//! `watch`: keep this host's domains in step with the records on their servers, round after
//! round, until told to stop.
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use super::pull::{adopt, Adopted};
use super::{fetch, reconnect, NetError, Record, NET_TIMEOUT};
use crate::address::{AddressError, ServerAddr};
use crate::engine::Slot;
use crate::registry::{DomainList, DomainName, Namespace};

/// Something a round did or found that its caller may want to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// A domain's list was installed from `source`'s record: over version `was`, or, with
    /// `was` `None`, in a segment created for it.
    Installed {
        domain: DomainName,
        source: ServerAddr,
        was: Option<u64>,
        list: DomainList,
    },
    /// A problem not reported before (or different from what was last reported on the same
    /// subject): reported once, again only after a round that went well in that respect.
    /// `message` is one line naming the domain and, where one is at fault, the server.
    Problem {
        domain: Option<DomainName>,
        message: String,
    },
}

/// Why a watch cannot start.
#[derive(Debug)]
pub enum WatchError {
    /// A seed was given without domains: a server cannot tell which domains it holds.
    SeedNeedsDomains,
    /// The seed cannot name a server.
    BadServer(AddressError),
}

impl fmt::Display for WatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WatchError::SeedNeedsDomains => f.write_str(
                "a seed needs the domains named: a server cannot tell which domains it holds",
            ),
            WatchError::BadServer(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WatchError {}

/// The agent of a watch: its connections (kept from round to round) and the problems it has
/// reported (so a persisting problem is reported once, not every round).
pub struct Watcher {
    ns: Namespace,
    domains: Option<Vec<DomainName>>,
    seed: Option<ServerAddr>,
    timeout: Duration,
    conns: HashMap<String, Slot>,
    used: HashSet<String>,
    problems: HashMap<String, String>,
    wbuf: Vec<u8>,
    events: Vec<WatchEvent>,
}

impl Watcher {
    /// A watcher of `domains` in `ns` (`None`: every domain there, as listed at each round),
    /// asking `seed` too for a domain that has no segment here yet. Each wait on a server is
    /// bounded by [`NET_TIMEOUT`] (see [`set_timeout`](Self::set_timeout)).
    pub fn new(
        ns: Namespace,
        domains: Option<Vec<DomainName>>,
        seed: Option<ServerAddr>,
    ) -> Result<Watcher, WatchError> {
        if let Some(seed) = &seed {
            seed.check().map_err(WatchError::BadServer)?;
            if domains.is_none() {
                return Err(WatchError::SeedNeedsDomains);
            }
        }
        Ok(Watcher {
            ns,
            domains,
            seed,
            timeout: NET_TIMEOUT,
            conns: HashMap::new(),
            used: HashSet::new(),
            problems: HashMap::new(),
            wbuf: Vec::new(),
            events: Vec::new(),
        })
    }

    /// Bounds every connect and every wait for a reply.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Rounds every `interval` (measured from the start of one to the start of the next) until
    /// `stop` returns true; it is asked before each domain and at least every 50 ms between
    /// rounds, so a stop takes effect within one exchange. `on_event` receives each round's
    /// events. Returns the number of rounds begun.
    pub fn run(
        &mut self,
        interval: Duration,
        mut stop: impl FnMut() -> bool,
        mut on_event: impl FnMut(&WatchEvent),
    ) -> u64 {
        let mut rounds = 0;
        while !stop() {
            let next = Instant::now() + interval;
            rounds += 1;
            for event in self.round(&mut stop) {
                on_event(&event);
            }
            while let Some(left) = next.checked_duration_since(Instant::now()) {
                if stop() {
                    break;
                }
                std::thread::sleep(left.min(Duration::from_millis(50)));
            }
        }
        rounds
    }

    /// One round: brings each domain up to date from its servers (and the seed), stopping early
    /// when `stop` returns true. Connections to servers no domain uses any more are closed.
    pub fn round(&mut self, stop: &mut dyn FnMut() -> bool) -> Vec<WatchEvent> {
        self.used.clear();
        let names = match &self.domains {
            Some(names) => names.clone(),
            None => match self.ns.list_domains() {
                Ok(names) => {
                    self.solved("domains");
                    names
                }
                Err(e) => {
                    self.problem(None, "domains", format!("cannot list the domains: {e}"));
                    Vec::new()
                }
            },
        };
        for name in &names {
            if stop() {
                break;
            }
            self.sync(name);
        }
        let used = &self.used;
        self.conns.retain(|server, _| used.contains(server));
        std::mem::take(&mut self.events)
    }

    /// Reports `message` unless it is what was last reported about `topic`.
    fn problem(&mut self, domain: Option<&DomainName>, topic: &str, message: String) {
        if self.problems.get(topic) != Some(&message) {
            self.events.push(WatchEvent::Problem {
                domain: domain.cloned(),
                message: message.clone(),
            });
            self.problems.insert(topic.to_owned(), message);
        }
    }

    fn solved(&mut self, topic: &str) {
        self.problems.remove(topic);
    }

    /// The record of `name` on `server`, over the connection kept for it (the engine's slot:
    /// a kept connection is reused only when it is idle and nothing unasked waits in it). A
    /// kept connection whose exchange fails (the server restarted since the last round) is
    /// replaced once.
    fn fetch(
        &mut self,
        server: &ServerAddr,
        name: &DomainName,
    ) -> Result<Option<Record>, NetError> {
        let key = server.to_string();
        self.used.insert(key.clone());
        let slot = self.conns.entry(key).or_default();
        let mut fresh = false;
        loop {
            if !slot.has_ready_conn() {
                fresh = true;
                reconnect(slot, server, self.timeout)?;
            }
            match slot.exchange(&mut self.wbuf, |conn, wbuf| fetch(conn, wbuf, name)) {
                Ok(record) => return Ok(record),
                Err(e) if fresh || !matches!(e, NetError::Exchange(_)) => return Err(e),
                Err(_) => {}
            }
        }
    }

    /// One domain: asks each of its servers (and the seed) for the record and installs the
    /// newest if it is newer than the local list. A problem is solved (and may be reported
    /// again later) only by a round that went well in that respect.
    fn sync(&mut self, name: &DomainName) {
        let domain = Some(name);
        let local_topic = name.to_string();
        let local = match self
            .ns
            .open_reader(name)
            .and_then(|r| r.map(|r| r.read()).transpose())
        {
            Ok(local) => local,
            Err(e) => return self.problem(domain, &local_topic, format!("{name}: {e}")),
        };
        let mut sources = local.as_ref().map_or_else(Vec::new, |l| l.servers.clone());
        match (&local, &self.seed) {
            (None, None) => {
                return self.problem(
                    domain,
                    &local_topic,
                    format!(
                        "{name}: no segment on this host yet; waiting for one (or give --seed)"
                    ),
                )
            }
            (Some(_), _) => self.solved(&local_topic),
            (None, Some(_)) => {} // settled once the seed has been asked
        }
        if let Some(seed) = &self.seed {
            if !sources.iter().any(|s| s.same_server(seed)) {
                sources.push(seed.clone());
            }
        }

        let mut found: Vec<(ServerAddr, Record)> = Vec::new();
        for server in &sources {
            let topic = format!("{name} {server}");
            match self.fetch(server, name) {
                Ok(record) => {
                    self.solved(&topic);
                    found.extend(record.map(|r| (server.clone(), r)));
                }
                Err(e) => self.problem(domain, &topic, format!("{name}: {server}: {e}")),
            }
        }
        let Some(newest) = found.iter().map(|(_, r)| r.list.version).max() else {
            if let (None, Some(seed)) = (&local, &self.seed) {
                let message = format!(
                    "{name}: no segment on this host yet and no record from {seed}; waiting"
                );
                self.problem(domain, &local_topic, message);
            }
            return;
        };
        let mut at_newest = found.iter().filter(|(_, r)| r.list.version == newest);
        let (source, record) = at_newest.next().expect("the maximum is one of them");
        let disagree = format!("{name} disagree");
        if let Some((other, _)) = at_newest.find(|(_, r)| !r.same_list(&record.list)) {
            return self.problem(
                domain,
                &disagree,
                format!(
                    "{name}: {source} and {other} hold different lists as version {newest}; \
                     nothing installed"
                ),
            );
        }
        self.solved(&disagree);
        if local.as_ref().is_some_and(|l| l.version > newest) {
            return;
        }
        let (conflict, install) = (format!("{name} conflict"), format!("{name} install"));
        let outcome = adopt(&self.ns, name, record);
        if outcome.is_ok() {
            self.solved(&install);
        }
        let installed = |was| WatchEvent::Installed {
            domain: name.clone(),
            source: source.clone(),
            was,
            list: record.list.clone(),
        };
        match outcome {
            Ok(Adopted::Created) => {
                self.solved(&local_topic);
                self.events.push(installed(None));
            }
            Ok(Adopted::Installed { was }) => {
                self.solved(&conflict);
                self.events.push(installed(Some(was)));
            }
            Ok(Adopted::UpToDate | Adopted::Older { .. }) => self.solved(&conflict),
            Ok(Adopted::Conflict) => self.problem(
                domain,
                &conflict,
                format!(
                    "{name}: conflict: {source} holds version {newest} with a different list \
                     than this host's; nothing installed"
                ),
            ),
            Err(e) => self.problem(domain, &install, format!("{name}: {e}")),
        }
    }
}
