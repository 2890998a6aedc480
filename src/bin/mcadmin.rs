//! mcadmin(8): edits the shared server lists (domains) that every libmemcache handle on this
//! host follows, and carries them between hosts through the memcached servers themselves
//! (`publish`, `pull`, `watch`; see `memcache::propagate`). Exit status: 0 success, 1 usage
//! error, 2 runtime error.
//!
//! The only `unsafe` code is the stop-signal handler of `watch`, at the end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use memcache::conn::{split_host_port, Conn};
use memcache::hash::Distribution;
use memcache::propagate::{self, ClientAddr, NetError, Record, Replace, ServerConnection};
use memcache::registry::{
    self, DomainList, DomainName, Reader, RegistryError, ServerEntry, Writer,
};

#[derive(Parser)]
#[command(
    name = "mcadmin",
    version,
    about = "Edit the shared memcached server lists (domains) used by libmemcache on this host",
    after_help = "Every long-running program using the domain picks up a change on its next operation.\n\
                  Exit status: 0 success, 1 usage error, 2 runtime error."
)]
struct Cli {
    /// The domain to work on (1-64 bytes of A-Z a-z 0-9 _ . -) [default: $MEMCACHE_DOMAIN, else
    /// "default"]. `watch` takes it several times [default: every domain of this host]
    #[arg(long, global = true, value_name = "NAME", action = clap::ArgAction::Append)]
    domain: Vec<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Add a server (creates the domain if needed)
    Add {
        /// HOST:PORT, [IPv6]:PORT or a unix socket path
        server: String,
        /// Weight for ketama-md5 placement
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        weight: u32,
    },
    /// Remove a server
    Delete { server: String },
    /// Replace the whole list (creates the domain if needed)
    Set {
        #[arg(required = true)]
        servers: Vec<String>,
    },
    /// Show the version, distribution and servers
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create an empty domain
    Create,
    /// Remove the domain's segment; handles keep their last list
    Destroy,
    /// List the domains on this host
    Domains,
    /// Show or change the domain's settings
    Config {
        #[arg(long, value_parser = ["ketama-md5", "crc32-modulo"])]
        distribution: Option<String>,
        /// Copies of each key (used by handles that support redundancy)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=16))]
        replicas: Option<u32>,
    },
    /// Store the list on every server of the domain (and on servers just removed from it)
    Publish {
        /// Also tell this server (e.g. one removed before anything was published); repeatable
        #[arg(long, value_name = "SERVER")]
        also: Vec<String>,
    },
    /// Install the list a server holds if it is newer than this host's
    Pull {
        /// HOST:PORT, [IPv6]:PORT or a unix socket path
        server: String,
    },
    /// Keep the domains of this host in sync with their servers (runs until SIGTERM/SIGINT)
    Watch {
        /// Seconds between two rounds (decimals allowed)
        #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_interval)]
        interval: Duration,
        /// Where to get a domain that has no segment on this host yet
        #[arg(long, value_name = "SERVER")]
        seed: Option<String>,
    },
    /// Show the client addresses connected to the domain's servers (stats conns)
    Clients {
        #[arg(long)]
        json: bool,
    },
}

/// How long one exchange with a server (connecting, or waiting for any reply) may take.
const NET_TIMEOUT: Duration = Duration::from_secs(2);

/// `watch --interval`: a number of seconds from 0.1 to one day.
fn parse_interval(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if (0.1..=86_400.0).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!(
            "{text:?} is not a number of seconds from 0.1 to 86400"
        )),
    }
}

/// Why mcadmin stops: one line for stderr and the exit status.
enum Failure {
    /// The command line is wrong (status 1).
    Usage(String),
    /// The command could not be carried out (status 2).
    Runtime(String),
}

use Failure::Runtime;

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Failure {
        Runtime(e.to_string())
    }
}

fn parse_server(spec: &str, weight: u32) -> Result<ServerEntry, Failure> {
    let (host, port) = split_host_port(spec.as_bytes());
    let host = String::from_utf8(host.to_vec())
        .map_err(|_| Failure::Usage(format!("{spec}: host is not UTF-8")))?;
    let port = std::str::from_utf8(port)
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| Failure::Usage(format!("{spec}: port is not a number from 0 to 65535")))?;
    Ok(ServerEntry { host, port, weight })
}

/// A server named on the command line to talk to (not to add): it must be a valid entry.
fn parse_peer(spec: &str) -> Result<ServerEntry, Failure> {
    let entry = parse_server(spec, 1)?;
    entry
        .check()
        .map_err(|why| Runtime(format!("server {spec}: {why}")))?;
    Ok(entry)
}

fn same_server(a: &ServerEntry, b: &ServerEntry) -> bool {
    a.host == b.host && a.port == b.port
}

fn show(entry: &ServerEntry) -> String {
    if entry.host.starts_with('/') {
        entry.host.clone()
    } else if entry.host.contains(':') {
        format!("[{}]:{}", entry.host, entry.port)
    } else {
        format!("{}:{}", entry.host, entry.port)
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn print_list(name: &DomainName, list: &DomainList, json: bool) {
    if json {
        let servers: Vec<String> = list
            .servers
            .iter()
            .map(|s| {
                format!(
                    "{{\"host\":{},\"port\":{},\"weight\":{}}}",
                    json_string(&s.host),
                    s.port,
                    s.weight
                )
            })
            .collect();
        println!(
            "{{\"domain\":{},\"version\":{},\"distribution\":{},\"replicas\":{},\"servers\":[{}]}}",
            json_string(name.as_str()),
            list.version,
            json_string(list.distribution.name()),
            list.replicas,
            servers.join(",")
        );
        return;
    }
    println!("domain {name}");
    println!("version {}", list.version);
    println!("distribution {}", list.distribution.name());
    println!("replicas {}", list.replicas);
    for s in &list.servers {
        println!("server {} weight {}", show(s), s.weight);
    }
}

fn existing(name: &DomainName) -> Result<Writer, Failure> {
    match Writer::open(name, false) {
        Err(RegistryError::NotFound) => Err(Runtime(format!(
            "domain {name} does not exist (mcadmin --domain {name} create)"
        ))),
        other => Ok(other?),
    }
}

/// The current list through a read-only mapping: viewing needs no write access, so any user
/// can look at root's domains (segments are mode 0644).
fn current(name: &DomainName) -> Result<DomainList, Failure> {
    match Reader::open(name)? {
        Some(reader) => Ok(reader.read()?),
        None => Err(Runtime(format!(
            "domain {name} does not exist (mcadmin --domain {name} create)"
        ))),
    }
}

fn parse_domain(name: &str) -> Result<DomainName, Failure> {
    DomainName::parse(name).map_err(|e| Runtime(format!("domain {name:?}: {e}")))
}

/// The one domain of every command but `watch`: `--domain`, else `$MEMCACHE_DOMAIN`, else
/// `default`.
fn one_domain(given: &[String]) -> Result<DomainName, Failure> {
    match given {
        [] => match std::env::var_os("MEMCACHE_DOMAIN") {
            Some(v) if !v.is_empty() => match v.to_str() {
                Some(name) => parse_domain(name),
                None => Err(Runtime(format!("MEMCACHE_DOMAIN={v:?} is not UTF-8"))),
            },
            _ => parse_domain("default"),
        },
        [name] => parse_domain(name),
        more => Err(Failure::Usage(format!(
            "--domain is given {} times; only watch follows several domains",
            more.len()
        ))),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let command = match cli.command {
        Command::Watch { interval, seed } => return watch(&cli.domain, interval, seed.as_deref()),
        other => other,
    };
    let name = one_domain(&cli.domain)?;
    match command {
        Command::Add { server, weight } => {
            let entry = parse_server(&server, weight)?;
            let shown = show(&entry);
            let mut w = Writer::open(&name, true)?;
            let version = w.update(|list| {
                if list.servers.iter().any(|s| same_server(s, &entry)) {
                    return Err(RegistryError::BadEntry(format!(
                        "{shown} is already in domain {name}"
                    )));
                }
                list.servers.push(entry);
                Ok(())
            })?;
            eprintln!("mcadmin: added {shown} to {name} (version {version})");
        }
        Command::Delete { server } => {
            let entry = parse_server(&server, 1)?;
            let shown = show(&entry);
            let version = existing(&name)?.update(|list| {
                let before = list.servers.len();
                list.servers.retain(|s| !same_server(s, &entry));
                if list.servers.len() == before {
                    return Err(RegistryError::BadEntry(format!(
                        "{shown} is not in domain {name}"
                    )));
                }
                Ok(())
            })?;
            eprintln!("mcadmin: deleted {shown} from {name} (version {version})");
        }
        Command::Set { servers } => {
            let entries = servers
                .iter()
                .map(|s| parse_server(s, 1))
                .collect::<Result<Vec<_>, _>>()?;
            let version = Writer::open(&name, true)?.update(|list| {
                list.servers = entries;
                Ok(())
            })?;
            eprintln!(
                "mcadmin: set {} servers in {name} (version {version})",
                servers.len()
            );
        }
        Command::List { json } => {
            print_list(&name, &current(&name)?, json);
        }
        Command::Create => {
            if Writer::open(&name, false).is_ok() {
                return Err(Runtime(format!("domain {name} already exists")));
            }
            Writer::open(&name, true)?;
            eprintln!("mcadmin: created {name}");
        }
        Command::Destroy => {
            registry::destroy(&name)?;
            eprintln!("mcadmin: destroyed {name}");
        }
        Command::Domains => {
            for d in registry::list_domains()? {
                match current(&d) {
                    Ok(list) => println!(
                        "{d} version {} servers {}",
                        list.version,
                        list.servers.len()
                    ),
                    Err(Runtime(e) | Failure::Usage(e)) => println!("{d} unreadable: {e}"),
                }
            }
        }
        Command::Config {
            distribution,
            replicas,
        } => {
            if distribution.is_some() || replicas.is_some() {
                let dist = distribution.as_deref().and_then(Distribution::parse);
                existing(&name)?.update(|list| {
                    if let Some(d) = dist {
                        list.distribution = d;
                    }
                    if let Some(r) = replicas {
                        list.replicas = r;
                    }
                    Ok(())
                })?;
            }
            let list = current(&name)?;
            println!("distribution {}", list.distribution.name());
            println!("replicas {}", list.replicas);
        }
        Command::Publish { also } => publish(&name, &also)?,
        Command::Pull { server } => pull(&name, &server)?,
        Command::Clients { json } => clients(&name, json)?,
        Command::Watch { .. } => unreachable!("handled above"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// publish

/// One server `publish` talks to, and what it held under the record key before.
struct Peer {
    server: ServerEntry,
    /// `None` once the server failed; `held` then says why.
    conn: Option<Conn>,
    held: Held,
}

enum Held {
    Failed(String),
    Nothing,
    /// A valid record and the `gets` unique value of its item.
    Record(Record, u64),
    /// Something that is not a valid record (replaced without a second thought).
    Invalid(String, u64),
}

/// Connects to `server` and reads what it holds for `name`.
fn visit(server: &ServerEntry, name: &DomainName, wbuf: &mut Vec<u8>) -> Peer {
    let peer = |conn, held| Peer {
        server: server.clone(),
        conn,
        held,
    };
    let mut conn = match propagate::connect(server, NET_TIMEOUT) {
        Ok(conn) => conn,
        Err(e) => return peer(None, Held::Failed(e.to_string())),
    };
    match propagate::fetch_raw(&mut conn, wbuf, name) {
        Ok(None) => peer(Some(conn), Held::Nothing),
        Ok(Some(raw)) => match raw.decode(name) {
            Ok(record) => peer(Some(conn), Held::Record(record, raw.cas)),
            Err(e) => peer(Some(conn), Held::Invalid(e.to_string(), raw.cas)),
        },
        Err(e) => peer(None, Held::Failed(e.to_string())),
    }
}

/// Visits each server of `servers` not visited yet.
fn visit_all<'a>(
    peers: &mut Vec<Peer>,
    servers: impl IntoIterator<Item = &'a ServerEntry>,
    name: &DomainName,
    wbuf: &mut Vec<u8>,
) {
    for server in servers {
        if !peers.iter().any(|p| p.server.same_server(server)) {
            peers.push(visit(server, name, wbuf));
        }
    }
}

/// The newest record the servers hold, if `list` may be published over all of them.
fn previous_record(list: &DomainList, peers: &[Peer]) -> Result<Option<Record>, Failure> {
    let found: Vec<(String, &Record)> = peers
        .iter()
        .filter_map(|p| match &p.held {
            Held::Record(record, _) => Some((show(&p.server), record)),
            _ => None,
        })
        .collect();
    propagate::check_publishable(list, &found)
        .map(|newest| newest.cloned())
        .map_err(Runtime)
}

/// `publish`: reads what every server of the domain (and every `--also` server) holds, refuses
/// if one holds a newer or conflicting version, derives the servers removed since the newest
/// record found, and stores the new record on all of them, each with `add` or `cas` so that a
/// record written meanwhile by someone else is never overwritten unseen. Every server that could
/// not be updated is reported on a line of its own; the others are updated all the same.
fn publish(name: &DomainName, also: &[String]) -> Result<(), Failure> {
    let list = current(name)?;
    let extra = also
        .iter()
        .map(|s| parse_peer(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut wbuf = Vec::new();
    let mut peers = Vec::new();
    visit_all(
        &mut peers,
        list.servers.iter().chain(&extra),
        name,
        &mut wbuf,
    );
    let previous = previous_record(&list, &peers)?;
    if previous.is_none() {
        // Only the servers know what was published before: when none of them does (a first
        // publish, or a list whose servers were all replaced), removed servers are unknown.
        eprintln!(
            "mcadmin: note: no server holds an earlier record of {name}; servers removed since \
             the last publish are told only if named with --also"
        );
    }
    let retired = propagate::retired_servers(&list, previous.as_ref(), &extra);
    // The removed servers are asked too: one of them may hold a newer version.
    visit_all(&mut peers, &retired, name, &mut wbuf);
    previous_record(&list, &peers)?;

    let record = Record {
        domain: name.clone(),
        list,
        retired,
    };
    record
        .check()
        .map_err(|e| Runtime(format!("the list of {name} cannot be published: {e}")))?;
    let bytes = record.encode();
    let mut failed = 0;
    for peer in &mut peers {
        let outcome = match (&peer.held, peer.conn.as_mut()) {
            (Held::Failed(why), _) => Err(why.clone()),
            (_, None) => Err("no connection".to_owned()),
            (held, Some(conn)) => {
                let replace = match held {
                    Held::Record(_, cas) => Replace::Item(*cas),
                    Held::Invalid(why, cas) => {
                        eprintln!(
                            "mcadmin: {}: replacing an invalid record: {why}",
                            show(&peer.server)
                        );
                        Replace::Item(*cas)
                    }
                    Held::Nothing | Held::Failed(_) => Replace::Nothing,
                };
                match propagate::store(conn, &mut wbuf, name, &bytes, replace) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err("the record changed during the publish (another \
                                      mcadmin?); nothing overwritten, publish again"
                        .to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        if let Err(why) = outcome {
            failed += 1;
            eprintln!("mcadmin: {}: not updated: {why}", show(&peer.server));
        }
    }
    let summary = format!(
        "published {name} version {} to {} of {} server{} ({} retired)",
        record.list.version,
        peers.len() - failed,
        peers.len(),
        plural(peers.len()),
        record.retired.len()
    );
    if failed > 0 {
        return Err(Runtime(format!("{summary}; {failed} failed")));
    }
    eprintln!("mcadmin: {summary}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// pull

/// What installing a record in the local segment came to.
enum Adopted {
    /// The domain had no segment: created with the record's list and version.
    Created,
    /// Newer than the local list (whose version this was): installed.
    Installed(u64),
    /// The local list is that version already.
    UpToDate,
    /// The local version (this one) is newer: nothing done.
    Older(u64),
    /// The same version with another list: nothing done.
    Conflict,
}

/// Installs `record`'s list in the local segment of `name` if it is newer (creating the domain
/// if it has none). The comparison is repeated if the local list changes between it and the
/// install, which `Writer::install` re-checks under the segment lock.
fn adopt(name: &DomainName, record: &Record) -> Result<Adopted, RegistryError> {
    let offered = &record.list;
    for _ in 0..3 {
        let local = match Reader::open(name)? {
            Some(reader) => reader.read()?,
            None => match Writer::create_with(name, offered)? {
                (_, true) => return Ok(Adopted::Created),
                (_, false) => continue, // created by someone else meanwhile: compare with it
            },
        };
        if offered.version < local.version {
            return Ok(Adopted::Older(local.version));
        }
        if offered.version == local.version {
            return Ok(if record.same_list(&local) {
                Adopted::UpToDate
            } else {
                Adopted::Conflict
            });
        }
        match Writer::open(name, false)?.install(offered.clone()) {
            Ok(_) => return Ok(Adopted::Installed(local.version)),
            Err(RegistryError::NotNewer { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(RegistryError::Io(std::io::Error::other(format!(
        "the local list of {name} keeps changing; nothing installed"
    ))))
}

/// The record of `name` on `server`, which must have one.
fn fetch_record(server: &ServerEntry, name: &DomainName) -> Result<Record, Failure> {
    let shown = show(server);
    let mut conn =
        propagate::connect(server, NET_TIMEOUT).map_err(|e| Runtime(format!("{shown}: {e}")))?;
    match propagate::fetch(&mut conn, &mut Vec::new(), name) {
        Ok(Some(record)) => Ok(record),
        Ok(None) => Err(Runtime(format!(
            "{shown} holds no record of domain {name} (mcadmin --domain {name} publish stores it)"
        ))),
        Err(e) => Err(Runtime(format!("{shown}: {e}; nothing changed"))),
    }
}

/// A list in one short line: its version and up to 8 servers.
fn describe(list: &DomainList) -> String {
    let n = list.servers.len();
    let mut text = format!("version {}, {n} server{}", list.version, plural(n));
    let mut servers: Vec<String> = list.servers.iter().take(8).map(show).collect();
    if n > 8 {
        servers.push(format!("and {} more", n - 8));
    }
    if n > 0 {
        text.push_str(": ");
        text.push_str(&servers.join(","));
    }
    text
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn pull(name: &DomainName, spec: &str) -> Result<(), Failure> {
    let server = parse_peer(spec)?;
    let shown = show(&server);
    let record = fetch_record(&server, name)?;
    let v = record.list.version;
    match adopt(name, &record)? {
        Adopted::Created => {
            eprintln!("mcadmin: created {name} from {shown}: {}", describe(&record.list))
        }
        Adopted::Installed(was) => eprintln!(
            "mcadmin: installed {name} from {shown} (was version {was}): {}",
            describe(&record.list)
        ),
        Adopted::UpToDate => eprintln!("mcadmin: {name} is up to date (version {v})"),
        Adopted::Older(local) => eprintln!(
            "mcadmin: ignored version {v} of {name} from {shown}: the local version {local} is newer"
        ),
        Adopted::Conflict => {
            return Err(Runtime(format!(
                "conflict: {shown} holds version {v} of {name} with a different list than this \
                 host's; nothing changed"
            )))
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// watch

/// The agent of `watch`: its connections (kept from round to round) and the problems it has
/// logged (so a persisting problem is logged once, not every round).
struct Watcher {
    domains: Option<Vec<DomainName>>,
    seed: Option<ServerEntry>,
    conns: HashMap<String, Conn>,
    used: HashSet<String>,
    problems: HashMap<String, String>,
    wbuf: Vec<u8>,
}

fn log(line: &str) {
    eprintln!("mcadmin: watch: {line}");
}

impl Watcher {
    /// Logs `message` unless it is what was last logged about `topic`.
    fn problem(&mut self, topic: String, message: String) {
        if self.problems.get(&topic) != Some(&message) {
            log(&message);
            self.problems.insert(topic, message);
        }
    }

    fn solved(&mut self, topic: &str) {
        self.problems.remove(topic);
    }

    /// The record of `name` on `server`, over the connection kept for it. A kept connection
    /// that fails (the server restarted since the last round) is replaced once.
    fn fetch(
        &mut self,
        server: &ServerEntry,
        name: &DomainName,
    ) -> Result<Option<Record>, NetError> {
        let key = show(server);
        self.used.insert(key.clone());
        let mut fresh = false;
        loop {
            let conn = match self.conns.get_mut(&key) {
                Some(conn) => conn,
                None => {
                    fresh = true;
                    self.conns
                        .entry(key.clone())
                        .or_insert(propagate::connect(server, NET_TIMEOUT)?)
                }
            };
            match propagate::fetch(conn, &mut self.wbuf, name) {
                Ok(record) => return Ok(record),
                Err(e) => {
                    self.conns.remove(&key);
                    if fresh || !matches!(e, NetError::Exchange(_)) {
                        return Err(e);
                    }
                }
            }
        }
    }

    fn round(&mut self) {
        self.used.clear();
        let names = match &self.domains {
            Some(names) => names.clone(),
            None => match registry::list_domains() {
                Ok(names) => {
                    self.solved("domains");
                    names
                }
                Err(e) => {
                    self.problem("domains".into(), format!("cannot list the domains: {e}"));
                    Vec::new()
                }
            },
        };
        for name in &names {
            if stop_requested() {
                break;
            }
            self.sync(name);
        }
        let used = &self.used;
        self.conns.retain(|server, _| used.contains(server));
    }

    /// One domain: asks each of its servers (and the seed) for the record and installs the
    /// newest if it is newer than the local list. A problem is solved (and may be logged again
    /// later) only by a round that went well in that respect.
    fn sync(&mut self, name: &DomainName) {
        let local_topic = name.to_string();
        let local = match Reader::open(name).and_then(|r| r.map(|r| r.read()).transpose()) {
            Ok(local) => local,
            Err(e) => return self.problem(local_topic, format!("{name}: {e}")),
        };
        let mut sources = local.as_ref().map_or_else(Vec::new, |l| l.servers.clone());
        match (&local, &self.seed) {
            (None, None) => {
                return self.problem(
                    local_topic,
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

        let mut found: Vec<(ServerEntry, Record)> = Vec::new();
        for server in &sources {
            let topic = format!("{name} {}", show(server));
            match self.fetch(server, name) {
                Ok(record) => {
                    self.solved(&topic);
                    found.extend(record.map(|r| (server.clone(), r)));
                }
                Err(e) => self.problem(topic, format!("{name}: {}: {e}", show(server))),
            }
        }
        let Some(newest) = found.iter().map(|(_, r)| r.list.version).max() else {
            if let (None, Some(seed)) = (&local, &self.seed) {
                let seed = show(seed);
                self.problem(
                    local_topic,
                    format!(
                        "{name}: no segment on this host yet and no record from {seed}; waiting"
                    ),
                );
            }
            return;
        };
        let mut at_newest = found.iter().filter(|(_, r)| r.list.version == newest);
        let (source, record) = at_newest.next().expect("the maximum is one of them");
        let disagree = format!("{name} disagree");
        if let Some((other, _)) = at_newest.find(|(_, r)| !r.same_list(&record.list)) {
            return self.problem(
                disagree,
                format!(
                    "{name}: {} and {} hold different lists as version {newest}; nothing installed",
                    show(source),
                    show(other)
                ),
            );
        }
        self.solved(&disagree);
        if local.as_ref().is_some_and(|l| l.version > newest) {
            return;
        }
        let source = show(source);
        let (conflict, install) = (format!("{name} conflict"), format!("{name} install"));
        let outcome = adopt(name, record);
        if outcome.is_ok() {
            self.solved(&install);
        }
        match outcome {
            Ok(Adopted::Created) => {
                self.solved(&local_topic);
                log(&format!(
                    "{name}: created from {source}: {}",
                    describe(&record.list)
                ));
            }
            Ok(Adopted::Installed(was)) => {
                self.solved(&conflict);
                log(&format!(
                    "{name}: installed from {source} (was version {was}): {}",
                    describe(&record.list)
                ));
            }
            Ok(Adopted::UpToDate | Adopted::Older(_)) => self.solved(&conflict),
            Ok(Adopted::Conflict) => self.problem(
                conflict,
                format!(
                    "{name}: conflict: {source} holds version {newest} with a different list \
                     than this host's; nothing installed"
                ),
            ),
            Err(e) => self.problem(install, format!("{name}: {e}")),
        }
    }
}

/// `watch`: every `interval`, brings each domain up to date from its servers, until SIGTERM or
/// SIGINT. Logs to stderr, one line per change installed and per new problem.
fn watch(domains: &[String], interval: Duration, seed: Option<&str>) -> Result<(), Failure> {
    let domains = if domains.is_empty() {
        None
    } else {
        Some(
            domains
                .iter()
                .map(|d| parse_domain(d))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let seed = seed.map(parse_peer).transpose()?;
    if seed.is_some() && domains.is_none() {
        return Err(Failure::Usage(
            "--seed needs --domain: a server cannot tell which domains it holds".into(),
        ));
    }
    install_stop_handlers()?;
    let following = match &domains {
        Some(names) => names
            .iter()
            .map(DomainName::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        None => "every domain of this host".to_owned(),
    };
    log(&format!(
        "following {following} every {}s",
        interval.as_secs_f64()
    ));
    let mut watcher = Watcher {
        domains,
        seed,
        conns: HashMap::new(),
        used: HashSet::new(),
        problems: HashMap::new(),
        wbuf: Vec::new(),
    };
    while !stop_requested() {
        let next = Instant::now() + interval;
        watcher.round();
        while let Some(left) = next.checked_duration_since(Instant::now()) {
            if stop_requested() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
    let signal = if STOP_SIGNAL.load(Ordering::Relaxed) == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    log(&format!("stopped by {signal}"));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// clients

/// One client connection a server reported.
struct ClientConn {
    server: String,
    conn: ServerConnection,
    port: Option<u16>,
}

/// The client connections of one server, without our own.
fn server_clients(server: &ServerEntry) -> Result<Vec<(ClientAddr, ServerConnection)>, NetError> {
    let mut conn = propagate::connect(server, NET_TIMEOUT)?;
    let own = conn.local_addr();
    let all = propagate::connections(&mut conn, &mut Vec::new())?;
    let mut ours_seen = false;
    Ok(all
        .into_iter()
        .filter(ServerConnection::is_client)
        .filter_map(|c| {
            let client = c.client()?;
            // Ours is the one executing the command: over TCP the one with our address, over
            // a unix socket (where every client shows the same address) the first in that state.
            let ours = match own {
                Some(own) => {
                    client.port == Some(own.port())
                        && client.host.parse::<IpAddr>().ok().map(canonical)
                            == Some(canonical(own.ip()))
                }
                None => client.port.is_none() && c.state == "conn_parse_cmd",
            };
            if ours && !ours_seen {
                ours_seen = true;
                return None;
            }
            Some((client, c))
        })
        .collect())
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `clients`: every client address (IP, or `unix:PATH`) connected to the domain's servers, with
/// the servers it is connected to. Servers that cannot be asked are reported on stderr; the
/// command fails only when none could be.
fn clients(name: &DomainName, json: bool) -> Result<(), Failure> {
    let list = current(name)?;
    let mut by_client: BTreeMap<String, Vec<ClientConn>> = BTreeMap::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    for server in &list.servers {
        match server_clients(server) {
            Ok(conns) => {
                for (client, conn) in conns {
                    by_client.entry(client.host).or_default().push(ClientConn {
                        server: show(server),
                        conn,
                        port: client.port,
                    });
                }
            }
            Err(e) => {
                eprintln!("mcadmin: {}: {e}", show(server));
                failed.push((show(server), e.to_string()));
            }
        }
    }
    // Servers in list order, each once.
    let servers_of = |conns: &[ClientConn]| -> Vec<String> {
        let mut servers: Vec<String> = Vec::new();
        for server in list.servers.iter().map(show) {
            if conns.iter().any(|c| c.server == server) {
                servers.push(server);
            }
        }
        servers
    };
    if json {
        let clients: Vec<String> = by_client
            .iter()
            .map(|(client, conns)| {
                let servers: Vec<String> =
                    servers_of(conns).iter().map(|s| json_string(s)).collect();
                let detail: Vec<String> = conns
                    .iter()
                    .map(|c| {
                        format!(
                            "{{\"server\":{},\"port\":{},\"state\":{},\"idle\":{}}}",
                            json_string(&c.server),
                            c.port.map_or("null".to_owned(), |p| p.to_string()),
                            json_string(&c.conn.state),
                            c.conn
                                .idle_secs
                                .map_or("null".to_owned(), |s| s.to_string())
                        )
                    })
                    .collect();
                format!(
                    "{{\"client\":{},\"servers\":[{}],\"connections\":[{}]}}",
                    json_string(client),
                    servers.join(","),
                    detail.join(",")
                )
            })
            .collect();
        let failed: Vec<String> = failed
            .iter()
            .map(|(server, error)| {
                format!(
                    "{{\"server\":{},\"error\":{}}}",
                    json_string(server),
                    json_string(error)
                )
            })
            .collect();
        println!(
            "{{\"domain\":{},\"clients\":[{}],\"failed\":[{}]}}",
            json_string(name.as_str()),
            clients.join(","),
            failed.join(",")
        );
    } else {
        for (client, conns) in &by_client {
            println!(
                "{client} connections {} servers {}",
                conns.len(),
                servers_of(conns).join(",")
            );
        }
    }
    if !list.servers.is_empty() && failed.len() == list.servers.len() {
        return Err(Runtime(format!(
            "no server of {name} could be asked for its clients"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The system calls

/// The signal that asked `watch` to stop, 0 while none has. The handler stores it and does
/// nothing else, which is all a signal handler may safely do here.
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn request_stop(signal: libc::c_int) {
    STOP_SIGNAL.store(signal, Ordering::Relaxed);
}

fn stop_requested() -> bool {
    STOP_SIGNAL.load(Ordering::Relaxed) != 0
}

/// SIGTERM and SIGINT end `watch` after its current exchange (each is bounded by the network
/// timeout) instead of killing it in the middle of an install.
fn install_stop_handlers() -> Result<(), Failure> {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let handler = request_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: `request_stop` is a valid handler for the life of the process and only does an
        // atomic store, which is async-signal-safe.
        if unsafe { libc::signal(signal, handler) } == libc::SIG_ERR {
            return Err(Runtime(format!(
                "cannot install the handler of signal {signal}: {}",
                std::io::Error::last_os_error()
            )));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not errors: clap prints them in full.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!("mcadmin: a command is required. Usage: mcadmin [--domain NAME] COMMAND (see mcadmin --help)");
            return ExitCode::from(1);
        }
        Err(e) => {
            // clap's message, folded to one line: the problem and the argument it names,
            // without the usage hint that follows.
            let text = e.to_string();
            let first = text
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            eprintln!("mcadmin: {first} (see mcadmin --help)");
            return ExitCode::from(1);
        }
    };
    let (code, msg) = match run(cli) {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => (1, msg),
        Err(Runtime(msg)) => (2, msg),
    };
    eprintln!("mcadmin: {msg}");
    ExitCode::from(code)
}
