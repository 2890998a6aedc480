//! Compares this crate's key placement and hash functions with Debian's libmemcached (the
//! oracle, `libmemcached-dev`), over random configurations and keys.
//!
//! A small C program (`tests/oracle/ketama_oracle.c`) is compiled at test time against
//! libmemcached; it configures a `memcached_st` for ketama-md5 (weighted) and prints
//! `memcached_generate_hash()` and `libhashkit_digest()` values, without network I/O. The test
//! fails (never skips) when the oracle cannot be built.

use memcache::hash::crc32::hashkit_crc;
use memcache::hash::{md5_hash, one_at_a_time, Distribution, RingServer, Selector};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The libmemcached setups (`configure()` modes in the C file) that must all place keys like
/// our ketama-md5:
/// * 0: DISTRIBUTION=CONSISTENT_KETAMA, KETAMA_HASH=MD5, HASH=MD5, KETAMA_WEIGHTED=1;
/// * 1: KETAMA_WEIGHTED=1 alone (what php-memcached's OPT_LIBKETAMA_COMPATIBLE sets);
/// * 4: DISTRIBUTION=CONSISTENT_WEIGHTED, HASH=MD5.
///
/// Modes 2, 3 and 5 (CONSISTENT_KETAMA without KETAMA_WEIGHTED) do NOT match: with all weights 1
/// libmemcached builds its unweighted continuum, and without HASH=MD5 it hashes keys with
/// one_at_a_time.
const ORACLE_MODES: [u32; 3] = [0, 1, 4];

const CONFIGS: usize = 60;
const KEYS_PER_CONFIG: usize = 500;

/// xorshift64* with a fixed seed: deterministic across runs and platforms.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform-ish in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

#[derive(Clone, Debug)]
enum Server {
    Tcp {
        host: String,
        port: u16,
        weight: u32,
    },
    Unix {
        path: String,
        weight: u32,
    },
}

impl Server {
    fn ring(&self) -> RingServer<'_> {
        match self {
            Server::Tcp { host, port, weight } => RingServer {
                host,
                port: *port,
                weight: *weight,
            },
            Server::Unix { path, weight } => RingServer {
                host: path,
                port: 0,
                weight: *weight,
            },
        }
    }
}

struct Config {
    label: String,
    servers: Vec<Server>,
    keys: Vec<Vec<u8>>,
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn tcp(host: String, port: u16, weight: u32) -> Server {
    Server::Tcp { host, port, weight }
}

fn random_host(rng: &mut Rng, i: usize) -> String {
    match rng.range(0, 2) {
        0 => format!(
            "{}.{}.{}.{}",
            rng.range(1, 254),
            rng.range(0, 255),
            rng.range(0, 255),
            rng.range(1, 254)
        ),
        1 => format!("cache{i}-{}.example.net", rng.range(0, 99_999)),
        _ => format!("mc{}", rng.range(0, 999)),
    }
}

fn random_key(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.range(0, 3) {
        0 => rng.range(1, 8),
        1 => rng.range(1, 40),
        _ => rng.range(1, 250),
    } as usize;
    let high = rng.range(0, 2) == 0; // a third of the keys lean to bytes >= 0x80
    (0..len)
        .map(|_| loop {
            let b = if high && rng.range(0, 1) == 0 {
                rng.range(0x80, 0xff) as u8
            } else {
                rng.range(0x21, 0xff) as u8
            };
            if b != 0x7f {
                break b;
            }
        })
        .collect()
}

fn configs() -> Vec<Config> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::new();
    let keys = |rng: &mut Rng| (0..KEYS_PER_CONFIG).map(|_| random_key(rng)).collect();

    // Fixed cases first: the spec's cross-check figures and the n = 25 rounding quirk.
    let w8 = [600, 300, 200, 350, 1000, 800, 950, 100];
    out.push(Config {
        label: "spec 8-server weighted".into(),
        servers: (0..8)
            .map(|i| tcp(format!("10.0.1.{}", i + 1), 11211, w8[i]))
            .collect(),
        keys: keys(&mut rng),
    });
    for n in [25usize, 47, 50, 55] {
        out.push(Config {
            label: format!("{n} equal weights (156-point quirk)"),
            servers: (0..n)
                .map(|i| tcp(format!("192.168.{}.{}", i / 200, i % 200 + 1), 11211, 1))
                .collect(),
            keys: keys(&mut rng),
        });
    }
    out.push(Config {
        label: "unix sockets and tcp".into(),
        servers: vec![
            Server::Unix {
                path: "/var/run/memcached/a.sock".into(),
                weight: 3,
            },
            tcp("10.1.1.1".into(), 11211, 5),
            Server::Unix {
                path: "/tmp/b.sock".into(),
                weight: 1,
            },
            tcp("cache.example".into(), 11311, 2),
        ],
        keys: keys(&mut rng),
    });

    out.push(Config {
        label: "bracketed IPv6 hosts".into(),
        servers: vec![
            tcp("[::1]".into(), 11211, 3),
            tcp("[2001:db8::5]".into(), 22122, 5),
            tcp("10.0.0.9".into(), 11211, 2),
        ],
        keys: keys(&mut rng),
    });
    out.push(Config {
        label: "weight 0 counts as 1".into(),
        servers: vec![
            tcp("10.0.0.1".into(), 11211, 0),
            tcp("10.0.0.2".into(), 11211, 1),
            tcp("10.0.0.3".into(), 11211, 0),
        ],
        keys: keys(&mut rng),
    });
    while out.len() < CONFIGS {
        let n = rng.range(1, 40) as usize;
        let equal = rng.range(0, 4) == 0;
        let servers: Vec<Server> = (0..n)
            .map(|i| {
                let host = random_host(&mut rng, i);
                let port = if rng.range(0, 1) == 0 {
                    11211
                } else {
                    rng.range(1, 65535) as u16
                };
                let weight = if equal { 1 } else { rng.range(1, 1000) as u32 };
                tcp(host, port, weight)
            })
            .collect();
        let mut keys: Vec<Vec<u8>> = keys(&mut rng);
        // Every tenth key is a point string, so its hash is exactly a point's value (the first
        // word of that string's MD5): this pins down "first point >= hash" against "> hash".
        for k in keys.iter_mut().step_by(10) {
            let s = &servers[rng.range(0, n as u64 - 1) as usize];
            let j = rng.range(0, 3);
            *k = match s {
                Server::Tcp {
                    host, port: 11211, ..
                } => format!("{host}-{j}"),
                Server::Tcp { host, port, .. } => format!("{host}:{port}-{j}"),
                Server::Unix { path, .. } => format!("{path}:0-{j}"),
            }
            .into_bytes();
        }
        out.push(Config {
            label: format!("random #{} ({n} servers)", out.len()),
            servers,
            keys,
        });
    }
    out
}

/// Builds the oracle into `dir`, or panics with instructions.
fn build_oracle(dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/ketama_oracle.c");
    let exe = dir.join("ketama_oracle");
    let hint = "the libmemcached oracle could not be built; install it with \
                `apt-get install libmemcached-dev pkg-config` (and a C compiler)";
    let pc = Command::new("pkg-config")
        .args(["--cflags", "--libs", "libmemcached"])
        .output()
        .unwrap_or_else(|e| panic!("{hint}: running pkg-config: {e}"));
    assert!(
        pc.status.success(),
        "{hint}: pkg-config libmemcached failed: {}",
        String::from_utf8_lossy(&pc.stderr)
    );
    let flags = String::from_utf8(pc.stdout).expect("pkg-config output is UTF-8");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let out = Command::new(&cc)
        .arg("-O1")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .args(flags.split_whitespace())
        // libhashkit_digest lives in libhashkit, which libmemcached.pc does not list.
        .arg("-lhashkit")
        .output()
        .unwrap_or_else(|e| panic!("{hint}: running {cc}: {e}"));
    assert!(
        out.status.success(),
        "{hint}: {cc} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

fn run_oracle(exe: &Path, input: String) -> String {
    let mut child = Command::new(exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the oracle");
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("wait for the oracle");
    writer.join().unwrap().expect("write the oracle's input");
    assert!(
        out.status.success(),
        "oracle failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("oracle output is ASCII")
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn describe(cfg: &Config) -> String {
    let mut s = format!("configuration \"{}\":\n", cfg.label);
    for (i, srv) in cfg.servers.iter().enumerate() {
        let _ = writeln!(s, "  [{i}] {srv:?}");
    }
    s
}

/// Runs every configuration through the oracle in `mode`; panics on the first mismatch.
fn compare(exe: &Path, mode: u32, configs: &[Config]) -> usize {
    let mut input = String::new();
    for cfg in configs {
        let _ = writeln!(input, "C {mode}");
        for srv in &cfg.servers {
            match srv {
                Server::Tcp { host, port, weight } => {
                    let _ = writeln!(input, "T {host} {port} {weight}");
                }
                Server::Unix { path, weight } => {
                    let _ = writeln!(input, "U {path} {weight}");
                }
            }
        }
        for key in &cfg.keys {
            let _ = writeln!(input, "K {}", hex(key));
        }
    }
    let output = run_oracle(exe, input);
    let mut lines = output.lines();

    let mut compared = 0usize;
    for cfg in configs {
        let ring: Vec<RingServer<'_>> = cfg.servers.iter().map(Server::ring).collect();
        let sel = Selector::new(Distribution::KetamaMd5, &ring);
        for key in &cfg.keys {
            let line = lines
                .next()
                .unwrap_or_else(|| panic!("oracle output ended early (at key {})", hex(key)));
            let v: Vec<u32> = line
                .split(' ')
                .map(|f| f.parse().expect("oracle prints numbers"))
                .collect();
            assert_eq!(v.len(), 4, "bad oracle line {line:?}");
            let ours = [
                sel.pick(sel.hash(key), |_| true).expect("a server") as u32,
                one_at_a_time(key),
                md5_hash(key),
                hashkit_crc(key),
            ];
            let names = ["server index", "one_at_a_time", "md5", "crc"];
            for f in 0..4 {
                if ours[f] != v[f] {
                    panic!(
                        "first mismatch (oracle mode {mode}): {} for key {} (hex, len {}): \
                         libmemcached {} ours {}\nmd5 hash of the key {}\n{}",
                        names[f],
                        hex(key),
                        key.len(),
                        v[f],
                        ours[f],
                        md5_hash(key),
                        describe(cfg)
                    );
                }
            }
            compared += 1;
        }
    }
    assert!(lines.next().is_none(), "oracle printed extra lines");
    compared
}

#[test]
fn ketama_and_hashes_match_libmemcached() {
    let dir = TempDir(std::env::temp_dir().join(format!(
        "memcache-distribution-oracle-{}",
        std::process::id()
    )));
    std::fs::create_dir_all(&dir.0).expect("create a temp dir");
    let exe = build_oracle(&dir.0);
    let configs = configs();
    let keys: usize = configs.iter().map(|c| c.keys.len()).sum();
    assert!(configs.len() >= CONFIGS && keys >= CONFIGS * KEYS_PER_CONFIG);
    for mode in ORACLE_MODES {
        assert_eq!(compare(&exe, mode, &configs), keys);
    }
}
