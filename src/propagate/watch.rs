//! `watch`: keep this host's domains in step with the records on their servers, until told to
//! stop.
//!
//! Each (domain, server) pair is asked by a poller of its own, so one slow or trickling server
//! delays nobody: not another domain, not the other servers of its own domain. The pollers only
//! talk to their server; what they find comes back to the thread that runs the watch, which
//! alone installs lists (so a stop never interrupts an install) and is never blocked on the
//! network: a stop takes effect within 50 ms, whatever the servers do. Pollers still in an
//! exchange then are left to end it on their own (it is bounded by the timeout) and install
//! nothing; a process that exits after the stop does not wait for them.
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pull::{adopt, Adopted};
use super::{fetch, reconnect, NetError, Record, DEFAULT_MAX_AHEAD, NET_TIMEOUT};
use crate::address::{AddressError, ServerAddr};
use crate::engine::Slot;
use crate::registry::{DomainList, DomainName, Namespace};
use crate::state_dir::StateDir;
use crate::status::{HealthLog, Seen};

/// How often a running watch looks at its stop condition, at most.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Something the watch did or found that its caller may want to log.
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
    /// subject): reported once, again only after an answer that went well in that respect. A
    /// record refused for being dated too far ahead is reported once per version, however many
    /// servers hold it and however often they are asked. `message` is one line naming the
    /// domain and, where one is at fault, the server.
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

/// One server's answer for one domain.
struct Fetched {
    domain: DomainName,
    server: ServerAddr,
    result: Result<Option<Record>, NetError>,
}

/// A (domain, server) pair, as keys of the maps below.
type PairKey = (DomainName, String);

/// The agent of a watch: its connections, the last answer of each server, and the problems it
/// has reported (so a persisting problem is reported once, not at every poll).
pub struct Watcher {
    ns: Namespace,
    domains: Option<Vec<DomainName>>,
    seed: Option<ServerAddr>,
    timeout: Duration,
    max_ahead: Duration,
    /// [`round`](Self::round)'s connections, kept from round to round.
    conns: HashMap<PairKey, Slot>,
    /// [`run`](Self::run)'s pollers: the flag that stops each.
    pollers: HashMap<PairKey, Arc<AtomicBool>>,
    /// The servers each domain is asked, as of the last look at its local list.
    sources: HashMap<DomainName, Vec<ServerAddr>>,
    /// The servers of each domain's local list (the seed is asked but not one of them).
    listed: HashMap<DomainName, Vec<String>>,
    /// Where each server's state and since when is noted for `mcadmin status`, if anywhere.
    health: Option<StateDir>,
    /// The last record each server of a domain answered with (None: it holds none); a server
    /// whose last exchange failed has no entry.
    latest: HashMap<PairKey, Option<Record>>,
    problems: HashMap<String, String>,
    events: Vec<WatchEvent>,
}

impl Watcher {
    /// A watcher of `domains` in `ns` (`None`: every domain there, as listed at each round),
    /// asking `seed` too for a domain that has no segment here yet. Each wait on a server is
    /// bounded by [`NET_TIMEOUT`] (see [`set_timeout`](Self::set_timeout)); records dated more
    /// than [`DEFAULT_MAX_AHEAD`] ahead are refused (see [`set_max_ahead`](Self::set_max_ahead)).
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
            max_ahead: DEFAULT_MAX_AHEAD,
            conns: HashMap::new(),
            pollers: HashMap::new(),
            sources: HashMap::new(),
            listed: HashMap::new(),
            health: None,
            latest: HashMap::new(),
            problems: HashMap::new(),
            events: Vec::new(),
        })
    }

    /// Bounds every connect and every wait for a reply.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Refuses records dated more than `max_ahead` after the local clock.
    pub fn set_max_ahead(&mut self, max_ahead: Duration) {
        self.max_ahead = max_ahead;
    }

    /// Notes in `dir`'s health files whether each server of a domain answered, and since when
    /// (what `mcadmin status` shows as "up since", "down since"; see [`HealthLog`]).
    pub fn set_health_dir(&mut self, dir: StateDir) {
        self.health = Some(dir);
    }

    /// Follows the domains until `stop` returns true, which is asked at least every 50 ms
    /// whatever the servers do. Every `interval` (from the start of one to the start of the
    /// next) the local lists are looked at again and each (domain, server) pair is asked by its
    /// own poller, which keeps asking every `interval`; each answer is acted on as it arrives.
    /// `on_event` receives the events. Returns the number of intervals begun.
    ///
    /// Pollers still waiting on a server when the stop comes are left to end their exchange
    /// (bounded by the timeout) and then end; they install nothing.
    pub fn run(
        &mut self,
        interval: Duration,
        mut stop: impl FnMut() -> bool,
        mut on_event: impl FnMut(&WatchEvent),
    ) -> u64 {
        let (sender, answers) = mpsc::channel();
        let mut rounds = 0;
        'run: while !stop() {
            let next = Instant::now() + interval;
            rounds += 1;
            self.refresh_pollers(interval, &sender);
            self.deliver(&mut on_event);
            while let Some(left) = next.checked_duration_since(Instant::now()) {
                if stop() {
                    break 'run;
                }
                self.receive(&answers, left.min(STOP_CHECK), interval, &sender);
                self.deliver(&mut on_event);
            }
        }
        for flag in self.pollers.values() {
            flag.store(true, Ordering::Relaxed);
        }
        self.pollers.clear();
        rounds
    }

    /// One round without pollers: asks every server of every domain (the servers of a domain
    /// in parallel) and acts on the answers once all are in, stopping early when `stop` returns
    /// true. Connections to servers no domain uses any more are closed.
    pub fn round(&mut self, stop: &mut dyn FnMut() -> bool) -> Vec<WatchEvent> {
        let mut used = HashSet::new();
        for name in self.domain_names() {
            if stop() {
                break;
            }
            let Some(sources) = self.look_at(&name) else {
                continue;
            };
            let mut slots: Vec<(ServerAddr, Slot)> = sources
                .iter()
                .map(|server| {
                    let key = (name.clone(), server.to_string());
                    let slot = self.conns.remove(&key).unwrap_or_default();
                    used.insert(key);
                    (server.clone(), slot)
                })
                .collect();
            let (timeout, max_ahead) = (self.timeout, self.max_ahead);
            let results: Vec<Result<Option<Record>, NetError>> = std::thread::scope(|scope| {
                let asked: Vec<_> = slots
                    .iter_mut()
                    .map(|(server, slot)| {
                        let name = &name;
                        scope.spawn(move || {
                            fetch_kept(slot, server, name, timeout, max_ahead, &mut Vec::new())
                        })
                    })
                    .collect();
                asked
                    .into_iter()
                    .map(|t| t.join().expect("a fetch does not panic"))
                    .collect()
            });
            for ((server, slot), result) in slots.into_iter().zip(results) {
                self.conns.insert((name.clone(), server.to_string()), slot);
                self.take(Fetched {
                    domain: name.clone(),
                    server,
                    result,
                });
            }
            self.settle(&name);
        }
        self.conns.retain(|key, _| used.contains(key));
        std::mem::take(&mut self.events)
    }

    fn deliver(&mut self, on_event: &mut impl FnMut(&WatchEvent)) {
        for event in std::mem::take(&mut self.events) {
            on_event(&event);
        }
    }

    /// Waits up to `wait` for answers and acts on each that came.
    fn receive(
        &mut self,
        answers: &Receiver<Fetched>,
        wait: Duration,
        interval: Duration,
        sender: &Sender<Fetched>,
    ) {
        let mut next = answers.recv_timeout(wait);
        loop {
            let fetched = match next {
                Ok(fetched) => fetched,
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
            };
            let name = fetched.domain.clone();
            // An answer from a pair no longer followed (the list changed meanwhile) is stale.
            if self
                .pollers
                .contains_key(&(name.clone(), fetched.server.to_string()))
            {
                self.take(fetched);
                if self.settle(&name) {
                    // The list changed: its new servers get pollers now, not at the next tick.
                    self.refresh_domain(&name, interval, sender);
                }
            }
            next = answers.try_recv().map_err(|_| RecvTimeoutError::Timeout);
        }
    }

    /// The domains followed now.
    fn domain_names(&mut self) -> Vec<DomainName> {
        match &self.domains {
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
        }
    }

    /// Starts a poller for every (domain, server) pair to ask and stops those of pairs no
    /// longer followed.
    fn refresh_pollers(&mut self, interval: Duration, sender: &Sender<Fetched>) {
        let names = self.domain_names();
        for name in &names {
            self.refresh_domain(name, interval, sender);
        }
        let gone: Vec<PairKey> = self
            .pollers
            .keys()
            .filter(|(domain, _)| !names.contains(domain))
            .cloned()
            .collect();
        for key in gone {
            self.stop_poller(&key);
        }
    }

    /// [`refresh_pollers`](Self::refresh_pollers) for one domain.
    fn refresh_domain(&mut self, name: &DomainName, interval: Duration, sender: &Sender<Fetched>) {
        let sources = self.look_at(name).unwrap_or_default();
        let stale: Vec<PairKey> = self
            .pollers
            .keys()
            .filter(|(domain, server)| {
                domain == name && !sources.iter().any(|s| &s.to_string() == server)
            })
            .cloned()
            .collect();
        for key in stale {
            self.stop_poller(&key);
        }
        for server in sources {
            let key = (name.clone(), server.to_string());
            if !self.pollers.contains_key(&key) {
                let flag = Arc::new(AtomicBool::new(false));
                let shown = server.to_string();
                match self.spawn_poller(name.clone(), server, interval, &flag, sender.clone()) {
                    Ok(()) => {
                        self.pollers.insert(key, flag);
                    }
                    // Tried again at the next interval.
                    Err(e) => self.problem(
                        Some(name),
                        &format!("{name} {shown}"),
                        format!("{name}: {shown}: cannot start a thread to ask it: {e}"),
                    ),
                }
            }
        }
    }

    fn stop_poller(&mut self, key: &PairKey) {
        if let Some(flag) = self.pollers.remove(key) {
            flag.store(true, Ordering::Relaxed);
        }
        self.latest.remove(key);
    }

    /// A thread that asks `server` for the record of `name` every `interval` until `stop` is
    /// set (or nobody listens any more), sending each answer.
    fn spawn_poller(
        &self,
        name: DomainName,
        server: ServerAddr,
        interval: Duration,
        stop: &Arc<AtomicBool>,
        answers: Sender<Fetched>,
    ) -> std::io::Result<()> {
        let (timeout, max_ahead) = (self.timeout, self.max_ahead);
        let thread_name = format!("watch {name} {server}");
        let stop = Arc::clone(stop);
        let poll = move || {
            let (mut slot, mut wbuf) = (Slot::new(), Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let next = Instant::now() + interval;
                let result = fetch_kept(&mut slot, &server, &name, timeout, max_ahead, &mut wbuf);
                let fetched = Fetched {
                    domain: name.clone(),
                    server: server.clone(),
                    result,
                };
                if stop.load(Ordering::Relaxed) || answers.send(fetched).is_err() {
                    return;
                }
                while let Some(left) = next.checked_duration_since(Instant::now()) {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(left.min(STOP_CHECK));
                }
            }
        };
        std::thread::Builder::new()
            .name(thread_name)
            .spawn(poll)
            .map(drop)
    }

    /// Reads the local list of `name` and decides which servers to ask: its servers and the
    /// seed. `None` (with a problem reported) when there is nothing to ask.
    fn look_at(&mut self, name: &DomainName) -> Option<Vec<ServerAddr>> {
        let domain = Some(name);
        let local_topic = name.to_string();
        let local = match self
            .ns
            .open_reader(name)
            .and_then(|r| r.map(|r| r.read()).transpose())
        {
            Ok(local) => local,
            Err(e) => {
                self.problem(domain, &local_topic, format!("{name}: {e}"));
                return None;
            }
        };
        let mut sources = local.as_ref().map_or_else(Vec::new, |l| l.servers.clone());
        let listed = sources.iter().map(ServerAddr::to_string).collect();
        self.listed.insert(name.clone(), listed);
        match (&local, &self.seed) {
            (None, None) => {
                self.problem(
                    domain,
                    &local_topic,
                    format!(
                        "{name}: no segment on this host yet; waiting for one (or give --seed)"
                    ),
                );
                return None;
            }
            (Some(_), _) => self.solved(&local_topic),
            (None, Some(_)) => {} // settled once the seed has answered
        }
        if let Some(seed) = &self.seed {
            if !sources.iter().any(|s| s.same_server(seed)) {
                sources.push(seed.clone());
            }
        }
        self.sources.insert(name.clone(), sources.clone());
        Some(sources)
    }

    /// Notes one server's answer; reports a failure (once) or marks it solved.
    fn take(&mut self, fetched: Fetched) {
        let Fetched {
            domain: name,
            server,
            result,
        } = fetched;
        let topic = format!("{name} {server}");
        let key = (name.clone(), server.to_string());
        // Any answer, even a refused record, shows the server up.
        let seen = match &result {
            Ok(_) | Err(NetError::Invalid(_)) => Seen::Up,
            Err(_) => Seen::Down,
        };
        self.note_health(&name, &server, seen);
        match result {
            Ok(record) => {
                self.solved(&topic);
                self.latest.insert(key, record);
            }
            Err(NetError::Invalid(e)) if e.ahead().is_some() => {
                // The server is fine; its record is not. One report per refused version, named
                // by the first server found holding it (the others hold the same publish).
                self.solved(&topic);
                self.latest.remove(&key);
                let version = e.ahead().unwrap_or_default();
                let message = format!("{name}: {server} holds a record that is refused: {e}");
                if !self
                    .problems
                    .contains_key(&format!("{name} ahead {version}"))
                {
                    self.problem(Some(&name), &format!("{name} ahead {version}"), message);
                }
            }
            Err(e) => {
                self.latest.remove(&key);
                self.problem(Some(&name), &topic, format!("{name}: {server}: {e}"));
            }
        }
    }

    /// Notes a server's state in the domain's health file, if it is one of the domain's servers
    /// and there is a state directory. A file that cannot be read or written is reported once.
    fn note_health(&mut self, name: &DomainName, server: &ServerAddr, seen: Seen) {
        let (Some(dir), Some(listed)) = (&self.health, self.listed.get(name)) else {
            return;
        };
        let server = server.to_string();
        if !listed.contains(&server) {
            return;
        }
        let log = HealthLog::new(dir.clone(), name.clone());
        let noted = log.observe(&[(server, seen)], listed, super::now_unix_secs());
        let topic = format!("{name} health");
        match noted.problem {
            Some(why) => self.problem(Some(name), &topic, format!("{name}: {why}")),
            None => self.solved(&topic),
        }
    }

    /// Acts on the last answers of the servers of `name`: installs the newest record if it is
    /// newer than the local list and no other server holds that version with another list.
    /// Returns whether a list was installed.
    fn settle(&mut self, name: &DomainName) -> bool {
        let domain = Some(name);
        let local_topic = name.to_string();
        let sources = self.sources.get(name).cloned().unwrap_or_default();
        let found: Vec<(ServerAddr, Record)> = sources
            .iter()
            .filter_map(|server| {
                let record = self.latest.get(&(name.clone(), server.to_string()))?;
                record.clone().map(|r| (server.clone(), r))
            })
            .collect();
        let local = self
            .ns
            .open_reader(name)
            .ok()
            .flatten()
            .and_then(|r| r.read().ok());
        let Some(newest) = found.iter().map(|(_, r)| r.list.version).max() else {
            if let (None, Some(seed)) = (&local, &self.seed) {
                let answered = self.latest.contains_key(&(name.clone(), seed.to_string()));
                if answered {
                    let message = format!(
                        "{name}: no segment on this host yet and no record from {seed}; waiting"
                    );
                    self.problem(domain, &local_topic, message);
                }
            }
            return false;
        };
        let mut at_newest = found.iter().filter(|(_, r)| r.list.version == newest);
        let (source, record) = at_newest.next().expect("the maximum is one of them");
        let disagree = format!("{name} disagree");
        if let Some((other, _)) = at_newest.find(|(_, r)| !r.same_list(&record.list)) {
            self.problem(
                domain,
                &disagree,
                format!(
                    "{name}: {source} and {other} hold different lists as version {newest}; \
                     nothing installed"
                ),
            );
            return false;
        }
        self.solved(&disagree);
        if local.as_ref().is_some_and(|l| l.version > newest) {
            return false;
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
                true
            }
            Ok(Adopted::Installed { was }) => {
                self.solved(&conflict);
                self.events.push(installed(Some(was)));
                true
            }
            Ok(Adopted::UpToDate | Adopted::Older { .. }) => {
                self.solved(&conflict);
                false
            }
            Ok(Adopted::Conflict) => {
                self.problem(
                    domain,
                    &conflict,
                    format!(
                        "{name}: conflict: {source} holds version {newest} with a different \
                         list than this host's; nothing installed"
                    ),
                );
                false
            }
            Err(e) => {
                self.problem(domain, &install, format!("{name}: {e}"));
                false
            }
        }
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
}

/// The record of `name` on `server`, over the connection kept in `slot` (the engine's slot: a
/// kept connection is reused only when it is idle and nothing unasked waits in it). A kept
/// connection whose exchange fails (the server restarted since the last poll) is replaced once.
fn fetch_kept(
    slot: &mut Slot,
    server: &ServerAddr,
    name: &DomainName,
    timeout: Duration,
    max_ahead: Duration,
    wbuf: &mut Vec<u8>,
) -> Result<Option<Record>, NetError> {
    let mut fresh = false;
    loop {
        if !slot.has_ready_conn() {
            fresh = true;
            reconnect(slot, server, timeout)?;
        }
        match slot.exchange(wbuf, |conn, wbuf| fetch(conn, wbuf, name, max_ahead)) {
            Ok(record) => return Ok(record),
            Err(e) if fresh || !matches!(e, NetError::Exchange(_)) => return Err(e),
            Err(_) => {}
        }
    }
}
