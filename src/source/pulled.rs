//! What this host last took from, or wrote to, a source that versions its list (etcd): the
//! source's URL and the revision, kept in the state directory as `<domain>.pulled`.
//!
//! `publish --to URL` compares the source's revision with it: a list changed there since this
//! host last saw it is not overwritten unseen, however long ago the pull was (a compare-and-swap
//! on the revision read just before writing would only guard the moment of the write).
//!
//! The file is untrusted input like every file of the state directory: a bad one is an error
//! that names it, never taken for a revision.
#![forbid(unsafe_code)]

use crate::registry::{DomainName, Namespace};
use crate::state_dir::StateDir;

/// Longest record read: a URL and a number.
const MAX_LEN: usize = 4096;
const SUFFIX: &str = ".pulled";

/// The source a domain's list was last taken from or written to, and its revision then.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pulled {
    pub url: String,
    pub revision: i64,
}

impl Pulled {
    /// Keeps `self` as the record of `domain`. Nothing is kept when the namespace has no state
    /// directory (`Ok(false)`): its publishes then treat every source as never pulled.
    pub fn keep(&self, ns: &Namespace, domain: &DomainName) -> Result<bool, String> {
        let Some(dir) = StateDir::from_env(ns)? else {
            return Ok(false);
        };
        if self.url.contains(['\n', '\r']) {
            return Err(format!("{:?}: a URL on several lines", self.url));
        }
        let text = format!(
            "# What mcadmin last pulled from or published to a versioned source for {domain};\n\
             # `publish --to` overwrites only this revision there.\n\
             url {}\nrevision {}\n",
            self.url, self.revision
        );
        dir.write_file(&format!("{domain}{SUFFIX}"), text.as_bytes())
            .map(|()| true)
            .map_err(|e| e.to_string())
    }

    /// The record of `domain` (`Ok(None)`: none, or no state directory).
    pub fn recall(ns: &Namespace, domain: &DomainName) -> Result<Option<Pulled>, String> {
        let Some(dir) = StateDir::from_env(ns)? else {
            return Ok(None);
        };
        let name = format!("{domain}{SUFFIX}");
        let Some(bytes) = dir.read_file(&name, MAX_LEN)? else {
            return Ok(None);
        };
        let shown = dir.path().join(&name).display().to_string();
        parse(&bytes).map(Some).map_err(|e| format!("{shown}: {e}"))
    }
}

fn parse(bytes: &[u8]) -> Result<Pulled, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
    let (mut url, mut revision) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(' ') {
            Some(("url", value)) if url.is_none() => url = Some(value.trim().to_owned()),
            Some(("revision", value)) if revision.is_none() => {
                revision = Some(
                    value
                        .trim()
                        .parse::<i64>()
                        .ok()
                        .filter(|r| *r > 0)
                        .ok_or_else(|| format!("bad revision {value:?}"))?,
                )
            }
            _ => return Err(format!("unexpected line {line:?}")),
        }
    }
    Ok(Pulled {
        url: url.ok_or("no url line")?,
        revision: revision.ok_or("no revision line")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_and_bad_ones_are_errors() {
        let good = parse(b"# c\nurl etcd://127.0.0.1:2379/k\nrevision 42\n").unwrap();
        assert_eq!(
            good,
            Pulled {
                url: "etcd://127.0.0.1:2379/k".into(),
                revision: 42
            }
        );
        for bad in [
            &b"url etcd://h:1/k\n"[..],
            b"revision 4\n",
            b"url a\nrevision -4\n",
            b"url a\nrevision 0\n",
            b"url a\nrevision x\n",
            b"url a\nurl b\nrevision 1\n",
            b"url a\nrevision 1\nextra\n",
            b"\xff",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
