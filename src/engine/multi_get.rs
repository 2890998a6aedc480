//! Many keys in one operation: each server is sent one `get` with all of its keys, and the
//! replies are read as their bytes arrive, so the servers work in parallel. With copies, the
//! keys still missing are asked of their next copy, round by round.
//!
//! The front end says which keys it wants and where their values go ([`Wanted`]), and which
//! server each key's first request goes to (the C ABI groups keys as 1.4 did, the Rust client by
//! its selector); the engine sends, reads, and settles each server's connection through
//! [`Servers::settle`], by the same rules as a single exchange.

use super::route::{connect_copies_known, Servers};
use super::Slot;
use crate::command::{self, Failure, Fetch, GetReply, Keys, ValueSink};

/// The keys of a multi-get, as the front end holds them, and where their values go.
pub trait Wanted {
    /// Receives the values of the keys sent to one server.
    type Sink: ValueSink;

    /// Key `index` (an index into the front end's keys, as the groups hold them).
    fn key(&self, index: usize) -> &[u8];

    /// The placement hash of key `index`, for finding its copies.
    fn hash(&self, index: usize) -> u32;

    /// Whether key `index` has been found (and so is not asked of another copy).
    fn found(&self, index: usize) -> bool;

    /// A sink for the values of `group` (indexes of keys, in the order they are sent), made
    /// just before they are sent; the sink's value indexes are positions in `group`.
    fn sink(&mut self, group: &[usize]) -> Self::Sink;

    /// Takes back the sink of `group` once its server's reply is over: read whole
    /// (`answered`), or failed part way (values that arrived before the failure are in it).
    fn absorb(&mut self, sink: Self::Sink, group: &[usize], answered: bool);
}

/// What a multi-get did beyond the values it delivered.
pub struct MultiGet<E> {
    /// Some server was given keys: the first round had a group, or a copy could be chosen.
    pub asked: bool,
    /// Per key, whether some server answered for it (a hit or a miss).
    pub answered: Vec<bool>,
    /// The first failure: a connect while choosing copies, or a server's exchange.
    pub first_error: Option<E>,
}

/// Fetches the keys of `wanted` (`count` of them): first from the servers of `groups` (per
/// server, the indexes of the keys it is asked for, its connection made ready by the caller's
/// routing), then, with `copies` > 1, the keys not found from their next copy, round by round.
pub fn multi_get<S: Servers, W: Wanted>(
    servers: &mut S,
    wanted: &mut W,
    count: usize,
    groups: &mut [Vec<usize>],
    copies: usize,
) -> MultiGet<S::Error> {
    let mut result = MultiGet {
        asked: groups.iter().any(|g| !g.is_empty()),
        answered: vec![false; count],
        first_error: None,
    };
    fetch_round(servers, wanted, groups, &mut result);
    let mut picks = Vec::with_capacity(copies);
    let mut known = Vec::new();
    for round in 1..copies {
        groups.iter_mut().for_each(Vec::clear);
        // Connections the last round used are checked again, once each (not once per key).
        known.clear();
        known.resize(groups.len(), false);
        let mut any = false;
        for index in (0..count).filter(|&i| !wanted.found(i)) {
            let hash = wanted.hash(index);
            if let Some(e) = connect_copies_known(servers, hash, copies, &mut picks, &mut known) {
                result.first_error.get_or_insert(e);
            }
            if let Some(&server) = picks.get(round) {
                groups[server].push(index);
                any = true;
            }
        }
        if !any {
            break;
        }
        result.asked = true;
        fetch_round(servers, wanted, groups, &mut result);
    }
    result
}

/// The keys sent to one server, as a reply parser reads them.
struct GroupKeys<'a, W> {
    wanted: &'a W,
    group: &'a [usize],
}

impl<W: Wanted> Keys for GroupKeys<'_, W> {
    fn count(&self) -> usize {
        self.group.len()
    }

    fn key(&self, index: usize) -> &[u8] {
        self.wanted.key(self.group[index])
    }
}

/// One round: every server with a group (and a connection) is sent its `get`, then the replies
/// are read as they arrive; each server is then settled, and its sink handed back.
fn fetch_round<S: Servers, W: Wanted>(
    servers: &mut S,
    wanted: &mut W,
    groups: &[Vec<usize>],
    result: &mut MultiGet<S::Error>,
) {
    let (mut slots, wbuf) = servers.slots();
    // Sinks first (the front end may mark its keys as sent), for the servers that can be sent.
    let mut sinks: Vec<Option<W::Sink>> = slots
        .iter_mut()
        .zip(groups)
        .map(|(slot, group)| (slot.has_conn() && !group.is_empty()).then(|| wanted.sink(group)))
        .collect();
    let outcomes = send_and_read(&mut slots, wbuf, &*wanted, groups, &mut sinks);
    drop(slots);
    // The values go to the front end before any report is made for a server that failed.
    for (server, outcome) in &outcomes {
        if let Some(sink) = sinks[*server].take() {
            wanted.absorb(sink, &groups[*server], outcome.is_ok());
        }
    }
    for (server, outcome) in outcomes {
        match servers.settle(server, outcome) {
            Ok(()) => groups[server]
                .iter()
                .for_each(|&i| result.answered[i] = true),
            Err(e) => {
                result.first_error.get_or_insert(e);
            }
        }
    }
}

/// Sends each server that has a sink its `get`, then reads the replies as their bytes arrive.
/// The outcome of every server sent to (or that failed to be sent to).
fn send_and_read<W: Wanted>(
    slots: &mut [&mut Slot],
    wbuf: &mut Vec<u8>,
    wanted: &W,
    groups: &[Vec<usize>],
    sinks: &mut [Option<W::Sink>],
) -> Vec<(usize, Result<(), Failure>)> {
    let keys: Vec<GroupKeys<W>> = groups
        .iter()
        .map(|group| GroupKeys { wanted, group })
        .collect();
    let mut outcomes = Vec::with_capacity(groups.len());
    let mut fetches = Vec::with_capacity(groups.len());
    let mut fetched = Vec::with_capacity(groups.len());
    let lent = slots.iter_mut().zip(sinks.iter_mut()).zip(&keys);
    for (server, ((slot, sink), keys)) in lent.enumerate() {
        let (Some(conn), Some(sink)) = (slot.conn_mut(), sink.as_mut()) else {
            continue;
        };
        let requested = keys.group.iter().map(|&i| wanted.key(i));
        match command::send_get(conn, wbuf, requested, false) {
            Ok(()) => {
                fetches.push(Fetch {
                    conn,
                    reply: GetReply::new(keys),
                    sink,
                    outcome: None,
                });
                fetched.push(server);
            }
            Err(failure) => outcomes.push((server, Err(failure))),
        }
    }
    command::read_values_many(&mut fetches);
    for (fetch, server) in fetches.into_iter().zip(fetched) {
        if let Some(outcome) = fetch.outcome {
            outcomes.push((server, outcome));
        }
    }
    outcomes
}
