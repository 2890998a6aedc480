//! One memcached command on one connection: encode, send, read and classify the reply. Shared
//! by the C ABI and the Rust client; what a reply *means* to a caller (1.4 return codes, Rust
//! results) is decided above this layer.
#![forbid(unsafe_code)]

use crate::conn::{Conn, Fail};
use crate::protocol::{self, Event, Reply, StoreCmd};

/// Why an exchange failed. Every kind leaves the stream in an unknown state: the caller closes
/// the connection, so no later command can read a reply meant for this one.
#[derive(Debug)]
pub enum Failure {
    Send(Fail),
    Recv(Fail),
    /// A well-formed reply that makes no sense for the command sent.
    Unexpected(String),
}

impl From<Fail> for Failure {
    fn from(f: Fail) -> Failure {
        Failure::Recv(f)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Send(e) => write!(f, "write failed: {e}"),
            Failure::Recv(e) => write!(f, "{e}"),
            Failure::Unexpected(what) => write!(f, "unexpected reply: {what}"),
        }
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn unexpected(reply: Reply<'_>) -> Failure {
    Failure::Unexpected(reply.to_string())
}

fn send(conn: &mut Conn, wbuf: &[u8]) -> Result<(), Failure> {
    conn.send(wbuf).map_err(Failure::Send)
}

/// The reply line of a command that answers with one line.
fn reply_line(conn: &mut Conn) -> Result<Reply<'_>, Failure> {
    match conn.next_event()? {
        Event::Reply(r) if !matches!(r, Reply::Value { .. }) => Ok(r),
        _ => Err(Failure::Unexpected("value data".into())),
    }
}

/// From this size on a value is sent from where it is (vectored) instead of being copied behind
/// the command line: below it, one copy is cheaper than building the vector.
const LARGE_VALUE: usize = 2048;

/// The answer to a storage command.
#[derive(Debug, PartialEq, Eq)]
pub enum Stored {
    Stored,
    NotStored,
    /// cas: the item changed since the `gets`.
    Exists,
    /// cas: the item is gone.
    NotFound,
    /// The server refused (e.g. "object too large for cache"); the stream is still in sync.
    ServerError(String),
}

/// `set`/`add`/`replace`/`append`/`prepend`/`cas`. `wbuf` is the caller's scratch buffer.
pub fn store(
    conn: &mut Conn,
    wbuf: &mut Vec<u8>,
    cmd: StoreCmd,
    key: &[u8],
    flags: u32,
    exptime: u64,
    value: &[u8],
) -> Result<Stored, Failure> {
    wbuf.clear();
    if value.len() < LARGE_VALUE {
        protocol::encode_store(wbuf, cmd, key, flags, exptime, value);
        send(conn, wbuf)?;
    } else {
        protocol::encode_store_header(wbuf, cmd, key, flags, exptime, value.len());
        conn.send_parts(&[wbuf, value, b"\r\n"])
            .map_err(Failure::Send)?;
    }
    match reply_line(conn)? {
        Reply::Stored => Ok(Stored::Stored),
        Reply::NotStored => Ok(Stored::NotStored),
        Reply::Exists => Ok(Stored::Exists),
        Reply::NotFound => Ok(Stored::NotFound),
        Reply::ServerError(msg) => Ok(Stored::ServerError(text(msg))),
        // A CLIENT_ERROR may have left the value's bytes unread: the stream is not trusted.
        other => Err(unexpected(other)),
    }
}

/// `delete`: true when deleted, false when not found.
pub fn delete(conn: &mut Conn, wbuf: &mut Vec<u8>, key: &[u8]) -> Result<bool, Failure> {
    wbuf.clear();
    protocol::encode_delete(wbuf, key);
    send(conn, wbuf)?;
    match reply_line(conn)? {
        Reply::Deleted => Ok(true),
        Reply::NotFound => Ok(false),
        other => Err(unexpected(other)),
    }
}

/// `touch`: true when touched, false when not found.
pub fn touch(
    conn: &mut Conn,
    wbuf: &mut Vec<u8>,
    key: &[u8],
    exptime: u64,
) -> Result<bool, Failure> {
    wbuf.clear();
    protocol::encode_touch(wbuf, key, exptime);
    send(conn, wbuf)?;
    match reply_line(conn)? {
        Reply::Touched => Ok(true),
        Reply::NotFound => Ok(false),
        other => Err(unexpected(other)),
    }
}

/// The answer to `incr`/`decr`.
#[derive(Debug, PartialEq, Eq)]
pub enum Counter {
    Value(u64),
    NotFound,
    /// CLIENT_ERROR/SERVER_ERROR, e.g. a non-numeric value; the stream is still in sync.
    Refused(String),
}

/// `incr`/`decr`. Sent once: never retried, so a counter cannot move twice.
pub fn arith(
    conn: &mut Conn,
    wbuf: &mut Vec<u8>,
    incr: bool,
    key: &[u8],
    delta: u64,
) -> Result<Counter, Failure> {
    wbuf.clear();
    protocol::encode_arith(wbuf, incr, key, delta);
    send(conn, wbuf)?;
    match reply_line(conn)? {
        Reply::Number(n) => Ok(Counter::Value(n)),
        Reply::NotFound => Ok(Counter::NotFound),
        Reply::ClientError(msg) | Reply::ServerError(msg) => Ok(Counter::Refused(text(msg))),
        other => Err(unexpected(other)),
    }
}

/// Where the values of a `get` go. `begin` is told which requested key a VALUE answers (its
/// index in the request) and returns whether to keep its data; `data` receives the chunks;
/// `end` is called once the value and its CRLF are read.
pub trait ValueSink {
    fn begin(&mut self, index: usize, flags: u32, bytes: usize, cas: Option<u64>) -> bool;
    fn data(&mut self, chunk: &[u8]);
    fn end(&mut self);
}

/// Sends `get`/`gets` for `keys` (already encoded by the caller when batching several servers:
/// see [`send_get`] and [`read_values`]).
pub fn send_get<'k>(
    conn: &mut Conn,
    wbuf: &mut Vec<u8>,
    keys: impl IntoIterator<Item = &'k [u8]>,
    cas: bool,
) -> Result<(), Failure> {
    wbuf.clear();
    protocol::encode_get(wbuf, keys, cas);
    send(conn, wbuf)
}

/// Reads a `get` reply up to END. Each VALUE goes to the first requested key with that name not
/// answered yet (duplicate keys are allowed); memcached answers in request order, so the search
/// starts after the previous answer. `keys` are the requested keys, in order.
pub fn read_values(
    conn: &mut Conn,
    keys: &[&[u8]],
    sink: &mut dyn ValueSink,
) -> Result<(), Failure> {
    // Which keys were answered: on the stack for the common sizes (this is every get's path).
    let mut small = [false; 128];
    let mut large = Vec::new();
    let answered: &mut [bool] = if keys.len() <= small.len() {
        &mut small[..keys.len()]
    } else {
        large.resize(keys.len(), false);
        &mut large
    };
    let mut cursor = 0usize;
    // The request index a VALUE answers, searched from after the previous answer.
    let mut claim = |key: &[u8]| {
        let n = keys.len();
        let at = if cursor < n && !answered[cursor] && keys[cursor] == key {
            cursor
        } else {
            (0..n)
                .map(|i| (cursor + i) % n)
                .find(|&i| !answered[i] && keys[i] == key)
                .ok_or_else(|| {
                    Failure::Unexpected(format!("VALUE for a key not requested: {}", text(key)))
                })?
        };
        answered[at] = true;
        cursor = at + 1;
        Ok::<usize, Failure>(at)
    };
    loop {
        let keep = match conn.next_event()? {
            Event::Reply(Reply::End) => return Ok(()),
            Event::Value {
                key,
                flags,
                cas,
                data,
            } => {
                if sink.begin(claim(key)?, flags, data.len(), cas) {
                    sink.data(data);
                    sink.end();
                }
                continue;
            }
            Event::Reply(Reply::Value {
                key,
                flags,
                bytes,
                cas,
            }) => sink.begin(claim(key)?, flags, bytes, cas),
            Event::Reply(other) => return Err(unexpected(other)),
            Event::Data(_) | Event::DataLast(_) | Event::DataEnd => {
                return Err(Failure::Unexpected("stray data".into()))
            }
        };
        loop {
            match conn.next_event()? {
                Event::Data(d) => {
                    if keep {
                        sink.data(d)
                    }
                }
                Event::DataLast(d) => {
                    if keep {
                        sink.data(d)
                    }
                    break;
                }
                Event::DataEnd => break,
                Event::Reply(_) | Event::Value { .. } => {
                    return Err(Failure::Unexpected("reply inside a value".into()))
                }
            }
        }
        if keep {
            sink.end();
        }
    }
}

/// `stats` (or `stats <group>`): every `STAT name value` line to `on_stat`, up to END.
pub fn stats(
    conn: &mut Conn,
    wbuf: &mut Vec<u8>,
    group: Option<&[u8]>,
    on_stat: &mut dyn FnMut(&[u8], &[u8]),
) -> Result<(), Failure> {
    wbuf.clear();
    match group {
        Some(g) => {
            wbuf.extend_from_slice(b"stats ");
            protocol::encode_simple(wbuf, g);
        }
        None => protocol::encode_simple(wbuf, b"stats"),
    }
    send(conn, wbuf)?;
    loop {
        match conn.next_event()? {
            Event::Reply(Reply::Stat { name, value }) => on_stat(name, value),
            Event::Reply(Reply::End) => return Ok(()),
            Event::Reply(other) => return Err(unexpected(other)),
            _ => return Err(Failure::Unexpected("value data".into())),
        }
    }
}

/// `flush_all`.
pub fn flush(conn: &mut Conn, wbuf: &mut Vec<u8>) -> Result<(), Failure> {
    wbuf.clear();
    protocol::encode_simple(wbuf, b"flush_all");
    send(conn, wbuf)?;
    match reply_line(conn)? {
        Reply::Ok => Ok(()),
        other => Err(unexpected(other)),
    }
}

/// `version`: the server's version string.
pub fn version(conn: &mut Conn, wbuf: &mut Vec<u8>) -> Result<Vec<u8>, Failure> {
    wbuf.clear();
    protocol::encode_simple(wbuf, b"version");
    send(conn, wbuf)?;
    match reply_line(conn)? {
        Reply::Version(v) => Ok(v.to_vec()),
        other => Err(unexpected(other)),
    }
}
