//! `dns:` URIs (RFC 4501): the servers a DNS name resolves to, re-resolved when the answer's TTL
//! runs out.
//!
//! - `dns:NAME` asks the name servers of the system's resolver configuration
//!   (`/etc/resolv.conf`, or the file `$MEMCACHE_RESOLV_CONF` names), in order;
//!   `dns://SERVER[:PORT]/NAME` asks that server (port 53 by default).
//! - `?type=A` (the default) or `AAAA`: one server per address, port `port=N` (default 11211);
//!   `type=SRV`: target, port and weight from each record of the lowest priority. Asked of a
//!   named server, each target is installed as its addresses from that server (the additional
//!   records of the answer, else an A then an AAAA question), since the programs resolve
//!   what is installed with the system's resolver; `dns:NAME` installs the target names.
//!   Parameters are separated by `;` (RFC 4501) or `&`; `class=IN` is accepted.
//!
//! Names are absolute (no search list). Messages are built and parsed by `simple-dns`; the
//! exchange is ours: UDP with a fresh random id from a connected socket (only the server's
//! replies are read, and only one that answers our question), TCP when the answer is truncated.
//! The servers are sorted, so that a server rotating its records is no change.
//! NXDOMAIN and an answer with no record are an empty list (refused unless --allow-empty);
//! SERVFAIL, REFUSED, silence or garbage are failures that keep the installed list.
#![forbid(unsafe_code)]

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, PacketFlag, Question, CLASS, RCODE, TYPE};

use memcache::address::ServerAddr;
use memcache::source::{pause, Found, Offer, Source, SourceError};

/// The variable naming another resolver configuration than /etc/resolv.conf for `dns:NAME`.
pub const RESOLV_CONF_VAR: &str = "MEMCACHE_RESOLV_CONF";
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// Port of A/AAAA servers unless `port=` says otherwise.
const DEFAULT_PORT: u16 = 11211;
/// Shortest and longest wait before asking again after an answer (its TTL, within these), so
/// that a TTL of 0 does not make a busy loop and a TTL of a week still gets looked at.
const MIN_REFRESH: Duration = Duration::from_secs(1);
const MAX_REFRESH: Duration = Duration::from_secs(3600);
/// When an answer with no record carries no SOA to say how long that holds.
const NEGATIVE_REFRESH: Duration = Duration::from_secs(30);
/// First and longest wait before asking again after a failure.
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Largest DNS message over TCP we read.
const MAX_TCP_MESSAGE: usize = 65_535;

/// The record type asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    A,
    Aaaa,
    Srv,
}

/// A `dns:` source.
#[derive(Debug)]
pub struct DnsSource {
    url: String,
    /// `None`: the servers of the resolver configuration, read at each look.
    server: Option<SocketAddr>,
    name: String,
    kind: Kind,
    port: u16,
    timeout: Duration,
}

/// An answer: the servers and how long it holds.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    servers: Vec<ServerAddr>,
    ttl: Duration,
}

impl DnsSource {
    /// The source `url` names; `timeout` bounds each exchange with a name server.
    pub fn from_url(url: &str, timeout: Duration) -> Result<DnsSource, String> {
        let bad = |why: &str| format!("{url}: {why}");
        let rest = url
            .strip_prefix("dns:")
            .ok_or_else(|| bad("not a dns: URI"))?;
        let (target, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (server, name) = match target.strip_prefix("//") {
            Some(authority_path) => {
                let (authority, name) = authority_path
                    .split_once('/')
                    .ok_or_else(|| bad("expected dns://SERVER[:PORT]/NAME"))?;
                (Some(parse_server(authority).map_err(|e| bad(&e))?), name)
            }
            None => (None, target),
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if !valid_name(name) || Name::new(name).is_err() {
            return Err(bad("expected a DNS name"));
        }
        let (mut kind, mut port) = (Kind::A, None);
        for param in query.split([';', '&']).filter(|p| !p.is_empty()) {
            let (key, value) = param
                .split_once('=')
                .ok_or_else(|| bad(&format!("{param:?}: expected KEY=VALUE")))?;
            match (
                key.to_ascii_lowercase().as_str(),
                value.to_ascii_uppercase().as_str(),
            ) {
                ("type", "A") => kind = Kind::A,
                ("type", "AAAA") => kind = Kind::Aaaa,
                ("type", "SRV") => kind = Kind::Srv,
                ("type", _) => return Err(bad("type is A, AAAA or SRV")),
                ("class", "IN") => {}
                ("class", _) => return Err(bad("class is IN")),
                ("port", _) => {
                    port = Some(
                        value
                            .parse::<u16>()
                            .ok()
                            .filter(|&p| p > 0 && !value.starts_with('0'))
                            .ok_or_else(|| bad("port is a number from 1 to 65535"))?,
                    )
                }
                _ => {
                    return Err(bad(&format!(
                        "unknown parameter {key:?} (type, class, port)"
                    )))
                }
            }
        }
        if kind == Kind::Srv && port.is_some() {
            return Err(bad(
                "port= is for A and AAAA: SRV records carry their ports",
            ));
        }
        Ok(DnsSource {
            url: url.to_owned(),
            server,
            name: name.to_owned(),
            kind,
            port: port.unwrap_or(DEFAULT_PORT),
            timeout,
        })
    }

    /// The name servers to ask, in order.
    fn name_servers(&self) -> Result<Vec<SocketAddr>, SourceError> {
        if let Some(server) = self.server {
            return Ok(vec![server]);
        }
        let path = std::env::var_os(RESOLV_CONF_VAR)
            .filter(|v| !v.is_empty())
            .map_or_else(|| RESOLV_CONF.into(), std::path::PathBuf::from);
        let mut text = String::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
            .map_err(|e| SourceError::new(format!("{}: {e}", path.display())))?;
        let servers = resolv_conf_servers(&text);
        if servers.is_empty() {
            // What the C library does without a nameserver line.
            return Ok(vec![SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 53)]);
        }
        Ok(servers)
    }

    fn qtype(&self) -> TYPE {
        match self.kind {
            Kind::A => TYPE::A,
            Kind::Aaaa => TYPE::AAAA,
            Kind::Srv => TYPE::SRV,
        }
    }

    /// One look, asking each name server in turn until one answers.
    fn resolve(&self) -> Result<Answer, SourceError> {
        let mut last = SourceError::new("no name server to ask");
        for server in self.name_servers()? {
            match self.ask(server) {
                Ok(answer) => return Ok(answer),
                Err(e) => last = SourceError::new(format!("{server}: {e}")),
            }
        }
        Err(last)
    }

    /// The question to `server`, and for SRV asked of a named server, the addresses of the
    /// targets from the same server: a program resolves what is installed with the system's
    /// resolver, which may not know names only that server knows.
    fn ask(&self, server: SocketAddr) -> Result<Answer, String> {
        let reply = self.query(server, &self.name, self.qtype())?;
        let packet = Packet::parse(&reply).map_err(|e| format!("unreadable answer: {e}"))?;
        let answer = self.read_answer(&packet)?;
        if self.kind == Kind::Srv && self.server.is_some() {
            return self.addresses_of_targets(server, &packet, answer);
        }
        Ok(answer)
    }

    /// One exchange with `server` about `name`: over UDP, then TCP if the answer does not fit.
    /// The bytes of a reply that answers this very question (its id, name and type).
    fn query(&self, server: SocketAddr, name: &str, qtype: TYPE) -> Result<Vec<u8>, String> {
        let id = random_id();
        let mut query = Packet::new_query(id);
        query.set_flags(PacketFlag::RECURSION_DESIRED);
        query.questions.push(Question::new(
            Name::new_unchecked(name),
            qtype.into(),
            CLASS::IN.into(),
            false,
        ));
        let bytes = query
            .build_bytes_vec()
            .map_err(|e| format!("cannot build the query: {e}"))?;
        let mut reply = udp_exchange(server, &bytes, id, self.timeout)?;
        let parse = |reply: &[u8]| -> Result<bool, String> {
            let packet = Packet::parse(reply).map_err(|e| format!("unreadable answer: {e}"))?;
            let ours = packet.id() == id
                && packet.questions.first().is_some_and(|q| {
                    q.qname.to_string().eq_ignore_ascii_case(name) && q.qtype == qtype.into()
                });
            if !ours {
                return Err("the answer is not to our question".into());
            }
            Ok(packet.has_flags(PacketFlag::TRUNCATION))
        };
        if parse(&reply)? {
            reply = tcp_exchange(server, &bytes, self.timeout)?;
            parse(&reply)?;
        }
        Ok(reply)
    }

    /// `answer`'s SRV targets replaced by their addresses: those the SRV answer carried as
    /// additional records, else an A question to `server`, else an AAAA one. A target with
    /// no address fails the look (the installed list stays): installing it would leave the
    /// programs with a server they cannot reach.
    fn addresses_of_targets(
        &self,
        server: SocketAddr,
        packet: &Packet,
        answer: Answer,
    ) -> Result<Answer, String> {
        let mut ttl = answer.ttl;
        let mut servers: Vec<ServerAddr> = Vec::new();
        for target in answer.servers {
            let mut found = match target.host.parse::<IpAddr>() {
                Ok(address) => vec![(address, ttl)],
                Err(_) => addresses_in(&packet.additional_records, &target.host),
            };
            for qtype in [TYPE::A, TYPE::AAAA] {
                if !found.is_empty() {
                    break;
                }
                let reply = self.query(server, &target.host, qtype)?;
                let asked = Packet::parse(&reply).map_err(|e| format!("unreadable answer: {e}"))?;
                match asked.rcode() {
                    RCODE::NoError | RCODE::NameError => {}
                    other => {
                        return Err(format!("{} {qtype:?}: error answer {other:?}", target.host))
                    }
                }
                found = addresses_in(&asked.answers, "");
            }
            if found.is_empty() {
                return Err(format!(
                    "SRV target {} has no address at {server}",
                    target.host
                ));
            }
            for (address, address_ttl) in found {
                ttl = ttl.min(address_ttl);
                let mut one = ServerAddr::new(address.to_string(), target.port);
                one.weight = target.weight;
                if !servers.iter().any(|s| s.same_server(&one)) {
                    servers.push(one);
                }
            }
        }
        servers.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
        Ok(Answer { servers, ttl })
    }

    /// The servers in an answer to our question.
    fn read_answer(&self, packet: &Packet) -> Result<Answer, String> {
        match packet.rcode() {
            RCODE::NoError => {}
            // No such name: as empty as no record of the type.
            RCODE::NameError => return Ok(negative(packet)),
            RCODE::ServerFailure => return Err("SERVFAIL (the server could not answer)".into()),
            RCODE::Refused => return Err("REFUSED (the server will not answer)".into()),
            other => return Err(format!("error answer {other:?}")),
        }
        let mut ttl = u32::MAX;
        let mut servers = Vec::new();
        let lowest = packet
            .answers
            .iter()
            .filter_map(|rr| match &rr.rdata {
                RData::SRV(srv) => Some(srv.priority),
                _ => None,
            })
            .min();
        for rr in &packet.answers {
            let server = match (&rr.rdata, self.kind) {
                (RData::A(a), Kind::A) => {
                    ServerAddr::new(Ipv4Addr::from(a.address).to_string(), self.port)
                }
                (RData::AAAA(a), Kind::Aaaa) => {
                    ServerAddr::new(Ipv6Addr::from(a.address).to_string(), self.port)
                }
                (RData::SRV(srv), Kind::Srv) if Some(srv.priority) == lowest => {
                    let target = srv.target.to_string();
                    // "." says there is no such service here.
                    if target.is_empty() || target == "." {
                        continue;
                    }
                    let mut server = ServerAddr::new(&target, srv.port);
                    server.weight = u32::from(srv.weight).max(1);
                    server
                }
                _ => continue,
            };
            ttl = ttl.min(rr.ttl);
            if !servers.iter().any(|s: &ServerAddr| s.same_server(&server)) {
                servers.push(server);
            }
        }
        if servers.is_empty() {
            return Ok(negative(packet));
        }
        servers.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
        Ok(Answer {
            servers,
            ttl: Duration::from_secs(ttl.into()),
        })
    }
}

/// The A and AAAA addresses among `records` (those of `name` only, unless it is empty), with
/// their TTLs.
fn addresses_in(records: &[simple_dns::ResourceRecord], name: &str) -> Vec<(IpAddr, Duration)> {
    let wanted = name.trim_end_matches('.');
    records
        .iter()
        .filter(|rr| {
            wanted.is_empty()
                || rr
                    .name
                    .to_string()
                    .trim_end_matches('.')
                    .eq_ignore_ascii_case(wanted)
        })
        .filter_map(|rr| {
            let ttl = Duration::from_secs(rr.ttl.into());
            match &rr.rdata {
                RData::A(a) => Some((IpAddr::V4(Ipv4Addr::from(a.address)), ttl)),
                RData::AAAA(a) => Some((IpAddr::V6(Ipv6Addr::from(a.address)), ttl)),
                _ => None,
            }
        })
        .collect()
}

/// An answer with no server: it holds for the SOA's negative TTL when the server gave one.
fn negative(packet: &Packet) -> Answer {
    let ttl = packet
        .name_servers
        .iter()
        .find_map(|rr| match &rr.rdata {
            RData::SOA(soa) => Some(Duration::from_secs(rr.ttl.min(soa.minimum).into())),
            _ => None,
        })
        .unwrap_or(NEGATIVE_REFRESH);
    Answer {
        servers: Vec::new(),
        ttl,
    }
}

/// A DNS name as a query may carry it: at most 253 bytes of labels of 1-63 bytes, printable
/// ASCII without spaces (underscores allowed: SRV names start with them).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len()) && label.bytes().all(|b| b.is_ascii_graphic())
        })
}

/// `HOST[:PORT]` or `[IPv6][:PORT]` of a name server: an address, not a name (a name would
/// need a resolver to find the resolver).
fn parse_server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{text:?} is not a name server address (IP[:PORT], [IPv6][:PORT])"))
}

/// The `nameserver` lines of a resolv.conf, port 53.
fn resolv_conf_servers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then_some(())?;
            // A zone index (fe80::1%eth0) is not for us.
            let ip = words.next()?.split('%').next()?.parse::<IpAddr>().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// A query id nobody off this host can guess: std's per-process random hash keys over the clock.
fn random_id() -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    RandomState::new().hash_one(nanos) as u16
}

/// Sends `query` to `server` and waits, up to `timeout`, for a reply carrying `id`.
fn udp_exchange(
    server: SocketAddr,
    query: &[u8],
    id: u16,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).map_err(|e| format!("UDP socket: {e}"))?;
    socket
        .connect(server)
        .map_err(|e| format!("UDP connect: {e}"))?;
    socket.send(query).map_err(|e| format!("send: {e}"))?;
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 4096];
    loop {
        let left = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no answer within {timeout:?}"))?;
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        match socket.recv(&mut buf) {
            Ok(n) if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id => {
                return Ok(buf[..n].to_vec())
            }
            // Someone else's datagram (or a late one for an earlier query): not ours.
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("no answer within {timeout:?}"))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
}

/// The same question over TCP (two-byte length prefix), the whole exchange within `timeout`.
fn tcp_exchange(server: SocketAddr, query: &[u8], timeout: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no answer over TCP within {timeout:?}"))
    };
    let mut stream =
        TcpStream::connect_timeout(&server, left()?).map_err(|e| format!("TCP connect: {e}"))?;
    stream
        .set_write_timeout(Some(left()?))
        .map_err(|e| e.to_string())?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream
        .write_all(&framed)
        .map_err(|e| format!("TCP send: {e}"))?;
    let mut read_exact = |buf: &mut [u8]| -> Result<(), String> {
        let mut at = 0;
        while at < buf.len() {
            stream
                .set_read_timeout(Some(left()?))
                .map_err(|e| e.to_string())?;
            match stream.read(&mut buf[at..]) {
                Ok(0) => return Err("TCP answer cut short".into()),
                Ok(n) => at += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("TCP receive: {e}")),
            }
        }
        Ok(())
    };
    let mut len = [0u8; 2];
    read_exact(&mut len)?;
    let len = usize::from(u16::from_be_bytes(len)).min(MAX_TCP_MESSAGE);
    let mut reply = vec![0u8; len];
    read_exact(&mut reply)?;
    Ok(reply)
}

impl Source for DnsSource {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn fetch(&mut self) -> Result<Found, SourceError> {
        self.resolve()
            .map(|answer| Offer::Servers(answer.servers).into())
    }

    fn follow(&mut self, stop: &AtomicBool, sink: &mut dyn FnMut(Result<Found, SourceError>)) {
        let mut retry = RETRY_FIRST;
        while !stop.load(Ordering::Relaxed) {
            let wait = match self.resolve() {
                Ok(answer) => {
                    retry = RETRY_FIRST;
                    let wait = answer.ttl.clamp(MIN_REFRESH, MAX_REFRESH);
                    sink(Ok(Offer::Servers(answer.servers).into()));
                    wait
                }
                Err(e) => {
                    sink(Err(e));
                    let wait = retry;
                    retry = (retry * 2).min(RETRY_MAX);
                    wait
                }
            };
            if !pause(wait, stop) {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> DnsSource {
        DnsSource::from_url(url, Duration::from_secs(1)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn urls_in_the_forms_of_rfc_4501() {
        let s = parsed("dns:cache.example.com");
        assert_eq!(
            (s.server, s.name.as_str(), s.kind, s.port),
            (None, "cache.example.com", Kind::A, 11211)
        );
        let s = parsed("dns://127.0.0.1:5353/cache.example.com.?type=AAAA&port=11212");
        assert_eq!(s.server, Some("127.0.0.1:5353".parse().unwrap()));
        assert_eq!(
            (s.name.as_str(), s.kind, s.port),
            ("cache.example.com", Kind::Aaaa, 11212)
        );
        let s = parsed("dns://[::1]/_memcache._tcp.example.com?class=IN;type=srv");
        assert_eq!(s.server, Some("[::1]:53".parse().unwrap()));
        assert_eq!(s.kind, Kind::Srv);
        for bad in [
            "dns:",
            "dns://127.0.0.1/",
            "dns://nameserver.example/x",
            "dns:x?type=MX",
            "dns:x?port=0",
            "dns:x?port=011211",
            "dns:x?weird=1",
            "dns:_m._tcp.x?type=SRV&port=1",
            "dns:a..b",
        ] {
            assert!(
                DnsSource::from_url(bad, Duration::from_secs(1)).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn resolv_conf_name_servers() {
        let text = "# comment\nsearch example.com\nnameserver 127.0.0.53\nnameserver ::1\n\
                    nameserver fe80::1%eth0\nnameserver bogus\noptions edns0\n";
        let servers: Vec<String> = resolv_conf_servers(text)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(servers, ["127.0.0.53:53", "[::1]:53", "[fe80::1]:53"]);
    }
}
