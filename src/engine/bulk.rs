//! Many writes in one call (set/add/replace/append/prepend, delete, touch of many keys), with
//! an answer per key: each server's share is written in one go, to every server before any
//! reply is read, so 100 keys cost about one round trip instead of 100.
//!
//! Where the server speaks memcached 1.6's meta protocol (asked once per connection with `mn`),
//! the commands go in quiet mode: the server answers only what did not succeed, each answer
//! naming its request by an opaque token, and `mn` closes the batch. Elsewhere the text
//! commands go pipelined, one reply each, in order.
//!
//! A server's share goes in windows of at most [`WINDOW_KEYS`] keys (and about
//! [`WINDOW_BYTES`] of requests), each read back before the next is written, so the replies
//! of a window always fit in the socket's buffers and neither side can block the other.
//!
//! Nothing is re-sent: a key whose server failed before answering for it is
//! [`Answer::Failed`], as a single write would be. With copies, each key goes to each of its
//! copies and its answer is that of the first copy in copy order that answered.

use super::route::{connect_copies_known, route_known, RouteError, Servers};
use crate::command::{self, Failure, Stored};
use crate::conn::{Conn, Fail};
use crate::protocol::{self, Event, MetaCode, Reply, StoreCmd};

/// Most keys of one server in flight at once.
pub const WINDOW_KEYS: usize = 256;
/// A window is closed once its requests reach this size (a single larger value still goes).
pub const WINDOW_BYTES: usize = 1 << 20;
/// In quiet mode, a value at least this large has an `mn` before and after it: a server
/// refuses a value over its item size with a `SERVER_ERROR` that names no request, and the
/// `MN`s around it say which request that was (small values are refused only when the server
/// is out of memory).
const MARK_AFTER: usize = 64 * 1024;

/// What a bulk call does to each key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkOp {
    /// set, add, replace, append or prepend (not cas).
    Store(StoreCmd),
    Delete,
    /// A new expiry for each key.
    Touch,
}

/// How a bulk call may speak to a server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Dialect {
    /// Meta quiet mode where the server answers `mn`, else text.
    #[default]
    Auto,
    /// Text commands only (for proxies that pass only the text protocol).
    Text,
}

/// The keys of a bulk call, as the front end holds them (already checked to be valid keys).
pub trait BulkItems {
    fn count(&self) -> usize;
    fn key(&self, index: usize) -> &[u8];
    /// The value to store (not asked for delete and touch).
    fn value(&self, index: usize) -> &[u8];
    fn flags(&self, index: usize) -> u32;
    /// The expiry of a store or a touch.
    fn exptime(&self, index: usize) -> u64;
    /// The placement hash of the key.
    fn hash(&self, index: usize) -> u32;
}

/// What became of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Stored, deleted or touched.
    Done,
    /// add of a key that exists, replace/append/prepend of one that does not.
    NotStored,
    Exists,
    /// delete or touch of a key that is not there.
    NotFound,
    /// The server refused it (`SERVER_ERROR`, e.g. a value larger than its item size). In
    /// quiet mode such a line names no request: when a run of keys with no other answer holds
    /// fewer refusals than keys, each key of the run gets this, saying so.
    Refused(String),
    /// No server took it, or its server failed before answering for it (see
    /// [`Bulk::first_error`]); it may or may not have been written.
    Failed,
}

/// The answers of a bulk call, by key index.
pub struct Bulk<E> {
    pub answers: Vec<Answer>,
    /// The first failure (a connect or a server's exchange), for the front end's report.
    pub first_error: Option<E>,
    /// Some key found no live server at all.
    pub no_server: bool,
}

/// One key sent to one server: its index and its copy rank (0 for the primary).
#[derive(Clone, Copy)]
struct Entry {
    index: usize,
    rank: usize,
}

/// Writes every key of `items` by `op`: routed by the front end (with `copies` > 1, to each
/// of its copies), then written per server as described in the module documentation.
pub fn bulk<S: Servers, I: BulkItems>(
    servers: &mut S,
    op: BulkOp,
    items: &I,
    copies: usize,
    dialect: Dialect,
) -> Bulk<S::Error> {
    let count = items.count();
    let mut result = Bulk {
        answers: vec![Answer::Failed; count],
        first_error: None,
        no_server: false,
    };
    let mut shares: Vec<Vec<Entry>> = (0..servers.count()).map(|_| Vec::new()).collect();
    let mut picks = Vec::with_capacity(copies);
    // Servers whose connection is known ready: checked at their first key, not at each.
    let mut known = vec![false; shares.len()];
    for index in 0..count {
        let hash = items.hash(index);
        if copies <= 1 {
            match route_known(servers, hash, &mut known) {
                Ok(server) => shares[server].push(Entry { index, rank: 0 }),
                Err(RouteError::NoneLive) => result.no_server = true,
                Err(RouteError::Unreachable(e)) => {
                    result.first_error.get_or_insert(e);
                }
            }
            continue;
        }
        if let Some(e) = connect_copies_known(servers, hash, copies, &mut picks, &mut known) {
            result.first_error.get_or_insert(e);
        }
        if picks.is_empty() {
            result.no_server = true;
        }
        for (rank, &server) in picks.iter().enumerate() {
            shares[server].push(Entry { index, rank });
        }
    }
    // The rank of the copy whose answer each key holds (usize::MAX: none yet).
    let mut ranks = vec![usize::MAX; count];
    let mut sent = vec![0usize; shares.len()];
    let mut failed: Vec<Option<Failure>> = (0..shares.len()).map(|_| None).collect();
    loop {
        let (mut slots, wbuf) = servers.slots();
        let mut windows: Vec<(usize, std::ops::Range<usize>, Option<Vec<usize>>)> = Vec::new();
        for (server, share) in shares.iter().enumerate() {
            if sent[server] == share.len() || failed[server].is_some() {
                continue;
            }
            let Some(conn) = slots[server].conn_mut() else {
                failed[server] = Some(Failure::Send(Fail::Closed));
                continue;
            };
            let window = window(items, op, share, sent[server]);
            match send_window(conn, wbuf, items, op, dialect, &share[window.clone()]) {
                Ok(marks) => windows.push((server, window, marks)),
                Err(failure) => failed[server] = Some(failure),
            }
        }
        for (server, window, marks) in &windows {
            let Some(conn) = slots[*server].conn_mut() else {
                continue;
            };
            let share = &shares[*server][window.clone()];
            let mut put = |at: usize, answer: Answer| {
                let Entry { index, rank } = share[at];
                if rank < ranks[index] {
                    ranks[index] = rank;
                    result.answers[index] = answer;
                }
            };
            let read = match marks {
                Some(marks) => read_meta(conn, op, marks, &mut put),
                None => read_text(conn, op, share.len(), &mut put),
            };
            match read {
                Ok(()) => sent[*server] = window.end,
                Err(failure) => failed[*server] = Some(failure),
            }
        }
        drop(slots);
        if windows.is_empty() {
            break;
        }
    }
    for (server, failure) in failed.into_iter().enumerate() {
        if shares[server].is_empty() {
            continue;
        }
        match servers.settle(server, failure.map_or(Ok(()), Err)) {
            Ok(()) => {}
            Err(e) => {
                result.first_error.get_or_insert(e);
            }
        }
    }
    result
}

/// The entries of `share` from `from` that go in the next window.
fn window<I: BulkItems>(
    items: &I,
    op: BulkOp,
    share: &[Entry],
    from: usize,
) -> std::ops::Range<usize> {
    let mut bytes = 0;
    let mut end = from;
    while end < share.len() && end - from < WINDOW_KEYS && (end == from || bytes < WINDOW_BYTES) {
        let index = share[end].index;
        bytes += items.key(index).len() + 48;
        if let BulkOp::Store(_) = op {
            bytes += items.value(index).len();
        }
        end += 1;
    }
    from..end
}

/// Writes one window of requests. In meta quiet mode (asking the server first, once per
/// connection, whether it speaks it), the positions before which an `mn` was sent, in order
/// (the last is the window's end); None for text.
fn send_window<I: BulkItems>(
    conn: &mut Conn,
    wbuf: &mut Vec<u8>,
    items: &I,
    op: BulkOp,
    dialect: Dialect,
    entries: &[Entry],
) -> Result<Option<Vec<usize>>, Failure> {
    let meta = dialect == Dialect::Auto && speaks_meta(conn, wbuf)?;
    let mut marks = Vec::new();
    wbuf.clear();
    for (at, entry) in entries.iter().enumerate() {
        let i = entry.index;
        let (key, opaque) = (items.key(i), at as u64);
        match (op, meta) {
            (BulkOp::Store(cmd), true) => {
                let value = items.value(i);
                let (flags, exptime) = (items.flags(i), items.exptime(i));
                let marked = value.len() >= MARK_AFTER;
                if marked && at > marks.last().copied().unwrap_or(0) {
                    protocol::encode_simple(wbuf, b"mn");
                    marks.push(at);
                }
                protocol::encode_meta_store(wbuf, cmd, key, flags, exptime, value, opaque);
                if marked {
                    protocol::encode_simple(wbuf, b"mn");
                    marks.push(at + 1);
                }
            }
            (BulkOp::Store(cmd), false) => protocol::encode_store(
                wbuf,
                cmd,
                key,
                items.flags(i),
                items.exptime(i),
                items.value(i),
            ),
            (BulkOp::Delete, true) => protocol::encode_meta_delete(wbuf, key, opaque),
            (BulkOp::Delete, false) => protocol::encode_delete(wbuf, key),
            (BulkOp::Touch, true) => {
                protocol::encode_meta_touch(wbuf, key, items.exptime(i), opaque)
            }
            (BulkOp::Touch, false) => protocol::encode_touch(wbuf, key, items.exptime(i)),
        }
    }
    if meta && marks.last() != Some(&entries.len()) {
        protocol::encode_simple(wbuf, b"mn");
        marks.push(entries.len());
    }
    conn.send(wbuf).map_err(Failure::Send)?;
    Ok(meta.then_some(marks))
}

/// Whether the server on `conn` speaks the meta protocol: asked with `mn` the first time (a
/// server before 1.6 answers `ERROR`), then remembered with the connection.
fn speaks_meta(conn: &mut Conn, wbuf: &mut Vec<u8>) -> Result<bool, Failure> {
    if let Some(known) = conn.speaks_meta() {
        return Ok(known);
    }
    wbuf.clear();
    protocol::encode_simple(wbuf, b"mn");
    conn.send(wbuf).map_err(Failure::Send)?;
    let yes = match conn.next_event()? {
        Event::Reply(Reply::Meta {
            code: MetaCode::Mn,
            opaque: None,
        }) => true,
        Event::Reply(Reply::Error) => false,
        Event::Reply(other) => return Err(Failure::Unexpected(format!("{other} to mn"))),
        _ => return Err(Failure::Unexpected("value data to mn".into())),
    };
    conn.set_speaks_meta(yes);
    Ok(yes)
}

/// The `count` replies of a pipelined text window, one per request, in order, each read as the
/// single command's reply is ([`command::stored`], [`command::deleted`], [`command::touched`]).
fn read_text(
    conn: &mut Conn,
    op: BulkOp,
    count: usize,
    put: &mut impl FnMut(usize, Answer),
) -> Result<(), Failure> {
    for at in 0..count {
        let reply = command::reply_line(conn)?;
        let answer = match op {
            BulkOp::Store(_) => match command::stored(reply)? {
                Stored::Stored => Answer::Done,
                Stored::NotStored => Answer::NotStored,
                Stored::Exists => Answer::Exists,
                Stored::NotFound => Answer::NotFound,
                Stored::ServerError(msg) => Answer::Refused(msg),
            },
            BulkOp::Delete if command::deleted(reply)? => Answer::Done,
            BulkOp::Touch if command::touched(reply)? => Answer::Done,
            BulkOp::Delete | BulkOp::Touch => Answer::NotFound,
        };
        put(at, answer);
    }
    Ok(())
}

/// The answers of a quiet meta window, up to the `MN` that closes it (`marks`: where each
/// `MN` falls, see [`send_window`]). A request with no answer succeeded (a touch: missed).
/// `SERVER_ERROR` lines name no request; they belong to the requests between the answers or
/// `MN`s around them (see [`Answer::Refused`]).
fn read_meta(
    conn: &mut Conn,
    op: BulkOp,
    marks: &[usize],
    put: &mut impl FnMut(usize, Answer),
) -> Result<(), Failure> {
    let silent = if op == BulkOp::Touch {
        Answer::NotFound
    } else {
        Answer::Done
    };
    let count = marks.last().copied().unwrap_or(0);
    let mut marks = marks.iter();
    // The next request that has no answer yet, and the refusals since the last answer.
    let mut next = 0;
    let mut refusals: Vec<String> = Vec::new();
    loop {
        let (at, answer) = match command::reply_line(conn)? {
            Reply::ServerError(msg) => {
                refusals.push(String::from_utf8_lossy(msg).into_owned());
                continue;
            }
            Reply::Meta {
                code: MetaCode::Mn,
                opaque: None,
            } => match marks.next() {
                Some(&mark) if mark >= next => (mark, None),
                _ => return Err(Failure::Unexpected("MN nobody asked for".into())),
            },
            Reply::Meta {
                code,
                opaque: Some(opaque),
            } if opaque < count as u64 && opaque as usize >= next => {
                let answer = match (code, op) {
                    (MetaCode::Hd, BulkOp::Touch) => Answer::Done,
                    (MetaCode::Ns, BulkOp::Store(_)) => Answer::NotStored,
                    (MetaCode::Ex, BulkOp::Store(_)) => Answer::Exists,
                    (MetaCode::Nf, BulkOp::Delete) => Answer::NotFound,
                    (code, _) => {
                        let shown = Reply::Meta { code, opaque: None };
                        return Err(Failure::Unexpected(format!(
                            "{shown} O{opaque} in a quiet batch"
                        )));
                    }
                };
                (opaque as usize, Some(answer))
            }
            other => return Err(Failure::Unexpected(format!("{other} in a quiet batch"))),
        };
        // The requests before this answer that had none: silent successes, or the refused.
        let run = next..at;
        match refusals.len() {
            0 => run.for_each(|i| put(i, silent.clone())),
            n if n == run.len() => run
                .zip(refusals.drain(..))
                .for_each(|(i, msg)| put(i, Answer::Refused(msg))),
            n if n < run.len() => {
                let why = format!(
                    "{} ({n} of the {} requests sent together here were refused; the server \
                     does not say which)",
                    refusals[0],
                    run.len()
                );
                refusals.clear();
                run.for_each(|i| put(i, Answer::Refused(why.clone())));
            }
            n => {
                return Err(Failure::Unexpected(format!(
                    "{n} SERVER_ERROR lines for {} requests",
                    run.len()
                )))
            }
        }
        match answer {
            Some(answer) => {
                put(at, answer);
                next = at + 1;
            }
            None if at == count => return Ok(()),
            None => next = at,
        }
    }
}
