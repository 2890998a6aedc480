//! The ketama-md5 continuum (libmemcached `KETAMA_WEIGHTED`, php-memcached
//! `OPT_LIBKETAMA_COMPATIBLE`, twemproxy `md5` + `ketama`).
//!
//! Building (distribution.md, "ketama-md5"): every server gets
//! `floorf(w / total * 160 / 4 * n + 1e-10) * 4` points in 32-bit float arithmetic; for each
//! `j < points / 4` the string `"<host>-<j>"` (port 11211) or `"<host>:<port>-<j>"` is MD5-hashed
//! and each of the 4 little-endian words of the digest becomes a point owned by the server.
//! Points are sorted by value, ties by lower server index. A key goes to the owner of the first
//! point whose value is `>=` the key's hash, wrapping past the last point to the first.

use ::md5::{Digest, Md5};

// The port left out of the point strings is memcached's default.
use crate::address::{ServerAddr, DEFAULT_PORT};

/// Points per server with equal weights (libmemcached `MEMCACHED_POINTS_PER_SERVER_KETAMA`).
const POINTS_PER_SERVER: f32 = 160.0;
/// Points yielded by one MD5 digest.
const POINTS_PER_HASH: u32 = 4;

/// One server as the continuum sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingServer<'a> {
    /// Host exactly as configured: IP literal, DNS name, bracketed IPv6, or a unix socket path.
    pub host: &'a str,
    /// TCP port; 0 for a unix socket.
    pub port: u16,
    /// Relative weight; 0 counts as 1.
    pub weight: u32,
}

impl<'a> From<&'a ServerAddr> for RingServer<'a> {
    /// The ring's view of a server of a list: host exactly as configured, port, weight.
    fn from(server: &'a ServerAddr) -> RingServer<'a> {
        RingServer {
            host: &server.host,
            port: server.port,
            weight: server.weight,
        }
    }
}

/// A built continuum: sorted points, read-only after [`Ring::build`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ring {
    /// `(value << 32) | server`, sorted ascending, which is exactly "by value, then by server".
    points: Vec<u64>,
    /// Number of servers the ring was built from (some may own no point).
    n_servers: usize,
}

#[inline]
fn pack(value: u32, server: u32) -> u64 {
    ((value as u64) << 32) | server as u64
}

#[inline]
fn value_of(p: u64) -> u32 {
    (p >> 32) as u32
}

#[inline]
fn server_of(p: u64) -> usize {
    (p & 0xFFFF_FFFF) as u32 as usize
}

/// Writes `v` in decimal into the end of `buf`, returning the digits.
#[inline]
fn decimal(mut v: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// The number of points libmemcached gives a server of weight `weight` (0 counts as 1) out of
/// `total`, among `n` servers. f32 arithmetic in libmemcached's order; the `+ 1e-10` cannot change
/// an f32 of this magnitude but is kept to mirror the rule. For equal weights this is 160 except
/// for some `n` (25, 47, 50, 55, ...) where rounding yields 156.
#[inline]
pub fn points_for(weight: u32, total: u64, n: usize) -> u32 {
    let w = weight.max(1) as f32;
    let pct = w / total as f32;
    let per = (pct * POINTS_PER_SERVER / 4.0 * n as f32 + 1e-10f32).floor();
    (per as u32) * POINTS_PER_HASH
}

impl Ring {
    /// Builds the continuum for `servers`, in list order: server index `i` is the position in the
    /// slice. An empty slice gives an empty ring.
    pub fn build(servers: &[RingServer<'_>]) -> Ring {
        let n = servers.len();
        assert!(n <= u32::MAX as usize, "too many servers for a ring");
        let total: u64 = servers.iter().map(|s| s.weight.max(1) as u64).sum();
        // Sum of floors never exceeds 160 * n by more than rounding; compute exactly anyway.
        let capacity: usize = servers
            .iter()
            .map(|s| points_for(s.weight, total, n) as usize)
            .sum();
        let mut points = Vec::with_capacity(capacity);
        let mut port_buf = [0u8; 10];
        let mut j_buf = [0u8; 10];
        for (i, s) in servers.iter().enumerate() {
            let hashes = points_for(s.weight, total, n) / POINTS_PER_HASH;
            // Everything before "<j>" is the same for all of this server's points.
            let mut prefix = Md5::new();
            prefix.update(s.host.as_bytes());
            if s.port != DEFAULT_PORT {
                prefix.update(b":");
                prefix.update(decimal(s.port as u32, &mut port_buf));
            }
            prefix.update(b"-");
            for j in 0..hashes {
                let mut h = prefix.clone();
                h.update(decimal(j, &mut j_buf));
                let d = h.finalize();
                for k in 0..POINTS_PER_HASH as usize {
                    let v =
                        u32::from_le_bytes([d[4 * k], d[4 * k + 1], d[4 * k + 2], d[4 * k + 3]]);
                    points.push(pack(v, i as u32));
                }
            }
        }
        // Packed values are unique per (value, server) pair or identical, so unstable is exact.
        points.sort_unstable();
        Ring {
            points,
            n_servers: n,
        }
    }

    /// Number of points on the ring.
    #[inline]
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// True when the ring has no point (no server).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Number of servers the ring was built from.
    #[inline]
    pub fn num_servers(&self) -> usize {
        self.n_servers
    }

    /// How many points each of the first `n_servers` servers owns (points of servers past
    /// `n_servers` are not counted).
    pub fn points_per_server(&self, n_servers: usize) -> Vec<usize> {
        let mut counts = vec![0usize; n_servers];
        for &p in &self.points {
            if let Some(c) = counts.get_mut(server_of(p)) {
                *c += 1;
            }
        }
        counts
    }

    /// The sorted `(value, server)` points, for diagnostics.
    pub fn points(&self) -> impl ExactSizeIterator<Item = (u32, usize)> + '_ {
        self.points.iter().map(|&p| (value_of(p), server_of(p)))
    }

    /// Index into `points` of the first point with value `>= hash`, wrapping to 0.
    #[inline]
    fn start(&self, hash: u32) -> usize {
        let i = self.points.partition_point(|&p| value_of(p) < hash);
        if i == self.points.len() {
            0
        } else {
            i
        }
    }

    /// The owner of the first point `>= hash` (wrapping); `None` on an empty ring.
    #[inline]
    pub fn server_for_hash(&self, hash: u32) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        Some(server_of(self.points[self.start(hash)]))
    }

    /// Starting at `hash`'s point, the owner of the first point whose server is live. Walks the
    /// ring at most once; `None` when no server is live (or the ring is empty). Keys of live
    /// servers never move because another server is down.
    #[inline]
    pub fn live_server_for_hash(&self, hash: u32, live: impl Fn(usize) -> bool) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.start(hash);
        let (tail, head) = (&self.points[start..], &self.points[..start]);
        tail.iter()
            .chain(head.iter())
            .map(|&p| server_of(p))
            .find(|&s| live(s))
    }

    /// Clears `out`, then fills it with up to `count` distinct live servers met walking the ring
    /// from `hash`'s point (primary first). Walks the ring at most once.
    pub fn distinct_servers_for_hash(
        &self,
        hash: u32,
        count: usize,
        live: impl Fn(usize) -> bool,
        out: &mut Vec<usize>,
    ) {
        out.clear();
        if self.points.is_empty() || count == 0 {
            return;
        }
        let want = count.min(self.n_servers);
        let start = self.start(hash);
        let (tail, head) = (&self.points[start..], &self.points[..start]);
        for s in tail.iter().chain(head.iter()).map(|&p| server_of(p)) {
            if !out.contains(&s) && live(s) {
                out.push(s);
                if out.len() == want {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::md5::md5_hash;

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("10.0.1.{i}")).collect()
    }

    fn servers<'a>(hosts: &'a [String], weights: &[u32]) -> Vec<RingServer<'a>> {
        hosts
            .iter()
            .zip(weights)
            .map(|(h, &w)| RingServer {
                host: h,
                port: 11211,
                weight: w,
            })
            .collect()
    }

    #[test]
    fn weighted_cross_check() {
        let h = hosts(8);
        let ring = Ring::build(&servers(&h, &[600, 300, 200, 350, 1000, 800, 950, 100]));
        assert_eq!(ring.len(), 1264);
        assert_eq!(
            ring.points_per_server(8),
            vec![176, 88, 56, 104, 296, 236, 280, 28]
        );
    }

    #[test]
    fn equal_weight_quirk() {
        for n in 1..=64usize {
            let per = points_for(1, n as u64, n);
            if [25, 47, 50, 55].contains(&n) {
                assert_eq!(per, 156, "n = {n}");
            } else if n < 25 {
                assert_eq!(per, 160, "n = {n}");
            }
            let h = hosts(n);
            let ring = Ring::build(&servers(&h, &vec![1; n]));
            assert_eq!(ring.len(), per as usize * n, "n = {n}");
            assert!(ring.points_per_server(n).iter().all(|&c| c == per as usize));
        }
        assert_eq!(Ring::build(&servers(&hosts(25), &[7; 25])).len(), 156 * 25);
        // Weight 0 counts as 1.
        let h = hosts(3);
        assert_eq!(
            Ring::build(&servers(&h, &[0, 1, 0])),
            Ring::build(&servers(&h, &[1, 1, 1]))
        );
    }

    #[test]
    fn point_strings() {
        let one = |host: &str, port: u16, expect: &str| {
            let ring = Ring::build(&[RingServer {
                host,
                port,
                weight: 1,
            }]);
            assert_eq!(ring.len(), 160);
            let d = crate::hash::md5::md5_digest(expect.as_bytes());
            for k in 0..4 {
                let v = u32::from_le_bytes([d[4 * k], d[4 * k + 1], d[4 * k + 2], d[4 * k + 3]]);
                assert!(ring.points().any(|(pv, s)| pv == v && s == 0), "{expect}");
            }
        };
        one("10.0.0.1", 11211, "10.0.0.1-0");
        one("10.0.0.1", 11211, "10.0.0.1-39");
        one("cache.example", 11212, "cache.example:11212-7");
        one("[::1]", 22122, "[::1]:22122-12");
        one("/tmp/mc.sock", 0, "/tmp/mc.sock:0-3");
    }

    #[test]
    fn lookup_first_point_ge_and_wrap() {
        let h = hosts(5);
        let ring = Ring::build(&servers(&h, &[1, 2, 3, 4, 5]));
        let pts: Vec<(u32, usize)> = ring.points().collect();
        assert!(pts.windows(2).all(|w| w[0] <= w[1]));
        for &(v, s) in pts.iter().step_by(37) {
            assert_eq!(ring.server_for_hash(v), Some(s));
            if v > 0 && pts.iter().all(|&(pv, _)| pv != v - 1) {
                assert_eq!(ring.server_for_hash(v - 1), Some(s));
            }
        }
        let (last, _) = *pts.last().unwrap();
        if last < u32::MAX {
            assert_eq!(ring.server_for_hash(last + 1), Some(pts[0].1));
        }
        assert_eq!(ring.server_for_hash(u32::MAX), {
            if last == u32::MAX {
                Some(pts.last().unwrap().1)
            } else {
                Some(pts[0].1)
            }
        });
        assert_eq!(ring.server_for_hash(0), Some(pts[0].1));
        assert_eq!(Ring::build(&[]).server_for_hash(5), None);
        assert_eq!(Ring::build(&[]).live_server_for_hash(5, |_| true), None);
    }

    #[test]
    fn live_skip_moves_only_dead_servers_keys() {
        let h = hosts(10);
        let ring = Ring::build(&servers(
            &h,
            &[100, 200, 100, 50, 100, 300, 100, 100, 80, 120],
        ));
        let dead = 5usize;
        let mut moved = 0;
        for i in 0..10_000u32 {
            let k = format!("key:{i}");
            let hv = md5_hash(k.as_bytes());
            let before = ring.server_for_hash(hv).unwrap();
            let after = ring.live_server_for_hash(hv, |s| s != dead).unwrap();
            assert_ne!(after, dead);
            if before != dead {
                assert_eq!(before, after, "{k} moved although its server is live");
            } else {
                moved += 1;
            }
        }
        assert!(moved > 0);
        // Nobody live.
        assert_eq!(ring.live_server_for_hash(123, |_| false), None);
    }

    #[test]
    fn distinct_servers() {
        let h = hosts(6);
        let ring = Ring::build(&servers(&h, &[1; 6]));
        let mut out = vec![99];
        for i in 0..2000u32 {
            let hv = md5_hash(format!("r{i}").as_bytes());
            ring.distinct_servers_for_hash(hv, 3, |_| true, &mut out);
            assert_eq!(out.len(), 3);
            assert_eq!(out[0], ring.server_for_hash(hv).unwrap());
            let mut sorted = out.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 3);

            ring.distinct_servers_for_hash(hv, 10, |s| s != 2, &mut out);
            assert_eq!(out.len(), 5);
            assert!(!out.contains(&2));
            assert_eq!(out[0], ring.live_server_for_hash(hv, |s| s != 2).unwrap());
            let mut sorted = out.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 5);
        }
        ring.distinct_servers_for_hash(1, 0, |_| true, &mut out);
        assert!(out.is_empty());
        ring.distinct_servers_for_hash(1, 3, |_| false, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn adding_a_server_moves_about_one_in_eleven() {
        let h = hosts(11);
        let ring10 = Ring::build(&servers(&h[..10], &[1; 10]));
        let ring11 = Ring::build(&servers(&h, &[1; 11]));
        let mut moved = 0;
        let total = 20_000u32;
        for i in 0..total {
            let hv = md5_hash(format!("user:{i}:profile").as_bytes());
            let a = ring10.server_for_hash(hv).unwrap();
            let b = ring11.server_for_hash(hv).unwrap();
            if a != b {
                // A key that moves, moves to the new server.
                assert_eq!(b, 10);
                moved += 1;
            }
        }
        let frac = moved as f64 / total as f64;
        assert!(frac > 0.04 && frac < 0.15, "moved fraction {frac}");
    }
}
