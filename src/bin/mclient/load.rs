//! `mclient load`: many keys stored from a file or standard input with the client's bulk
//! call, [`BATCH`] keys at a time, so a load of a million keys holds one batch in memory and
//! costs a round trip per batch and server, not per key.
//!
//! Two input forms: `KEY VALUE` lines (the value is the rest of the line, without its
//! newline), or with `--records` the records `get --print-keys` writes (`KEY FLAGS BYTES`, a
//! newline, the value's bytes and a newline), so a dump of some keys loads back byte-exact
//! with its flags.

use std::io::{BufRead, Read};

use memcache::client::{Answer, BulkOp, Client, Write};
use memcache::exit_code::Exit;
use memcache::protocol::StoreCmd;

use crate::json::JsonLine;
use crate::output::Out;
use crate::{note, Stop};

/// Keys stored per bulk call.
const BATCH: usize = 1000;
/// Longest line of the `KEY VALUE` form, and of a record's header line.
const MAX_LINE: usize = 1 << 20;
/// Largest value of a record (memcached's own ceiling).
const MAX_VALUE: usize = 1 << 30;

/// One key to store.
struct Entry {
    key: Vec<u8>,
    value: Vec<u8>,
    flags: u32,
}

/// What a load came to, for the summary line and the exit status.
#[derive(Default)]
struct Tally {
    stored: u64,
    not_stored: u64,
    failed: u64,
}

/// Reads `input` to its end and stores every entry with `cmd`; each key that was not stored is
/// a note on standard error (and a JSON line with `json`), and a summary line ends the load.
pub fn load(
    c: &mut Client,
    out: &mut Out,
    input: &mut dyn BufRead,
    records: bool,
    cmd: StoreCmd,
    (flags, exptime, json): (u32, u64, bool),
) -> Result<Exit, Stop> {
    let mut tally = Tally::default();
    let mut batch: Vec<Entry> = Vec::with_capacity(BATCH);
    let mut line_no = 0u64;
    loop {
        let entry = if records {
            next_record(input, &mut line_no)?
        } else {
            next_line(input, &mut line_no, flags)?
        };
        let end = entry.is_none();
        batch.extend(entry);
        if batch.len() == BATCH || (end && !batch.is_empty()) {
            store(c, out, &batch, cmd, exptime, json, &mut tally)?;
            batch.clear();
        }
        if end {
            break;
        }
    }
    note(&format!(
        "loaded {} keys: {} stored, {} not stored, {} failed",
        tally.stored + tally.not_stored + tally.failed,
        tally.stored,
        tally.not_stored,
        tally.failed
    ));
    Ok(if tally.failed > 0 {
        Exit::Failed
    } else if tally.not_stored > 0 {
        Exit::Miss
    } else {
        Exit::Ok
    })
}

fn store(
    c: &mut Client,
    out: &mut Out,
    batch: &[Entry],
    cmd: StoreCmd,
    exptime: u64,
    json: bool,
    tally: &mut Tally,
) -> Result<(), Stop> {
    let writes: Vec<Write> = batch
        .iter()
        .map(|e| Write {
            key: &e.key,
            value: &e.value,
            flags: e.flags,
            exptime,
        })
        .collect();
    let done = c.bulk(BulkOp::Store(cmd), &writes)?;
    let failure = done
        .first_error
        .as_ref()
        .map_or_else(|| "no live server".to_string(), ToString::to_string);
    for (entry, answer) in batch.iter().zip(&done.answers) {
        let (stored, why) = match answer {
            Answer::Done => (true, None),
            Answer::NotStored | Answer::Exists | Answer::NotFound => (false, Some("not stored")),
            Answer::Refused(why) => (false, Some(why.as_str())),
            Answer::Failed => (false, Some(failure.as_str())),
        };
        match (answer, stored) {
            (_, true) => tally.stored += 1,
            (Answer::Refused(_) | Answer::Failed, _) => tally.failed += 1,
            _ => tally.not_stored += 1,
        }
        if json {
            let mut line = JsonLine::new()
                .bytes("key", &entry.key)
                .raw("stored", stored);
            if let Some(why) = why {
                line = line.str("reason", why);
            }
            out.write(&line.line())?;
        }
        if let Some(why) = why {
            note(&format!("{}: {why}", String::from_utf8_lossy(&entry.key)));
        }
    }
    Ok(())
}

/// One line of at most MAX_LINE bytes without its newline; None at the end of the input.
fn read_line(input: &mut dyn BufRead, line_no: &mut u64) -> Result<Option<Vec<u8>>, Stop> {
    let mut line = Vec::new();
    let read = (&mut *input)
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| Stop::failed(format!("reading the input: {e}")))?;
    if read == 0 {
        return Ok(None);
    }
    *line_no += 1;
    if line.last() == Some(&b'\n') {
        line.pop();
    } else if line.len() > MAX_LINE {
        return Err(Stop::usage(format!(
            "line {line_no}: longer than {MAX_LINE} bytes"
        )));
    }
    Ok(Some(line))
}

/// The next `KEY VALUE` line (empty lines are skipped).
fn next_line(
    input: &mut dyn BufRead,
    line_no: &mut u64,
    flags: u32,
) -> Result<Option<Entry>, Stop> {
    loop {
        let Some(line) = read_line(input, line_no)? else {
            return Ok(None);
        };
        if line.is_empty() {
            continue;
        }
        let Some(space) = line.iter().position(|&b| b == b' ') else {
            return Err(Stop::usage(format!(
                "line {line_no}: expected \"KEY VALUE\", found no space"
            )));
        };
        let key = line[..space].to_vec();
        check(&key, *line_no)?;
        return Ok(Some(Entry {
            value: line[space + 1..].to_vec(),
            key,
            flags,
        }));
    }
}

/// The next `KEY FLAGS BYTES` record and its value.
fn next_record(input: &mut dyn BufRead, line_no: &mut u64) -> Result<Option<Entry>, Stop> {
    let Some(header) = read_line(input, line_no)? else {
        return Ok(None);
    };
    let at = *line_no;
    let bad = || Stop::usage(format!("line {at}: expected \"KEY FLAGS BYTES\""));
    let text = std::str::from_utf8(&header).map_err(|_| bad())?;
    let mut words = text.split(' ');
    let (Some(key), Some(flags), Some(bytes), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(bad());
    };
    let flags: u32 = flags.parse().map_err(|_| bad())?;
    let bytes: usize = bytes
        .parse()
        .ok()
        .filter(|&b| b <= MAX_VALUE)
        .ok_or_else(bad)?;
    check(key.as_bytes(), at)?;
    // The value grows as its bytes arrive: a header's length is only a claim.
    let mut value = Vec::new();
    let got = (&mut *input)
        .take(bytes as u64 + 1)
        .read_to_end(&mut value)
        .map_err(|e| Stop::failed(format!("reading the input: {e}")))?;
    if got != bytes + 1 || value.pop() != Some(b'\n') {
        return Err(Stop::usage(format!(
            "line {at}: the value of {key} is not {bytes} bytes and a newline"
        )));
    }
    *line_no += 1 + value.iter().filter(|&&b| b == b'\n').count() as u64;
    Ok(Some(Entry {
        key: key.as_bytes().to_vec(),
        value,
        flags,
    }))
}

/// A bad key stops the load before its batch is sent: the input is wrong.
fn check(key: &[u8], line_no: u64) -> Result<(), Stop> {
    memcache::key::check(key).map_err(|e| Stop::usage(format!("line {line_no}: {}", e.message())))
}
