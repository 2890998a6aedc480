//! Many callers, one connection: the requests of threads sharing a front end go out one after
//! the other on the server's one connection without waiting for each other's replies, and the
//! replies, which the server sends in request order, are read in that order.
//!
//! No thread of the library's own: the callers take turns at the read side. The caller whose
//! request is the oldest unanswered one holds the turn; it waits for bytes without the front
//! end's lock (others keep sending meanwhile), and one read brings whatever replies have
//! arrived. It takes its own reply off the buffer, passes the turn to the next caller and
//! returns; the next caller finds its reply already received, or waits for it in turn. Each
//! caller parses its own reply in its own thread, so what a front end does with a value (a C
//! program's allocator) runs in the thread that asked for it.
//!
//! A connection that fails fails every caller waiting on it, each with the failure (nothing is
//! re-sent); a caller whose deadline passes while it waits fails the connection as a timeout
//! would. Bytes that arrive when no reply is awaited close the connection as before.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use super::{Servers, Slot};
use crate::command::{Failure, Pending};
use crate::conn::{later, Conn, Fail};

/// A front end whose callers may share a connection: it can release its lock while a caller
/// waits, and find a server again afterwards (its list may have changed meanwhile).
pub trait Shared: Servers {
    /// What names a server across a release of the lock.
    type Id: Copy + PartialEq;

    /// Runs `wait` with the front end's lock released, then takes the lock again.
    fn unlocked<R>(&mut self, wait: impl FnOnce() -> R) -> R;

    /// `server`'s slot and the front end's write buffer.
    fn slot(&mut self, server: usize) -> (&mut Slot, &mut Vec<u8>);

    fn id(&self, server: usize) -> Self::Id;

    /// Where the server named `id` is now, if it is still there.
    fn find(&mut self, id: Self::Id) -> Option<usize>;

    /// A failure of a connection that another caller already closed, reported for one more
    /// caller whose reply it lost (`server`: where its server is now, if still there).
    fn lost(&mut self, server: Option<usize>, failure: Failure) -> Self::Error;

    /// Unparks `thread` once the front end's lock is released, at the latest when the call
    /// ends. Woken under the lock, a caller on the same CPU preempts the holder only to find
    /// the lock taken, and both lose a context switch (measured: one sched_yield every 1.5
    /// operations of 8 threads on one CPU). A wake that never comes costs only time: the
    /// caller's turn is already marked, and it looks again when its wait times out.
    fn unpark_unlocked(&mut self, thread: Thread);
}

/// One caller's place in a connection's queue of awaited replies.
struct Ticket {
    thread: Thread,
    state: AtomicU8,
    /// Why the connection was lost, once `state` is LOST.
    failure: Mutex<Option<Failure>>,
}

const WAITING: u8 = 0;
/// The caller's reply is the next one on the connection: it reads.
const TURN: u8 = 1;
const LOST: u8 = 2;

impl Ticket {
    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    fn wake(&self, state: u8) {
        self.state.store(state, Ordering::Release);
        self.thread.unpark();
    }

    fn lose(&self, failure: Failure) {
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(failure);
        self.wake(LOST);
    }

    fn take_failure(&self) -> Failure {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or(Failure::Recv(Fail::Closed))
    }
}

/// The callers awaiting replies on one connection, oldest first.
#[derive(Default)]
pub struct Pipe {
    /// A caller that found the queue empty holds the turn from the start and is never woken: it
    /// takes no ticket (None, only ever at the front), which spares the common call, alone on
    /// its connection, an allocation and a look at its thread.
    queue: VecDeque<Option<Arc<Ticket>>>,
    /// Why a connection was lost while its front caller, which has no ticket to be told with,
    /// had it (the connection's number, the failure).
    front_loss: Option<(u64, Failure)>,
    /// The caller holding the turn is taking its reply off the buffer. Only ever seen set by
    /// another holder of the front end's lock when that caller left without returning (a C
    /// program's allocator that jumped out of the call): its reply is half read.
    parsing: bool,
    /// The caller holding the turn waits for bytes with the read side lent: dropping the
    /// connection must wake it. The process it waits in: a child that inherited this state
    /// must not shut down the socket its parent still reads.
    lent: Option<u32>,
}

impl Pipe {
    /// Whether replies are awaited.
    #[inline]
    pub fn busy(&self) -> bool {
        !self.queue.is_empty()
    }

    /// A reply was left half read by a caller that never came back: the stream is lost.
    pub fn abandoned(&self) -> bool {
        self.parsing
    }

    /// Whether a reader of this process waits on the lent read side (see [`Conn::lend`]).
    pub fn lent(&self) -> bool {
        self.lent.is_some_and(|pid| pid == crate::process::pid())
    }

    /// Connection `conn_id` is gone: every waiting caller gets `failure` (or "closed").
    pub fn lose_all(&mut self, conn_id: u64, failure: Option<&Failure>) {
        let failure = || failure.map_or(Failure::Recv(Fail::Closed), Failure::again);
        for ticket in self.queue.drain(..) {
            match ticket {
                Some(ticket) => ticket.lose(failure()),
                None => self.front_loss = Some((conn_id, failure())),
            }
        }
        self.parsing = false;
        self.lent = None;
    }

    /// Forgets the callers without a word (a child process: they are its parent's threads).
    pub fn forget(&mut self) {
        self.queue.clear();
        self.front_loss = None;
        self.parsing = false;
        self.lent = None;
    }

    /// The caller holding the turn has its reply: the next one gets the turn, and its thread
    /// is returned to be unparked (see [`Shared::unpark_unlocked`]).
    #[must_use]
    fn pass_turn(&mut self) -> Option<Thread> {
        self.queue.pop_front();
        let next = self.queue.front()?.as_ref()?;
        next.state.store(TURN, Ordering::Release);
        Some(next.thread.clone())
    }

    /// Why connection `conn_id` was lost under its ticketless front caller, if it was.
    fn take_front_loss(&mut self, conn_id: u64) -> Option<Failure> {
        match self.front_loss.take() {
            Some((id, failure)) if id == conn_id => Some(failure),
            other => {
                self.front_loss = other;
                None
            }
        }
    }
}

/// A caller's time: twice the connection's timeout in all, read off the clock only when a wait
/// needs it. The common call (its turn at once, its reply in one read) never reads the clock.
struct Clock {
    timeout: Duration,
    /// Set at the first wait for the turn (twice the timeout from then), or at the second read
    /// (one timeout from then: the first read was bounded by the socket's timeout alone).
    deadline: Option<Instant>,
    read: bool,
}

impl Clock {
    fn new(timeout: Duration) -> Clock {
        Clock {
            timeout,
            deadline: None,
            read: false,
        }
    }

    /// How long the caller may still wait for its turn.
    fn left_to_wait(&mut self) -> Duration {
        let now = Instant::now();
        let deadline = *self
            .deadline
            .get_or_insert_with(|| later(now, 2 * self.timeout));
        deadline.saturating_duration_since(now)
    }

    /// How long the caller's next read may wait.
    #[inline]
    fn left_to_read(&mut self) -> Duration {
        if !std::mem::replace(&mut self.read, true) && self.deadline.is_none() {
            return self.timeout;
        }
        let now = Instant::now();
        let deadline = *self
            .deadline
            .get_or_insert_with(|| later(now, self.timeout));
        deadline.saturating_duration_since(now)
    }
}

/// Each connection a process makes gets its own number, so a caller that released the lock
/// knows its connection again, whatever happened to the list meanwhile.
pub fn next_conn_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Sends `request` on `server`'s open connection, queued behind the requests of other callers
/// still awaiting their replies, and reads `reply` in its turn (see the module's notes). Waits
/// at most twice the connection's timeout in all. A failure closes the connection for every
/// caller on it; each reports it once.
pub fn pipelined<S: Shared, P: Pending>(
    servers: &mut S,
    server: usize,
    request: impl FnOnce(&mut Conn, &mut Vec<u8>) -> Result<(), Failure>,
    mut reply: P,
) -> Result<P::Output, S::Error> {
    let id = servers.id(server);
    let (slot, wbuf) = servers.slot(server);
    let conn_id = slot.conn_id();
    let Some(conn) = slot.conn.as_mut() else {
        return Err(fail(servers, server, Failure::Send(Fail::Closed)));
    };
    let mut clock = Clock::new(conn.timeout());
    conn.restart_clock();
    wbuf.clear();
    if let Err(failure) = request(conn, wbuf) {
        return Err(fail(servers, server, failure));
    }
    let pipe = &mut slot.pipe;
    let ticket = match pipe.queue.is_empty() {
        true => None,
        false => Some(Arc::new(Ticket {
            thread: thread::current(),
            state: AtomicU8::new(WAITING),
            failure: Mutex::new(None),
        })),
    };
    pipe.queue.push_back(ticket.clone());
    loop {
        match ticket.as_ref().map_or(TURN, |t| t.state()) {
            LOST => return Err(lost(servers, id, conn_id, ticket.as_deref())),
            WAITING => {
                let left = clock.left_to_wait();
                if left.is_zero() {
                    // Still not its turn at its deadline: the replies before it are late.
                    return Err(match find_conn(servers, id, conn_id) {
                        Some(at) => fail(servers, at, Failure::Recv(Fail::Timeout)),
                        None => lost(servers, id, conn_id, ticket.as_deref()),
                    });
                }
                servers.unlocked(|| thread::park_timeout(left));
            }
            _ => {
                let Some(at) = find_conn(servers, id, conn_id) else {
                    return Err(lost(servers, id, conn_id, ticket.as_deref()));
                };
                let (slot, _) = servers.slot(at);
                let pipe = &mut slot.pipe;
                let Some(conn) = slot.conn.as_mut() else {
                    unreachable!("find_conn found the connection");
                };
                pipe.parsing = true;
                let got = reply.advance(conn);
                pipe.parsing = false;
                match got {
                    Ok(Some(value)) => {
                        let next = pipe.pass_turn();
                        if !pipe.busy() {
                            // Nobody awaits a reply: bytes beyond this one were never asked for.
                            slot.replied();
                        }
                        if let Some(next) = next {
                            servers.unpark_unlocked(next);
                        }
                        return Ok(value);
                    }
                    Err(failure) => return Err(fail(servers, at, failure)),
                    Ok(None) => {}
                }
                let left = clock.left_to_read();
                if left.is_zero() {
                    return Err(fail(servers, at, Failure::Recv(Fail::Timeout)));
                }
                let mut lent = conn.lend();
                pipe.lent = Some(crate::process::pid());
                let filled = servers.unlocked(|| lent.fill(left));
                // Dropped meanwhile (and this caller told so): the read side goes with it.
                if let Some(at) = find_conn(servers, id, conn_id) {
                    let (slot, _) = servers.slot(at);
                    slot.pipe.lent = None;
                    if let Some(conn) = slot.conn.as_mut() {
                        conn.take_back(lent);
                    }
                    if let Err(failure) = filled {
                        return Err(fail(servers, at, failure.into()));
                    }
                }
            }
        }
    }
}

/// The error of a caller whose connection another caller closed: the failure it was told
/// through its ticket, or left for it as the ticketless front caller.
fn lost<S: Shared>(servers: &mut S, id: S::Id, conn_id: u64, ticket: Option<&Ticket>) -> S::Error {
    let at = servers.find(id);
    let failure = match (ticket, at) {
        (Some(ticket), _) => Some(ticket.take_failure()),
        (None, Some(at)) => servers.slot(at).0.pipe.take_front_loss(conn_id),
        (None, None) => None,
    };
    servers.lost(at, failure.unwrap_or(Failure::Recv(Fail::Closed)))
}

/// Where connection `conn_id` of the server named `id` is now: None once it was closed.
fn find_conn<S: Shared>(servers: &mut S, id: S::Id, conn_id: u64) -> Option<usize> {
    let at = servers.find(id)?;
    (servers.slot(at).0.conn_id() == conn_id).then_some(at)
}

/// Fails `server`'s connection with `failure`: closed (and down after a timeout) and reported
/// through the front end; every other caller waiting on it is told.
fn fail<S: Shared>(servers: &mut S, server: usize, failure: Failure) -> S::Error {
    match servers.settle(server, Err(failure)) {
        Err(e) => e,
        Ok(()) => unreachable!("settle reports a failure as an error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket() -> Arc<Ticket> {
        Arc::new(Ticket {
            thread: thread::current(),
            state: AtomicU8::new(WAITING),
            failure: Mutex::new(None),
        })
    }

    #[test]
    fn a_lost_connection_tells_the_ticketless_front_caller_and_each_ticket() {
        let mut pipe = Pipe::default();
        let second = ticket();
        pipe.queue.push_back(None);
        pipe.queue.push_back(Some(Arc::clone(&second)));
        pipe.lose_all(7, Some(&Failure::Unexpected("stray bytes".into())));
        assert!(!pipe.busy());
        assert_eq!(second.state(), LOST);
        assert!(matches!(second.take_failure(), Failure::Unexpected(w) if w == "stray bytes"));
        // Only the caller of that connection takes the front caller's failure, and only once.
        assert!(pipe.take_front_loss(8).is_none());
        assert!(matches!(
            pipe.take_front_loss(7),
            Some(Failure::Unexpected(_))
        ));
        assert!(pipe.take_front_loss(7).is_none());
    }

    #[test]
    fn the_front_caller_passes_the_turn_to_the_next_ticket() {
        let mut pipe = Pipe::default();
        let second = ticket();
        pipe.queue.push_back(None);
        pipe.queue.push_back(Some(Arc::clone(&second)));
        let woken = pipe.pass_turn().expect("the next caller's thread");
        assert_eq!(woken.id(), second.thread.id());
        assert_eq!(second.state(), TURN);
        assert!(pipe.busy());
        // The last caller passes the turn to nobody.
        assert!(pipe.pass_turn().is_none());
        assert!(!pipe.busy());
    }

    #[test]
    fn the_clock_lets_the_first_read_go_by_the_socket_timeout_alone() {
        let timeout = Duration::from_secs(5);
        let mut clock = Clock::new(timeout);
        assert_eq!(clock.left_to_read(), timeout);
        assert!(clock.deadline.is_none(), "the first read reads no clock");
        let second = clock.left_to_read();
        assert!(second <= timeout && second > Duration::from_secs(4));
        let mut waiter = Clock::new(timeout);
        assert!(
            waiter.left_to_wait() > timeout,
            "a waiting caller has twice the timeout"
        );
        assert!(waiter.left_to_read() <= 2 * timeout);
    }
}
