//! `etcd://HOST:PORT[,HOST:PORT...]/KEY`: the list is the value at KEY, a domain file (the
//! export format), in etcd v3.
//!
//! Spoken through etcd's JSON gateway (`/v3/kv/range`, `/v3/kv/txn`, `/v3/watch`) over plain
//! HTTP/1.1 that this module writes and reads itself with the deadlines of mcadmin: a blocking
//! client would hide the socket a stopped watch must let go of. JSON by serde_json, keys and
//! values base64 as the gateway wants them.
//!
//! Following: each connection first reads the key (the list now, and the store's revision),
//! then watches it from the next revision, so nothing between the two is missed; a restarted
//! etcd, another endpoint after a failure, or a watch cancelled because its revision was
//! compacted all start over the same way. The stream is not polled: while it is quiet, a
//! liveness check (`/v3/maintenance/status`) every [`LIVENESS`] notices an etcd that stopped
//! answering (SIGSTOP keeps its sockets open), and the follower moves to the next endpoint.
//!
//! Publishing: a transaction that writes the key only if its `mod_revision` is still the one
//! this host last pulled or published (`memcache::source::Pulled`, kept in the state directory
//! by pull, watch and publish), so two administrators cannot overwrite each other unseen, even
//! when one pulled an hour before the other published.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use memcache::domain_file::{self, DomainFile};
use memcache::source::{pause, Base, Found, Offer, Published, Source, SourceError, STOP_CHECK};

/// How long a quiet watch stream may go before etcd is asked whether it is alive.
const LIVENESS: Duration = Duration::from_secs(5);
/// Largest unary reply read (a domain file is at most 128 KiB, base64 and JSON around it).
const MAX_REPLY: usize = 1024 * 1024;
/// Wait before trying the endpoints again after all failed: doubling up to the maximum.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// An etcd key holding a domain file.
#[derive(Debug)]
pub struct EtcdSource {
    url: String,
    endpoints: Vec<String>,
    key: String,
    timeout: Duration,
    /// The endpoint to use first: the last one that answered.
    preferred: usize,
}

/// What a read of the key found.
struct Read1 {
    value: Option<Vec<u8>>,
    mod_revision: i64,
    revision: i64,
}

impl EtcdSource {
    pub fn from_url(url: &str, timeout: Duration) -> Result<EtcdSource, String> {
        let rest = url
            .strip_prefix("etcd://")
            .ok_or_else(|| format!("{url}: not an etcd:// URL"))?;
        let (hosts, key) = rest
            .split_once('/')
            .ok_or_else(|| format!("{url}: expected etcd://HOST:PORT[,HOST:PORT]/KEY"))?;
        if key.is_empty() || key.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(format!("{url}: the key is printable ASCII without spaces"));
        }
        let endpoints: Vec<String> = hosts.split(',').map(str::to_owned).collect();
        for endpoint in &endpoints {
            let ok = endpoint
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                return Err(format!("{url}: {endpoint:?} is not HOST:PORT"));
            }
        }
        Ok(EtcdSource {
            url: url.to_owned(),
            endpoints,
            key: format!("/{key}"),
            timeout,
            preferred: 0,
        })
    }

    /// The endpoints, the preferred one first.
    fn order(&self) -> Vec<usize> {
        let n = self.endpoints.len();
        (0..n).map(|i| (self.preferred + i) % n).collect()
    }

    /// One unary call on whichever endpoint answers first.
    fn call(&mut self, path: &str, body: &Value) -> Result<Value, SourceError> {
        let mut failures = Vec::new();
        for at in self.order() {
            let endpoint = &self.endpoints[at];
            match unary(endpoint, path, body, self.timeout) {
                Ok(reply) => {
                    self.preferred = at;
                    return Ok(reply);
                }
                Err(e) => failures.push(format!("{endpoint}: {e}")),
            }
        }
        Err(SourceError::new(failures.join("; ")))
    }

    fn read(&mut self) -> Result<Read1, SourceError> {
        let reply = self.call("/v3/kv/range", &json!({ "key": B64.encode(&self.key) }))?;
        let revision = number(&reply["header"]["revision"]);
        let kv = reply["kvs"].as_array().and_then(|kvs| kvs.first());
        let value = match kv {
            Some(kv) => Some(
                B64.decode(kv["value"].as_str().unwrap_or(""))
                    .map_err(|e| SourceError::new(format!("the value is not base64: {e}")))?,
            ),
            None => None,
        };
        Ok(Read1 {
            value,
            mod_revision: kv.map_or(0, |kv| number(&kv["mod_revision"])),
            revision,
        })
    }

    /// The list in a value last changed at `mod_revision`, or why there is none.
    fn found(&self, value: Option<&[u8]>, mod_revision: i64) -> Result<Found, SourceError> {
        let bytes = value.ok_or_else(|| {
            SourceError::new(format!(
                "no list at key {} (mcadmin publish --to stores it)",
                self.key
            ))
        })?;
        let file = domain_file::parse(bytes)
            .map_err(|e| SourceError::new(format!("key {}: {e}", self.key)))?;
        Ok(Found {
            offer: Offer::File(file),
            revision: Some(mod_revision),
        })
    }

    /// One connection's worth of following: read, then watch from the next revision until the
    /// stream ends, fails, goes dead or `stop` is set. Returns whether to go on.
    fn follow_once(
        &mut self,
        stop: &AtomicBool,
        sink: &mut dyn FnMut(Result<Found, SourceError>),
    ) -> Result<bool, SourceError> {
        let first = self.read()?;
        sink(self.found(first.value.as_deref(), first.mod_revision));
        let endpoint = self.endpoints[self.preferred].clone();
        let request = json!({ "create_request": {
            "key": B64.encode(&self.key),
            "start_revision": (first.revision + 1).to_string(),
        }});
        let mut stream = Stream::open(&endpoint, "/v3/watch", &request, self.timeout)
            .map_err(|e| SourceError::new(format!("{endpoint}: watch: {e}")))?;
        let mut quiet_since = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(false);
            }
            match stream.next_message() {
                Ok(Some(message)) => {
                    quiet_since = Instant::now();
                    let result = &message["result"];
                    if message.get("error").is_some() {
                        return Err(SourceError::new(format!(
                            "{endpoint}: watch: {}",
                            message["error"]
                        )));
                    }
                    if result["canceled"].as_bool() == Some(true) {
                        // Compacted past our revision, or cancelled by etcd: start over. Said
                        // once per cancel, so an operator sees why the key was read again.
                        let compacted = number(&result["compact_revision"]);
                        let why = if compacted > 0 {
                            format!(
                                "revision {} was compacted (to {compacted})",
                                first.revision + 1
                            )
                        } else {
                            "cancelled by etcd".to_string()
                        };
                        eprintln!(
                            "mcadmin: {endpoint}: watch of {}: {why}; reading the key again",
                            self.key
                        );
                        return Ok(true);
                    }
                    for event in result["events"].as_array().into_iter().flatten() {
                        if event["type"].as_str() == Some("DELETE") {
                            sink(self.found(None, 0));
                            continue;
                        }
                        let value = B64.decode(event["kv"]["value"].as_str().unwrap_or(""));
                        let mod_revision = number(&event["kv"]["mod_revision"]);
                        match value {
                            Ok(value) => sink(self.found(Some(&value), mod_revision)),
                            Err(e) => sink(Err(SourceError::new(format!(
                                "the value is not base64: {e}"
                            )))),
                        }
                    }
                }
                Ok(None) => {
                    if quiet_since.elapsed() >= LIVENESS {
                        unary(
                            &endpoint,
                            "/v3/maintenance/status",
                            &json!({}),
                            self.timeout,
                        )
                        .map_err(|e| SourceError::new(format!("{endpoint}: {e}")))?;
                        quiet_since = Instant::now();
                    }
                }
                Err(e) => return Err(SourceError::new(format!("{endpoint}: watch: {e}"))),
            }
        }
    }
}

/// An int64 as the gateway writes it: a JSON string of digits (absent means 0).
fn number(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// The first address of `endpoint` (HOST:PORT).
fn address(endpoint: &str) -> Result<SocketAddr, String> {
    endpoint
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .next()
        .ok_or_else(|| "resolves to no address".to_owned())
}

fn request_bytes(endpoint: &str, path: &str, body: &Value, close: bool) -> Vec<u8> {
    let body = body.to_string();
    let connection = if close { "close" } else { "keep-alive" };
    format!(
        "POST {path} HTTP/1.1\r\nHost: {endpoint}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// POST `body` to `path`, the whole exchange within `timeout`; the reply's JSON. An HTTP error
/// status or an `error` in the reply is an error.
fn unary(endpoint: &str, path: &str, body: &Value, timeout: Duration) -> Result<Value, String> {
    let deadline = Instant::now() + timeout;
    let mut stream = Stream::connect(endpoint, deadline)?;
    stream.send(&request_bytes(endpoint, path, body, true))?;
    let status = stream.read_head()?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.body_part()? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > MAX_REPLY {
            return Err(format!("reply larger than {MAX_REPLY} bytes"));
        }
    }
    let reply: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("HTTP {status}: not JSON: {e}"))?;
    if status != 200 || reply.get("error").is_some() || reply.get("code").is_some_and(|c| c != 0) {
        let message = reply["message"]
            .as_str()
            .or(reply["error"].as_str())
            .unwrap_or("");
        return Err(format!("HTTP {status}: {message}"));
    }
    Ok(reply)
}

/// One HTTP/1.1 connection: a request, then a reply whose body may be chunked.
struct Stream {
    conn: TcpStream,
    buf: Vec<u8>,
    /// Until when a read may wait; `None` for a watch stream (reads wake every STOP_CHECK).
    deadline: Option<Instant>,
    /// Body framing: `Some(n)` bytes left of a Content-Length body; chunked; or until EOF.
    framing: Framing,
    /// Messages of a watch stream not yet complete (newline-delimited JSON).
    pending: Vec<u8>,
}

enum Framing {
    Length(usize),
    Chunked,
    Eof,
    Done,
}

impl Stream {
    fn connect(endpoint: &str, deadline: Instant) -> Result<Stream, String> {
        let addr = address(endpoint)?;
        let left = left(deadline)?;
        let conn = TcpStream::connect_timeout(&addr, left).map_err(|e| format!("connect: {e}"))?;
        let _ = conn.set_nodelay(true);
        Ok(Stream {
            conn,
            buf: Vec::new(),
            deadline: Some(deadline),
            framing: Framing::Eof,
            pending: Vec::new(),
        })
    }

    /// A watch: the request sent and the reply's head read within `timeout`, the body then
    /// read as it comes.
    fn open(endpoint: &str, path: &str, body: &Value, timeout: Duration) -> Result<Stream, String> {
        let mut stream = Stream::connect(endpoint, Instant::now() + timeout)?;
        stream.send(&request_bytes(endpoint, path, body, false))?;
        let status = stream.read_head()?;
        if status != 200 {
            return Err(format!("HTTP {status}"));
        }
        stream.deadline = None;
        Ok(stream)
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        let left = self.deadline.map(left).transpose()?;
        self.conn
            .set_write_timeout(left)
            .map_err(|e| e.to_string())?;
        self.conn.write_all(bytes).map_err(|e| format!("send: {e}"))
    }

    /// More bytes into `buf`: false when none came within STOP_CHECK on a stream.
    fn fill(&mut self) -> Result<bool, String> {
        let wait = match self.deadline {
            Some(deadline) => left(deadline)?,
            None => STOP_CHECK,
        };
        self.conn
            .set_read_timeout(Some(wait))
            .map_err(|e| e.to_string())?;
        let mut chunk = [0u8; 16 * 1024];
        match self.conn.read(&mut chunk) {
            Ok(0) => Err("connection closed".into()),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(true)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) && self.deadline.is_none() =>
            {
                Ok(false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Ok(false),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Err("no answer in time".into())
            }
            Err(e) => Err(format!("receive: {e}")),
        }
    }

    /// Reads the status line and headers; sets the body framing. Returns the status.
    fn read_head(&mut self) -> Result<u16, String> {
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            if self.buf.len() > 64 * 1024 {
                return Err("HTTP header too long".into());
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).into_owned();
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| "not an HTTP reply".to_owned())?;
        self.framing = Framing::Eof;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            if name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked") {
                self.framing = Framing::Chunked;
            } else if name == "content-length" {
                let n = value.parse().map_err(|_| "bad Content-Length".to_owned())?;
                self.framing = Framing::Length(n);
            }
        }
        Ok(status)
    }

    /// The next piece of the body: `Ok(None)` at its end (unary) or, on a stream, when nothing
    /// came within STOP_CHECK (`Ok(Some(empty))` never happens on a unary reply).
    fn body_part(&mut self) -> Result<Option<Vec<u8>>, String> {
        loop {
            match self.framing {
                Framing::Done => return Ok(None),
                Framing::Length(0) => {
                    self.framing = Framing::Done;
                    return Ok(None);
                }
                Framing::Length(n) => {
                    if self.buf.is_empty() && !self.fill()? {
                        return Ok(Some(Vec::new()));
                    }
                    let take = n.min(self.buf.len());
                    self.framing = Framing::Length(n - take);
                    return Ok(Some(self.buf.drain(..take).collect()));
                }
                Framing::Eof => {
                    if !self.buf.is_empty() {
                        return Ok(Some(std::mem::take(&mut self.buf)));
                    }
                    match self.fill() {
                        Ok(true) => continue,
                        Ok(false) => return Ok(Some(Vec::new())),
                        Err(_) => {
                            self.framing = Framing::Done;
                            return Ok(None);
                        }
                    }
                }
                Framing::Chunked => {
                    let Some(line_end) = self.buf.windows(2).position(|w| w == b"\r\n") else {
                        if self.buf.len() > 64 || !self.fill()? {
                            if self.buf.len() > 64 {
                                return Err("bad chunk header".into());
                            }
                            return Ok(Some(Vec::new()));
                        }
                        continue;
                    };
                    let size_text = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                    let size =
                        usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                            .map_err(|_| "bad chunk size".to_owned())?;
                    if size > MAX_REPLY {
                        return Err("chunk too large".into());
                    }
                    if self.buf.len() < line_end + 2 + size + 2 {
                        if !self.fill()? {
                            return Ok(Some(Vec::new()));
                        }
                        continue;
                    }
                    let data: Vec<u8> = self.buf[line_end + 2..line_end + 2 + size].to_vec();
                    self.buf.drain(..line_end + 2 + size + 2);
                    if size == 0 {
                        self.framing = Framing::Done;
                        return Ok(None);
                    }
                    return Ok(Some(data));
                }
            }
        }
    }

    /// The next message of a watch stream: `Ok(None)` when none came within STOP_CHECK.
    fn next_message(&mut self) -> Result<Option<Value>, String> {
        loop {
            if let Some(at) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=at).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line)
                    .map(Some)
                    .map_err(|e| format!("not JSON: {e}"));
            }
            if self.pending.len() > MAX_REPLY {
                return Err("watch message too large".into());
            }
            match self.body_part()? {
                None => return Err("the watch stream ended".into()),
                Some(part) if part.is_empty() => return Ok(None),
                Some(part) => self.pending.extend_from_slice(&part),
            }
        }
    }
}

fn left(deadline: Instant) -> Result<Duration, String> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| "no answer in time".to_owned())
}

impl Source for EtcdSource {
    fn url(&self) -> String {
        self.url.clone()
    }

    fn fetch(&mut self) -> Result<Found, SourceError> {
        let read = self.read()?;
        self.found(read.value.as_deref(), read.mod_revision)
    }

    fn follow(&mut self, stop: &AtomicBool, sink: &mut dyn FnMut(Result<Found, SourceError>)) {
        let mut retry = RETRY_FIRST;
        while !stop.load(Ordering::Relaxed) {
            match self.follow_once(stop, sink) {
                Ok(false) => return,
                Ok(true) => retry = RETRY_FIRST,
                Err(e) => {
                    sink(Err(e));
                    // The next endpoint first next time.
                    self.preferred = (self.preferred + 1) % self.endpoints.len();
                    if !pause(retry, stop) {
                        return;
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// A transaction that writes the key only if its `mod_revision` is still `base`'s: the one
    /// this host last pulled or published (a change since is refused, not overwritten), none
    /// for a host that never pulled (the key must not exist yet), or with `--force` the one
    /// read just before (which still refuses a change made during the write).
    fn publish(&mut self, file: &DomainFile, base: Base) -> Result<Published, SourceError> {
        let now = self.read()?.mod_revision;
        let expected = match base {
            Base::Current => now,
            Base::Pulled(pulled) => pulled,
            Base::Absent => 0,
        };
        if now != expected {
            let how = match base {
                Base::Absent => "holds a list this host has not pulled".to_owned(),
                _ => format!("changed since this host last saw it at revision {expected}"),
            };
            return Err(SourceError::new(format!(
                "key {} {how} (it is at revision {now}); nothing written: \
                 pull --from {} and look at it, then publish again (--force overwrites it)",
                self.key, self.url
            )));
        }
        let key = B64.encode(&self.key);
        let value = B64.encode(domain_file::format(file));
        let txn = json!({
            "compare": [{
                "key": key,
                "target": "MOD",
                "result": "EQUAL",
                "mod_revision": expected.to_string(),
            }],
            "success": [{ "request_put": { "key": key, "value": value } }],
        });
        let reply = self.call("/v3/kv/txn", &txn)?;
        if reply["succeeded"].as_bool() != Some(true) {
            return Err(SourceError::new(format!(
                "key {} changed while it was being written (revision {expected} is no longer \
                 current); nothing written: look at it again and publish again",
                self.key
            )));
        }
        // The put is the transaction's only change, so the store's revision after it is the
        // key's new mod_revision.
        let revision = number(&reply["header"]["revision"]);
        Ok(Published {
            said: format!("key {} at revision {revision}", self.key),
            revision: Some(revision),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let s = EtcdSource::from_url(
            "etcd://127.0.0.1:2379,127.0.0.2:2379/memcache/web",
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(s.endpoints, ["127.0.0.1:2379", "127.0.0.2:2379"]);
        assert_eq!(s.key, "/memcache/web");
        for bad in [
            "etcd://127.0.0.1:2379",
            "etcd://127.0.0.1:2379/",
            "etcd://127.0.0.1/k",
            "etcd://:1/k",
            "etcd://h:0/k",
            "etcd://h:1/a b",
        ] {
            assert!(
                EtcdSource::from_url(bad, Duration::from_secs(1)).is_err(),
                "{bad}"
            );
        }
    }
}
