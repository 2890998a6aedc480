//! One connection to one server: a blocking socket whose every wait is bounded by the server's
//! timeout, every operation by twice that timeout, and a read buffer that the protocol's reply
//! reader consumes in place.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

use super::tls::{explain, TlsClient};
use super::Endpoint;
use crate::protocol::{Event, EventOf, ProtoError, ReplyReader, Span};

/// Why an exchange with a server failed. Every variant leaves the stream in an unknown state:
/// the caller drops the connection so no later command can read a stale reply.
#[derive(Debug)]
pub enum Fail {
    Timeout,
    /// The server closed the connection (`read` returned 0).
    Closed,
    /// A plaintext connection closed (`errno` 0) or reset (ECONNRESET) by the server before
    /// any byte of a reply arrived on it: what a TLS-only server (memcached -Z) does to a
    /// client that speaks plaintext, so the report says so. A connection that has had replies
    /// fails as [`Fail::Closed`] or [`Fail::Io`], since its server plainly speaks plaintext.
    Unheard {
        errno: i32,
    },
    Io(io::Error),
    Proto(ProtoError),
}

impl From<ProtoError> for Fail {
    fn from(e: ProtoError) -> Fail {
        Fail::Proto(e)
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fail::Timeout => f.write_str("no reply within the timeout"),
            Fail::Closed => f.write_str("server unexpectedly closed connection"),
            Fail::Unheard { errno } => write!(
                f,
                "the server {} the connection before any reply: it may require TLS (write it \
                 tls://HOST:PORT)",
                if *errno == 0 { "closed" } else { "reset" }
            ),
            Fail::Io(e) => write!(f, "{e}"),
            Fail::Proto(p) => f.write_str(p.message()),
        }
    }
}

impl Fail {
    fn from_io(e: io::Error) -> Fail {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Fail::Timeout,
            _ => Fail::Io(e),
        }
    }

    /// The same failure again (an I/O error keeps its errno and its text).
    pub fn again(&self) -> Fail {
        match self {
            Fail::Timeout => Fail::Timeout,
            Fail::Closed => Fail::Closed,
            Fail::Unheard { errno } => Fail::Unheard { errno: *errno },
            Fail::Io(e) => Fail::Io(match e.raw_os_error() {
                Some(n) => io::Error::from_raw_os_error(n),
                None => io::Error::new(e.kind(), e.to_string()),
            }),
            Fail::Proto(p) => Fail::Proto(*p),
        }
    }

    /// The errno to show in error reports, 0 when there is none.
    pub fn errno(&self) -> i32 {
        match self {
            Fail::Io(e) => errno_of(e),
            Fail::Unheard { errno } => *errno,
            Fail::Timeout => libc::ETIMEDOUT,
            _ => 0,
        }
    }
}

/// The errno behind a failed system call, for `memcache_err_ctxt.errnum`: a timed-out connect
/// or wait carries no OS error, but is ETIMEDOUT to the program reading the report.
pub fn errno_of(e: &io::Error) -> i32 {
    match e.raw_os_error() {
        Some(n) => n,
        None if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) =>
        {
            libc::ETIMEDOUT
        }
        None => 0,
    }
}

const READ_BUF: usize = 16 * 1024;

pub struct Conn {
    /// Shared with a [`Lent`] read side while a reader waits without the connection.
    sock: Arc<Socket>,
    /// The TLS session over `sock`, None for a plaintext connection. Boxed: rustls's state is
    /// large and a plaintext connection should not carry its room.
    tls: Option<Box<rustls::ClientConnection>>,
    /// A TLS failure met while decrypting what a lent reader brought (see [`Conn::lend`]),
    /// returned by the next read of an event.
    broken: Option<Fail>,
    /// The longest wait for the server, as set on the socket.
    timeout: Duration,
    rbuf: Vec<u8>,
    start: usize,
    end: usize,
    reader: ReplyReader,
    op: OpClock,
    /// Whether the server speaks the meta protocol, once a bulk write has asked (`mn`).
    speaks_meta: Option<bool>,
    /// A byte of the server's has arrived on this connection (see [`Fail::Unheard`]).
    heard: bool,
    /// TLS: the buffer a lent reader collects records in, kept between lends so that a wait
    /// neither allocates nor zeroes one (16 KiB cleared per operation was most of a TLS get's
    /// instructions).
    cipher_buf: Vec<u8>,
}

/// Bounds one operation (a request and its whole reply) to twice the timeout, however a server
/// trickles its bytes: each wait alone is bounded by the socket's timeout, but a server sending
/// one byte just within it would otherwise hold a call for ever.
///
/// The first wait of an operation needs no clock: the socket's timeout bounds it. From the
/// second wait on, the operation has one more timeout in all, counted from that wait. The common
/// reply, which arrives in one read, so costs no clock read at all.
#[derive(Default)]
struct OpClock {
    /// A wait of this operation has already happened.
    waited: bool,
    /// When the operation's time runs out, set at its second wait (or by a connect).
    deadline: Option<Instant>,
    /// Set by connect: the first operation on a new connection keeps the connect's deadline.
    fresh: bool,
}

impl OpClock {
    /// A new operation starts (a request is written on an idle connection).
    #[inline]
    fn begin(&mut self) {
        if !std::mem::take(&mut self.fresh) {
            self.waited = false;
            self.deadline = None;
        }
    }

    /// Called before each wait: None when the socket's timeout alone bounds it, else the time
    /// left to the operation (Timeout when none is).
    #[inline]
    fn before_wait(&mut self, timeout: Duration) -> Result<Option<Duration>, Fail> {
        if !self.waited && self.deadline.is_none() {
            self.waited = true;
            return Ok(None);
        }
        self.time_left(timeout)
    }

    /// The operation's time left from its second wait on (the clock is read only here).
    #[cold]
    fn time_left(&mut self, timeout: Duration) -> Result<Option<Duration>, Fail> {
        let now = Instant::now();
        let deadline = *self.deadline.get_or_insert_with(|| later(now, timeout));
        match deadline.checked_duration_since(now) {
            Some(left) if !left.is_zero() => Ok((left < timeout).then_some(left)),
            _ => Err(Fail::Timeout),
        }
    }
}

/// `now + d`, or as late as the clock can say.
pub fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(10 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

impl Conn {
    /// Connects to the first address of `ep` that accepts within `timeout` each. TCP sockets get
    /// `TCP_NODELAY` (requests are small and latency-bound). Returns the last address's error.
    ///
    /// The connect and the first operation on the connection share a deadline of twice the
    /// timeout from the start of the connect, so a call that connects lasts no longer than one
    /// that does not. All of the addresses together get one timeout.
    pub fn connect(ep: &Endpoint, timeout: Duration) -> io::Result<Conn> {
        let timeout = nonzero(timeout);
        let started = Instant::now();
        let connect_by = later(started, timeout);
        let left = || {
            connect_by
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
        };
        let sock = match ep {
            Endpoint::Unix(path) => {
                let sock = Socket::new(Domain::UNIX, Type::STREAM, None)?;
                sock.connect_timeout(&SockAddr::unix(path)?, timeout)?;
                sock
            }
            Endpoint::Tcp(addrs) => {
                let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
                let mut connected = None;
                for addr in addrs {
                    let attempt = left().and_then(|wait| {
                        Socket::new(Domain::for_address(*addr), Type::STREAM, None)
                            .and_then(|s| s.connect_timeout(&(*addr).into(), wait).map(|_| s))
                    });
                    match attempt {
                        Ok(s) => {
                            connected = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let sock = connected.ok_or(last)?;
                sock.set_nodelay(true)?;
                sock
            }
        };
        sock.set_cloexec(true)?;
        let mut conn = Conn {
            sock: Arc::new(sock),
            tls: None,
            broken: None,
            timeout,
            rbuf: vec![0; READ_BUF],
            start: 0,
            end: 0,
            reader: ReplyReader::new(),
            speaks_meta: None,
            heard: false,
            cipher_buf: Vec::new(),
            op: OpClock {
                waited: true,
                deadline: Some(later(started, 2 * timeout)),
                fresh: true,
            },
        };
        conn.set_timeout(timeout)?;
        Ok(conn)
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// The local address of a TCP connection (None for a unix socket).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.sock.local_addr().ok()?.as_socket()
    }

    /// Bounds every later wait for the socket to accept or deliver bytes.
    pub fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.timeout = nonzero(timeout);
        self.sock.set_read_timeout(Some(self.timeout))?;
        self.sock.set_write_timeout(Some(self.timeout))
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends all of `data`. `MSG_NOSIGNAL`: a server that went away yields EPIPE, never SIGPIPE.
    ///
    /// A request written on an idle connection starts a new operation (see [`OpClock`]). A
    /// request that does not go out in one call has waited: what follows shares one more
    /// timeout.
    pub fn send(&mut self, data: &[u8]) -> Result<(), Fail> {
        self.begin_op();
        if self.tls.is_some() {
            return self.send_tls(&[data]);
        }
        match rustix::net::send(&self.sock, data, rustix::net::SendFlags::NOSIGNAL) {
            Ok(n) if n == data.len() => Ok(()),
            first => self.send_rest(data, first),
        }
    }

    /// The rest of [`send`](Self::send) after a first call that did not send it all.
    #[cold]
    fn send_rest(&mut self, data: &[u8], first: rustix::io::Result<usize>) -> Result<(), Fail> {
        let mut attempt = first;
        let mut sent = 0;
        loop {
            match attempt {
                Ok(0) if !data.is_empty() => return Err(Fail::Closed),
                Ok(n) => sent += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Fail::from_io(e.into())),
            }
            if sent >= data.len() {
                return Ok(());
            }
            self.wait_writable()?;
            attempt =
                rustix::net::send(&self.sock, &data[sent..], rustix::net::SendFlags::NOSIGNAL);
        }
    }

    /// Sends the parts one after the other as one message, with one system call in the common
    /// case (a large value goes out from where it is, not copied into a buffer first).
    pub fn send_parts(&mut self, parts: &[&[u8]]) -> Result<(), Fail> {
        use rustix::net::{sendmsg, SendAncillaryBuffer, SendFlags};
        use std::io::IoSlice;
        self.begin_op();
        if self.tls.is_some() {
            return self.send_tls(parts);
        }
        // A storage command is three parts (line, value, CRLF): no allocation for those.
        let mut on_stack = [IoSlice::new(&[]); 4];
        let mut on_heap;
        let slices: &mut [IoSlice<'_>] = if parts.len() <= on_stack.len() {
            for (slice, part) in on_stack.iter_mut().zip(parts) {
                *slice = IoSlice::new(part);
            }
            &mut on_stack[..parts.len()]
        } else {
            on_heap = parts.iter().map(|p| IoSlice::new(p)).collect::<Vec<_>>();
            &mut on_heap
        };
        let mut rest = slices;
        let mut first = true;
        while !rest.is_empty() {
            if !std::mem::take(&mut first) {
                self.wait_writable()?;
            }
            let mut no_control = SendAncillaryBuffer::default();
            match sendmsg(&self.sock, rest, &mut no_control, SendFlags::NOSIGNAL) {
                Ok(0) => return Err(Fail::Closed),
                Ok(n) => IoSlice::advance_slices(&mut rest, n),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Fail::from_io(e.into())),
            }
        }
        Ok(())
    }

    #[inline]
    fn begin_op(&mut self) {
        if self.is_idle() {
            self.op.begin();
        }
    }

    /// Before a later part of a request is written: the operation has waited, and the next
    /// write may wait only for what is left of its time.
    fn wait_writable(&mut self) -> Result<(), Fail> {
        self.op.waited = true;
        if let Some(left) = self.op.before_wait(self.timeout)? {
            wait_for(&self.sock, rustix::event::PollFlags::OUT, left)?;
        }
        Ok(())
    }

    /// The next event of the reply stream, reading from the socket as needed. Data events borrow
    /// the read buffer: copy them before asking for the next event.
    pub fn next_event(&mut self) -> Result<Event<'_>, Fail> {
        loop {
            if let Some(found) = self.scan()? {
                return Ok(self.consume(found));
            }
            self.fill()?;
        }
    }

    /// The next event among the bytes already received, None when more must be read first
    /// (with [`fill`](Self::fill), once [`wait_readable`] says they are there).
    #[inline]
    pub fn buffered_event(&mut self) -> Result<Option<Event<'_>>, Fail> {
        let Some(found) = self.scan()? else {
            return match self.broken.take() {
                None => Ok(None),
                Some(failure) => Err(failure),
            };
        };
        Ok(Some(self.consume(found)))
    }

    /// Where the next event is in the received bytes, and their length; None if incomplete.
    /// Positions hold no borrow of the buffer, so the caller may refill it after a None.
    #[inline]
    fn scan(&mut self) -> Result<Option<(EventOf<Span>, usize)>, ProtoError> {
        if self.start == self.end {
            return Ok(None);
        }
        self.reader.scan(&self.rbuf[self.start..self.end])
    }

    /// The event [`scan`](Self::scan) found, its bytes taken off the buffer.
    #[inline(always)]
    fn consume(&mut self, (event, used): (EventOf<Span>, usize)) -> Event<'_> {
        let bytes = &self.rbuf[self.start..self.start + used];
        self.start += used;
        event.map(|span| span.of(bytes))
    }

    /// Whether the server answered `mn` (the meta no-op) on this connection: None until asked.
    pub fn speaks_meta(&self) -> Option<bool> {
        self.speaks_meta
    }

    pub fn set_speaks_meta(&mut self, yes: bool) {
        self.speaks_meta = Some(yes);
    }

    /// True when no reply byte is waiting and no value is half read: the stream is at a
    /// command boundary and safe to reuse.
    pub fn is_idle(&self) -> bool {
        self.start == self.end && self.reader.at_boundary() && !self.rbuf.is_empty()
    }

    /// Starts the clock of a new operation whatever the connection holds: a request sent while
    /// others' replies are still on their way has a deadline of its own (see [`Lent::fill`]).
    pub fn restart_clock(&mut self) {
        self.op.begin();
    }

    /// Lends the read side (the buffer, what it holds, and the socket) to a reader that waits
    /// for bytes without holding the connection, so that others may send meanwhile. Until
    /// [`take_back`](Self::take_back), the connection reads nothing and is never idle.
    ///
    /// Over TLS the reader collects records, and [`take_back`](Self::take_back) decrypts them;
    /// bytes rustls already holds decrypted are moved to the buffer first, and then the reader
    /// does not wait at all.
    pub fn lend(&mut self) -> Lent {
        self.make_room();
        let (cipher, ready) = match self.tls.is_some() {
            true => (Some(std::mem::take(&mut self.cipher_buf)), self.drain_tls()),
            false => (None, false),
        };
        Lent {
            sock: Arc::clone(&self.sock),
            buf: std::mem::take(&mut self.rbuf),
            end: self.end,
            timeout: self.timeout,
            cipher,
            cipher_len: 0,
            ready,
            heard: self.heard,
        }
    }

    /// Takes back the read side lent by [`lend`](Self::lend), with what it read.
    pub fn take_back(&mut self, lent: Lent) {
        self.rbuf = lent.buf;
        self.end = lent.end;
        self.heard = lent.heard;
        if let Some(cipher) = lent.cipher {
            if lent.cipher_len > 0 {
                self.take_records(&cipher[..lent.cipher_len]);
            }
            self.cipher_buf = cipher;
        }
    }

    /// Wakes a reader blocked on the lent read side: the connection is being dropped under it.
    /// Never in a child process: the socket is shared with the parent, which still uses it.
    pub fn shut_down(&self) {
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }

    /// Whether the connection may carry the next command: [`is_idle`](Self::is_idle), and
    /// nothing waiting in the socket either (a byte nobody asked for, or the server's end of
    /// stream). One non-blocking peek. A connection that fails this is out of step with its
    /// server, or closed by it: the caller closes it and never reuses it, so a stray reply can
    /// never answer the next command.
    pub fn ready_for_command(&mut self) -> bool {
        if !self.is_idle() {
            return false;
        }
        if self.tls.is_some() {
            return self.tls_ready_for_command();
        }
        use rustix::net::{recv, RecvFlags};
        let mut probe = [0u8; 1];
        loop {
            // rustix makes the system call itself: this runs before every command.
            match recv(
                &self.sock,
                &mut probe,
                RecvFlags::PEEK | RecvFlags::DONTWAIT,
            ) {
                Err(rustix::io::Errno::AGAIN) => return true,
                Err(rustix::io::Errno::INTR) => {}
                // Ok(0): the server closed; Ok(_): unsolicited bytes; Err: a dead socket.
                _ => return false,
            }
        }
    }

    /// Reads what has arrived, waiting for at least one byte: at most the timeout, and not past
    /// the operation's deadline (see [`OpClock`]).
    pub fn fill(&mut self) -> Result<(), Fail> {
        if self.tls.is_none() {
            if let Some(left) = self.op.before_wait(self.timeout)? {
                wait_for(&self.sock, rustix::event::PollFlags::IN, left)?;
            }
        }
        self.make_room();
        if self.tls.is_some() {
            return self.fill_tls();
        }
        read_plain(&self.sock, &mut self.rbuf, &mut self.end, &mut self.heard)
    }

    /// Room at the end of the buffer for the next read.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.rbuf.len() {
            // Only a partial line can be pending here (data is consumed as it arrives), and a
            // line is at most MAX_LINE_LEN, far below the buffer size: move it to the front.
            self.rbuf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }
}

/// [`read_into`] on a plaintext connection: `heard` records that the server has sent a byte; a
/// close or a reset before that is [`Fail::Unheard`].
fn read_plain(
    sock: &Socket,
    buf: &mut [u8],
    end: &mut usize,
    heard: &mut bool,
) -> Result<(), Fail> {
    match read_into(sock, buf, end) {
        Ok(()) => {
            *heard = true;
            Ok(())
        }
        Err(Fail::Closed) if !*heard => Err(Fail::Unheard { errno: 0 }),
        Err(Fail::Io(e)) if !*heard && e.raw_os_error() == Some(libc::ECONNRESET) => {
            Err(Fail::Unheard {
                errno: libc::ECONNRESET,
            })
        }
        Err(e) => Err(e),
    }
}

/// One read of what has arrived into `buf[*end..]`, waiting as the socket's timeout allows.
fn read_into(sock: &Socket, buf: &mut [u8], end: &mut usize) -> Result<(), Fail> {
    loop {
        // rustix makes the system call itself (no libc wrapper, no io::Error on the way).
        match rustix::io::read(sock, &mut buf[*end..]) {
            Ok(0) => return Err(Fail::Closed),
            Ok(n) => {
                *end += n;
                return Ok(());
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Fail::from_io(e.into())),
        }
    }
}

/// A connection's read side, lent to the one caller that waits for the next reply bytes while
/// the connection itself stays free for others to send on (see [`Conn::lend`]).
pub struct Lent {
    sock: Arc<Socket>,
    buf: Vec<u8>,
    end: usize,
    timeout: Duration,
    /// TLS: the records read (the first `cipher_len` bytes), for the connection to decrypt
    /// when it takes them back.
    cipher: Option<Vec<u8>>,
    cipher_len: usize,
    /// Decrypted bytes were moved to `buf` at lending: nothing to wait for.
    ready: bool,
    /// The connection's [`Conn::heard`], given back with the read side.
    heard: bool,
}

impl Lent {
    /// Reads what has arrived, waiting at most `left` (the waiting caller's own deadline) and
    /// never longer than the socket's timeout.
    pub fn fill(&mut self, left: Duration) -> Result<(), Fail> {
        if std::mem::take(&mut self.ready) {
            return Ok(());
        }
        if left < self.timeout {
            wait_for(&self.sock, rustix::event::PollFlags::IN, left)?;
        }
        match &mut self.cipher {
            None => read_plain(&self.sock, &mut self.buf, &mut self.end, &mut self.heard),
            Some(cipher) => {
                // Room for a read: grown (and zeroed) only when the records fill what it has.
                if cipher.len() - self.cipher_len < READ_BUF / 4 {
                    cipher.resize(self.cipher_len + READ_BUF, 0);
                }
                read_into(&self.sock, cipher, &mut self.cipher_len)
            }
        }
    }
}

/// TLS: the same stream of reply bytes, decrypted by rustls from what the socket delivers, with
/// the same waits and deadlines as a plaintext connection. Every rustls failure is a [`Fail`]
/// whose message says it is TLS's.
impl Conn {
    /// Runs the TLS handshake on a new connection, within the deadline the connect started
    /// (the handshake and the first operation share it, as a plaintext connect and its first
    /// operation do). On failure the connection is unusable: the caller drops it.
    pub fn start_tls(&mut self, client: &TlsClient, host: &str) -> Result<(), Fail> {
        self.handshake(client, host).map_err(|e| {
            let (kind, why) = match e {
                // rustls's own words already say TLS.
                Fail::Io(e) if e.kind() == io::ErrorKind::InvalidData => return Fail::Io(e),
                Fail::Closed | Fail::Unheard { .. } => (
                    io::ErrorKind::ConnectionAborted,
                    "the server closed the connection".to_owned(),
                ),
                Fail::Timeout => (
                    io::ErrorKind::TimedOut,
                    "no answer within the timeout".into(),
                ),
                Fail::Io(e) => (e.kind(), e.to_string()),
                Fail::Proto(p) => (io::ErrorKind::InvalidData, p.message().to_owned()),
            };
            Fail::Io(io::Error::new(kind, format!("TLS handshake: {why}")))
        })
    }

    fn handshake(&mut self, client: &TlsClient, host: &str) -> Result<(), Fail> {
        let session = client
            .start(host)
            .map_err(|e| Fail::Io(io::Error::new(io::ErrorKind::InvalidInput, e.to_string())))?;
        let tls = self.tls.insert(Box::new(session));
        while tls.is_handshaking() {
            if tls.wants_write() {
                flush_tls(tls, &self.sock, &mut self.op, self.timeout)?;
                continue;
            }
            if let Some(left) = self.op.before_wait(self.timeout)? {
                wait_for(&self.sock, rustix::event::PollFlags::IN, left)?;
            }
            match tls.read_tls(&mut SockIo(&self.sock)) {
                Ok(0) => return Err(Fail::Closed),
                Ok(_) => {}
                Err(e) => return Err(Fail::from_io(e)),
            }
            if let Err(e) = tls.process_new_packets() {
                // Tell the server why (an alert), if it still listens; the failure is ours to
                // report whatever happens to that.
                let _ = tls.write_tls(&mut SockIo(&self.sock));
                return Err(tls_fail(&e));
            }
        }
        // The client's last handshake message goes out now, not with the first request.
        flush_tls(tls, &self.sock, &mut self.op, self.timeout)
    }

    /// Moves what rustls holds decrypted to the buffer (as much as fits); true when that moved
    /// bytes or found the stream's end or an error (kept for the next read of an event).
    fn drain_tls(&mut self) -> bool {
        use std::io::Read;
        let Some(tls) = self.tls.as_mut() else {
            return false;
        };
        let failure = match tls.reader().read(&mut self.rbuf[self.end..]) {
            Ok(0) => Fail::Closed,
            Ok(n) => {
                self.end += n;
                return true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Fail::Closed,
            Err(e) => Fail::Io(e),
        };
        self.broken = Some(failure);
        true
    }

    /// Decrypts records a lent reader collected, into the buffer; a failure is kept for the
    /// next read of an event.
    fn take_records(&mut self, mut cipher: &[u8]) {
        let Some(tls) = self.tls.as_mut() else {
            return;
        };
        while !cipher.is_empty() {
            // rustls takes what its buffer has room for; decrypting makes room again.
            if tls.read_tls(&mut cipher).is_err() {
                self.broken = Some(Fail::Io(io::Error::other("TLS: records not taken")));
                return;
            }
            if let Err(e) = tls.process_new_packets() {
                let _ = tls.write_tls(&mut SockIo(&self.sock));
                self.broken = Some(tls_fail(&e));
                return;
            }
        }
        self.make_room();
        self.drain_tls();
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// How the TLS handshake went: `Some(true)` when it resumed an earlier session (no
    /// certificates exchanged), `Some(false)` for a full handshake, None without TLS.
    pub fn tls_resumed(&self) -> Option<bool> {
        let kind = self.tls.as_ref()?.handshake_kind()?;
        Some(kind == rustls::HandshakeKind::Resumed)
    }

    /// [`send`](Self::send) and [`send_parts`](Self::send_parts) over TLS: the parts are
    /// encrypted together and sent, a later write waiting as a plaintext one does.
    fn send_tls(&mut self, parts: &[&[u8]]) -> Result<(), Fail> {
        use std::io::Write;
        let tls = self.tls.as_mut().expect("a TLS connection");
        for part in parts {
            // The buffer has no limit (see TlsClient::start): the writer takes every byte.
            tls.writer().write_all(part).map_err(Fail::from_io)?;
        }
        flush_tls(tls, &self.sock, &mut self.op, self.timeout)
    }

    /// [`fill`](Self::fill) over TLS: decrypted bytes when rustls holds some, else one wait and
    /// one read of records, as often as it takes for a whole record to arrive.
    fn fill_tls(&mut self) -> Result<(), Fail> {
        use std::io::Read;
        if let Some(failure) = self.broken.take() {
            return Err(failure);
        }
        let tls = self.tls.as_mut().expect("a TLS connection");
        loop {
            match tls.reader().read(&mut self.rbuf[self.end..]) {
                // close_notify: the server ended the session.
                Ok(0) => return Err(Fail::Closed),
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The peer closed the socket without close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(Fail::Closed),
                Err(e) => return Err(Fail::Io(e)),
            }
            if let Some(left) = self.op.before_wait(self.timeout)? {
                wait_for(&self.sock, rustix::event::PollFlags::IN, left)?;
            }
            match tls.read_tls(&mut SockIo(&self.sock)) {
                Ok(0) => return Err(Fail::Closed),
                Ok(_) => {}
                Err(e) => return Err(Fail::from_io(e)),
            }
            if let Err(e) = tls.process_new_packets() {
                let _ = tls.write_tls(&mut SockIo(&self.sock));
                return Err(tls_fail(&e));
            }
            // A key update asks for an answer before more data.
            if tls.wants_write() {
                flush_tls(tls, &self.sock, &mut self.op, self.timeout)?;
            }
        }
    }

    /// [`ready_for_command`](Self::ready_for_command) over TLS. A server sends records of its
    /// own between replies (TLS 1.3 session tickets after the handshake): they are taken in
    /// here, and only decrypted bytes nobody asked for, a close or an error make the
    /// connection unfit. Bounded: a server that keeps sending is out of step.
    fn tls_ready_for_command(&mut self) -> bool {
        use rustix::net::{recv, RecvFlags};
        let tls = self.tls.as_mut().expect("a TLS connection");
        for _ in 0..16 {
            match tls.process_new_packets() {
                Ok(state) if state.plaintext_bytes_to_read() == 0 && !state.peer_has_closed() => {}
                _ => return false,
            }
            let mut probe = [0u8; 1];
            match recv(
                &self.sock,
                &mut probe,
                RecvFlags::PEEK | RecvFlags::DONTWAIT,
            ) {
                Err(rustix::io::Errno::AGAIN) => return true,
                Err(rustix::io::Errno::INTR) => continue,
                Ok((n, _)) if n > 0 => {}
                _ => return false,
            }
            // Bytes are there: this read does not wait.
            if !matches!(tls.read_tls(&mut SockIo(&self.sock)), Ok(n) if n > 0) {
                return false;
            }
        }
        false
    }
}

/// Sends what rustls has encrypted. The first write is bounded by the socket's timeout, a later
/// one by the operation's time left, as [`Conn::send`]'s are.
fn flush_tls(
    tls: &mut rustls::ClientConnection,
    sock: &Socket,
    op: &mut OpClock,
    timeout: Duration,
) -> Result<(), Fail> {
    let mut first = true;
    while tls.wants_write() {
        if !std::mem::take(&mut first) {
            op.waited = true;
            if let Some(left) = op.before_wait(timeout)? {
                wait_for(sock, rustix::event::PollFlags::OUT, left)?;
            }
        }
        match tls.write_tls(&mut SockIo(sock)) {
            Ok(0) => return Err(Fail::Closed),
            Ok(_) => {}
            Err(e) => return Err(Fail::from_io(e)),
        }
    }
    Ok(())
}

fn tls_fail(e: &rustls::Error) -> Fail {
    Fail::Io(io::Error::new(io::ErrorKind::InvalidData, explain(e)))
}

/// The socket as rustls reads and writes it: no SIGPIPE, interrupted calls retried.
struct SockIo<'a>(&'a Socket);

impl io::Read for SockIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match rustix::io::read(self.0, &mut *buf) {
                Err(rustix::io::Errno::INTR) => {}
                other => return other.map_err(Into::into),
            }
        }
    }
}

impl io::Write for SockIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match rustix::net::send(self.0, buf, rustix::net::SendFlags::NOSIGNAL) {
                Err(rustix::io::Errno::INTR) => {}
                other => return other.map_err(Into::into),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Waits at most `left` for `sock` to become ready for `flags`; Timeout if it does not.
fn wait_for(sock: &Socket, flags: rustix::event::PollFlags, left: Duration) -> Result<(), Fail> {
    let mut ready = [false];
    poll_all(&[sock], flags, left, &mut ready)?;
    if ready[0] {
        Ok(())
    } else {
        Err(Fail::Timeout)
    }
}

/// Waits until one of `conns` has bytes (or an end or error) to read, at most `timeout`, and
/// marks which in `ready`. None ready means the time ran out.
pub fn wait_readable(conns: &[&Conn], timeout: Duration, ready: &mut [bool]) -> Result<(), Fail> {
    let socks: Vec<&Socket> = conns.iter().map(|c| &*c.sock).collect();
    poll_all(&socks, rustix::event::PollFlags::IN, timeout, ready)
}

/// One poll() over `socks` for `flags`, at most `timeout`; marks which are ready.
fn poll_all(
    socks: &[&Socket],
    flags: rustix::event::PollFlags,
    timeout: Duration,
    ready: &mut [bool],
) -> Result<(), Fail> {
    use rustix::event::{poll, PollFd, Timespec};
    let mut fds: Vec<PollFd<'_>> = socks.iter().map(|s| PollFd::new(*s, flags)).collect();
    let wait = Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: timeout.subsec_nanos().into(),
    };
    loop {
        match poll(&mut fds, Some(&wait)) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Fail::Io(e.into())),
        }
    }
    for (r, fd) in ready.iter_mut().zip(&fds) {
        // Hang-up and error count as ready: the read that follows reports them.
        *r = !fd.revents().is_empty();
    }
    Ok(())
}

/// A zero timeout would mean "wait forever" to setsockopt; the shortest real wait is 1 µs.
fn nonzero(timeout: Duration) -> Duration {
    timeout.max(Duration::from_micros(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Reply;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread;

    fn endpoint(listener: &TcpListener) -> Endpoint {
        Endpoint::Tcp(vec![listener.local_addr().unwrap()])
    }

    #[test]
    fn reads_replies_that_arrive_in_pieces() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ep = endpoint(&listener);
        let server = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 64];
            let n = s.read(&mut req).unwrap();
            assert_eq!(&req[..n], b"get k\r\n");
            for piece in [&b"VAL"[..], b"UE k 3 5\r\nhel", b"lo\r", b"\nEND\r\n"] {
                s.write_all(piece).unwrap();
                s.flush().unwrap();
                thread::sleep(Duration::from_millis(5));
            }
        });
        let mut conn = Conn::connect(&ep, Duration::from_secs(2)).unwrap();
        conn.send(b"get k\r\n").unwrap();
        let mut value = Vec::new();
        // On a slow machine the pieces may arrive together and make one event.
        let mut whole = match conn.next_event().unwrap() {
            Event::Reply(Reply::Value {
                key: b"k",
                flags: 3,
                bytes: 5,
                cas: None,
            }) => false,
            Event::Value {
                key: b"k",
                flags: 3,
                cas: None,
                data,
            } => {
                value.extend_from_slice(data);
                true
            }
            other => panic!("unexpected {other:?}"),
        };
        while !whole {
            match conn.next_event().unwrap() {
                Event::Data(d) => value.extend_from_slice(d),
                Event::DataLast(d) => {
                    value.extend_from_slice(d);
                    whole = true;
                }
                Event::DataEnd => whole = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(value, b"hello");
        assert!(matches!(
            conn.next_event().unwrap(),
            Event::Reply(Reply::End)
        ));
        assert!(conn.is_idle());
        server.join().unwrap();
    }

    #[test]
    fn a_silent_server_times_out_and_a_closed_one_is_reported() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ep = endpoint(&listener);
        let mut conn = Conn::connect(&ep, Duration::from_millis(50)).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        conn.send(b"get k\r\n").unwrap();
        assert!(matches!(conn.next_event(), Err(Fail::Timeout)));
        // Read the request so the close is an orderly FIN, not a reset for unread data.
        peer.read_exact(&mut [0u8; 7]).unwrap();
        drop(peer);
        // Closed before any byte of a reply: what a TLS-only server does to plaintext.
        assert!(matches!(conn.next_event(), Err(Fail::Unheard { errno: 0 })));
        // Writing to the closed peer must fail with an error, never kill us with SIGPIPE.
        let mut failed = false;
        for _ in 0..100 {
            if conn.send(&[b'x'; 4096]).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }

    /// A connection that has had a reply and is then closed fails as an ordinary close, with no
    /// word of TLS: only a close before any reply byte is [`Fail::Unheard`].
    #[test]
    fn a_close_after_a_reply_is_an_ordinary_close() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ep = endpoint(&listener);
        let mut conn = Conn::connect(&ep, Duration::from_secs(5)).unwrap();
        let (mut peer, _) = listener.accept().unwrap();
        conn.send(b"get k\r\n").unwrap();
        peer.read_exact(&mut [0u8; 7]).unwrap();
        peer.write_all(b"END\r\n").unwrap();
        assert!(matches!(conn.next_event(), Ok(Event::Reply(Reply::End))));
        conn.send(b"get k\r\n").unwrap();
        peer.read_exact(&mut [0u8; 7]).unwrap();
        drop(peer);
        let failure = conn.next_event().expect_err("a failure");
        assert!(matches!(failure, Fail::Closed), "{failure:?}");
        assert!(!failure.to_string().contains("TLS"), "{failure}");
    }

    /// A server that sends one byte just within every timeout cannot hold an operation for
    /// longer than twice the timeout (issue 12, fault 5).
    #[test]
    fn a_trickling_server_cannot_stretch_an_operation() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let ep = endpoint(&listener);
        let server = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 64];
            let _ = s.read(&mut req);
            s.write_all(b"VALUE k 0 200\r\n").unwrap();
            // 200 bytes, one every 40 ms: 8 s in all, each gap within the 100 ms timeout.
            for _ in 0..200 {
                if s.write_all(b"x").is_err() {
                    break;
                }
                thread::sleep(Duration::from_millis(40));
            }
        });
        let timeout = Duration::from_millis(100);
        let mut conn = Conn::connect(&ep, timeout).unwrap();
        // The first operation on a connection shares the connect's deadline; use the second.
        conn.op.begin();
        let started = Instant::now();
        conn.send(b"get k\r\n").unwrap();
        let failure = loop {
            match conn.next_event() {
                Ok(Event::Reply(Reply::End)) => panic!("the value cannot be complete"),
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        let took = started.elapsed();
        assert!(matches!(failure, Fail::Timeout), "{failure}");
        // 2 x 100 ms and scheduling; far below the 8 s the server would take.
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        drop(conn);
        server.join().unwrap();
    }

    #[test]
    fn refused_connection_is_an_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(Conn::connect(&Endpoint::Tcp(vec![port]), Duration::from_millis(200)).is_err());
    }
}
