//! Server lists that travel between hosts through the memcached servers themselves.
//!
//! The original design had memcached announce list versions to its clients. Stock memcached
//! cannot do that, so `mcadmin publish` stores a domain's list as one ordinary item, the
//! *record*, on every server of the domain, and `mcadmin pull`/`watch` on other hosts read it
//! back and install it in their own segment when it is newer (see `mcadmin(8)`).
//!
//! # The record
//!
//! Key `__memcache_domain__:<DOMAIN>` ([`record_key`]; the prefix is [`key::RESERVED_PREFIX`],
//! which ordinary operations refuse), flags [`RECORD_FLAGS`] (`0x4D43`, "MC"; a value with other
//! flags is not a record), exptime 0. The value is ASCII-compatible UTF-8 text, lines ending in
//! `\n`, fields separated by exactly one space:
//!
//! ```text
//! memcache-domain-record 1                  magic word and format version
//! domain web                                the domain; must be the one asked for
//! version 202501150000003                   the list version (YYYYMMDD * 10^7 + n)
//! distribution ketama-md5                   ketama-md5 | crc32-modulo
//! replicas 1                                1..=256
//! server 10.0.0.1 11211 1                   host, port, weight: zero or more, in list order
//! server ::1 11212 2                        (IPv6 literals bare: fields are space-separated)
//! server /run/memcached.sock 0 1            (a unix socket path has port 0)
//! retired 10.0.0.9 11211                    host, port: zero or more servers just removed
//! end                                       nothing may follow
//! ```
//!
//! `retired` lists the servers that the publish which wrote this version removed from the
//! domain (and stored the record on, so that hosts still using them learn of the change); it is
//! not part of the list. A record is untrusted input wherever it comes from: at most
//! [`MAX_RECORD_LEN`] bytes, no control byte but `\n`, lines in exactly this order with exactly
//! these fields, canonical decimal numbers, every server passing [`check_entry`], the list
//! passing [`DomainList::validate`], at most [`MAX_RETIRED`] retired servers, none listed twice
//! or also in the list, and a plausible version ([`check_version_within`]: a real date, no
//! further ahead of the local clock than a bound, [`DEFAULT_MAX_AHEAD`] unless the caller says
//! otherwise). Anything else is refused as a whole with a message naming the line.
//!
//! A version is `E * 10^15 + YYYYMMDD * 10^7 + n` (see `registry::version`): records of earlier
//! releases are epoch 0. A version whose epoch is above 0 (written by `publish --force`, see
//! [`supersede`]) is refused by those releases as "not date-derived": upgrade every host before
//! superseding.
//!
//! The network functions work on one [`Conn`] per server, through [`crate::command`]; the
//! workflows hold each server as an engine [`Slot`], so a connection is kept, checked before
//! reuse and closed after an error by the same rules as everywhere in the crate.
//!
//! # The workflows
//!
//! What `mcadmin` runs, as functions a program (or a test) calls directly; each returns what it
//! did as values and prints nothing. Each works on the segments of one [`Namespace`]
//! (`Namespace::from_env()` for this host's, as mcadmin does):
//! - [`publish()`]: store the local list on every server of the domain (and on the servers just
//!   removed from it), without overwriting a newer or conflicting record;
//! - [`pull()`]: install the list a server holds if it is newer than the local one;
//! - [`adopt()`]: the install step alone, for a record already in hand;
//! - [`Watcher`]: rounds of pulls over one or every domain, until its caller says stop.
#![forbid(unsafe_code)]

mod publish;
mod pull;
mod watch;

pub use publish::{publish, supersede, PublishError, Published, TellError, Told};
pub use pull::{adopt, pull, pull_within, Adopted, PullError, Pulled};
pub use watch::{WatchError, WatchEvent, Watcher};

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::command::{self, Failure, Stored, ValueSink};
use crate::conn::{resolve, Conn, Security};
use crate::engine::{ConnectError, Fate, Slot};
use crate::hash::Distribution;
use crate::key;
use crate::protocol::StoreCmd;
use crate::registry::{
    check_entry, dated_part, day_base, DomainList, DomainName, Namespace, RegistryError,
    ServerEntry, MAX_SERVERS, MAX_VERSION, UPDATES_PER_DAY,
};

/// How long one exchange with a server (connecting, or waiting for any reply) may take, unless
/// the caller says otherwise.
pub const NET_TIMEOUT: Duration = Duration::from_secs(2);

/// The first line's word.
pub const MAGIC_WORD: &str = "memcache-domain-record";
/// The format this module writes and reads; a record of another format is refused.
pub const FORMAT_VERSION: u32 = 1;
/// Flags of a stored record: "MC", small enough for the 16-bit flags of old servers.
pub const RECORD_FLAGS: u32 = 0x4D43;
/// Largest record read or written. The largest valid one (256 servers with 255-byte hosts and
/// 10-digit weights, 64 retired servers) is 89,124 bytes.
pub const MAX_RECORD_LEN: usize = 96 * 1024;
/// Retired servers a record names at most.
pub const MAX_RETIRED: usize = 64;
/// How far ahead of the local clock a record's version may be dated unless the caller says
/// otherwise: one day. Versions are dated by the UTC day of the clock that wrote them, so a
/// writer whose clock is right is at most today; one day more allows for a clock a little ahead
/// around midnight and for a day busy enough to spill into the next day's numbers (the bound
/// earlier releases applied, "no later than tomorrow"), while a clock off by days is refused.
pub const DEFAULT_MAX_AHEAD: Duration = Duration::from_secs(SECONDS_PER_DAY);

const SECONDS_PER_DAY: u64 = 86_400;

/// `__memcache_domain__:<DOMAIN>`: at most 20 + 64 bytes of key-safe characters.
pub fn record_key(domain: &DomainName) -> Vec<u8> {
    let mut k = key::RESERVED_PREFIX.to_vec();
    k.extend_from_slice(domain.as_str().as_bytes());
    k
}

/// Why bytes are not a valid record; the message names the line or field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    message: String,
    ahead: Option<u64>,
}

impl RecordError {
    fn new(msg: impl Into<String>) -> RecordError {
        RecordError {
            message: msg.into(),
            ahead: None,
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The version, when the record was refused for being dated too far ahead of the local
    /// clock (and only for that).
    pub fn ahead(&self) -> Option<u64> {
        self.ahead
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RecordError {}

/// One domain's list as published: what the record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub domain: DomainName,
    /// The list, with the version it was published under.
    pub list: DomainList,
    /// Servers the publish of this version removed (weight 1; only host and port are kept).
    pub retired: Vec<ServerEntry>,
}

impl Record {
    /// The text form described in the module documentation. The record should pass
    /// [`Record::check`]; this does not check it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!(
            "{MAGIC_WORD} {FORMAT_VERSION}\ndomain {}\nversion {}\ndistribution {}\nreplicas {}\n",
            self.domain,
            self.list.version,
            self.list.distribution.name(),
            self.list.replicas
        );
        for s in &self.list.servers {
            // " tls" only when it is: a record without TLS servers reads as it always did.
            let tls = if s.tls { " tls" } else { "" };
            out.push_str(&format!("server {} {} {}{tls}\n", s.host, s.port, s.weight));
        }
        for s in &self.retired {
            out.push_str(&format!("retired {} {}\n", s.host, s.port));
        }
        out.push_str("end\n");
        out.into_bytes()
    }

    /// Parses and validates a record of `domain` read from a server, against the current time
    /// and [`DEFAULT_MAX_AHEAD`].
    pub fn decode(bytes: &[u8], domain: &DomainName) -> Result<Record, RecordError> {
        Record::decode_at(bytes, domain, now_unix_secs())
    }

    /// [`Record::decode`] at a given time (seconds since the epoch, UTC).
    pub fn decode_at(
        bytes: &[u8],
        domain: &DomainName,
        now_unix_secs: u64,
    ) -> Result<Record, RecordError> {
        Record::decode_within(bytes, domain, now_unix_secs, DEFAULT_MAX_AHEAD)
    }

    /// [`Record::decode_at`] with a version dated at most `max_ahead` after `now_unix_secs`.
    pub fn decode_within(
        bytes: &[u8],
        domain: &DomainName,
        now_unix_secs: u64,
        max_ahead: Duration,
    ) -> Result<Record, RecordError> {
        let record = parse(bytes, domain)?;
        record.check_within(now_unix_secs, max_ahead)?;
        Ok(record)
    }

    /// The version a record claims, read without any check but its syntax: what a supersession
    /// must go beyond even when the record is refused.
    pub fn claimed_version(bytes: &[u8], domain: &DomainName) -> Option<u64> {
        parse(bytes, domain).ok().map(|r| r.list.version)
    }

    /// Everything a record must satisfy besides its syntax: a sane version, a valid list, and a
    /// retired list that is short, has no server twice and none that is in the list. `publish`
    /// checks its own record with this before storing it, so it never stores one that `pull`
    /// would refuse.
    pub fn check_at(&self, now_unix_secs: u64) -> Result<(), RecordError> {
        self.check_within(now_unix_secs, DEFAULT_MAX_AHEAD)
    }

    /// [`Record::check_at`] with a version dated at most `max_ahead` after `now_unix_secs`.
    pub fn check_within(&self, now_unix_secs: u64, max_ahead: Duration) -> Result<(), RecordError> {
        check_version_within(self.list.version, now_unix_secs, max_ahead)?;
        self.list
            .validate()
            .map_err(|e| RecordError::new(e.to_string()))?;
        if self.retired.len() > MAX_RETIRED {
            return Err(RecordError::new(format!(
                "{} retired servers, the maximum is {MAX_RETIRED}",
                self.retired.len()
            )));
        }
        for (i, r) in self.retired.iter().enumerate() {
            r.check()
                .map_err(|why| RecordError::new(format!("retired server {}: {why}", i + 1)))?;
            if self.retired[..i].iter().any(|e| e.same_server(r)) {
                return Err(RecordError::new(format!(
                    "retired server {r} is listed twice"
                )));
            }
            if self.list.servers.iter().any(|s| s.same_server(r)) {
                return Err(RecordError::new(format!(
                    "server {r} is both in the list and retired"
                )));
            }
        }
        Ok(())
    }

    /// [`Record::check_at`] now.
    pub fn check(&self) -> Result<(), RecordError> {
        self.check_at(now_unix_secs())
    }

    /// Whether the record's list is `list`, version aside: same distribution, replica count,
    /// and servers with the same weights in the same order.
    pub fn same_list(&self, list: &DomainList) -> bool {
        self.list.distribution == list.distribution
            && self.list.replicas == list.replicas
            && self.list.servers == list.servers
    }
}

pub(crate) fn now_unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// [`check_version_within`] with [`DEFAULT_MAX_AHEAD`]: no later than the end of tomorrow.
pub fn check_version(version: u64, now_unix_secs: u64) -> Result<(), RecordError> {
    check_version_within(version, now_unix_secs, DEFAULT_MAX_AHEAD)
}

/// A version a record may carry: `E * 10^15 + YYYYMMDD * 10^7 + n` for a real date from 1970
/// on, dated no later than the UTC day the local clock reaches `max_ahead` after
/// `now_unix_secs`. That allows for clocks a little ahead, but not for a clock off by days or a
/// forged version that would win against every real one for years: such a record is refused
/// with a message that says how far ahead it is and what to do (`publish --force`).
pub fn check_version_within(
    version: u64,
    now_unix_secs: u64,
    max_ahead: Duration,
) -> Result<(), RecordError> {
    if version == 0 {
        return Err(RecordError::new("version 0 is not a list version"));
    }
    if version > MAX_VERSION {
        return Err(RecordError::new(format!(
            "version {version} is larger than the maximum {MAX_VERSION}"
        )));
    }
    let dated = dated_part(version);
    let date = dated / UPDATES_PER_DAY;
    let (year, month, day) = (date / 10_000, date / 100 % 100, date % 100);
    if year < 1970 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(RecordError::new(format!(
            "version {version} is not date-derived ([EPOCH * 10^15 +] YYYYMMDD * 10^7 + n)"
        )));
    }
    // The last version of the day the clock reaches `max_ahead` from now.
    let horizon = now_unix_secs.saturating_add(max_ahead.as_secs());
    let limit = day_base(horizon) + UPDATES_PER_DAY - 1;
    if dated > limit {
        let days = date_start(year, month, day)
            .saturating_sub(now_unix_secs)
            .div_ceil(SECONDS_PER_DAY);
        return Err(RecordError {
            message: format!(
                "version {version} is dated {year:04}-{month:02}-{day:02}, {days} day{} ahead of \
                 this host's clock (the bound is {}s, --max-ahead): a clock far ahead or a \
                 forged record; refused (the way out: mcadmin publish --force on a host whose \
                 clock is right)",
                if days == 1 { "" } else { "s" },
                max_ahead.as_secs()
            ),
            ahead: Some(version),
        });
    }
    Ok(())
}

/// Seconds from the epoch to the start (UTC) of a date, for messages.
fn date_start(year: u64, month: u64, day: u64) -> u64 {
    let days_before_year: u64 = (1970..year)
        .map(|y| if days_in_month(y, 2) == 29 { 366 } else { 365 })
        .sum();
    let days_before_month: u64 = (1..month).map(|m| days_in_month(year, m)).sum();
    (days_before_year + days_before_month + day - 1) * SECONDS_PER_DAY
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The syntax: lines, keywords, fields and numbers. Semantics are `Record::check_at`'s.
fn parse(bytes: &[u8], domain: &DomainName) -> Result<Record, RecordError> {
    if bytes.len() > MAX_RECORD_LEN {
        return Err(RecordError::new(format!(
            "record is {} bytes long, the maximum is {MAX_RECORD_LEN}",
            bytes.len()
        )));
    }
    if let Some(at) = bytes
        .iter()
        .position(|&b| (b < 0x20 && b != b'\n') || b == 0x7f)
    {
        return Err(RecordError::new(format!(
            "control byte {:#04x} at offset {at}",
            bytes[at]
        )));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|e| RecordError::new(format!("not UTF-8 text (offset {})", e.valid_up_to())))?;
    let body = text
        .strip_suffix('\n')
        .ok_or_else(|| RecordError::new("truncated: the last line has no newline"))?;
    let mut lines = Lines {
        inner: body.split('\n'),
        number: 0,
    };

    let first = lines.next("the first line")?;
    match first.fields.as_slice() {
        [MAGIC_WORD, "1"] => {}
        [MAGIC_WORD, v] => {
            return Err(first.error(&format!(
                "record format {:?} is not supported (this version reads format {FORMAT_VERSION})",
                excerpt(v)
            )))
        }
        _ => {
            return Err(first.error(&format!(
                "not a domain record (it must start with \"{MAGIC_WORD} {FORMAT_VERSION}\")"
            )))
        }
    }
    let name = lines.next("domain")?.value("domain")?;
    if name != domain.as_str() {
        return Err(RecordError::new(format!(
            "record of domain {:?} found where domain {domain} was expected",
            excerpt(name)
        )));
    }
    let line = lines.next("version")?;
    let version =
        canonical_number(line.value("version")?, u64::MAX).ok_or_else(|| line.bad("version"))?;
    let line = lines.next("distribution")?;
    let distribution = match line.value("distribution")? {
        "ketama-md5" => Distribution::KetamaMd5,
        "crc32-modulo" => Distribution::Crc32Modulo,
        other => {
            return Err(line.error(&format!(
                "unknown distribution {:?} (ketama-md5 or crc32-modulo)",
                excerpt(other)
            )))
        }
    };
    let line = lines.next("replicas")?;
    let replicas = canonical_number(line.value("replicas")?, u32::MAX.into())
        .ok_or_else(|| line.bad("replica count"))? as u32;

    let mut servers = Vec::new();
    let mut retired = Vec::new();
    loop {
        let line = lines.next("end")?;
        match line.fields.as_slice() {
            ["server", host, port, weight, tls @ ..]
                if retired.is_empty() && matches!(tls, [] | ["tls"]) =>
            {
                if servers.len() == MAX_SERVERS {
                    return Err(line.error(&format!("more than {MAX_SERVERS} servers")));
                }
                let port =
                    canonical_number(port, u16::MAX.into()).ok_or_else(|| line.bad("port"))?;
                let weight =
                    canonical_number(weight, u32::MAX.into()).ok_or_else(|| line.bad("weight"))?;
                let entry = ServerEntry {
                    host: (*host).to_owned(),
                    port: port as u16,
                    weight: weight as u32,
                    tls: !tls.is_empty(),
                };
                check_entry(&entry).map_err(|why| line.error(&why))?;
                servers.push(entry);
            }
            ["retired", host, port] => {
                if retired.len() == MAX_RETIRED {
                    return Err(line.error(&format!("more than {MAX_RETIRED} retired servers")));
                }
                let port =
                    canonical_number(port, u16::MAX.into()).ok_or_else(|| line.bad("port"))?;
                let entry = ServerEntry::new(*host, port as u16);
                check_entry(&entry).map_err(|why| line.error(&why))?;
                retired.push(entry);
            }
            ["end"] => break,
            ["server", ..] if !retired.is_empty() => {
                return Err(line.error("a server line after a retired line"))
            }
            _ => {
                return Err(line.error(
                    "expected \"server HOST PORT WEIGHT\", \"retired HOST PORT\" or \"end\"",
                ))
            }
        }
    }
    if lines.inner.next().is_some() {
        return Err(RecordError::new(format!(
            "line {}: text after the end line",
            lines.number + 1
        )));
    }
    Ok(Record {
        domain: domain.clone(),
        list: DomainList {
            version,
            distribution,
            replicas,
            servers,
        },
        retired,
    })
}

/// The lines of a record, numbered from 1 for messages.
struct Lines<'a> {
    inner: std::str::Split<'a, char>,
    number: usize,
}

struct Line<'a> {
    number: usize,
    fields: Vec<&'a str>,
}

impl<'a> Lines<'a> {
    /// The next line; `expected` names what should be there, for the message when it is missing.
    fn next(&mut self, expected: &str) -> Result<Line<'a>, RecordError> {
        let text = self.inner.next().ok_or_else(|| {
            RecordError::new(format!(
                "truncated: the {expected} line is missing after line {}",
                self.number
            ))
        })?;
        self.number += 1;
        Ok(Line {
            number: self.number,
            fields: text.split(' ').collect(),
        })
    }
}

impl<'a> Line<'a> {
    fn error(&self, what: &str) -> RecordError {
        RecordError::new(format!("line {}: {what}", self.number))
    }

    fn bad(&self, what: &str) -> RecordError {
        self.error(&format!(
            "invalid {what} (a decimal number without sign or leading zeros, in range)"
        ))
    }

    /// The value of a `keyword value` line.
    fn value(&self, keyword: &str) -> Result<&'a str, RecordError> {
        match self.fields.as_slice() {
            [k, v] if *k == keyword => Ok(v),
            _ => Err(self.error(&format!("expected \"{keyword} VALUE\""))),
        }
    }
}

/// At most the first 64 characters of a field, for messages about a hostile record.
fn excerpt(field: &str) -> &str {
    field
        .char_indices()
        .nth(64)
        .map_or(field, |(at, _)| &field[..at])
}

/// A canonical decimal number no larger than `max`: digits only, no sign, no leading zero.
pub(crate) fn canonical_number(s: &str, max: u64) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.len() <= 20
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return None;
    }
    s.parse::<u64>().ok().filter(|&n| n <= max)
}

// ---------------------------------------------------------------------------------------------
// Publishing: which servers to tell, and whether we may

/// The servers a record of `list` names as retired: when the newest record found on the
/// servers (`previous`) has the same version (the same list published again), its retired
/// servers; otherwise the servers of `previous` that `list` no longer has. Then the `extra`
/// servers the operator named that are not in the list. At most [`MAX_RETIRED`], in that order;
/// none twice, none in the list.
pub fn retired_servers(
    list: &DomainList,
    previous: Option<&Record>,
    extra: &[ServerEntry],
) -> Vec<ServerEntry> {
    let from_previous: &[ServerEntry] = match previous {
        Some(p) if p.list.version == list.version => &p.retired,
        Some(p) => &p.list.servers,
        None => &[],
    };
    let mut retired: Vec<ServerEntry> = Vec::new();
    for s in from_previous.iter().chain(extra) {
        let known = list
            .servers
            .iter()
            .chain(&retired)
            .any(|e| e.same_server(s));
        if !known && retired.len() < MAX_RETIRED {
            retired.push(ServerEntry::new(s.host.clone(), s.port));
        }
    }
    retired
}

/// Whether `local` may be published over the records found on the servers (each with the
/// server it came from, for messages). Refused when a server holds a newer version (publishing
/// would roll it back: pull it first) or the same version with a different list (a conflict:
/// two hosts changed the domain independently). On success, the newest record found, from
/// which the retired servers are derived.
pub fn check_publishable<'r>(
    local: &DomainList,
    found: &[(String, &'r Record)],
) -> Result<Option<&'r Record>, String> {
    let mut newest: Option<&Record> = None;
    for (server, record) in found {
        let v = record.list.version;
        if v > local.version {
            return Err(format!(
                "{server} holds version {v}, newer than the local version {}: \
                 pull it first (mcadmin --domain {} pull {server})",
                local.version, record.domain
            ));
        }
        if v == local.version && !record.same_list(local) {
            return Err(format!(
                "conflict: {server} holds version {v} with a different list than this host's; \
                 change the list here (a new version) and publish again"
            ));
        }
        if newest.is_none_or(|n| v > n.list.version) {
            newest = Some(record);
        }
    }
    Ok(newest)
}

// ---------------------------------------------------------------------------------------------
// One server

/// Why an exchange with one server failed. After any of them, drop the connection.
#[derive(Debug)]
pub enum NetError {
    /// The server's address does not resolve.
    Resolve(String),
    Connect(std::io::Error),
    /// The request or reply failed (timeout, closed, a reply that makes no sense).
    Exchange(Failure),
    /// The server holds something under the record key that is not a valid record.
    Invalid(RecordError),
    /// The server answered the store with something else than STORED.
    NotStored(String),
    /// `stats conns` answered ERROR: the server does not have it.
    Unsupported,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Resolve(why) => write!(f, "cannot resolve: {why}"),
            NetError::Connect(e) => write!(f, "cannot connect: {e}"),
            NetError::Exchange(e) => write!(f, "{e}"),
            NetError::Invalid(e) => write!(f, "holds an invalid record: {e}"),
            NetError::NotStored(why) => write!(f, "did not store the record: {why}"),
            NetError::Unsupported => f.write_str("does not support \"stats conns\" (ERROR)"),
        }
    }
}

impl std::error::Error for NetError {}

impl From<Failure> for NetError {
    fn from(f: Failure) -> NetError {
        NetError::Exchange(f)
    }
}

/// The current list of `name` in `ns`, through a read-only mapping (None: no segment).
fn local_list(ns: &Namespace, name: &DomainName) -> Result<Option<DomainList>, RegistryError> {
    ns.open_reader(name)?.map(|r| r.read()).transpose()
}

/// Connects to a server of a list, every wait bounded by `timeout`.
pub fn connect(server: &ServerEntry, timeout: Duration) -> Result<Slot, NetError> {
    let mut slot = Slot::new();
    reconnect(&mut slot, server, timeout)?;
    Ok(slot)
}

/// TLS and login for every connection of propagation and status in this process: the
/// program's options (mcadmin's --tls-*, --auth-file), set once at its start.
static SECURITY: once_cell::sync::Lazy<parking_lot::Mutex<Security>> =
    once_cell::sync::Lazy::new(Default::default);

/// Uses `security` for every later connection to a domain's servers (see [`SECURITY`]).
pub fn use_security(security: Security) {
    *SECURITY.lock() = security;
}

/// Connects `slot` to `server` (again), every wait bounded by `timeout`.
pub fn reconnect(slot: &mut Slot, server: &ServerEntry, timeout: Duration) -> Result<(), NetError> {
    let port = server.port.to_string();
    // A clone (sharing the TLS session cache): the lock is not held while connecting, so
    // servers asked at once are not connected one after the other.
    let mut security = SECURITY.lock().clone();
    let greeting = security
        .greeting(server.tls, &server.host)
        .map_err(|e| NetError::Connect(std::io::Error::other(e.to_string())))?;
    match slot.connect_with(timeout, &greeting, || resolve(&server.host, &port)) {
        Ok(_) => Ok(()),
        Err(ConnectError::Resolve(e)) => Err(NetError::Resolve(e.message())),
        Err(ConnectError::Connect(e)) => Err(NetError::Connect(e)),
        Err(e @ ConnectError::Greeting(_)) => {
            Err(NetError::Connect(std::io::Error::other(e.to_string())))
        }
    }
}

impl Fate for NetError {
    fn is_timeout(&self) -> bool {
        matches!(self, NetError::Exchange(f) if f.is_timeout())
    }
}

/// What a server holds under a record key, before it is decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    pub flags: u32,
    /// The unique value of `gets`, for a `cas` that replaces exactly this item.
    pub cas: u64,
    /// The length the server announced.
    pub len: usize,
    /// The value; empty when `len` is over [`MAX_RECORD_LEN`] (its bytes were read and dropped).
    pub data: Vec<u8>,
}

impl RawRecord {
    /// The record it holds for `domain`, checked in full with [`DEFAULT_MAX_AHEAD`].
    pub fn decode(&self, domain: &DomainName) -> Result<Record, RecordError> {
        self.decode_within(domain, DEFAULT_MAX_AHEAD)
    }

    /// [`RawRecord::decode`] with a version dated at most `max_ahead` after now.
    pub fn decode_within(
        &self,
        domain: &DomainName,
        max_ahead: Duration,
    ) -> Result<Record, RecordError> {
        if self.flags != RECORD_FLAGS {
            return Err(RecordError::new(format!(
                "flags {} (a record has {RECORD_FLAGS}): not written by mcadmin",
                self.flags
            )));
        }
        if self.len > MAX_RECORD_LEN {
            return Err(RecordError::new(format!(
                "record is {} bytes long, the maximum is {MAX_RECORD_LEN}",
                self.len
            )));
        }
        Record::decode_within(&self.data, domain, now_unix_secs(), max_ahead)
    }
}

/// Collects the one value of a `gets` for one key, keeping at most [`MAX_RECORD_LEN`] bytes.
#[derive(Default)]
struct OneValue {
    found: Option<RawRecord>,
}

impl ValueSink for OneValue {
    fn begin(&mut self, _index: usize, flags: u32, bytes: usize, cas: Option<u64>) -> bool {
        let keep = bytes <= MAX_RECORD_LEN;
        self.found = Some(RawRecord {
            flags,
            // memcached always answers gets with a unique value; 0 makes a later cas fail
            // harmlessly if one ever does not.
            cas: cas.unwrap_or(0),
            len: bytes,
            data: Vec::with_capacity(if keep { bytes } else { 0 }),
        });
        keep
    }

    fn data(&mut self, chunk: &[u8]) {
        if let Some(raw) = self.found.as_mut() {
            raw.data.extend_from_slice(chunk);
        }
    }

    fn end(&mut self) {}
}

/// `gets __memcache_domain__:<domain>`: what the server holds there, undecoded (None: nothing).
pub fn fetch_raw(
    conn: &mut Conn,
    wbuf: &mut Vec<u8>,
    domain: &DomainName,
) -> Result<Option<RawRecord>, NetError> {
    let key = record_key(domain);
    // Always true for a valid domain name; checked because this is what every key passes.
    key::check_admin(&key).map_err(|e| NetError::Invalid(RecordError::new(e.message())))?;
    command::send_get(conn, wbuf, [key.as_slice()], true)?;
    let mut sink = OneValue::default();
    command::read_values(conn, &[key.as_slice()], &mut sink)?;
    Ok(sink.found)
}

/// The record of `domain` on this server, decoded and checked, its version dated at most
/// `max_ahead` after now (None: the server has none).
pub fn fetch(
    conn: &mut Conn,
    wbuf: &mut Vec<u8>,
    domain: &DomainName,
    max_ahead: Duration,
) -> Result<Option<Record>, NetError> {
    match fetch_raw(conn, wbuf, domain)? {
        None => Ok(None),
        Some(raw) => raw
            .decode_within(domain, max_ahead)
            .map(Some)
            .map_err(NetError::Invalid),
    }
}

/// How [`store`] writes the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Replace {
    /// The server held nothing: `add`, which fails if someone stored a record meanwhile.
    Nothing,
    /// The server held the item with this `gets` unique value: `cas`, which fails if it changed.
    Item(u64),
    /// Unconditionally: `set`.
    Anything,
}

/// Stores the encoded `record` of `domain` (exptime 0, [`RECORD_FLAGS`]). `Ok(false)` when the
/// condition of `replace` did not hold: another writer changed the item since it was read, and
/// nothing was written.
pub fn store(
    conn: &mut Conn,
    wbuf: &mut Vec<u8>,
    domain: &DomainName,
    record: &[u8],
    replace: Replace,
) -> Result<bool, NetError> {
    let key = record_key(domain);
    key::check_admin(&key).map_err(|e| NetError::Invalid(RecordError::new(e.message())))?;
    let cmd = match replace {
        Replace::Nothing => StoreCmd::Add,
        Replace::Item(unique) => StoreCmd::Cas(unique),
        Replace::Anything => StoreCmd::Set,
    };
    match command::store(conn, wbuf, cmd, &key, RECORD_FLAGS, 0, record)? {
        Stored::Stored => Ok(true),
        Stored::NotStored | Stored::Exists | Stored::NotFound => Ok(false),
        Stored::ServerError(msg) => Err(NetError::NotStored(msg)),
    }
}

// ---------------------------------------------------------------------------------------------
// Who is connected: `stats conns`

/// One connection a server reports in `stats conns`
/// (`STAT <fd>:addr tcp:10.0.0.5:53012`, `STAT <fd>:state conn_new_cmd`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerConnection {
    /// The server's descriptor number, which groups the lines.
    pub fd: u32,
    /// The peer as the server shows it: `tcp:IP:PORT`, `tcp6:[IP]:PORT`, `unix:PATH`, `udp:...`;
    /// the listening address for listening sockets.
    pub addr: String,
    /// `conn_listening`, `conn_new_cmd`, `conn_read`, `conn_parse_cmd`, ...
    pub state: String,
    /// `secs_since_last_cmd`, when the server gives it.
    pub idle_secs: Option<u64>,
}

/// A client's address, from [`ServerConnection::addr`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClientAddr {
    /// The IP address (IPv6 without brackets), or `unix:PATH` for a unix-socket client.
    pub host: String,
    pub port: Option<u16>,
}

impl ServerConnection {
    /// A client connection: not a listening socket and not UDP (memcached shows its UDP
    /// sockets, which have no peer, with the listening address).
    pub fn is_client(&self) -> bool {
        self.state != "conn_listening" && !self.addr.starts_with("udp")
    }

    /// The peer address, if the server's text parses.
    pub fn client(&self) -> Option<ClientAddr> {
        let (proto, rest) = self.addr.split_once(':')?;
        match proto {
            "unix" => Some(ClientAddr {
                host: self.addr.clone(),
                port: None,
            }),
            "tcp" | "tcp6" => {
                let (ip, port) = rest.rsplit_once(':')?;
                let ip = ip
                    .strip_prefix('[')
                    .and_then(|i| i.strip_suffix(']'))
                    .unwrap_or(ip);
                ip.parse::<std::net::IpAddr>().ok()?;
                Some(ClientAddr {
                    host: ip.to_owned(),
                    port: Some(port.parse().ok()?),
                })
            }
            _ => None,
        }
    }
}

/// Groups the `STAT <fd>:<field> <value>` lines of `stats conns` into connections, in the order
/// the server listed them. Lines of another shape are ignored (servers add fields over time).
pub fn parse_conns(stats: &[(Vec<u8>, Vec<u8>)]) -> Vec<ServerConnection> {
    let mut conns: Vec<ServerConnection> = Vec::new();
    for (name, value) in stats {
        let (Ok(name), Ok(value)) = (std::str::from_utf8(name), std::str::from_utf8(value)) else {
            continue;
        };
        let Some((fd, field)) = name.split_once(':') else {
            continue;
        };
        let Ok(fd) = fd.parse::<u32>() else {
            continue;
        };
        let at = match conns.iter().rposition(|c| c.fd == fd) {
            Some(at) => at,
            None => {
                conns.push(ServerConnection {
                    fd,
                    ..ServerConnection::default()
                });
                conns.len() - 1
            }
        };
        let conn = &mut conns[at];
        match field {
            "addr" => conn.addr = value.to_owned(),
            "state" => conn.state = value.to_owned(),
            "secs_since_last_cmd" => conn.idle_secs = value.parse().ok(),
            _ => {}
        }
    }
    conns.retain(|c| !c.addr.is_empty());
    conns
}

/// Most `stats conns` lines accepted from one server (a few per connection).
const MAX_CONNS_LINES: usize = 1 << 20;

/// `stats conns` on this server: every connection it reports, the listening sockets and this
/// connection included (see [`ServerConnection::is_client`]).
pub fn connections(conn: &mut Conn, wbuf: &mut Vec<u8>) -> Result<Vec<ServerConnection>, NetError> {
    let mut lines: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let result = command::stats(conn, wbuf, Some(b"conns"), &mut |name, value| {
        if lines.len() < MAX_CONNS_LINES {
            lines.push((name.to_vec(), value.to_vec()));
        }
    });
    match result {
        Ok(()) => Ok(parse_conns(&lines)),
        Err(Failure::Unexpected(reply)) if reply == "ERROR" => Err(NetError::Unsupported),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = SECONDS_PER_DAY;
    /// 2025-01-15 12:00:00 UTC.
    const NOW: u64 = 20_103 * DAY + 43_200;
    const TODAY: u64 = 20_250_115 * UPDATES_PER_DAY;

    fn name(s: &str) -> DomainName {
        DomainName::parse(s).unwrap()
    }

    fn entry(host: &str, port: u16, weight: u32) -> ServerEntry {
        ServerEntry {
            host: host.to_owned(),
            port,
            weight,
            tls: false,
        }
    }

    fn sample() -> Record {
        Record {
            domain: name("web"),
            list: DomainList {
                version: TODAY + 3,
                distribution: Distribution::KetamaMd5,
                replicas: 1,
                servers: vec![
                    entry("10.0.0.1", 11211, 1),
                    entry("::1", 11212, 2),
                    entry("/run/memcached.sock", 0, 1),
                ],
            },
            retired: vec![entry("10.0.0.9", 11211, 1)],
        }
    }

    const SAMPLE_TEXT: &str = "memcache-domain-record 1\n\
                               domain web\n\
                               version 202501150000003\n\
                               distribution ketama-md5\n\
                               replicas 1\n\
                               server 10.0.0.1 11211 1\n\
                               server ::1 11212 2\n\
                               server /run/memcached.sock 0 1\n\
                               retired 10.0.0.9 11211\n\
                               end\n";

    fn decode(text: &str) -> Result<Record, RecordError> {
        Record::decode_at(text.as_bytes(), &name("web"), NOW)
    }

    #[track_caller]
    fn refused(text: &str, needle: &str) {
        match decode(text) {
            Ok(r) => panic!("accepted {text:?} as {r:?}"),
            Err(e) => assert!(
                e.message().contains(needle),
                "{text:?}: {e:?} does not mention {needle:?}"
            ),
        }
    }

    /// A TLS server's line carries " tls" after its weight; a record without one reads as
    /// before, and any other fifth word is refused.
    #[test]
    fn tls_servers_round_trip() {
        let mut record = sample();
        record.list.servers[0].tls = true;
        let text = String::from_utf8(record.encode()).unwrap();
        assert!(text.contains("server 10.0.0.1 11211 1 tls\n"), "{text}");
        assert_eq!(decode(&text).unwrap(), record);
        refused(&text.replace("11211 1 tls", "11211 1 ssl"), "");
    }

    #[test]
    fn the_documented_form_round_trips() {
        let record = sample();
        assert_eq!(String::from_utf8(record.encode()).unwrap(), SAMPLE_TEXT);
        assert_eq!(decode(SAMPLE_TEXT).unwrap(), record);

        let mut other = record.clone();
        other.list.distribution = Distribution::Crc32Modulo;
        other.list.replicas = 256;
        other.list.servers.clear();
        other.retired.clear();
        assert_eq!(
            Record::decode_at(&other.encode(), &name("web"), NOW).unwrap(),
            other
        );
        assert!(record.same_list(&record.list));
        assert!(!record.same_list(&other.list));
        let mut reweighted = record.list.clone();
        reweighted.servers[0].weight = 5;
        reweighted.version += 1;
        assert!(!record.same_list(&reweighted));
        reweighted.servers[0].weight = 1;
        assert!(record.same_list(&reweighted), "the version is not compared");
    }

    #[test]
    fn the_largest_record_fits() {
        let host = |i: usize| format!("{i:03}{}", "h".repeat(252));
        let record = Record {
            domain: name(&"d".repeat(64)),
            list: DomainList {
                version: TODAY + 9_999_999,
                distribution: Distribution::Crc32Modulo,
                replicas: 256,
                servers: (0..MAX_SERVERS)
                    .map(|i| entry(&host(i), 65535, u32::MAX))
                    .collect(),
            },
            retired: (0..MAX_RETIRED)
                .map(|i| entry(&format!("r{i:02}{}", "h".repeat(252)), 65535, 1))
                .collect(),
        };
        let bytes = record.encode();
        assert!(bytes.len() <= MAX_RECORD_LEN, "{} bytes", bytes.len());
        assert_eq!(
            Record::decode_at(&bytes, &record.domain, NOW).unwrap(),
            record
        );
    }

    #[test]
    fn truncated_records_are_refused() {
        // Every proper prefix: a record is all or nothing.
        for len in 0..SAMPLE_TEXT.len() {
            let cut = &SAMPLE_TEXT[..len];
            let err = decode(cut).expect_err(cut);
            assert!(
                err.message().contains("truncated")
                    || err.message().contains("expected")
                    || err.message().contains("not a domain record")
                    || err.message().contains("invalid")
                    || err.message().contains("domain \"")
                    || err.message().contains("distribution")
                    || err.message().contains("version"),
                "{cut:?}: {err}"
            );
        }
        refused(&SAMPLE_TEXT[..SAMPLE_TEXT.len() - 1], "truncated");
        refused(
            SAMPLE_TEXT.strip_suffix("end\n").unwrap(),
            "truncated: the end line is missing",
        );
    }

    #[test]
    fn oversized_records_and_odd_bytes_are_refused() {
        let mut big = SAMPLE_TEXT.as_bytes().to_vec();
        big.resize(MAX_RECORD_LEN + 1, b'x');
        let err = Record::decode_at(&big, &name("web"), NOW).unwrap_err();
        assert!(err.message().contains("maximum is 98304"), "{err}");

        refused(&SAMPLE_TEXT.replace("web", "w\0eb"), "control byte 0x00");
        refused(
            &SAMPLE_TEXT.replace("end\n", "end\n\0"),
            "control byte 0x00",
        );
        refused(&SAMPLE_TEXT.replace('\n', "\r\n"), "control byte 0x0d");
        refused(
            &SAMPLE_TEXT.replace("11211 1", "11211\t1"),
            "control byte 0x09",
        );
        refused(
            &SAMPLE_TEXT.replace("10.0.0.1", "10.0.0.1\x7f"),
            "control byte 0x7f",
        );
        let mut latin1 = SAMPLE_TEXT.as_bytes().to_vec();
        latin1[40] = 0xe9;
        let err = Record::decode_at(&latin1, &name("web"), NOW).unwrap_err();
        assert!(err.message().contains("UTF-8"), "{err}");
    }

    #[test]
    fn bad_syntax_is_refused() {
        #[rustfmt::skip]
        let cases: &[(&str, &str, &str)] = &[
            ("memcache-domain-record 1", "memcache-domain-record 2", "format \"2\""),
            ("memcache-domain-record 1", "VALUE 1", "not a domain record"),
            ("memcache-domain-record 1\n", "", "not a domain record"),
            ("domain web", "domain  web", "expected \"domain VALUE\""),
            ("domain web", "domain web ", "expected \"domain VALUE\""),
            ("domain web", "Domain web", "expected \"domain VALUE\""),
            ("version 202501150000003", "version +202501150000003", "invalid version"),
            ("version 202501150000003", "version 0202501150000003", "invalid version"),
            ("version 202501150000003", "version 2.0", "invalid version"),
            ("version 202501150000003", "version 99999999999999999999", "invalid version"),
            ("distribution ketama-md5", "distribution KETAMA-MD5", "unknown distribution"),
            ("distribution ketama-md5", "distribution modulo", "unknown distribution"),
            ("replicas 1", "replicas -1", "invalid replica count"),
            ("replicas 1", "replicas 0", "replica count 0"),
            ("replicas 1", "replicas 257", "replica count 257"),
            ("replicas 1", "replicas 4294967296", "invalid replica count"),
            ("replicas 1\n", "replicas 1\nreplicas 1\n", "expected \"server"),
            ("server 10.0.0.1 11211 1", "server 10.0.0.1 11211", "expected \"server"),
            ("server 10.0.0.1 11211 1", "server 10.0.0.1 11211 1 x", "expected \"server"),
            ("server 10.0.0.1 11211 1", "server  10.0.0.1 11211 1", "expected \"server"),
            ("server 10.0.0.1 11211 1", "server 10.0.0.1:11211 11211 1", "not an IPv6"),
            ("server 10.0.0.1 11211 1", "server [::1] 11211 1", "not an IPv6"),
            ("server 10.0.0.1 11211 1", "server a,b 11211 1", "character no host"),
            ("server 10.0.0.1 11211 1", "server 10.0.0.1 0 1", "port 0"),
            ("server 10.0.0.1 11211 1", "server 10.0.0.1 65536 1", "invalid port"),
            ("server 10.0.0.1 11211 1", "server 10.0.0.1 -1 1", "invalid port"),
            ("server 10.0.0.1 11211 1", "server 10.0.0.1 011211 1", "invalid port"),
            ("server 10.0.0.1 11211 1", "server 10.0.0.1 11211 0", "weight 0"),
            ("server 10.0.0.1 11211 1", "server 10.0.0.1 11211 4294967296", "invalid weight"),
            ("/run/memcached.sock 0", "/run/memcached.sock 11211", "must have port 0"),
            ("retired 10.0.0.9 11211", "retired 10.0.0.9 0", "port 0"),
            ("retired 10.0.0.9 11211", "retired 10.0.0.9 11211 1", "expected \"server"),
            ("end\n", "END\n", "expected \"server"),
            ("end\n", "end \n", "expected \"server"),
            ("end\n", "end\nend\n", "text after the end line"),
            ("end\n", "end\n\n", "text after the end line"),
            ("end\n", "\nend\n", "expected \"server"),
        ];
        for (from, to, needle) in cases {
            assert!(SAMPLE_TEXT.contains(from), "{from:?}");
            refused(&SAMPLE_TEXT.replacen(from, to, 1), needle);
        }
        refused(
            &SAMPLE_TEXT.replace(
                "retired 10.0.0.9 11211\n",
                "retired 10.0.0.9 11211\nserver 10.0.0.2 11211 1\n",
            ),
            "a server line after a retired line",
        );
        refused(
            &SAMPLE_TEXT.replace("10.0.0.1 11211 1", &format!("{} 11211 1", "h".repeat(256))),
            "256 bytes",
        );
    }

    #[test]
    fn records_of_another_domain_are_refused() {
        let err = Record::decode_at(SAMPLE_TEXT.as_bytes(), &name("api"), NOW).unwrap_err();
        assert!(
            err.message()
                .contains("record of domain \"web\" found where domain api was expected"),
            "{err}"
        );
        refused(
            &SAMPLE_TEXT.replace("domain web", "domain ../web"),
            "domain \"../web\"",
        );
        refused(
            &SAMPLE_TEXT.replace("domain web", "domain WEB"),
            "domain \"WEB\"",
        );
        // A huge field is quoted only in part: messages stay short.
        let long = format!("domain {}", "w".repeat(10_000));
        let err = decode(&SAMPLE_TEXT.replace("domain web", &long)).unwrap_err();
        assert!(err.message().len() < 200, "{err}");
    }

    #[test]
    fn duplicate_servers_are_refused() {
        refused(
            &SAMPLE_TEXT.replace(
                "server ::1 11212 2",
                "server ::1 11212 2\nserver 10.0.0.1 11211 3",
            ),
            "10.0.0.1:11211 is listed twice",
        );
        refused(
            &SAMPLE_TEXT.replace(
                "server 10.0.0.1 11211 1",
                "server mc1.example 11211 1\nserver MC1.EXAMPLE 11211 1",
            ),
            "listed twice",
        );
        refused(
            &SAMPLE_TEXT.replace("retired 10.0.0.9", "retired 10.0.0.1"),
            "both in the list and retired",
        );
        refused(
            &SAMPLE_TEXT.replace(
                "retired 10.0.0.9 11211\n",
                "retired 10.0.0.9 11211\nretired 10.0.0.9 11211\n",
            ),
            "retired server 10.0.0.9:11211 is listed twice",
        );
        let too_many: String = (0..=MAX_SERVERS)
            .map(|p| format!("server h {} 1\n", p + 1))
            .collect();
        refused(
            &SAMPLE_TEXT.replace("server 10.0.0.1 11211 1\n", &too_many),
            "more than 256 servers",
        );
        let too_many: String = (0..=MAX_RETIRED)
            .map(|p| format!("retired r {}\n", p + 1))
            .collect();
        refused(
            &SAMPLE_TEXT.replace("retired 10.0.0.9 11211\n", &too_many),
            "more than 64 retired servers",
        );
    }

    #[test]
    fn absurd_versions_are_refused() {
        let with_version = |v: &str| SAMPLE_TEXT.replace("202501150000003", v);
        refused(&with_version("0"), "version 0");
        refused(&with_version("1"), "not date-derived");
        refused(&with_version("123456789"), "not date-derived");
        refused(&with_version("202513010000000"), "not date-derived"); // month 13
        refused(&with_version("202502290000000"), "not date-derived"); // 2025 is no leap year
        refused(&with_version("202500150000000"), "not date-derived"); // month 0
        refused(&with_version("196912310000000"), "not date-derived");
        refused(
            &with_version("18446744073709551615"),
            "larger than the maximum",
        );
        // Tomorrow is fine (clocks a little ahead), the day after is not.
        assert!(decode(&with_version("202501169999999")).is_ok());
        refused(
            &with_version("202501170000000"),
            "dated 2025-01-17, 2 days ahead of this host's clock",
        );
        refused(&with_version("999912310000000"), "dated 9999-12-31");
        // Old ones are fine: a domain nobody changed for years.
        assert!(decode(&with_version("200410260000000")).is_ok());
        assert!(decode(&with_version("202402290000000")).is_ok());
        assert!(check_version(TODAY, NOW).is_ok());
    }

    #[test]
    fn the_bound_ahead_is_configurable_and_typed() {
        let at = |version: u64, max_ahead_secs: u64| {
            check_version_within(version, NOW, Duration::from_secs(max_ahead_secs))
        };
        // NOW is 2025-01-15 12:00 UTC. Bound 0: today only.
        assert!(at(TODAY + 5, 0).is_ok());
        let err = at(TODAY + UPDATES_PER_DAY, 0).unwrap_err();
        assert_eq!(err.ahead(), Some(TODAY + UPDATES_PER_DAY));
        assert!(err.message().contains("the bound is 0s"), "{err}");
        assert!(err.message().contains("publish --force"), "{err}");
        // Twelve hours reach tomorrow; a week reaches 2025-01-22, not 2025-01-23.
        assert!(at(TODAY + UPDATES_PER_DAY, 12 * 3600).is_ok());
        assert!(at(20_250_122 * UPDATES_PER_DAY, 7 * DAY).is_ok());
        assert!(at(20_250_123 * UPDATES_PER_DAY, 7 * DAY).is_err());
        // Other refusals are not "ahead".
        assert_eq!(at(1, DAY).unwrap_err().ahead(), None);
        // A later epoch is judged by its date alone, and is larger than any epoch-0 version.
        let superseding = crate::registry::EPOCH_SPAN + TODAY;
        assert!(at(superseding, DAY).is_ok());
        assert!(superseding > 99_991_231 * UPDATES_PER_DAY);
        let ahead = 3 * crate::registry::EPOCH_SPAN + 20_991_231 * UPDATES_PER_DAY;
        assert_eq!(at(ahead, DAY).unwrap_err().ahead(), Some(ahead));
        assert!(at(
            7 * crate::registry::EPOCH_SPAN + 20_251_301 * UPDATES_PER_DAY,
            DAY
        )
        .unwrap_err()
        .message()
        .contains("not date-derived"));
        // The syntax alone yields the version a refused record claims.
        let text = SAMPLE_TEXT.replace("202501150000003", "209912310000000");
        assert!(decode(&text).is_err());
        assert_eq!(
            Record::claimed_version(text.as_bytes(), &name("web")),
            Some(209_912_310_000_000)
        );
        assert_eq!(Record::claimed_version(b"junk", &name("web")), None);
    }

    #[test]
    fn raw_records_need_the_flags_and_a_sane_length() {
        let raw = RawRecord {
            flags: RECORD_FLAGS,
            cas: 7,
            len: SAMPLE_TEXT.len(),
            data: SAMPLE_TEXT.as_bytes().to_vec(),
        };
        // Against the real clock: the sample's date is in the past, which is fine.
        assert_eq!(raw.decode(&name("web")).unwrap(), sample());
        let other = RawRecord {
            flags: 0,
            ..raw.clone()
        };
        assert!(other
            .decode(&name("web"))
            .unwrap_err()
            .message()
            .contains("flags 0"));
        let huge = RawRecord {
            len: MAX_RECORD_LEN + 1,
            data: Vec::new(),
            ..raw
        };
        assert!(huge
            .decode(&name("web"))
            .unwrap_err()
            .message()
            .contains("maximum"));
    }

    #[test]
    fn record_keys_are_reserved_and_admin_valid() {
        let k = record_key(&name(&"x".repeat(64)));
        assert_eq!(key::check(&k), Err(key::KeyError::Reserved));
        assert_eq!(key::check_admin(&k), Ok(()));
        assert_eq!(record_key(&name("web")), b"__memcache_domain__:web");
    }

    fn record(version: u64, servers: &[&str]) -> Record {
        Record {
            domain: name("web"),
            list: DomainList {
                version,
                distribution: Distribution::KetamaMd5,
                replicas: 1,
                servers: servers.iter().map(|h| entry(h, 11211, 1)).collect(),
            },
            retired: Vec::new(),
        }
    }

    #[test]
    fn publishing_rules() {
        let local = record(TODAY + 5, &["a", "c"]).list;
        let older = record(TODAY + 2, &["a", "b"]);
        let oldest = record(TODAY + 1, &["z"]);
        let found = vec![("s1".to_owned(), &oldest), ("s2".to_owned(), &older)];
        assert_eq!(check_publishable(&local, &found), Ok(Some(&older)));
        assert_eq!(check_publishable(&local, &[]), Ok(None));

        let same = record(TODAY + 5, &["a", "c"]);
        let found = vec![("s1".to_owned(), &older), ("s2".to_owned(), &same)];
        assert_eq!(check_publishable(&local, &found), Ok(Some(&same)));

        let newer = record(TODAY + 6, &["a"]);
        let err = check_publishable(&local, &[("s9".to_owned(), &newer)]).unwrap_err();
        assert!(
            err.contains("s9 holds version") && err.contains("pull"),
            "{err}"
        );
        let conflicting = record(TODAY + 5, &["a", "b"]);
        let err = check_publishable(&local, &[("s9".to_owned(), &conflicting)]).unwrap_err();
        assert!(err.starts_with("conflict: s9"), "{err}");

        // Removed since the previous record, then extra servers, never one in the list.
        let extra = [entry("x", 1, 4), entry("a", 11211, 1), entry("b", 11211, 1)];
        let retired = retired_servers(&local, Some(&older), &extra);
        assert_eq!(retired, [entry("b", 11211, 1), entry("x", 1, 1)]);
        assert_eq!(retired_servers(&local, None, &[]), []);
        // The same version again keeps the servers its first publish retired.
        let mut first = record(TODAY + 5, &["a", "c"]);
        first.retired = vec![entry("b", 11211, 1)];
        assert_eq!(
            retired_servers(&local, Some(&first), &[]),
            [entry("b", 11211, 1)]
        );
        // Capped.
        let many: Vec<ServerEntry> = (1..=100).map(|p| entry("r", p, 1)).collect();
        assert_eq!(retired_servers(&local, None, &many).len(), MAX_RETIRED);
    }

    #[test]
    fn stats_conns_lines() {
        let lines: Vec<(Vec<u8>, Vec<u8>)> = [
            ("11:addr", "tcp:127.0.0.1:23456"),
            ("11:state", "conn_listening"),
            ("11:secs_since_last_cmd", "0"),
            ("12:addr", "tcp:10.0.0.5:33128"),
            ("12:listen_addr", "tcp:127.0.0.1:23456"),
            ("12:state", "conn_new_cmd"),
            ("12:secs_since_last_cmd", "7"),
            ("13:addr", "tcp6:[::1]:40000"),
            ("13:state", "conn_read"),
            ("14:addr", "udp:127.0.0.1:23456"),
            ("14:state", "conn_read"),
            ("15:addr", "unix:/run/mc.sock"),
            ("15:state", "conn_parse_cmd"),
            ("16:state", "conn_new_cmd"),
            ("bogus", "x"),
            ("x:addr", "tcp:1.2.3.4:5"),
            ("17:addr", "tcp:not-an-ip:5"),
            ("17:state", "conn_new_cmd"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
        let conns = parse_conns(&lines);
        let fds: Vec<u32> = conns.iter().map(|c| c.fd).collect();
        assert_eq!(fds, [11, 12, 13, 14, 15, 17], "16 has no address");
        assert_eq!(
            conns[1],
            ServerConnection {
                fd: 12,
                addr: "tcp:10.0.0.5:33128".into(),
                state: "conn_new_cmd".into(),
                idle_secs: Some(7),
            }
        );
        let clients: Vec<Option<ClientAddr>> = conns
            .iter()
            .filter(|c| c.is_client())
            .map(ServerConnection::client)
            .collect();
        let addr = |h: &str, p: Option<u16>| {
            Some(ClientAddr {
                host: h.into(),
                port: p,
            })
        };
        assert_eq!(
            clients,
            [
                addr("10.0.0.5", Some(33128)),
                addr("::1", Some(40000)),
                addr("unix:/run/mc.sock", None),
                None,
            ]
        );
    }
}
