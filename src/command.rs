//! One memcached command on one connection: encode, send, read and classify the reply. Shared
//! by the C ABI and the Rust client; what a reply *means* to a caller (1.4 return codes, Rust
//! results) is decided above this layer.
#![forbid(unsafe_code)]

use std::time::Instant;

use crate::conn::{wait_readable, Conn, Fail};
use crate::protocol::{self, Event, Reply, StoreCmd};

/// The most memory taken for a value before its bytes arrive: a length in a reply is only a
/// claim, and a hostile or broken server could claim gigabytes it never sends. Larger values
/// grow as their data comes in.
pub const PREALLOC_LIMIT: usize = 1 << 20;

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

impl Failure {
    /// The same failure, for each caller whose reply was lost with the connection it broke.
    pub fn again(&self) -> Failure {
        match self {
            Failure::Send(f) => Failure::Send(f.again()),
            Failure::Recv(f) => Failure::Recv(f.again()),
            Failure::Unexpected(what) => Failure::Unexpected(what.clone()),
        }
    }

    /// The server did not answer in time (the write or the reply).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Failure::Send(Fail::Timeout) | Failure::Recv(Fail::Timeout)
        )
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
pub fn reply_line(conn: &mut Conn) -> Result<Reply<'_>, Failure> {
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
    send_store(conn, wbuf, cmd, key, flags, exptime, value)?;
    wait(conn, &mut Line(stored))
}

/// The request of [`store`]; its reply is `Line(stored)`.
pub fn send_store(
    conn: &mut Conn,
    wbuf: &mut Vec<u8>,
    cmd: StoreCmd,
    key: &[u8],
    flags: u32,
    exptime: u64,
    value: &[u8],
) -> Result<(), Failure> {
    wbuf.clear();
    if value.len() < LARGE_VALUE {
        protocol::encode_store(wbuf, cmd, key, flags, exptime, value);
        send(conn, wbuf)
    } else {
        protocol::encode_store_header(wbuf, cmd, key, flags, exptime, value.len());
        conn.send_parts(&[wbuf, value, b"\r\n"])
            .map_err(Failure::Send)
    }
}

/// What a storage command's reply line means.
pub fn stored(reply: Reply<'_>) -> Result<Stored, Failure> {
    match reply {
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
    send_delete(conn, wbuf, key)?;
    wait(conn, &mut Line(deleted))
}

/// The request of [`delete`]; its reply is `Line(deleted)`.
pub fn send_delete(conn: &mut Conn, wbuf: &mut Vec<u8>, key: &[u8]) -> Result<(), Failure> {
    wbuf.clear();
    protocol::encode_delete(wbuf, key);
    send(conn, wbuf)
}

/// What `delete`'s reply line means.
pub fn deleted(reply: Reply<'_>) -> Result<bool, Failure> {
    match reply {
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
    send_touch(conn, wbuf, key, exptime)?;
    wait(conn, &mut Line(touched))
}

/// The request of [`touch`]; its reply is `Line(touched)`.
pub fn send_touch(
    conn: &mut Conn,
    wbuf: &mut Vec<u8>,
    key: &[u8],
    exptime: u64,
) -> Result<(), Failure> {
    wbuf.clear();
    protocol::encode_touch(wbuf, key, exptime);
    send(conn, wbuf)
}

/// What `touch`'s reply line means.
pub fn touched(reply: Reply<'_>) -> Result<bool, Failure> {
    match reply {
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
    send_arith(conn, wbuf, incr, key, delta)?;
    wait(conn, &mut Line(counter))
}

/// The request of [`arith`]; its reply is `Line(counter)`.
pub fn send_arith(
    conn: &mut Conn,
    wbuf: &mut Vec<u8>,
    incr: bool,
    key: &[u8],
    delta: u64,
) -> Result<(), Failure> {
    wbuf.clear();
    protocol::encode_arith(wbuf, incr, key, delta);
    send(conn, wbuf)
}

/// What `incr`/`decr`'s reply line means.
pub fn counter(reply: Reply<'_>) -> Result<Counter, Failure> {
    match reply {
        Reply::Number(n) => Ok(Counter::Value(n)),
        Reply::NotFound => Ok(Counter::NotFound),
        Reply::ClientError(msg) | Reply::ServerError(msg) => Ok(Counter::Refused(text(msg))),
        other => Err(unexpected(other)),
    }
}

/// A reply read as its bytes arrive, so that the caller may let others use the connection
/// while it waits: `advance` takes what has been received and says whether the reply is whole.
/// Whoever reads it never blocks inside `advance`; the waiting is the caller's.
pub trait Pending {
    type Output;
    /// The reply from the bytes received so far; None while it is incomplete (nothing of an
    /// incomplete line is taken; a value's data is taken as it comes).
    fn advance(&mut self, conn: &mut Conn) -> Result<Option<Self::Output>, Failure>;
}

/// A one-line reply and what it means.
pub struct Line<T>(pub fn(Reply<'_>) -> Result<T, Failure>);

impl<T> Pending for Line<T> {
    type Output = T;
    #[inline]
    fn advance(&mut self, conn: &mut Conn) -> Result<Option<T>, Failure> {
        match conn.buffered_event()? {
            None => Ok(None),
            Some(Event::Reply(r)) if !matches!(r, Reply::Value { .. }) => (self.0)(r).map(Some),
            Some(_) => Err(Failure::Unexpected("value data".into())),
        }
    }
}

/// The values of a `get` up to END, into the caller's sink.
pub struct Values<'k, 's, K: Keys + ?Sized> {
    pub reply: GetReply<'k, K>,
    pub sink: &'s mut dyn ValueSink,
}

impl<K: Keys + ?Sized> Pending for Values<'_, '_, K> {
    type Output = ();
    #[inline]
    fn advance(&mut self, conn: &mut Conn) -> Result<Option<()>, Failure> {
        Ok(self.reply.advance(conn, self.sink)?.then_some(()))
    }
}

/// Reads `reply` to its end, waiting for its bytes as the connection's clock allows.
pub fn wait<P: Pending + ?Sized>(conn: &mut Conn, reply: &mut P) -> Result<P::Output, Failure> {
    loop {
        if let Some(done) = reply.advance(conn)? {
            return Ok(done);
        }
        conn.fill()?;
    }
}

/// Where the values of a `get` go. `begin` is told which requested key a VALUE answers (its
/// index in the request) and returns whether to keep its data; `data` receives the chunks;
/// `end` is called once the value and its CRLF are read. A value that arrived whole goes to
/// `whole`, which a sink may implement in one step.
pub trait ValueSink {
    fn begin(&mut self, index: usize, flags: u32, bytes: usize, cas: Option<u64>) -> bool;
    fn data(&mut self, chunk: &[u8]);
    fn end(&mut self);

    fn whole(&mut self, index: usize, flags: u32, cas: Option<u64>, value: &[u8]) {
        if self.begin(index, flags, value.len(), cas) {
            self.data(value);
            self.end();
        }
    }
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
    read_rest(conn, &mut GetReply::new(keys), sink)
}

/// The keys of a `get` by their index in the request: a slice of keys, or whatever the caller
/// keeps them in (the C API reads them from its result structures, without a copy).
pub trait Keys {
    fn count(&self) -> usize;
    fn key(&self, index: usize) -> &[u8];
}

impl Keys for [&[u8]] {
    fn count(&self) -> usize {
        self.len()
    }
    fn key(&self, index: usize) -> &[u8] {
        self[index]
    }
}

/// Reads the rest of `reply`, waiting for its bytes as long as it takes.
fn read_rest<K: Keys + ?Sized>(
    conn: &mut Conn,
    reply: &mut GetReply<'_, K>,
    sink: &mut dyn ValueSink,
) -> Result<(), Failure> {
    while !reply.advance(conn, sink)? {
        conn.fill()?;
    }
    Ok(())
}

/// A `get` reply being read: it can stop wherever the bytes received so far end and go on when
/// more arrive, so the replies of several servers can be read as they come.
pub struct GetReply<'k, K: Keys + ?Sized> {
    keys: &'k K,
    /// Which keys were answered: a bit per key up to 128 keys (no allocation on the common
    /// path), a Vec beyond.
    small: u128,
    large: Vec<bool>,
    /// Where the search for the next answered key starts.
    cursor: usize,
    /// Some(keep) while a value's data is being read; keep: the sink wanted it.
    in_value: Option<bool>,
}

impl<'k, K: Keys + ?Sized> GetReply<'k, K> {
    pub fn new(keys: &'k K) -> GetReply<'k, K> {
        GetReply {
            keys,
            small: 0,
            large: if keys.count() > 128 {
                vec![false; keys.count()]
            } else {
                Vec::new()
            },
            cursor: 0,
            in_value: None,
        }
    }

    fn answered(&self, i: usize) -> bool {
        if self.large.is_empty() {
            self.small >> i & 1 == 1
        } else {
            self.large[i]
        }
    }

    /// The request index a VALUE for `key` answers, marked answered. memcached answers in
    /// request order, so it is almost always the key after the previous answer.
    #[inline]
    fn claim(&mut self, key: &[u8]) -> Result<usize, Failure> {
        let at = self.cursor;
        let at = if at < self.keys.count() && !self.answered(at) && self.keys.key(at) == key {
            at
        } else {
            self.search(key)?
        };
        if self.large.is_empty() {
            self.small |= 1 << at;
        } else {
            self.large[at] = true;
        }
        self.cursor = at + 1;
        Ok(at)
    }

    /// [`claim`](Self::claim) for a key answered out of order (a key requested twice, or a
    /// server that does not answer in order): the first unanswered key of that name.
    #[cold]
    fn search(&self, key: &[u8]) -> Result<usize, Failure> {
        let (n, cursor) = (self.keys.count(), self.cursor.min(self.keys.count()));
        (cursor..n)
            .chain(0..cursor)
            .find(|&i| !self.answered(i) && self.keys.key(i) == key)
            .ok_or_else(|| {
                Failure::Unexpected(format!("VALUE for a key not requested: {}", text(key)))
            })
    }

    /// Hands every event already received to `sink`; true once END has been read.
    pub fn advance(&mut self, conn: &mut Conn, sink: &mut dyn ValueSink) -> Result<bool, Failure> {
        while let Some(event) = conn.buffered_event()? {
            match (self.in_value, event) {
                (None, Event::Reply(Reply::End)) => return Ok(true),
                (
                    None,
                    Event::Value {
                        key,
                        flags,
                        cas,
                        data,
                    },
                ) => {
                    sink.whole(self.claim(key)?, flags, cas, data);
                }
                (
                    None,
                    Event::Reply(Reply::Value {
                        key,
                        flags,
                        bytes,
                        cas,
                    }),
                ) => {
                    let at = self.claim(key)?;
                    self.in_value = Some(sink.begin(at, flags, bytes, cas));
                }
                (None, Event::Reply(other)) => return Err(unexpected(other)),
                (None, _) => return Err(Failure::Unexpected("stray data".into())),
                (Some(keep), Event::Data(d)) => {
                    if keep {
                        sink.data(d);
                    }
                }
                (Some(keep), Event::DataLast(d)) => {
                    self.in_value = None;
                    if keep {
                        sink.data(d);
                        sink.end();
                    }
                }
                (Some(keep), Event::DataEnd) => {
                    self.in_value = None;
                    if keep {
                        sink.end();
                    }
                }
                (Some(_), _) => return Err(Failure::Unexpected("reply inside a value".into())),
            }
        }
        Ok(false)
    }
}

/// One server's part of a multi-server `get`, for [`read_values_many`].
pub struct Fetch<'a, K: Keys + ?Sized> {
    pub conn: &'a mut Conn,
    pub reply: GetReply<'a, K>,
    pub sink: &'a mut dyn ValueSink,
    /// None until the reply has been read or has failed.
    pub outcome: Option<Result<(), Failure>>,
}

/// Reads the replies of several servers (their `get`s already sent) in the order their bytes
/// arrive, so a server that answers late does not hold up the others. Each connection waits at
/// most its own timeout for its next bytes, and twice its timeout in all.
pub fn read_values_many<K: Keys + ?Sized>(fetches: &mut [Fetch<'_, K>]) {
    if let [f] = fetches {
        f.outcome = Some(read_rest(f.conn, &mut f.reply, f.sink));
        return;
    }
    let mut waiting: Vec<usize> = Vec::with_capacity(fetches.len());
    let mut ready = vec![false; fetches.len()];
    let started = Instant::now();
    let mut since = vec![started; fetches.len()];
    // However a server trickles, its reply gets no more than twice its timeout in all.
    let until: Vec<Instant> = fetches
        .iter()
        .map(|f| started + 2 * f.conn.timeout())
        .collect();
    let limit =
        |i: usize, since: &[Instant], conn: &Conn| (since[i] + conn.timeout()).min(until[i]);
    loop {
        waiting.clear();
        for (i, f) in fetches.iter_mut().enumerate() {
            if f.outcome.is_none() {
                match f.reply.advance(f.conn, f.sink) {
                    Ok(true) => f.outcome = Some(Ok(())),
                    Ok(false) => waiting.push(i),
                    Err(e) => f.outcome = Some(Err(e)),
                }
            }
        }
        if let [only] = waiting[..] {
            // One reply left: a plain blocking read waits for it.
            let f = &mut fetches[only];
            if let Err(e) = f.conn.fill() {
                f.outcome = Some(Err(e.into()));
            }
            continue;
        }
        if waiting.is_empty() {
            return;
        }
        let now = Instant::now();
        let wait = waiting
            .iter()
            .map(|&i| limit(i, &since, fetches[i].conn).saturating_duration_since(now))
            .min()
            .unwrap_or_default();
        let conns: Vec<&Conn> = waiting.iter().map(|&i| &*fetches[i].conn).collect();
        let polled = wait_readable(&conns, wait, &mut ready).map_err(|e| e.errno());
        drop(conns);
        let now = Instant::now();
        for (k, &i) in waiting.iter().enumerate() {
            let f = &mut fetches[i];
            let failed = match polled {
                Err(errno) => Some(Fail::Io(std::io::Error::from_raw_os_error(errno))),
                Ok(()) if ready[k] => {
                    since[i] = now;
                    f.conn.fill().err()
                }
                Ok(()) if now >= limit(i, &since, f.conn) => Some(Fail::Timeout),
                Ok(()) => None,
            };
            if let Some(e) = failed {
                f.outcome = Some(Err(e.into()));
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Endpoint;
    use std::cell::RefCell;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::rc::Rc;
    use std::thread;
    use std::time::Duration;

    /// Collects (request index, value) pairs, and writes its server's number to a log shared
    /// by all sinks each time a value is complete.
    struct Collect {
        values: Vec<(usize, Vec<u8>)>,
        server: usize,
        log: Rc<RefCell<Vec<usize>>>,
    }

    impl ValueSink for Collect {
        fn begin(&mut self, index: usize, _: u32, _: usize, _: Option<u64>) -> bool {
            self.values.push((index, Vec::new()));
            true
        }
        fn data(&mut self, chunk: &[u8]) {
            self.values.last_mut().unwrap().1.extend_from_slice(chunk);
        }
        fn end(&mut self) {
            self.log.borrow_mut().push(self.server);
        }
    }

    /// A server that reads one request, waits `delay`, then sends `pieces` with a pause between
    /// them (None: never answers, holding the connection open until the test ends).
    fn server(
        delay: Duration,
        pieces: Option<Vec<&'static [u8]>>,
    ) -> (Endpoint, thread::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ep = Endpoint::Tcp(vec![listener.local_addr().unwrap()]);
        let handle = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 256];
            let _ = s.read(&mut req).unwrap();
            thread::sleep(delay);
            match pieces {
                Some(pieces) => {
                    for p in pieces {
                        s.write_all(p).unwrap();
                        thread::sleep(Duration::from_millis(20));
                    }
                }
                // Until the client gives up and closes.
                None => while s.read(&mut req).is_ok_and(|n| n > 0) {},
            }
        });
        (ep, handle)
    }

    #[test]
    fn replies_of_several_servers_are_read_as_they_arrive_and_a_silent_one_times_out() {
        let slow = server(
            Duration::from_millis(300),
            Some(vec![b"VALUE a 0 2\r\nA", b"1\r\nEND\r\n"]),
        );
        let fast = server(
            Duration::ZERO,
            Some(vec![b"VALUE b 0 2\r\nB1\r\nVALUE c 0 0\r\n\r\nEND\r\n"]),
        );
        let silent = server(Duration::ZERO, None);
        let mut conns: Vec<Conn> = [&slow.0, &fast.0, &silent.0]
            .iter()
            .map(|ep| Conn::connect(ep, Duration::from_secs(5)).unwrap())
            .collect();
        conns[2].set_timeout(Duration::from_millis(100)).unwrap();
        let keys: [&[&[u8]]; 3] = [&[b"a"], &[b"b", b"c"], &[b"z"]];
        let mut wbuf = Vec::new();
        for (conn, keys) in conns.iter_mut().zip(keys) {
            send_get(conn, &mut wbuf, keys.iter().copied(), false).unwrap();
        }
        let log = Rc::new(RefCell::new(Vec::new()));
        let mut sinks: Vec<Collect> = (0..3)
            .map(|server| Collect {
                values: Vec::new(),
                server,
                log: Rc::clone(&log),
            })
            .collect();
        let mut fetches: Vec<Fetch<'_, [&[u8]]>> = conns
            .iter_mut()
            .zip(keys)
            .zip(&mut sinks)
            .map(|((conn, keys), sink)| Fetch {
                conn,
                reply: GetReply::new(keys),
                sink,
                outcome: None,
            })
            .collect();
        read_values_many(&mut fetches);
        let outcomes: Vec<_> = fetches.into_iter().map(|f| f.outcome).collect();
        assert!(matches!(outcomes[0], Some(Ok(()))));
        assert!(matches!(outcomes[1], Some(Ok(()))));
        assert!(matches!(
            outcomes[2],
            Some(Err(Failure::Recv(Fail::Timeout)))
        ));
        assert_eq!(sinks[0].values, vec![(0, b"A1".to_vec())]);
        assert_eq!(sinks[1].values, vec![(0, b"B1".to_vec()), (1, Vec::new())]);
        assert!(sinks[2].values.is_empty());
        // The fast server's values were taken while the slow one (asked first) was still
        // silent: read in server order, the slow one's value would come first.
        assert_eq!(*log.borrow(), vec![1, 1, 0]);
        drop(conns);
        for (_, h) in [slow, fast, silent] {
            h.join().unwrap();
        }
    }
}
