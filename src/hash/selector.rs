//! The distribution a handle uses: built once per server list, then read-only and shareable.

use super::crc32::libmemcache_hash;
use super::ketama::{Ring, RingServer};
use super::md5::md5_hash;
use crate::address::ServerAddr;

/// How keys are placed on servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// libmemcache 1.4: `(crc32 >> 16) & 0x7fff` modulo the number of configured servers, dead
    /// servers skipped by linear probing (`libmemcache-crc32` in distribution.md).
    Crc32Modulo,
    /// libmemcached `KETAMA_WEIGHTED`: MD5 key hash on the weighted MD5 continuum.
    KetamaMd5,
}

impl Distribution {
    /// The configuration name: `"crc32-modulo"` or `"ketama-md5"`.
    pub fn name(self) -> &'static str {
        match self {
            Distribution::Crc32Modulo => "crc32-modulo",
            Distribution::KetamaMd5 => "ketama-md5",
        }
    }

    /// Parses a configuration name, ASCII case-insensitively, ignoring surrounding whitespace.
    /// Accepts [`Distribution::name`]'s names and the spec's alias `"libmemcache-crc32"`.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("crc32-modulo") || s.eq_ignore_ascii_case("libmemcache-crc32") {
            Some(Distribution::Crc32Modulo)
        } else if s.eq_ignore_ascii_case("ketama-md5") {
            Some(Distribution::KetamaMd5)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Distribution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug)]
enum Inner {
    Modulo,
    Ketama(Ring),
}

/// Server selection for one server list. Server indexes are positions in the list given to
/// [`Selector::new`].
#[derive(Clone, Debug)]
pub struct Selector {
    dist: Distribution,
    n: usize,
    inner: Inner,
}

impl Selector {
    /// Builds the selector for `servers` (list order matters for both distributions). Only the
    /// ketama distribution looks at hosts, ports and weights.
    pub fn new(dist: Distribution, servers: &[RingServer<'_>]) -> Selector {
        let inner = match dist {
            Distribution::Crc32Modulo => Inner::Modulo,
            Distribution::KetamaMd5 => Inner::Ketama(Ring::build(servers)),
        };
        Selector {
            dist,
            n: servers.len(),
            inner,
        }
    }

    /// [`Selector::new`] for a server list as the rest of the library holds it.
    pub fn for_servers(dist: Distribution, servers: &[ServerAddr]) -> Selector {
        let ring: Vec<RingServer<'_>> = servers.iter().map(RingServer::from).collect();
        Selector::new(dist, &ring)
    }

    /// The distribution this selector implements.
    #[inline]
    pub fn distribution(&self) -> Distribution {
        self.dist
    }

    /// Number of servers (dead ones included).
    #[inline]
    pub fn num_servers(&self) -> usize {
        self.n
    }

    /// The ketama ring, when the distribution has one.
    pub fn ring(&self) -> Option<&Ring> {
        match &self.inner {
            Inner::Ketama(r) => Some(r),
            Inner::Modulo => None,
        }
    }

    /// The key's hash under this distribution. `Crc32Modulo`: 1 when there are 0 or 1 servers,
    /// else [`libmemcache_hash`] (never 0). `KetamaMd5`: [`md5_hash`] (any value, 0 included).
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u32 {
        match self.dist {
            Distribution::Crc32Modulo => {
                if self.n <= 1 {
                    1
                } else {
                    libmemcache_hash(key)
                }
            }
            Distribution::KetamaMd5 => md5_hash(key),
        }
    }

    /// The server for `hash`, skipping servers for which `live` is false; `None` when there is
    /// no server or none is live.
    ///
    /// `Crc32Modulo`: `hash % n`, then `idx + 1, idx + 2, ...` with wrap, over all `n` servers.
    /// `KetamaMd5`: the next point owned by a live server ([`Ring::live_server_for_hash`]); with
    /// exactly one server, that server if live.
    #[inline]
    pub fn pick(&self, hash: u32, live: impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.n;
        if n == 0 {
            return None;
        }
        match &self.inner {
            Inner::Modulo => {
                let start = (hash as usize) % n;
                (start..n).chain(0..start).find(|&i| live(i))
            }
            Inner::Ketama(ring) => {
                if n == 1 {
                    if live(0) {
                        Some(0)
                    } else {
                        None
                    }
                } else {
                    ring.live_server_for_hash(hash, live)
                }
            }
        }
    }

    /// Clears `out`, then fills it with up to `count` distinct live servers, primary first (the
    /// one [`Selector::pick`] returns). `Crc32Modulo`: the following indexes with wrap;
    /// `KetamaMd5`: the next distinct servers met on the ring.
    pub fn pick_n(
        &self,
        hash: u32,
        count: usize,
        live: impl Fn(usize) -> bool,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        let n = self.n;
        if n == 0 || count == 0 {
            return;
        }
        match &self.inner {
            Inner::Modulo => {
                let start = (hash as usize) % n;
                out.extend((start..n).chain(0..start).filter(|&i| live(i)).take(count));
            }
            Inner::Ketama(ring) => {
                if n == 1 {
                    if live(0) {
                        out.push(0);
                    }
                } else {
                    ring.distinct_servers_for_hash(hash, count, live, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(host: &str) -> RingServer<'_> {
        RingServer {
            host,
            port: 11211,
            weight: 1,
        }
    }

    #[test]
    fn names() {
        for d in [Distribution::Crc32Modulo, Distribution::KetamaMd5] {
            assert_eq!(Distribution::parse(d.name()), Some(d));
            assert_eq!(d.to_string(), d.name());
        }
        assert_eq!(
            Distribution::parse(" Ketama-MD5 "),
            Some(Distribution::KetamaMd5)
        );
        assert_eq!(
            Distribution::parse("libmemcache-crc32"),
            Some(Distribution::Crc32Modulo)
        );
        assert_eq!(Distribution::parse("ketama"), None);
        assert_eq!(Distribution::parse(""), None);
    }

    #[test]
    fn spec_three_servers() {
        let list = [rs("A"), rs("B"), rs("C")];
        let sel = Selector::new(Distribution::Crc32Modulo, &list);
        let all = |_| true;
        assert_eq!(sel.pick(sel.hash(b"k1"), all), Some(0));
        assert_eq!(sel.pick(sel.hash(b"k2"), all), Some(1));
        assert_eq!(sel.pick(sel.hash(b"n"), all), Some(2));
        assert_eq!(sel.hash(b""), 1);
        assert_eq!(sel.hash(b"foo"), 3187);
    }

    #[test]
    fn modulo_small_lists_hash_to_one() {
        let one = [rs("A")];
        let sel = Selector::new(Distribution::Crc32Modulo, &one);
        assert_eq!(sel.hash(b"foo"), 1);
        assert_eq!(sel.pick(sel.hash(b"foo"), |_| true), Some(0));
        assert_eq!(sel.pick(7, |_| false), None);
        let none = Selector::new(Distribution::Crc32Modulo, &[]);
        assert_eq!(none.hash(b"foo"), 1);
        assert_eq!(none.pick(1, |_| true), None);
        let mut out = vec![3];
        none.pick_n(1, 2, |_| true, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn modulo_linear_probe_with_wrap() {
        let list = [rs("A"), rs("B"), rs("C"), rs("D"), rs("E")];
        let sel = Selector::new(Distribution::Crc32Modulo, &list);
        // 13 % 5 = 3.
        assert_eq!(sel.pick(13, |_| true), Some(3));
        assert_eq!(sel.pick(13, |i| i != 3), Some(4));
        assert_eq!(sel.pick(13, |i| i != 3 && i != 4), Some(0));
        assert_eq!(sel.pick(13, |i| i == 2), Some(2));
        assert_eq!(sel.pick(13, |_| false), None);
        // 14 % 5 = 4: wrap straight to 0.
        assert_eq!(sel.pick(14, |i| i != 4), Some(0));
        let mut out = Vec::new();
        sel.pick_n(13, 3, |i| i != 4, &mut out);
        assert_eq!(out, vec![3, 0, 1]);
        sel.pick_n(13, 9, |_| true, &mut out);
        assert_eq!(out, vec![3, 4, 0, 1, 2]);
        sel.pick_n(13, 9, |i| i == 1, &mut out);
        assert_eq!(out, vec![1]);
        // Keys of a live server stay put; keys of the dead one go to the next index.
        for i in 0..5000u32 {
            let key = format!("k{i}");
            let h = sel.hash(key.as_bytes());
            let before = sel.pick(h, |_| true).unwrap();
            let after = sel.pick(h, |s| s != 2).unwrap();
            if before == 2 {
                assert_eq!(after, 3);
            } else {
                assert_eq!(after, before);
            }
        }
    }

    #[test]
    fn ketama_selector() {
        let hosts: Vec<String> = (0..8).map(|i| format!("cache{i}.example")).collect();
        let list: Vec<RingServer<'_>> = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| RingServer {
                host: h,
                port: 11211 + (i as u16 % 2),
                weight: 100 + 50 * i as u32,
            })
            .collect();
        let sel = Selector::new(Distribution::KetamaMd5, &list);
        assert_eq!(sel.distribution(), Distribution::KetamaMd5);
        assert_eq!(sel.num_servers(), 8);
        let ring = sel.ring().unwrap();
        let mut out = Vec::new();
        for i in 0..10_000u32 {
            let key = format!("session:{i}");
            let h = sel.hash(key.as_bytes());
            assert_eq!(h, md5_hash(key.as_bytes()));
            let p = sel.pick(h, |_| true).unwrap();
            assert_eq!(Some(p), ring.server_for_hash(h));
            let q = sel.pick(h, |s| s != 3).unwrap();
            if p != 3 {
                assert_eq!(p, q);
            } else {
                assert_ne!(q, 3);
            }
            sel.pick_n(h, 3, |s| s != 3, &mut out);
            assert_eq!(out.len(), 3);
            assert_eq!(out[0], q);
            assert!(out[1] != out[0] && out[2] != out[0] && out[1] != out[2]);
            assert!(!out.contains(&3));
        }
        // One server: no hashing needed, index 0 when live.
        let one = Selector::new(Distribution::KetamaMd5, &list[..1]);
        assert_eq!(one.hash(b"apple"), 3_195_025_439);
        assert_eq!(one.pick(12345, |_| true), Some(0));
        assert_eq!(one.pick(12345, |_| false), None);
        one.pick_n(1, 4, |_| true, &mut out);
        assert_eq!(out, vec![0]);
        let none = Selector::new(Distribution::KetamaMd5, &[]);
        assert_eq!(none.pick(1, |_| true), None);
    }
}
