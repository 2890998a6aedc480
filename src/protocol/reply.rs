//! Reply parsing. Server replies are untrusted: every length is bounded and anything that is not
//! exactly the protocol is a [`ProtoError`], after which the caller must drop the connection.

/// Longest reply line accepted (a `VALUE` line with a 250-byte key is about 310 bytes; `STAT`
/// lines are shorter). A longer line means the stream is not memcached's.
pub const MAX_LINE_LEN: usize = 4096;

/// Largest value accepted in a `VALUE` line: memcached's own ceiling (`-I 1024m`).
pub const MAX_VALUE_LEN: usize = 1 << 30;

/// One reply line. `S` is how it refers to the bytes of the line: slices of them ([`Reply`]),
/// or [`Span`]s, positions that hold no borrow, which lets a connection parse inside its read
/// buffer and still refill that buffer when the reply is incomplete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyOf<S> {
    /// `VALUE <key> <flags> <bytes>[ <cas>]`: `bytes` of data and a CRLF follow.
    Value {
        key: S,
        flags: u32,
        bytes: usize,
        cas: Option<u64>,
    },
    End,
    Stored,
    NotStored,
    Exists,
    NotFound,
    Deleted,
    Touched,
    Ok,
    /// The new value after `incr`/`decr`.
    Number(u64),
    Stat {
        name: S,
        value: S,
    },
    Version(S),
    Error,
    ClientError(S),
    ServerError(S),
    /// A meta protocol status line (`HD`, `NS`, `EX`, `NF`, `EN`, `MN`) and its `O` flag, the
    /// opaque token of the request it answers (other flags are not asked for, and skipped).
    Meta {
        code: MetaCode,
        opaque: Option<u64>,
    },
}

/// The status of a meta reply line without a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaCode {
    /// Done (a quiet command says so only where asked: a touch's hit).
    Hd,
    /// Not stored (add of a key that exists, replace of one that does not).
    Ns,
    /// Exists (a cas mismatch).
    Ex,
    /// Not found.
    Nf,
    /// A miss of a meta get (quiet ones never send it).
    En,
    /// The answer to `mn`: every request before it has been answered.
    Mn,
}

impl MetaCode {
    fn text(self) -> &'static str {
        match self {
            MetaCode::Hd => "HD",
            MetaCode::Ns => "NS",
            MetaCode::Ex => "EX",
            MetaCode::Nf => "NF",
            MetaCode::En => "EN",
            MetaCode::Mn => "MN",
        }
    }
}

/// A reply line borrowing from the bytes it was parsed from.
pub type Reply<'a> = ReplyOf<&'a [u8]>;

/// Where some bytes of a reply are, relative to the buffer given to [`ReplyReader::scan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    /// The position of `part`, a subslice of `whole`.
    fn within(whole: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - whole.as_ptr() as usize;
        Span {
            start,
            end: start + part.len(),
        }
    }

    #[inline(always)]
    pub fn of(self, buf: &[u8]) -> &[u8] {
        &buf[self.start..self.end]
    }
}

impl<S> ReplyOf<S> {
    /// The same reply with each of its byte references converted by `f`.
    #[inline(always)]
    pub fn map<T>(self, mut f: impl FnMut(S) -> T) -> ReplyOf<T> {
        match self {
            ReplyOf::Value {
                key,
                flags,
                bytes,
                cas,
            } => ReplyOf::Value {
                key: f(key),
                flags,
                bytes,
                cas,
            },
            ReplyOf::End => ReplyOf::End,
            ReplyOf::Stored => ReplyOf::Stored,
            ReplyOf::NotStored => ReplyOf::NotStored,
            ReplyOf::Exists => ReplyOf::Exists,
            ReplyOf::NotFound => ReplyOf::NotFound,
            ReplyOf::Deleted => ReplyOf::Deleted,
            ReplyOf::Touched => ReplyOf::Touched,
            ReplyOf::Ok => ReplyOf::Ok,
            ReplyOf::Number(n) => ReplyOf::Number(n),
            ReplyOf::Stat { name, value } => ReplyOf::Stat {
                name: f(name),
                value: f(value),
            },
            ReplyOf::Version(v) => ReplyOf::Version(f(v)),
            ReplyOf::Error => ReplyOf::Error,
            ReplyOf::ClientError(m) => ReplyOf::ClientError(f(m)),
            ReplyOf::ServerError(m) => ReplyOf::ServerError(f(m)),
            ReplyOf::Meta { code, opaque } => ReplyOf::Meta { code, opaque },
        }
    }
}

/// The reply as the server sent it (a VALUE line without its data), for messages.
impl std::fmt::Display for Reply<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match self {
            Reply::Value {
                key,
                flags,
                bytes,
                cas,
            } => {
                write!(f, "VALUE {} {flags} {bytes}", t(key))?;
                cas.map_or(Ok(()), |c| write!(f, " {c}"))
            }
            Reply::End => f.write_str("END"),
            Reply::Stored => f.write_str("STORED"),
            Reply::NotStored => f.write_str("NOT_STORED"),
            Reply::Exists => f.write_str("EXISTS"),
            Reply::NotFound => f.write_str("NOT_FOUND"),
            Reply::Deleted => f.write_str("DELETED"),
            Reply::Touched => f.write_str("TOUCHED"),
            Reply::Ok => f.write_str("OK"),
            Reply::Number(n) => write!(f, "{n}"),
            Reply::Stat { name, value } => write!(f, "STAT {} {}", t(name), t(value)),
            Reply::Version(v) => write!(f, "VERSION {}", t(v)),
            Reply::Error => f.write_str("ERROR"),
            Reply::ClientError(m) => write!(f, "CLIENT_ERROR {}", t(m)),
            Reply::ServerError(m) => write!(f, "SERVER_ERROR {}", t(m)),
            Reply::Meta { code, opaque } => {
                f.write_str(code.text())?;
                opaque.map_or(Ok(()), |o| write!(f, " O{o}"))
            }
        }
    }
}

/// What went wrong with the byte stream. Every variant means the connection is in an unknown
/// state and must not be reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtoError {
    LineTooLong,
    LineNotCrlf,
    UnknownReply,
    BadValueLine,
    ValueTooLarge,
    BadNumber,
    BadStatLine,
    DataNotCrlf,
}

impl ProtoError {
    pub fn message(self) -> &'static str {
        match self {
            ProtoError::LineTooLong => "reply line too long",
            ProtoError::LineNotCrlf => "reply line not terminated by CRLF",
            ProtoError::UnknownReply => "unrecognised reply line",
            ProtoError::BadValueLine => "malformed VALUE line",
            ProtoError::ValueTooLarge => "VALUE larger than 1 GiB",
            ProtoError::BadNumber => "malformed number",
            ProtoError::BadStatLine => "malformed STAT line",
            ProtoError::DataNotCrlf => "value data not followed by CRLF",
        }
    }
}

/// What [`ReplyReader::next`] yields: a reply line, then for a `VALUE` one or more chunks of its
/// data and a `DataEnd` once the data and its CRLF have been consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOf<S> {
    Reply(ReplyOf<S>),
    Data(S),
    /// The value's last data and its CRLF at once (the usual case when the whole value has
    /// arrived): no `DataEnd` follows.
    DataLast(S),
    DataEnd,
    /// A whole value that had arrived with its line: what `Reply(Value)` and the data events
    /// would have said, at once (the usual case for values that fit in one read).
    Value {
        key: S,
        flags: u32,
        cas: Option<u64>,
        data: S,
    },
}

/// An event borrowing from the bytes it was read from.
pub type Event<'a> = EventOf<&'a [u8]>;

impl<S> EventOf<S> {
    /// The same event with each of its byte references converted by `f`.
    #[inline(always)]
    pub fn map<T>(self, mut f: impl FnMut(S) -> T) -> EventOf<T> {
        match self {
            EventOf::Reply(r) => EventOf::Reply(r.map(f)),
            EventOf::Data(d) => EventOf::Data(f(d)),
            EventOf::DataLast(d) => EventOf::DataLast(f(d)),
            EventOf::DataEnd => EventOf::DataEnd,
            EventOf::Value {
                key,
                flags,
                cas,
                data,
            } => EventOf::Value {
                key: f(key),
                flags,
                cas,
                data: f(data),
            },
        }
    }
}

/// Incremental reader over a stream of replies. It keeps only where it is (between lines or
/// inside a value); the caller keeps the bytes and advances by what each event consumed.
#[derive(Clone, Debug, Default)]
pub struct ReplyReader {
    /// Data bytes of the current value still to come; `Some(0)` means its CRLF is next.
    in_value: Option<usize>,
}

impl ReplyReader {
    pub fn new() -> ReplyReader {
        ReplyReader::default()
    }

    /// True between replies: no value is half read.
    pub fn at_boundary(&self) -> bool {
        self.in_value.is_none()
    }

    /// The next event in `buf` and how many bytes it used, or `None` when `buf` holds too little
    /// to say (read more and call again with the unconsumed bytes first).
    pub fn next<'a>(&mut self, buf: &'a [u8]) -> Result<Option<(Event<'a>, usize)>, ProtoError> {
        Ok(self
            .scan(buf)?
            .map(|(event, used)| (event.map(|s| s.of(buf)), used)))
    }

    /// [`next`](Self::next) with the event's bytes given as positions in `buf`.
    #[inline]
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<(EventOf<Span>, usize)>, ProtoError> {
        match self.in_value {
            Some(0) => {
                if buf.len() < 2 {
                    return Ok(None);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(ProtoError::DataNotCrlf);
                }
                self.in_value = None;
                Ok(Some((EventOf::DataEnd, 2)))
            }
            Some(remaining) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                if buf.len() >= remaining + 2 {
                    if &buf[remaining..remaining + 2] != b"\r\n" {
                        return Err(ProtoError::DataNotCrlf);
                    }
                    self.in_value = None;
                    let data = Span {
                        start: 0,
                        end: remaining,
                    };
                    return Ok(Some((EventOf::DataLast(data), remaining + 2)));
                }
                let n = remaining.min(buf.len());
                self.in_value = Some(remaining - n);
                Ok(Some((EventOf::Data(Span { start: 0, end: n }), n)))
            }
            None => {
                let Some((reply, used)) = scan_line(buf)? else {
                    return Ok(None);
                };
                if let ReplyOf::Value {
                    key,
                    flags,
                    bytes,
                    cas,
                } = reply
                {
                    let end = used + bytes;
                    if buf.len() < end + 2 {
                        self.in_value = Some(bytes);
                    } else if &buf[end..end + 2] != b"\r\n" {
                        return Err(ProtoError::DataNotCrlf);
                    } else {
                        let data = Span { start: used, end };
                        let value = EventOf::Value {
                            key,
                            flags,
                            cas,
                            data,
                        };
                        return Ok(Some((value, end + 2)));
                    }
                }
                Ok(Some((EventOf::Reply(reply), used)))
            }
        }
    }
}

/// The reply line at the start of `buf` and its length with the CRLF, `None` if it has not all
/// arrived. The replies every get and set ends with are recognised in one pass; anything else
/// (including every malformed line) goes through [`parse_line`], which is the definition.
#[inline]
fn scan_line(buf: &[u8]) -> Result<Option<(ReplyOf<Span>, usize)>, ProtoError> {
    if buf.starts_with(b"VALUE ") {
        if let Some(value) = scan_value_line(buf) {
            return Ok(Some(value));
        }
    } else if buf.starts_with(b"END\r\n") {
        return Ok(Some((ReplyOf::End, 5)));
    } else if buf.starts_with(b"STORED\r\n") {
        return Ok(Some((ReplyOf::Stored, 8)));
    }
    find_line(buf)
}

/// [`scan_line`] by the definition: find the line's end, then [`parse_line`].
fn find_line(buf: &[u8]) -> Result<Option<(ReplyOf<Span>, usize)>, ProtoError> {
    let Some(nl) = memchr::memchr(b'\n', &buf[..buf.len().min(MAX_LINE_LEN + 1)]) else {
        return if buf.len() > MAX_LINE_LEN {
            Err(ProtoError::LineTooLong)
        } else {
            Ok(None)
        };
    };
    if nl == 0 || buf[nl - 1] != b'\r' {
        return Err(ProtoError::LineNotCrlf);
    }
    if nl > MAX_LINE_LEN {
        return Err(ProtoError::LineTooLong);
    }
    let reply = parse_line(&buf[..nl - 1])?.map(|part| Span::within(buf, part));
    Ok(Some((reply, nl + 1)))
}

/// A complete, well-formed `VALUE` line at the start of `buf` (which begins with "VALUE "),
/// read in one pass. `None` for anything else: an incomplete or unusual line, which
/// [`parse_line`] then judges, so this only ever agrees with it.
#[inline]
fn scan_value_line(buf: &[u8]) -> Option<(ReplyOf<Span>, usize)> {
    let at = token_end(buf, 6, buf.len().min(MAX_LINE_LEN));
    let key = Span { start: 6, end: at };
    if key.end == key.start || buf.get(at) != Some(&b' ') {
        return None;
    }
    let (flags, at) = scan_digits(buf, at + 1)?;
    let flags = u32::try_from(flags).ok()?;
    if buf.get(at) != Some(&b' ') {
        return None;
    }
    let (bytes, mut at) = scan_digits(buf, at + 1)?;
    let cas = if buf.get(at) == Some(&b' ') {
        let (cas, end) = scan_digits(buf, at + 1)?;
        at = end;
        Some(cas)
    } else {
        None
    };
    // `at + 1` is where the LF is: the same length limit as parse_line's.
    if buf.get(at..at + 2) != Some(b"\r\n") || at + 1 > MAX_LINE_LEN || bytes > MAX_VALUE_LEN as u64
    {
        return None;
    }
    let bytes = bytes as usize;
    Some((
        ReplyOf::Value {
            key,
            flags,
            bytes,
            cas,
        },
        at + 2,
    ))
}

/// Where the first byte at or below b' ' (a space, a control byte) is in `buf[at..limit]`, or
/// `limit`. Eight bytes at a time: keys are typically 10 to 50 bytes.
fn token_end(buf: &[u8], mut at: usize, limit: usize) -> usize {
    while at + 8 <= limit {
        let word = u64::from_le_bytes(buf[at..at + 8].try_into().expect("8 bytes"));
        let low = crate::key::space_or_control(word);
        if low != 0 {
            return at + (low.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while at < limit && buf[at] > b' ' {
        at += 1;
    }
    at
}

/// 1 to 19 decimal digits at `buf[start..]` (19 cannot overflow a u64): their value and where
/// they end.
#[inline]
fn scan_digits(buf: &[u8], start: usize) -> Option<(u64, usize)> {
    let stop = buf.len().min(start + 19);
    let mut n = 0u64;
    let mut at = start;
    while at < stop {
        let digit = buf[at].wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        n = n * 10 + digit as u64;
        at += 1;
    }
    (at > start).then_some((n, at))
}

/// Parses one reply line without its CRLF.
pub fn parse_line(line: &[u8]) -> Result<Reply<'_>, ProtoError> {
    let (word, rest) = match line.iter().position(|&b| b == b' ') {
        Some(sp) => (&line[..sp], Some(&line[sp + 1..])),
        None => (line, None),
    };
    let reply = match (word, rest) {
        (b"VALUE", Some(args)) => parse_value(args)?,
        (b"END", None) => Reply::End,
        (b"STORED", None) => Reply::Stored,
        (b"NOT_STORED", None) => Reply::NotStored,
        (b"EXISTS", None) => Reply::Exists,
        (b"NOT_FOUND", None) => Reply::NotFound,
        (b"DELETED", None) => Reply::Deleted,
        (b"TOUCHED", None) => Reply::Touched,
        (b"OK", None) => Reply::Ok,
        (b"ERROR", _) => Reply::Error,
        (b"CLIENT_ERROR", msg) => Reply::ClientError(msg.unwrap_or_default()),
        (b"SERVER_ERROR", msg) => Reply::ServerError(msg.unwrap_or_default()),
        (b"VERSION", Some(v)) => Reply::Version(v),
        (b"STAT", Some(args)) => {
            let sp = args
                .iter()
                .position(|&b| b == b' ')
                .ok_or(ProtoError::BadStatLine)?;
            if sp == 0 {
                return Err(ProtoError::BadStatLine);
            }
            Reply::Stat {
                name: &args[..sp],
                value: &args[sp + 1..],
            }
        }
        (b"HD", flags) => parse_meta(MetaCode::Hd, flags)?,
        (b"NS", flags) => parse_meta(MetaCode::Ns, flags)?,
        (b"EX", flags) => parse_meta(MetaCode::Ex, flags)?,
        (b"NF", flags) => parse_meta(MetaCode::Nf, flags)?,
        (b"EN", flags) => parse_meta(MetaCode::En, flags)?,
        (b"MN", None) => Reply::Meta {
            code: MetaCode::Mn,
            opaque: None,
        },
        (digits, None) if !digits.is_empty() && digits[0].is_ascii_digit() => {
            Reply::Number(parse_u64(digits)?)
        }
        _ => return Err(ProtoError::UnknownReply),
    };
    Ok(reply)
}

/// The flags of a meta status line: each a letter and its token, one space apart; only `O`
/// (the opaque, a decimal number here since only numbers are sent) is kept.
fn parse_meta(code: MetaCode, flags: Option<&[u8]>) -> Result<Reply<'_>, ProtoError> {
    let mut opaque = None;
    for flag in flags.into_iter().flat_map(|f| f.split(|&b| b == b' ')) {
        match flag {
            [b'O', digits @ ..] => {
                if opaque.replace(parse_u64(digits)?).is_some() {
                    return Err(ProtoError::UnknownReply);
                }
            }
            [letter, ..] if letter.is_ascii_alphabetic() => {}
            _ => return Err(ProtoError::UnknownReply),
        }
    }
    Ok(Reply::Meta { code, opaque })
}

fn parse_value(args: &[u8]) -> Result<Reply<'_>, ProtoError> {
    // One pass over `<key> <flags> <bytes>[ <cas>]` (this runs for every value received).
    let bad = ProtoError::BadValueLine;
    let key_end = memchr::memchr(b' ', args).ok_or(bad)?;
    if key_end == 0 {
        return Err(bad);
    }
    let mut rest = &args[key_end + 1..];
    let flags = u32::try_from(take_number(&mut rest)?).map_err(|_| bad)?;
    let bytes = match rest {
        [b' ', more @ ..] => {
            rest = more;
            take_number(&mut rest)?
        }
        _ => return Err(bad),
    };
    let cas = match rest {
        [] => None,
        [b' ', more @ ..] => {
            rest = more;
            Some(take_number(&mut rest)?)
        }
        _ => return Err(bad),
    };
    if !rest.is_empty() {
        return Err(bad);
    }
    if bytes > MAX_VALUE_LEN as u64 {
        return Err(ProtoError::ValueTooLarge);
    }
    Ok(Reply::Value {
        key: &args[..key_end],
        flags,
        bytes: bytes as usize,
        cas,
    })
}

/// Takes a strict unsigned decimal (1 to 20 digits, no overflow) from the front of `s`.
fn take_number(s: &mut &[u8]) -> Result<u64, ProtoError> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    let n = parse_u64(&s[..digits]).map_err(|_| ProtoError::BadValueLine)?;
    *s = &s[digits..];
    Ok(n)
}

/// Strict unsigned decimal: 1 to 20 digits, no sign, no spaces, no overflow.
pub fn parse_u64(digits: &[u8]) -> Result<u64, ProtoError> {
    if digits.is_empty() || digits.len() > 20 {
        return Err(ProtoError::BadNumber);
    }
    digits.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return Err(ProtoError::BadNumber);
        }
        acc.checked_mul(10)
            .and_then(|v| v.checked_add((b - b'0') as u64))
            .ok_or(ProtoError::BadNumber)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owned copy of an event so a test can collect a whole stream.
    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Reply(String),
        Data(Vec<u8>),
        DataEnd,
    }

    /// Feeds `stream` to a reader the way a socket would, `chunk` bytes at a time, and merges
    /// adjacent data chunks so results are comparable across chunk sizes.
    fn run(stream: &[u8], chunk: usize) -> Result<Vec<Owned>, ProtoError> {
        let mut reader = ReplyReader::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut out: Vec<Owned> = Vec::new();
        let mut fed = 0;
        loop {
            match reader.next(&pending)? {
                Some((event, used)) => {
                    match event {
                        Event::Reply(r) => out.push(Owned::Reply(format!("{r:?}"))),
                        Event::Data(d) => match out.last_mut() {
                            Some(Owned::Data(acc)) => acc.extend_from_slice(d),
                            _ => out.push(Owned::Data(d.to_vec())),
                        },
                        Event::DataEnd => out.push(Owned::DataEnd),
                        Event::Value {
                            key,
                            flags,
                            cas,
                            data,
                        } => {
                            let line = Reply::Value {
                                key,
                                flags,
                                bytes: data.len(),
                                cas,
                            };
                            out.push(Owned::Reply(format!("{line:?}")));
                            if !data.is_empty() {
                                out.push(Owned::Data(data.to_vec()));
                            }
                            out.push(Owned::DataEnd);
                        }
                        Event::DataLast(d) => {
                            match out.last_mut() {
                                Some(Owned::Data(acc)) => acc.extend_from_slice(d),
                                _ if !d.is_empty() => out.push(Owned::Data(d.to_vec())),
                                _ => {}
                            }
                            out.push(Owned::DataEnd);
                        }
                    }
                    pending.drain(..used);
                }
                None if fed < stream.len() => {
                    let end = (fed + chunk).min(stream.len());
                    pending.extend_from_slice(&stream[fed..end]);
                    fed = end;
                }
                None => return Ok(out),
            }
        }
    }

    const MULTI: &[u8] =
        b"VALUE foo 5 3\r\nbar\r\nVALUE \xffk 0 0\r\n\r\nVALUE z 1 4 77\r\n\r\n\0\n\r\nEND\r\n";

    #[test]
    fn every_split_point_gives_the_same_events() {
        let whole = run(MULTI, MULTI.len()).unwrap();
        // An empty value has no Data event, only its DataEnd.
        assert_eq!(whole.len(), 9);
        assert_eq!(whole[1], Owned::Data(b"bar".to_vec()));
        assert_eq!(whole[4], Owned::DataEnd);
        assert_eq!(whole[6], Owned::Data(b"\r\n\0\n".to_vec()));
        assert_eq!(whole[8], Owned::Reply("End".into()));
        for chunk in 1..MULTI.len() {
            assert_eq!(run(MULTI, chunk).unwrap(), whole, "chunk size {chunk}");
        }
        let stored = run(b"STORED\r\n", 1).unwrap();
        assert_eq!(stored, vec![Owned::Reply("Stored".into())]);
    }

    #[test]
    fn meta_status_lines() {
        let meta = |code, opaque| Reply::Meta { code, opaque };
        assert_eq!(parse_line(b"MN").unwrap(), meta(MetaCode::Mn, None));
        assert_eq!(parse_line(b"NS O17").unwrap(), meta(MetaCode::Ns, Some(17)));
        assert_eq!(
            parse_line(b"HD O5 kfoo").unwrap(),
            meta(MetaCode::Hd, Some(5))
        );
        assert_eq!(parse_line(b"HD").unwrap(), meta(MetaCode::Hd, None));
        assert_eq!(parse_line(b"NF O4").unwrap().to_string(), "NF O4");
        for bad in [
            &b"MN O1"[..],
            b"NS O",
            b"NS Ox",
            b"NS O1 O2",
            b"HD  O1",
            b"EX 7",
        ] {
            assert!(
                parse_line(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn value_lines() {
        assert_eq!(
            parse_line(b"VALUE k 65535 10 12345").unwrap(),
            Reply::Value {
                key: b"k",
                flags: 65535,
                bytes: 10,
                cas: Some(12345)
            }
        );
        assert_eq!(
            parse_line(b"VALUE k 4294967295 0").unwrap(),
            Reply::Value {
                key: b"k",
                flags: u32::MAX,
                bytes: 0,
                cas: None
            }
        );
        for bad in [
            &b"VALUE k 1"[..],
            b"VALUE k 1 2 3 4",
            b"VALUE  1 2",
            b"VALUE k -1 2",
            b"VALUE k 1 x",
            b"VALUE k 4294967296 1",
            b"VALUE k 1 2 ",
        ] {
            assert_eq!(parse_line(bad), Err(ProtoError::BadValueLine), "{bad:?}");
        }
        assert_eq!(
            parse_line(b"VALUE k 0 1073741825"),
            Err(ProtoError::ValueTooLarge)
        );
        assert_eq!(
            parse_line(b"VALUE k 0 99999999999999999999999"),
            Err(ProtoError::BadValueLine)
        );
    }

    #[test]
    fn the_one_pass_scan_agrees_with_the_definition() {
        let keys: [&[u8]; 7] = [
            b"k",
            b"bench:mget:000",
            b"a_key_of_exactly_24_byte",
            b"\xff\xfe high bytes",
            b"ctl\x01byte",
            b"del\x7f",
            b"",
        ];
        let numbers: [&[u8]; 7] = [
            b"0",
            b"100",
            b"4294967295",
            b"4294967296",
            b"1073741825",
            b"9999999999999999999",
            b"99999999999999999999",
        ];
        let tails: [&[u8]; 6] = [b"\r\n", b"\n", b" \r\n", b"\r", b"x\r\n", b""];
        let mut checked = 0;
        for key in keys {
            for (flags, bytes) in numbers.iter().zip(numbers.iter().rev()) {
                for cas in [None, Some(&b"77"[..]), Some(numbers[6])] {
                    for tail in tails {
                        let mut line = b"VALUE ".to_vec();
                        line.extend_from_slice(key);
                        for part in [Some(*flags), Some(*bytes), cas].into_iter().flatten() {
                            line.push(b' ');
                            line.extend_from_slice(part);
                        }
                        line.extend_from_slice(tail);
                        line.extend_from_slice(b"END\r\n");
                        for end in 0..=line.len() {
                            let buf = &line[..end];
                            assert_eq!(scan_line(buf), find_line(buf), "{buf:?}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        for line in [&b"END\r\n"[..], b"STORED\r\n", b"END\n", b"STORED\r"] {
            for end in 0..=line.len() {
                assert_eq!(scan_line(&line[..end]), find_line(&line[..end]));
            }
        }
        assert!(checked > 10_000);
    }

    #[test]
    fn token_end_finds_the_first_space_or_control_byte() {
        for len in 0..40 {
            for stop in [b' ', b'\0', b'\r', b'\n', 0x1f] {
                for at in 0..=len {
                    let mut buf = vec![b'k'; len];
                    buf.extend_from_slice(b"\xff\x80~");
                    if at < len {
                        buf[at] = stop;
                    }
                    let expect = if at < len { at } else { len + 3 };
                    assert_eq!(token_end(&buf, 0, buf.len()), expect, "{buf:?}");
                }
            }
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_line(b"NOT_STORED").unwrap(), Reply::NotStored);
        assert_eq!(parse_line(b"DELETED").unwrap(), Reply::Deleted);
        assert_eq!(parse_line(b"TOUCHED").unwrap(), Reply::Touched);
        assert_eq!(parse_line(b"EXISTS").unwrap(), Reply::Exists);
        assert_eq!(parse_line(b"OK").unwrap(), Reply::Ok);
        assert_eq!(parse_line(b"ERROR").unwrap(), Reply::Error);
        assert_eq!(
            parse_line(b"18446744073709551615").unwrap(),
            Reply::Number(u64::MAX)
        );
        assert_eq!(
            parse_line(b"18446744073709551616"),
            Err(ProtoError::BadNumber)
        );
        assert_eq!(parse_line(b"12a"), Err(ProtoError::BadNumber));
        assert_eq!(
            parse_line(b"CLIENT_ERROR bad command line format").unwrap(),
            Reply::ClientError(b"bad command line format")
        );
        assert_eq!(
            parse_line(b"SERVER_ERROR").unwrap(),
            Reply::ServerError(b"")
        );
        assert_eq!(
            parse_line(b"VERSION 1.6.18").unwrap(),
            Reply::Version(b"1.6.18")
        );
        assert_eq!(
            parse_line(b"STAT rusage_user 0.123456").unwrap(),
            Reply::Stat {
                name: b"rusage_user",
                value: b"0.123456"
            }
        );
        assert_eq!(parse_line(b"STAT x").unwrap_err(), ProtoError::BadStatLine);
        for garbage in [
            &b""[..],
            b"stored",
            b"END x",
            b"HTTP/1.1 400 Bad Request",
            b"\0\0\0",
        ] {
            assert!(parse_line(garbage).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn hostile_streams_are_errors_not_hangs() {
        assert_eq!(run(b"END\n", 1), Err(ProtoError::LineNotCrlf));
        assert_eq!(run(b"\n", 1), Err(ProtoError::LineNotCrlf));
        assert_eq!(
            run(&[b'A'; MAX_LINE_LEN + 2], 64),
            Err(ProtoError::LineTooLong)
        );
        for chunk in [1, 64] {
            assert_eq!(
                run(b"VALUE k 0 3\r\nabcXY", chunk),
                Err(ProtoError::DataNotCrlf)
            );
        }
        assert_eq!(run(b"garbage\r\n", 3), Err(ProtoError::UnknownReply));
        // A truncated reply is not an error by itself: the reader asks for more bytes.
        let mut reader = ReplyReader::new();
        let (ev, used) = reader.next(b"VALUE k 0 10\r\nab").unwrap().unwrap();
        assert!(matches!(ev, Event::Reply(Reply::Value { bytes: 10, .. })));
        assert!(!reader.at_boundary());
        assert_eq!(
            reader
                .next(&b"VALUE k 0 10\r\nab"[used..])
                .unwrap()
                .unwrap()
                .1,
            2
        );
        assert_eq!(reader.next(b"").unwrap(), None);
    }
}
