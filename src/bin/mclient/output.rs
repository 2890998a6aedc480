//! What mclient writes on standard output: raw values and the length-prefixed records of
//! `get --print-keys` and `gets` (JSON Lines, for `--json`, are built by `crate::json`).

use std::fmt::Write as _;
use std::io::{self, Write};

use memcache::client::Item;

use crate::Stop;

/// Buffered standard output whose errors (a closed pipe, a full disk) stop the command with
/// `Exit::Failed`.
pub struct Out(io::BufWriter<io::StdoutLock<'static>>);

impl Out {
    pub fn new() -> Out {
        Out(io::BufWriter::new(io::stdout().lock()))
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        self.0.write_all(bytes).map_err(out_error)
    }

    pub fn flush(&mut self) -> Result<(), Stop> {
        self.0.flush().map_err(out_error)
    }
}

fn out_error(e: io::Error) -> Stop {
    Stop::failed(format!("writing to standard output: {e}"))
}

/// One item as `KEY FLAGS BYTES[ CAS]\n<bytes>\n`: a key never holds a space or a newline, and
/// the byte count says where the value ends, so any value (newlines, NULs) splits safely.
pub fn record(key: &[u8], item: &Item, with_cas: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + item.value.len() + 40);
    out.extend_from_slice(key);
    let mut header = format!(" {} {}", item.flags, item.value.len());
    if with_cas {
        let _ = write!(header, " {}", item.cas);
    }
    header.push('\n');
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&item.value);
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_split_by_their_length() {
        let item = Item {
            value: b"a\nb".to_vec(),
            flags: 9,
            cas: 77,
        };
        assert_eq!(record(b"k", &item, false), b"k 9 3\na\nb\n");
        assert_eq!(record(b"k", &item, true), b"k 9 3 77\na\nb\n");
    }
}
