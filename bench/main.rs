//! `make bench`: this library (C API and Rust core), libmemcached and a raw-socket floor on the
//! same workloads, against the same four memcached servers, in one run; writes BENCHMARKS.md.
//!
//! Run it through `bench/run.sh` (which builds the C clients and passes their paths), not with
//! `cargo bench`. Fairness comes from the schedule: for each workload, one process per client
//! is set up and warmed up, then the harness hands out short time slices to them in turn, round
//! after round, rotating the order each round. Clients are thus measured milliseconds apart and
//! noise from the rest of the machine hits all alike; ratios are medians of per-round ratios.
//! Instruction counts come from callgrind and do not depend on the machine's load.

mod rust_client;
// The test suite's throwaway CA: the TLS server's certificate is made in the work directory.
#[path = "../tests/support/certs.rs"]
mod certs;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The domain the domain-following handle reads, in a private shared-memory namespace.
const DOMAIN: &str = "bench";
const SERVERS: usize = 4;
/// The resident-memory run's steps (bench/clients.c, RUN `rss:N`).
const RSS_STEPS: usize = 10;
/// The most the resident memory may grow from the first step to the last: far above the
/// allocator's noise, far below the 7 MB that 8 bytes lost per operation add over 900,000.
const RSS_GROWTH_KB: i64 = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum ClientId {
    /// This library's C API, one private handle.
    Mc,
    /// This library's C API, a handle following a domain (mc_new2).
    McDomain,
    Rust,
    Libmemcached,
    Floor,
    /// 8 threads on one handle of this library's C API (pipelined).
    McShared8,
    /// 8 threads on one handle, each call under the program's mutex: the serialised handle.
    McLocked8,
    /// 8 threads, one libmemcached handle each.
    Libmemcached8,
    /// libmemcached with BUFFER_REQUESTS and NOREPLY (bulk writes only).
    LibmemcachedNoreply,
    /// This library's C API over TLS (issue 17): a private handle, memcached -Z.
    McTls,
    /// The same with session resumption off (mc_tls_resumption): every reconnect a full
    /// handshake.
    McTlsNoResume,
}

impl ClientId {
    fn label(self) -> &'static str {
        match self {
            ClientId::Mc => "libmemcache C API",
            ClientId::McDomain => "libmemcache C API, domain handle",
            ClientId::Rust => "libmemcache Rust core",
            ClientId::Libmemcached => "libmemcached",
            ClientId::Floor => "raw-socket floor",
            ClientId::McShared8 => "libmemcache C API, 8 threads, one shared handle",
            ClientId::McLocked8 => "libmemcache C API, 8 threads, one handle serialised",
            ClientId::Libmemcached8 => "libmemcached, 8 threads, 8 handles",
            ClientId::LibmemcachedNoreply => "libmemcached, BUFFER_REQUESTS + NOREPLY",
            ClientId::McTls => "libmemcache C API over TLS",
            ClientId::McTlsNoResume => "libmemcache C API over TLS, resumption off",
        }
    }

    /// The client's name for `bench/clients.c`; None for the Rust core (this binary).
    fn c_name(self) -> Option<&'static str> {
        match self {
            ClientId::Mc => Some("mc"),
            ClientId::McDomain => Some("mc-domain"),
            ClientId::Rust => None,
            ClientId::Libmemcached => Some("libmemcached"),
            ClientId::Floor => Some("floor"),
            ClientId::McShared8 => Some("mc-shared8"),
            ClientId::McLocked8 => Some("mc-locked8"),
            ClientId::Libmemcached8 => Some("libmemcached8"),
            ClientId::LibmemcachedNoreply => Some("libmemcached-noreply"),
            ClientId::McTls => Some("mc-tls"),
            ClientId::McTlsNoResume => Some("mc-tls-noresume"),
        }
    }

    /// Whether it talks to the TLS server.
    fn tls(self) -> bool {
        matches!(self, ClientId::McTls | ClientId::McTlsNoResume)
    }
}

/// The clients every workload runs.
const CLIENTS: [ClientId; 4] = [
    ClientId::Mc,
    ClientId::Rust,
    ClientId::Libmemcached,
    ClientId::Floor,
];

struct Workload {
    id: &'static str,
    label: &'static str,
    /// The workload's name for the client programs.
    arg: &'static str,
    servers: usize,
    /// Keys per operation: rates are reported in keys/s when more than 1.
    keys: u32,
    /// Counts the difference of two callgrind runs is taken over (full run).
    callgrind_ops: (u64, u64),
}

const WORKLOADS: [Workload; 14] = [
    Workload {
        id: "get_hit",
        label: "get hit",
        arg: "get_hit",
        servers: 1,
        keys: 1,
        callgrind_ops: (2000, 6000),
    },
    Workload {
        id: "get_miss",
        label: "get miss",
        arg: "get_miss",
        servers: 1,
        keys: 1,
        callgrind_ops: (2000, 6000),
    },
    Workload {
        id: "set",
        label: "set",
        arg: "set",
        servers: 1,
        keys: 1,
        callgrind_ops: (2000, 6000),
    },
    Workload {
        id: "set_10k",
        label: "set 10 KiB",
        arg: "set_10k",
        servers: 1,
        keys: 1,
        callgrind_ops: (1000, 3000),
    },
    Workload {
        id: "incr",
        label: "incr",
        arg: "incr",
        servers: 1,
        keys: 1,
        callgrind_ops: (2000, 6000),
    },
    Workload {
        id: "mget_1",
        label: "multi-get 100 keys, 1 server",
        arg: "mget",
        servers: 1,
        keys: 100,
        callgrind_ops: (200, 600),
    },
    Workload {
        id: "mget_4",
        label: "multi-get 100 keys, 4 servers",
        arg: "mget",
        servers: SERVERS,
        keys: 100,
        callgrind_ops: (200, 600),
    },
    // Issue 16: 100 keys written in one operation (see BULK_CLIENTS).
    Workload {
        id: "bulk_set_1",
        label: "bulk set 100 keys, 1 server",
        arg: "bulkset",
        servers: 1,
        keys: 100,
        callgrind_ops: (200, 600),
    },
    Workload {
        id: "bulk_set_4",
        label: "bulk set 100 keys, 4 servers",
        arg: "bulkset",
        servers: SERVERS,
        keys: 100,
        callgrind_ops: (200, 600),
    },
    // Issue 16: 8 threads of one process (see THREADED_CLIENTS).
    Workload {
        id: "get_hit_8t",
        label: "get hit, 8 threads",
        arg: "get_hit",
        servers: 1,
        keys: 1,
        callgrind_ops: (2000, 6000),
    },
    Workload {
        id: "set_8t",
        label: "set, 8 threads",
        arg: "set",
        servers: 1,
        keys: 1,
        callgrind_ops: (2000, 6000),
    },
    // Issue 17: the C API over TLS (memcached -Z beside the plain servers) against plain.
    Workload {
        id: "get_hit_tls",
        label: "get hit, TLS vs plain",
        arg: "get_hit",
        servers: 1,
        keys: 1,
        callgrind_ops: (2000, 6000),
    },
    Workload {
        id: "set_tls",
        label: "set, TLS vs plain",
        arg: "set",
        servers: 1,
        keys: 1,
        callgrind_ops: (2000, 6000),
    },
    // A new connection per operation: TCP, TLS resuming the session, TLS in full.
    Workload {
        id: "reconnect",
        label: "reconnect + get hit",
        arg: "reconnect",
        servers: 1,
        keys: 1,
        callgrind_ops: (100, 300),
    },
];

/// The clients of the TLS workloads: the same C API over plain TCP and over TLS.
const TLS_CLIENTS: [ClientId; 2] = [ClientId::Mc, ClientId::McTls];
/// The clients of the reconnect workload.
const RECONNECT_CLIENTS: [ClientId; 3] = [ClientId::Mc, ClientId::McTls, ClientId::McTlsNoResume];

/// The clients of the 8-thread workloads: this library's handle shared by the threads, the
/// same handle serialised (one call at a time, as before issue 16), and libmemcached with a
/// handle per thread. Their slices report all threads' operations over the slice's time.
const THREADED_CLIENTS: [ClientId; 3] = [
    ClientId::McShared8,
    ClientId::McLocked8,
    ClientId::Libmemcached8,
];

/// The clients of the bulk workloads: mc_bulk and Client::bulk against libmemcached's set
/// loop and its buffered sets without replies (which cannot report a failed key).
const BULK_CLIENTS: [ClientId; 4] = [
    ClientId::Mc,
    ClientId::Rust,
    ClientId::Libmemcached,
    ClientId::LibmemcachedNoreply,
];

/// Whether a workload is one of issue 17's (TLS against plain, reconnects).
fn is_tls_workload(id: &str) -> bool {
    id.ends_with("_tls") || id == "reconnect"
}

/// Whether a workload runs 8 threads per client.
fn threaded(w: &Workload) -> bool {
    w.id.ends_with("_8t")
}

/// The libmemcached client a workload's rates are compared with.
fn libmemcached_of(w: &Workload) -> ClientId {
    if threaded(w) {
        ClientId::Libmemcached8
    } else {
        ClientId::Libmemcached
    }
}

fn workload(id: &str) -> &'static Workload {
    WORKLOADS
        .iter()
        .find(|w| w.id == id)
        .expect("known workload")
}

/// The clients measured on a workload: get hit adds the domain handle, right after the private
/// one, so the two are neighbours in most rounds.
fn clients_of(w: &Workload) -> Vec<ClientId> {
    if threaded(w) {
        return THREADED_CLIENTS.to_vec();
    }
    if w.arg == "bulkset" {
        return BULK_CLIENTS.to_vec();
    }
    if w.id == "reconnect" {
        return RECONNECT_CLIENTS.to_vec();
    }
    if w.id.ends_with("_tls") {
        return TLS_CLIENTS.to_vec();
    }
    let mut v = CLIENTS.to_vec();
    if w.id == "get_hit" {
        v.insert(1, ClientId::McDomain);
    }
    v
}

/// Which (client, workload) pairs are counted with callgrind. `profiled` pairs also get the
/// per-function breakdown.
struct CallgrindPlan {
    pairs: Vec<(ClientId, &'static str)>,
    /// Replaces each workload's `callgrind_ops` (the smoke run uses tiny counts).
    ops: Option<(u64, u64)>,
    profiled: Vec<(ClientId, &'static str)>,
}

/// Which CPUs the clients and the servers run on. Left to the kernel, a client's placement next
/// to its server changes from one moment to the next, and with it whether a reply wakes the
/// client once or several times: a 2x swing in multi-get rates that no pairing can cancel.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Clients on CPU 0, servers on CPUs 1..: every round trip crosses CPUs, like a reply
    /// from another machine.
    Split,
    /// Clients and servers on CPU 1: a round trip is two context switches, so the clients'
    /// own CPU time weighs the most.
    Shared,
    /// No pinning.
    Free,
}

impl Placement {
    fn name(self) -> &'static str {
        match self {
            Placement::Split => "split",
            Placement::Shared => "shared",
            Placement::Free => "free",
        }
    }

    /// The CPU of server `i` of a machine with `cpus` CPUs (at least 2 unless Free).
    fn server_cpu(self, i: usize, cpus: usize) -> Option<usize> {
        match self {
            Placement::Split => Some(1 + i % (cpus - 1)),
            Placement::Shared => Some(1),
            Placement::Free => None,
        }
    }

    fn client_cpu(self) -> Option<usize> {
        match self {
            Placement::Split => Some(0),
            Placement::Shared => Some(1),
            Placement::Free => None,
        }
    }

    fn describe(self, cpus: usize) -> String {
        match self {
            Placement::Split if cpus > 2 => {
                format!("clients on CPU 0, servers on CPUs 1-{}", cpus - 1)
            }
            Placement::Split => "clients on CPU 0, servers on CPU 1".into(),
            Placement::Shared => "clients and servers on CPU 1".into(),
            Placement::Free => "no pinning: the kernel places clients and servers".into(),
        }
    }
}

struct Options {
    clients_bin: PathBuf,
    mcadmin: PathBuf,
    out: PathBuf,
    work: PathBuf,
    /// Rounds per workload: in each, every client runs one slice.
    rounds: usize,
    /// Seconds per slice.
    slice: f64,
    smoke: bool,
    /// Where the clients and the servers run (`--placement`); None: split, then shared.
    placement: Option<Placement>,
    callgrind: CallgrindPlan,
    /// Operations of each resident-memory run.
    rss_ops: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench/run.sh [--smoke] [--rounds N] [--slice SECONDS] [--placement split|shared|free]\n\
         [--out FILE]\n\
         (bench/run.sh builds the clients and calls this program with --work, --clients and\n\
         --mcadmin)"
    );
    std::process::exit(1);
}

fn parse_options(args: &[String]) -> Options {
    let mut clients_bin = None;
    let mut mcadmin = None;
    let mut out = None;
    let mut work = None;
    let mut rounds = None;
    let mut slice = None;
    let mut smoke = false;
    let mut placement = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().unwrap_or_else(|| usage());
        match a.as_str() {
            "--clients" => clients_bin = Some(PathBuf::from(value())),
            "--mcadmin" => mcadmin = Some(PathBuf::from(value())),
            "--out" => out = Some(PathBuf::from(value())),
            "--work" => work = Some(PathBuf::from(value())),
            "--rounds" => rounds = Some(value().parse().unwrap_or_else(|_| usage())),
            "--slice" => slice = Some(value().parse().unwrap_or_else(|_| usage())),
            "--smoke" => smoke = true,
            "--placement" => {
                placement = Some(match value().as_str() {
                    "split" => Placement::Split,
                    "shared" => Placement::Shared,
                    "free" => Placement::Free,
                    _ => usage(),
                })
            }
            // `cargo bench` passes this; harmless.
            "--bench" => {}
            _ => usage(),
        }
    }
    let (Some(clients_bin), Some(mcadmin)) = (clients_bin, mcadmin) else {
        usage()
    };
    let work = work.unwrap_or_else(|| PathBuf::from("target/bench"));
    let callgrind = if smoke {
        CallgrindPlan {
            pairs: vec![
                (ClientId::Mc, "get_hit"),
                (ClientId::Libmemcached, "get_hit"),
                (ClientId::McTls, "get_hit_tls"),
            ],
            ops: Some((5, 10)),
            profiled: vec![(ClientId::Mc, "get_hit")],
        }
    } else {
        let mut pairs = Vec::new();
        for w in ["get_hit", "set", "set_10k", "mget_1", "mget_4"] {
            for c in CLIENTS {
                pairs.push((c, w));
            }
        }
        pairs.insert(1, (ClientId::McDomain, "get_hit"));
        for c in BULK_CLIENTS {
            pairs.push((c, "bulk_set_4"));
        }
        // Issue 17: plain is the C API's get_hit and set above.
        pairs.push((ClientId::McTls, "get_hit_tls"));
        pairs.push((ClientId::McTls, "set_tls"));
        for c in RECONNECT_CLIENTS {
            pairs.push((c, "reconnect"));
        }
        CallgrindPlan {
            pairs,
            ops: None,
            profiled: vec![
                (ClientId::Mc, "get_hit"),
                (ClientId::Mc, "set"),
                (ClientId::Mc, "mget_1"),
                (ClientId::Libmemcached, "get_hit"),
                (ClientId::McTls, "get_hit_tls"),
            ],
        }
    };
    Options {
        clients_bin,
        mcadmin,
        out: out.unwrap_or_else(|| {
            PathBuf::from(if smoke {
                "target/bench/smoke.md"
            } else {
                "BENCHMARKS.md"
            })
        }),
        work,
        rounds: rounds.unwrap_or(if smoke { 2 } else { 60 }),
        slice: slice.unwrap_or(if smoke { 0.001 } else { 0.02 }),
        smoke,
        placement,
        rss_ops: if smoke { 20_000 } else { 1_000_000 },
        callgrind,
    }
}

// ---- servers ----

/// One memcached child on a loopback port, killed when dropped.
struct Memcached {
    child: Child,
    port: u16,
    /// Where the harness asks `stats`: `port`, or for a TLS server a plaintext port of its own.
    stats_port: u16,
}

/// A port nobody listens on now.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

impl Memcached {
    /// A server on a free port, pinned to `cpu` when given; with `tls` (certificate chain and
    /// key) it speaks TLS (`-Z`) there, and plaintext on a second port for the harness's stats.
    fn start(
        user: &str,
        cpu: Option<usize>,
        tls: Option<&(PathBuf, PathBuf)>,
    ) -> Result<Memcached, String> {
        let mut last = String::new();
        for _ in 0..10 {
            let port = free_port()?;
            let stats_port = if tls.is_some() { free_port()? } else { port };
            let mut cmd = match cpu {
                // taskset execs memcached: the child's pid stays the server's.
                Some(cpu) => {
                    let mut c = Command::new("taskset");
                    c.args(["-c", &cpu.to_string(), "memcached"]);
                    c
                }
                None => Command::new("memcached"),
            };
            match tls {
                Some((cert, key)) => cmd
                    .arg("-l")
                    .arg(format!("127.0.0.1:{port},notls:127.0.0.1:{stats_port}"))
                    .arg("-Z")
                    .arg("-o")
                    .arg(format!(
                        // Its session cache, without which memcached resumes no session.
                        "ssl_chain_cert={},ssl_key={},ssl_session_cache",
                        cert.display(),
                        key.display()
                    )),
                None => cmd.args(["-l", "127.0.0.1", "-p", &port.to_string()]),
            };
            let child = cmd
                .args(["-U", "0", "-m", "64", "-t", "1", "-c", "1024"])
                .args(["-u", user])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot run memcached: {e}"))?;
            let mut mc = Memcached {
                child,
                port,
                stats_port,
            };
            match mc.wait_ready() {
                Ok(()) => return Ok(mc),
                Err(e) => last = e,
            }
        }
        Err(format!("cannot start memcached: {last}"))
    }

    /// Waits until this very process answers (its pid in `stats`), so a server someone else
    /// started on the port meanwhile is never taken for ours.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let pid = self.child.id().to_string();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("memcached exited at start: {status}"));
            }
            if let Ok(stats) = stats(self.stats_port) {
                if stats.get("pid") == Some(&pid) {
                    return Ok(());
                }
                return Err(format!("port {} belongs to another memcached", self.port));
            }
            thread::sleep(Duration::from_millis(10));
        }
        Err("memcached not ready after 5 s".into())
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Memcached {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `stats` over a fresh connection: name -> value.
fn stats(port: u16) -> std::io::Result<HashMap<String, String>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"stats\r\n")?;
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while !reply.ends_with(b"END\r\n") {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        reply.extend_from_slice(&chunk[..n]);
    }
    Ok(String::from_utf8_lossy(&reply)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("STAT")).then_some(())?;
            Some((w.next()?.to_string(), w.next().unwrap_or("").to_string()))
        })
        .collect())
}

fn cmd_get(port: u16) -> Result<u64, String> {
    stats(port)
        .map_err(|e| format!("stats of port {port}: {e}"))?
        .get("cmd_get")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("port {port}: no cmd_get stat"))
}

/// The domain of the domain handle, in a shared-memory namespace of this run's own; destroyed
/// when dropped.
struct Domain<'a> {
    mcadmin: &'a Path,
    shm_prefix: &'a str,
}

impl<'a> Domain<'a> {
    fn create(mcadmin: &'a Path, shm_prefix: &'a str, server: &str) -> Result<Self, String> {
        let d = Domain {
            mcadmin,
            shm_prefix,
        };
        let out = d
            .mcadmin(&["set", server])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", mcadmin.display()))?;
        if !out.status.success() {
            return Err(format!(
                "mcadmin set failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(d)
    }

    fn mcadmin(&self, args: &[&str]) -> Command {
        let mut c = Command::new(self.mcadmin);
        c.env("MEMCACHE_SHM_PREFIX", self.shm_prefix)
            .args(["--domain", DOMAIN])
            .args(args)
            .stdin(Stdio::null());
        c
    }
}

impl Drop for Domain<'_> {
    fn drop(&mut self) {
        let _ = self.mcadmin(&["destroy"]).stderr(Stdio::null()).status();
    }
}

// ---- running clients ----

struct Bench<'a> {
    opts: &'a Options,
    servers: Vec<String>,
    /// memcached -Z beside the plain servers, and the CA its certificate chains to.
    tls_server: String,
    tls_ca: PathBuf,
    shm_prefix: String,
}

impl Bench<'_> {
    /// The command line of one client process on one workload.
    fn command(&self, c: ClientId, w: &Workload, run: &str) -> Vec<String> {
        let mut argv = match c.c_name() {
            Some(name) => vec![
                self.opts.clients_bin.display().to_string(),
                name.to_string(),
            ],
            None => vec![current_exe(), "client".to_string()],
        };
        argv.push(w.arg.to_string());
        argv.push(run.to_string());
        if c == ClientId::McDomain {
            argv.push(DOMAIN.to_string());
        } else if c.tls() {
            argv.push(self.tls_server.clone());
        } else {
            argv.extend(self.servers[..w.servers].iter().cloned());
        }
        argv
    }

    fn spawn(&self, argv: &[String]) -> Command {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env("MEMCACHE_SHM_PREFIX", &self.shm_prefix)
            .env("MC_BENCH_TLS_CA", &self.tls_ca)
            .stdin(Stdio::null());
        cmd
    }

    /// One client process, start to finish: the `count` numbers it printed.
    fn run_to_end(
        &self,
        c: ClientId,
        w: &Workload,
        run: &str,
        count: usize,
    ) -> Result<Vec<f64>, String> {
        let argv = self.command(c, w, run);
        let out = self
            .spawn(&argv)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let fields: Option<Vec<f64>> = stdout.split_whitespace().map(|f| f.parse().ok()).collect();
        match fields {
            Some(numbers) if out.status.success() && numbers.len() == count => Ok(numbers),
            _ => Err(format!(
                "{} failed ({}): {}",
                argv.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }

    /// One client process with RUN `ops:N`: (operations, seconds).
    fn run_ops(&self, c: ClientId, w: &Workload, run: &str) -> Result<(u64, f64), String> {
        let n = self.run_to_end(c, w, run, 2)?;
        Ok((n[0] as u64, n[1]))
    }

    /// One client process with RUN `rss:ops`.
    fn rss(&self, c: ClientId, w: &Workload, ops: u64) -> Result<RssRun, String> {
        let n = self.run_to_end(c, w, &format!("rss:{ops}"), 2 + RSS_STEPS)?;
        Ok(RssRun {
            ops: n[0] as u64,
            secs: n[1],
            kb: n[2..].iter().map(|&k| k as i64).collect(),
        })
    }

    /// A client process in `slices` mode, set up, warmed up and waiting for its first slice.
    fn session(&self, c: ClientId, w: &Workload) -> Result<Session, String> {
        let argv = self.command(c, w, "slices");
        let mut child = self
            .spawn(&argv)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", argv[0]))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut s = Session {
            what: argv.join(" "),
            child,
            stdin: Some(stdin),
            stdout,
        };
        match s.line()?.as_str() {
            "ready" => Ok(s),
            other => Err(format!("{}: said {other:?} instead of ready", s.what)),
        }
    }

    /// Keys per server (of 100) when `c` runs the 4-server multi-get, from the servers'
    /// `cmd_get` counters around a short run.
    fn split(&self, c: ClientId) -> Result<Vec<u64>, String> {
        let ports: Vec<u16> = self
            .servers
            .iter()
            .map(|s| s.rsplit_once(':').and_then(|(_, p)| p.parse().ok()))
            .collect::<Option<_>>()
            .ok_or("bad server address")?;
        let before = ports
            .iter()
            .map(|&p| cmd_get(p))
            .collect::<Result<Vec<_>, _>>()?;
        self.run_ops(c, workload("mget_4"), "ops:1")?;
        let after = ports
            .iter()
            .map(|&p| cmd_get(p))
            .collect::<Result<Vec<_>, _>>()?;
        // Shares of 100 keys: the counters also saw the warm-up and any setup reads.
        let delta: Vec<u64> = before.iter().zip(&after).map(|(b, a)| a - b).collect();
        let total: u64 = delta.iter().sum::<u64>().max(1);
        Ok(delta
            .iter()
            .map(|d| (d * 100 + total / 2) / total)
            .collect())
    }

    /// Total instructions of one client process under callgrind, and its profile file.
    fn callgrind(&self, c: ClientId, w: &Workload, ops: u64) -> Result<(u64, PathBuf), String> {
        let out = self.opts.work.join(format!(
            "callgrind.{}.{}.{ops}.out",
            c.c_name().unwrap_or("rust"),
            w.id
        ));
        let mut argv = vec![
            "valgrind".to_string(),
            "--tool=callgrind".to_string(),
            format!("--callgrind-out-file={}", out.display()),
        ];
        argv.extend(self.command(c, w, &format!("ops:{ops}")));
        let res = self
            .spawn(&argv)
            .output()
            .map_err(|e| format!("cannot run valgrind: {e}"))?;
        let stderr = String::from_utf8_lossy(&res.stderr);
        let collected = stderr
            .lines()
            .find_map(|l| {
                l.split_once("Collected :")
                    .map(|(_, n)| n.trim().parse().ok())
            })
            .flatten();
        match (res.status.success(), collected) {
            (true, Some(n)) => Ok((n, out)),
            _ => Err(format!(
                "{} failed ({}): {}",
                argv.join(" "),
                res.status,
                stderr.trim()
            )),
        }
    }
}

/// The resident memory of a client over one long run (see bench/clients.c, RUN `rss:N`).
struct RssRun {
    ops: u64,
    secs: f64,
    /// VmRSS in kB after each of the RSS_STEPS equal steps.
    kb: Vec<i64>,
}

impl RssRun {
    /// From the end of the first step to the end of the last: what grows with the operations,
    /// once the first step has grown buffers and allocator arenas to their working size.
    fn growth(&self) -> i64 {
        self.kb[RSS_STEPS - 1] - self.kb[0]
    }

    /// The largest growth over one step.
    fn largest_step(&self) -> i64 {
        self.kb.windows(2).map(|p| p[1] - p[0]).max().unwrap_or(0)
    }
}

/// A client process taking slices from the harness (see bench/clients.c, RUN `slices`).
struct Session {
    what: String,
    child: Child,
    /// Closed (None) to tell the client to finish.
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Session {
    fn line(&mut self) -> Result<String, String> {
        let mut line = String::new();
        match self.stdout.read_line(&mut line) {
            Ok(n) if n > 0 => Ok(line.trim().to_string()),
            _ => Err(format!(
                "{} stopped ({:?})",
                self.what,
                self.child.try_wait()
            )),
        }
    }

    /// Operations for `secs` seconds: (operations, seconds they took, median latency).
    fn slice(&mut self, secs: f64) -> Result<(u64, f64, f64), String> {
        let stdin = self.stdin.as_mut().expect("session not finished");
        writeln!(stdin, "{secs}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("{}: {e}", self.what))?;
        let line = self.line()?;
        let mut fields = line.split_whitespace();
        match (
            fields.next().and_then(|f| f.parse().ok()),
            fields.next().and_then(|f| f.parse().ok()),
            fields.next().and_then(|f| f.parse::<f64>().ok()),
        ) {
            (Some(ops), Some(t), Some(median)) if median > 0.0 => Ok((ops, t, median)),
            _ => Err(format!("{}: bad slice result {line:?}", self.what)),
        }
    }

    fn finish(mut self) -> Result<(), String> {
        self.stdin = None;
        match self.child.wait() {
            Ok(status) if status.success() => Ok(()),
            other => Err(format!("{} ended with {other:?}", self.what)),
        }
    }
}

impl Drop for Session {
    /// A session dropped on an error path: the closed stdin ends it; reap it.
    fn drop(&mut self) {
        self.stdin = None;
        let _ = self.child.wait();
    }
}

fn current_exe() -> String {
    std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|e| panic!("cannot find this program's path: {e}"))
}

// ---- statistics ----

/// min, median, max of non-empty samples.
fn summary(samples: &[f64]) -> (f64, f64, f64) {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    (s[0], median, s[n - 1])
}

/// Rates (ops/s, or keys/s for multi-get) per workload and client, one per round.
type Rates = HashMap<(&'static str, ClientId), Vec<f64>>;

/// The rounds of one placement.
struct Pass {
    placement: Placement,
    description: String,
    measured: Measured,
}

/// What the rounds measured: each slice gives two rates.
#[derive(Default)]
struct Measured {
    /// Keys per operation over the slice's median operation latency: the figure compared,
    /// as other work on the machine delays some operations but leaves the median alone.
    typical: Rates,
    /// Keys over the slice's whole time, delays included.
    throughput: Rates,
}

/// `a`'s rate divided by `b`'s in the same round, for every round.
fn round_ratios(rates: &Rates, w: &str, a: ClientId, b: ClientId) -> Option<Vec<f64>> {
    let (ra, rb) = (
        rates.get(&(workload(w).id, a))?,
        rates.get(&(workload(w).id, b))?,
    );
    let ratios: Vec<f64> = ra.iter().zip(rb).map(|(x, y)| x / y).collect();
    (!ratios.is_empty()).then_some(ratios)
}

/// The median over rounds of `a`'s rate divided by `b`'s in the same round.
fn paired_ratio(rates: &Rates, w: &str, a: ClientId, b: ClientId) -> Option<f64> {
    round_ratios(rates, w, a, b).map(|r| summary(&r).1)
}

/// The first and third quartiles of non-empty samples.
fn quartiles(samples: &[f64]) -> (f64, f64) {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.75))
}

/// Instructions per operation from two runs: the difference cancels start-up and warm-up.
struct Counted {
    per_op: f64,
    files: (PathBuf, PathBuf),
    ops: (u64, u64),
}

type Instructions = HashMap<(ClientId, &'static str), Counted>;

// ---- callgrind profiles ----

/// Self instructions per function, and each function's object file, from callgrind_annotate.
fn annotate(file: &Path) -> Result<HashMap<String, (u64, String)>, String> {
    let out = Command::new("callgrind_annotate")
        .args(["--threshold=100", "--inclusive=no", "--auto=no"])
        .arg(file)
        .output()
        .map_err(|e| format!("cannot run callgrind_annotate: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "callgrind_annotate {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut funcs: HashMap<String, (u64, String)> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "  1,234 ( 5.67%)  FILE:FUNCTION [OBJECT]"; the object is shown on some lines only.
        let line = line.trim_start();
        let Some((count, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('(') {
            Some(r) => r.split_once(')').map_or(r, |(_, r)| r).trim_start(),
            None => rest,
        };
        if rest.starts_with("PROGRAM TOTALS") {
            continue;
        }
        let (body, object) = match rest.rsplit_once(" [") {
            Some((b, o)) if o.starts_with('/') && o.ends_with(']') => {
                let o = o.trim_end_matches(']');
                (b, o.rsplit('/').next().unwrap_or(o).to_string())
            }
            _ => (rest, String::new()),
        };
        let func = body.split_once(':').map_or(body, |(_, f)| f).to_string();
        let e = funcs.entry(func).or_insert((0, String::new()));
        e.0 += count;
        if e.1.is_empty() {
            e.1 = object;
        }
    }
    Ok(funcs)
}

/// One function's share of an operation.
struct FunctionCost {
    function: String,
    /// The object file's name; empty when callgrind_annotate never showed it.
    object: String,
    /// Self instructions per operation.
    per_op: f64,
}

/// Per-operation self instructions per function, most expensive first.
fn profile(c: &Counted) -> Result<Vec<FunctionCost>, String> {
    let small = annotate(&c.files.0)?;
    let large = annotate(&c.files.1)?;
    let dn = (c.ops.1 - c.ops.0) as f64;
    let mut rows: Vec<FunctionCost> = large
        .into_iter()
        .map(|(function, (n, object))| {
            let before = small.get(&function);
            let object = match before {
                Some((_, o)) if object.is_empty() => o.clone(),
                _ => object,
            };
            let per_op = (n as f64 - before.map_or(0, |b| b.0) as f64) / dn;
            FunctionCost {
                function,
                object,
                per_op,
            }
        })
        .filter(|r| r.per_op.abs() >= 0.5)
        .collect();
    rows.sort_by(|a, b| b.per_op.total_cmp(&a.per_op));
    Ok(rows)
}

// ---- the report ----

/// Every slice's rates, for a closer look: placement,workload,client,round,typical,plain.
fn write_rates(path: &Path, passes: &[Pass]) -> Result<(), String> {
    let mut csv = String::from("placement,workload,client,round,typical,plain\n");
    for pass in passes {
        let m = &pass.measured;
        for w in &WORKLOADS {
            for c in clients_of(w) {
                let key = (w.id, c);
                let (Some(typical), Some(all)) = (m.typical.get(&key), m.throughput.get(&key))
                else {
                    continue;
                };
                for (round, (t, a)) in typical.iter().zip(all).enumerate() {
                    let _ = writeln!(
                        csv,
                        "{},{},{},{round},{t:.0},{a:.0}",
                        pass.placement.name(),
                        w.id,
                        c.c_name().unwrap_or("rust")
                    );
                }
            }
        }
    }
    std::fs::write(path, csv).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else {
        format!("{:.1} k", x / 1e3)
    }
}

fn ratio(x: Option<f64>) -> String {
    x.map_or("-".into(), |r| format!("{r:.3}"))
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

/// Function names in a table cell: `|` escaped, very long generic names shortened.
fn cell(name: &str) -> String {
    let mut s: String = name.chars().take(110).collect();
    if s.len() < name.len() {
        s.push('…');
    }
    s.replace('|', "\\|")
}

/// One placement's throughput table.
fn render_rates(s: &mut String, m: &Measured) {
    let _ = writeln!(
        s,
        "| workload | client | median | min | max | x libmemcached | x floor | plain |\n\
         |---|---|---:|---:|---:|---:|---:|---:|"
    );
    for w in &WORKLOADS {
        for c in clients_of(w) {
            let Some(samples) = m.typical.get(&(w.id, c)) else {
                continue;
            };
            let (min, med, max) = summary(samples);
            let plain = m
                .throughput
                .get(&(w.id, c))
                .map_or("-".into(), |t| rate(summary(t).1));
            let unit = if w.keys > 1 { "keys/s" } else { "ops/s" };
            let vs = |b| ratio(paired_ratio(&m.typical, w.id, c, b));
            let _ = writeln!(
                s,
                "| {} | {} | {} {unit} | {} | {} | {} | {} | {plain} |",
                w.label,
                c.label(),
                rate(med),
                rate(min),
                rate(max),
                vs(libmemcached_of(w)),
                vs(ClientId::Floor),
            );
        }
    }
    let _ = writeln!(s);
}

struct Machine {
    date: String,
    nproc: String,
    cpu: String,
    kernel: String,
    memcached: String,
    libmemcached: String,
    rustc: String,
    cc: String,
    load_before: String,
    load_after: String,
}

struct Report<'a> {
    opts: &'a Options,
    machine: Machine,
    passes: Vec<Pass>,
    splits: Vec<(ClientId, Vec<u64>)>,
    /// Resident memory of the shared handle, per 8-thread workload.
    rss: Vec<(&'static str, RssRun)>,
    instr: Instructions,
    profiles: Vec<((ClientId, &'static str), Vec<FunctionCost>)>,
    elapsed: Duration,
}

impl Report<'_> {
    fn per_op(&self, c: ClientId, w: &str) -> Option<f64> {
        self.instr.get(&(c, workload(w).id)).map(|x| x.per_op)
    }

    fn render(&self) -> String {
        let o = self.opts;
        let m = &self.machine;
        let mut s = String::new();
        let title = if o.smoke {
            "# Benchmarks (smoke run: tiny counts, figures meaningless)"
        } else {
            "# Benchmarks"
        };
        let _ = writeln!(s, "{title}\n");
        let _ = writeln!(
            s,
            "Written by `make bench` (bench/run.sh, bench/main.rs) on {}; reproduce with \
             `{}`.\n",
            m.date,
            if o.smoke {
                "make bench SMOKE=1"
            } else {
                "make bench"
            }
        );
        let _ = writeln!(s, "## Machine\n");
        let _ = writeln!(s, "- CPUs (`nproc`): {}; CPU: {}", m.nproc, m.cpu);
        let _ = writeln!(s, "- kernel: {}", m.kernel);
        let _ = writeln!(
            s,
            "- {}: {SERVERS} servers on loopback, 1 worker thread each (`-t 1 -U 0 -m 64`)",
            m.memcached
        );
        let places: Vec<String> = self
            .passes
            .iter()
            .map(|p| format!("{}: {}", p.placement.name(), p.description))
            .collect();
        let _ = writeln!(
            s,
            "- CPU placements measured (taskset; see Method): {}",
            places.join("; ")
        );
        let _ = writeln!(
            s,
            "- libmemcached {} (Debian libmemcached-dev)",
            m.libmemcached
        );
        let _ = writeln!(s, "- {}; {}", m.rustc, m.cc);
        let _ = writeln!(
            s,
            "- load average (1, 5, 15 min) before: {}; after: {}. Other work shares the machine \
             when these exceed the CPU count: the throughput figures are then noisy, the \
             instruction counts are not.",
            m.load_before, m.load_after
        );
        let _ = writeln!(
            s,
            "- {} rounds per workload and placement, one slice of {} s per client and round; \
             the whole run took {:.0} s.\n",
            o.rounds,
            o.slice,
            self.elapsed.as_secs_f64()
        );
        self.render_targets(&mut s);
        self.render_throughput(&mut s);
        self.render_instructions(&mut s);
        self.render_tls(&mut s);
        self.render_profiles(&mut s);
        self.render_method(&mut s);
        s
    }

    fn render_targets(&self, s: &mut String) {
        let _ = writeln!(s, "## Targets (issues 6, 16 and 17)\n");
        let mc = ClientId::Mc;
        let judged = |value: Option<f64>, at_least: bool, bound: f64| match value {
            Some(v) => format!(
                "{v:.3} {}",
                verdict(if at_least { v >= bound } else { v <= bound })
            ),
            None => "not measured".into(),
        };
        // (target, workload, client, reference client, bound): time ratios, per placement.
        let mut timed: Vec<(String, &str, ClientId, ClientId, f64)> = Vec::new();
        for w in ["get_hit", "get_miss", "set", "set_10k", "incr"] {
            let what = format!("{}: C API >= 0.97 x floor", workload(w).label);
            timed.push((what, w, mc, ClientId::Floor, 0.97));
        }
        let mget = [
            ("mget_1", ClientId::Floor, 0.95),
            ("mget_1", ClientId::Libmemcached, 1.2),
            ("mget_4", ClientId::Libmemcached, 1.2),
        ];
        for (w, reference, bound) in mget {
            let what = format!(
                "{}: C API >= {bound} x {}",
                workload(w).label,
                if reference == ClientId::Floor {
                    "floor"
                } else {
                    "libmemcached"
                }
            );
            timed.push((what, w, mc, reference, bound));
        }
        timed.push((
            "get hit: domain handle >= 0.99 x private handle".into(),
            "get_hit",
            ClientId::McDomain,
            mc,
            0.99,
        ));
        // Issue 16: bulk writes.
        for w in ["bulk_set_1", "bulk_set_4"] {
            let label = workload(w).label;
            timed.push((
                format!("{label}: mc_bulk >= 5 x libmemcached's set loop"),
                w,
                mc,
                ClientId::Libmemcached,
                5.0,
            ));
            timed.push((
                format!("{label}: mc_bulk >= 1.2 x libmemcached buffered + noreply"),
                w,
                mc,
                ClientId::LibmemcachedNoreply,
                1.2,
            ));
        }
        // Issue 16: threads sharing one handle.
        for w in ["get_hit_8t", "set_8t"] {
            let label = workload(w).label;
            timed.push((
                format!("{label}: one shared handle >= 1.0 x libmemcached with 8 handles"),
                w,
                ClientId::McShared8,
                ClientId::Libmemcached8,
                1.0,
            ));
            timed.push((
                format!("{label}: one shared handle >= 4 x the serialised handle"),
                w,
                ClientId::McShared8,
                ClientId::McLocked8,
                4.0,
            ));
        }
        // Issue 17: single-key rates over TLS against plain, the same C API on loopback.
        for (w, label) in [("get_hit_tls", "get hit"), ("set_tls", "set")] {
            timed.push((
                format!("{label}: single-key TLS rate >= 0.9 x plain on loopback"),
                w,
                ClientId::McTls,
                mc,
                0.9,
            ));
        }
        let mut head = String::from("| target (time) |");
        let mut rule = String::from("|---|");
        for p in &self.passes {
            let _ = write!(head, " {} placement |", p.placement.name());
            rule.push_str("---|");
        }
        let _ = writeln!(s, "{head}\n{rule}");
        for (what, w, a, b, bound) in &timed {
            let mut row = format!("| {what} |");
            for p in &self.passes {
                let cell = match round_ratios(&p.measured.typical, w, *a, *b) {
                    Some(r) => {
                        let (q1, q3) = quartiles(&r);
                        let median = summary(&r).1;
                        format!("{} ({q1:.3}-{q3:.3})", judged(Some(median), true, *bound))
                    }
                    None => judged(None, true, *bound),
                };
                let _ = write!(row, " {cell} |");
            }
            let _ = writeln!(s, "{row}");
        }
        let _ = writeln!(
            s,
            "\nEach figure is the median over the rounds of the ratio between the two clients' \
             rates (at the median operation latency, see Throughput) in the same round; in \
             brackets the middle half of those ratios (first to third quartile), a measure of \
             the noise.\n"
        );
        let ratio_of = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
        let _ = writeln!(
            s,
            "| target (instructions, callgrind) | measured |\n|---|---|\n\
             | instructions per get (hit): C API <= 0.6 x libmemcached | {} |\n\
             | get hit: domain handle >= 0.99 x private handle (private / domain instructions) \
             | {} |\n",
            judged(
                ratio_of(
                    self.per_op(mc, "get_hit"),
                    self.per_op(ClientId::Libmemcached, "get_hit")
                ),
                false,
                0.6
            ),
            judged(
                ratio_of(
                    self.per_op(mc, "get_hit"),
                    self.per_op(ClientId::McDomain, "get_hit")
                ),
                true,
                0.99
            ),
        );
        let _ = writeln!(
            s,
            "| target (resident memory, {}) | operations | seconds | RSS after the first tenth \
             | after all | largest step | growth |\n|---|---:|---:|---:|---:|---:|---|",
            ClientId::McShared8.label()
        );
        for (w, r) in &self.rss {
            let _ = writeln!(
                s,
                "| {}: RSS grows <= {RSS_GROWTH_KB} kB from the first tenth of the operations to \
                 the end | {} | {:.1} | {} kB | {} kB | {} kB | {} kB {} |",
                workload(w).label,
                r.ops,
                r.secs,
                r.kb[0],
                r.kb[RSS_STEPS - 1],
                r.largest_step(),
                r.growth(),
                verdict(r.growth() <= RSS_GROWTH_KB)
            );
        }
        let _ = writeln!(
            s,
            "\nResident memory (VmRSS) of the client process, read after each tenth of the \
             operations (see Method).\n"
        );
    }

    fn render_throughput(&self, s: &mut String) {
        let _ = writeln!(s, "## Throughput\n");
        let _ = writeln!(
            s,
            "Operations per second (keys per second for multi-get) at the median latency of an \
             operation in each slice: median, min and max over the rounds; the ratios to \
             libmemcached and to the floor are medians of the per-round ratios. The last column \
             is the plain rate (all operations of a slice over its time, delays caused by other \
             work included), median over the rounds.\n"
        );
        for p in &self.passes {
            let _ = writeln!(
                s,
                "### {} placement: {}\n",
                p.placement.name(),
                p.description
            );
            render_rates(s, &p.measured);
        }
        let _ = writeln!(
            s,
            "Keys per server in the 4-server multi-get (each client places keys its own way; \
             from the servers' `cmd_get` counters):\n"
        );
        for (c, split) in &self.splits {
            let parts: Vec<String> = split.iter().map(u64::to_string).collect();
            let _ = writeln!(s, "- {}: {}", c.label(), parts.join(" / "));
        }
        let _ = writeln!(s);
    }

    fn render_instructions(&self, s: &mut String) {
        let _ = writeln!(s, "## Instructions per operation (callgrind)\n");
        let _ = writeln!(
            s,
            "User-space instructions of the whole client process per operation (library, libc, \
             the benchmark loop), as the difference of two runs with different operation counts \
             divided by the difference in operations, which cancels start-up, setup and \
             warm-up.\n"
        );
        // The TLS workloads have a table of their own (render_tls).
        let ws: Vec<&str> = WORKLOADS
            .iter()
            .map(|w| w.id)
            .filter(|w| !is_tls_workload(w) && self.instr.keys().any(|(_, iw)| iw == w))
            .collect();
        let _ = writeln!(
            s,
            "| workload | C API | C API, domain handle | Rust core | libmemcached | floor | C \
             API / libmemcached |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for w in ws {
            let f = |c| self.per_op(c, w).map_or("-".into(), |x| format!("{x:.0}"));
            let r = match (
                self.per_op(ClientId::Mc, w),
                self.per_op(ClientId::Libmemcached, w),
            ) {
                (Some(a), Some(b)) => format!("{:.3}", a / b),
                _ => "-".into(),
            };
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {r} |",
                workload(w).label,
                f(ClientId::Mc),
                f(ClientId::McDomain),
                f(ClientId::Rust),
                f(ClientId::Libmemcached),
                f(ClientId::Floor),
            );
        }
        let _ = writeln!(s);
    }

    /// Issue 17: what TLS costs in instructions, per operation and per reconnect.
    fn render_tls(&self, s: &mut String) {
        let _ = writeln!(s, "## TLS against plain (issue 17, callgrind)\n");
        let _ = writeln!(
            s,
            "The same C API calls on a private handle, to a memcached started with `-Z -o \
             ssl_session_cache` (a certificate of a CA made by openssl for this run) beside the \
             plain servers: \
             instructions per operation as above. Rates are in the Throughput tables (rows \
             \"TLS vs plain\").\n"
        );
        let f = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.0}"));
        let r = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.3}", a / b),
            _ => "-".into(),
        };
        let _ = writeln!(
            s,
            "| operation | plain | TLS | TLS / plain |\n|---|---:|---:|---:|"
        );
        for (label, plain, tls) in [
            ("get hit", "get_hit", "get_hit_tls"),
            ("set", "set", "set_tls"),
        ] {
            let (p, t) = (
                self.per_op(ClientId::Mc, plain),
                self.per_op(ClientId::McTls, tls),
            );
            let _ = writeln!(s, "| {label} | {} | {} | {} |", f(p), f(t), r(t, p));
        }
        let _ = writeln!(
            s,
            "\nA reconnect (`mc_server_disconnect_all`, then a get hit: the connect, the \
             handshake and the get):\n\n\
             | plain TCP | TLS, session resumed | TLS, full handshake (`mc_tls_resumption(mc, 0)`) \
             | full / resumed |\n|---:|---:|---:|---:|"
        );
        let (plain, resumed, full) = (
            self.per_op(ClientId::Mc, "reconnect"),
            self.per_op(ClientId::McTls, "reconnect"),
            self.per_op(ClientId::McTlsNoResume, "reconnect"),
        );
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |\n",
            f(plain),
            f(resumed),
            f(full),
            r(full, resumed)
        );
    }

    fn render_profiles(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "## Where the instructions go (callgrind, per operation)\n"
        );
        let _ = writeln!(
            s,
            "Self instructions per operation by function (inlined code counts in the function it \
             was inlined into), from the same pair of runs; `callgrind_annotate` on the files in \
             `{}` shows more.\n",
            self.opts.work.display()
        );
        for ((c, w), rows) in &self.profiles {
            let total: f64 = rows.iter().map(|r| r.per_op).sum();
            let _ = writeln!(
                s,
                "### {}, {} ({total:.0} instructions per operation)\n",
                c.label(),
                workload(w).label
            );
            let mut objects: Vec<(String, f64)> = Vec::new();
            for r in rows {
                let name = if r.object.is_empty() { "?" } else { &r.object };
                match objects.iter_mut().find(|(o, _)| o == name) {
                    Some(e) => e.1 += r.per_op,
                    None => objects.push((name.to_string(), r.per_op)),
                }
            }
            objects.sort_by(|a, b| b.1.total_cmp(&a.1));
            let parts: Vec<String> = objects
                .iter()
                .filter(|o| o.1 >= 1.0)
                .map(|(o, n)| format!("{o} {n:.0} ({:.0}%)", 100.0 * n / total))
                .collect();
            let _ = writeln!(s, "By object: {}.\n", parts.join(", "));
            let _ = writeln!(
                s,
                "| instructions | share | function | object |\n|---:|---:|---|---|"
            );
            for r in rows.iter().take(20) {
                let _ = writeln!(
                    s,
                    "| {:.0} | {:.1}% | {} | {} |",
                    r.per_op,
                    100.0 * r.per_op / total,
                    cell(&r.function),
                    r.object
                );
            }
            let _ = writeln!(s);
        }
    }

    fn render_method(&self, s: &mut String) {
        let rss_ops = self.opts.rss_ops;
        let _ = writeln!(
            s,
            "## Method\n\n\
             - One command: `make bench` (bench/run.sh installs the library into \
             target/bench-prefix, builds bench/clients.c against it and libmemcached, builds \
             this harness with the Rust client, bench/rust_client.rs, and runs it). It starts \
             its own {SERVERS} memcached servers; single-key workloads and the 1-server \
             multi-get use the first one.\n\
             - Per workload, one process per client connects, stores its own data and runs 200 \
             warm-up operations. Then, round after round, the harness asks each in turn for a \
             slice (operations until the slice's time is up, the clock read after each), \
             rotating the order by one place per round, so the clients are measured \
             milliseconds apart and noise from other work on the machine hits all alike. A \
             slice reports its operations, its time and the median latency of its operations; \
             the compared rate is keys per operation over that median, which delays caused by \
             other work (a busy machine stalls a fraction of the round trips by a scheduler \
             slice) barely move, unlike the plain rate.\n\
             - CPU placement: left to the kernel, whether a client runs next to its server \
             changes from moment to moment, and with it whether a multi-key reply wakes the \
             client once or several times, a 2x swing no pairing cancels. So every client and \
             server is pinned, in two placements measured one after the other: *split* \
             (clients on CPU 0, servers on the others: each round trip crosses CPUs, as a \
             reply from another machine does, and the wake-up latency dominates single-key \
             operations) and *shared* (everything on CPU 1: a round trip is two context \
             switches, so the clients' own CPU time weighs the most). `bench/run.sh \
             --placement split|shared|free` measures one placement only.\n\
             - Values are 100 bytes (10 KiB for set 10 KiB), keys `bench:hit`, \
             `bench:mget:000`..`bench:mget:099` and so on; every operation's result is checked \
             (value length, stored, counter value, keys found).\n\
             - libmemcache C API: one private handle (`mc_new_private` + `mc_server_add4`), \
             default crc32 distribution. Get: `mc_aget2` + `free`; set: `mc_set`; incr: \
             `mc_incr`; multi-get as a 1.4 program does it: `mc_req_new`, 100 x `mc_req_add`, \
             `mc_get`, `mc_res_found`, `mc_req_free`. The domain handle is `mc_new2(\"{DOMAIN}\")` \
             after `mcadmin --domain {DOMAIN} set` with a private `MEMCACHE_SHM_PREFIX`.\n\
             - libmemcache Rust core: `memcache::client::Client` with crc32-modulo: `get`, \
             `set`, `incr`, `get_multi` (which returns owned values).\n\
             - libmemcached: text protocol, `MEMCACHED_BEHAVIOR_TCP_NODELAY`, requests not \
             buffered (the default) since every operation waits for its reply, default \
             distribution (modulo) and hash; `MEMCACHED_BEHAVIOR_NO_BLOCK` was tried on every \
             workload and left off (no faster, 3-7% more instructions). Get: `memcached_get` + \
             `free`; set: `memcached_set`; incr: `memcached_increment`; multi-get: \
             `memcached_mget` + `memcached_fetch_result` into one reused result.\n\
             - 8 threads (issue 16): one process, 8 threads started after the setup, each \
             running 200 warm-up operations, then every slice runs on all 8 at once (between \
             two barriers); the slice reports all their operations over its time, and that \
             rate is the one compared. *One shared handle*: the C API's handle above, used by \
             all 8 threads, whose calls pipeline on the server's one connection. *Serialised*: \
             the same handle with every call under one mutex of the program's, i.e. one call at \
             a time, each waiting for the whole round trip of the one before, which is what a \
             handle did before issue 16. *libmemcached, 8 handles*: one `memcached_st` per \
             thread, as its documentation recommends, so 8 connections.\n\
             - Resident memory (issue 16): the 8-thread client on one shared handle, set up \
             and warmed up as above, runs {rss_ops} operations (get hit, then set, in a process \
             each) in {RSS_STEPS} equal steps, every step on all 8 threads between two \
             barriers, and reads its VmRSS from /proc/self/status after each step. The first \
             step grows buffers and allocator arenas to their working size; the growth from its \
             end to the end of the last step is what the operations themselves keep: a leak of \
             8 bytes per operation would add 7 MB over the last nine tenths of 10^6, the bound \
             is {RSS_GROWTH_KB} kB.\n\
             - Raw-socket floor: one blocking socket per server with TCP_NODELAY; the request \
             bytes are prepared once; an operation is one `send` and `recv` until the reply ends \
             with `END\\r\\n` (gets) or `\\r\\n` (set, incr), then one length comparison. \
             Multi-get over 4 servers sends key i to server i % 4, writes all four requests, \
             then reads the replies in server order.\n\
             - Instructions: `valgrind --tool=callgrind`, runs of N1 and N2 timed operations \
             (e.g. 2000 and 6000 for single keys), (I(N2) - I(N1)) / (N2 - N1). Callgrind \
             counts every iteration of `rep movsb` (glibc's memcpy for large blocks) as an \
             instruction, so a copy of a 10 KiB value weighs about 10,000 here, far more than \
             its time.\n"
        );
    }
}

fn machine_before() -> Machine {
    let kernel = sh("uname", &["-srm"]);
    let memcached = sh("memcached", &["-V"]);
    Machine {
        date: sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        nproc: sh("nproc", &[]),
        cpu: cpu_model(),
        kernel,
        memcached,
        libmemcached: sh("pkg-config", &["--modversion", "libmemcached"]),
        rustc: sh("rustc", &["-V"]),
        cc: sh("cc", &["--version"])
            .lines()
            .next()
            .unwrap_or("unknown")
            .to_string(),
        load_before: loadavg(),
        load_after: String::new(),
    }
}

/// Every workload for every client, round after round of slices (see the top of this file).
fn measure_all(bench: &Bench, opts: &Options) -> Result<Measured, String> {
    let mut measured = Measured::default();
    for w in &WORKLOADS {
        eprintln!(
            "  {}: {} rounds of {} s slices",
            w.label, opts.rounds, opts.slice
        );
        let clients = clients_of(w);
        let mut sessions = clients
            .iter()
            .map(|&c| bench.session(c, w))
            .collect::<Result<Vec<_>, _>>()?;
        let mut order: Vec<usize> = (0..clients.len()).collect();
        for _ in 0..opts.rounds {
            for &i in &order {
                let (ops, secs, median) = sessions[i].slice(opts.slice)?;
                let keys = f64::from(w.keys);
                let key = (w.id, clients[i]);
                measured.typical.entry(key).or_default().push(keys / median);
                measured
                    .throughput
                    .entry(key)
                    .or_default()
                    .push(ops as f64 * keys / secs);
            }
            order.rotate_left(1);
        }
        for s in sessions {
            s.finish()?;
        }
    }
    Ok(measured)
}

/// Instructions per operation of every planned (client, workload) pair.
fn count_instructions(bench: &Bench, plan: &CallgrindPlan) -> Result<Instructions, String> {
    let mut instr = Instructions::new();
    for &(c, w) in &plan.pairs {
        let w = workload(w);
        let (n1, n2) = plan.ops.unwrap_or(w.callgrind_ops);
        eprintln!(
            "callgrind: {} {} ({n1} and {n2} operations)",
            c.label(),
            w.label
        );
        let (i1, f1) = bench.callgrind(c, w, n1)?;
        let (i2, f2) = bench.callgrind(c, w, n2)?;
        instr.insert(
            (c, w.id),
            Counted {
                per_op: (i2 as f64 - i1 as f64) / (n2 - n1) as f64,
                files: (f1, f2),
                ops: (n1, n2),
            },
        );
    }
    Ok(instr)
}

fn run(opts: &Options) -> Result<(), String> {
    let started = Instant::now();
    let mut machine = machine_before();
    std::fs::create_dir_all(&opts.work)
        .map_err(|e| format!("cannot create {}: {e}", opts.work.display()))?;
    let user = sh("id", &["-un"]);
    let cpus: usize = machine.nproc.parse().unwrap_or(1);
    let can_pin = cpus >= 2 && sh("taskset", &["-V"]) != "unknown";
    let placements = match opts.placement {
        Some(p) if can_pin || p == Placement::Free => vec![p],
        None if can_pin => vec![Placement::Split, Placement::Shared],
        _ => {
            eprintln!("bench: fewer than 2 CPUs or no taskset: no CPU pinning");
            vec![Placement::Free]
        }
    };
    let shm_prefix = format!("bench{}", std::process::id());
    // A CA and a server certificate for 127.0.0.1, made afresh by openssl for each run.
    let cert_dir = std::fs::canonicalize(&opts.work)
        .map_err(|e| format!("{}: {e}", opts.work.display()))?
        .join("tls");
    std::fs::create_dir_all(&cert_dir)
        .map_err(|e| format!("cannot create {}: {e}", cert_dir.display()))?;
    let ca = certs::Ca::new(&cert_dir, "benchca");
    let issued = ca.issue("server", "IP:127.0.0.1", 2, false);
    let tls_files = (issued.cert, issued.key);
    let tls_ca = ca.cert.clone();
    let mut splits = Vec::new();
    let mut rss = Vec::new();
    let mut instr = Instructions::new();
    let mut passes = Vec::new();
    for (pass, &placement) in placements.iter().enumerate() {
        eprintln!(
            "placement {}: {}",
            placement.name(),
            placement.describe(cpus)
        );
        // The servers are pinned as they start; the clients inherit this process's CPU.
        let servers = (0..SERVERS)
            .map(|i| Memcached::start(&user, placement.server_cpu(i, cpus), None))
            .collect::<Result<Vec<_>, _>>()?;
        // Where the first plain server runs, so that TLS and plain compare alike.
        let tls_server = Memcached::start(&user, placement.server_cpu(0, cpus), Some(&tls_files))?;
        let me = std::process::id().to_string();
        let cpu_list = match placement.client_cpu() {
            Some(cpu) => cpu.to_string(),
            None => format!("0-{}", cpus - 1),
        };
        if can_pin && sh("taskset", &["-pc", &cpu_list, &me]) == "unknown" {
            return Err(format!(
                "cannot pin the clients to CPUs {cpu_list} (taskset -pc)"
            ));
        }
        let domain = Domain::create(&opts.mcadmin, &shm_prefix, &servers[0].addr())?;
        let bench = Bench {
            opts,
            servers: servers.iter().map(Memcached::addr).collect(),
            tls_server: tls_server.addr(),
            tls_ca: tls_ca.clone(),
            shm_prefix: shm_prefix.clone(),
        };
        if pass == 0 {
            for c in CLIENTS {
                let split = bench.split(c)?;
                if split.contains(&0) {
                    return Err(format!(
                        "{} sends the multi-get keys to fewer than {SERVERS} servers: {split:?}",
                        c.label()
                    ));
                }
                splits.push((c, split));
            }
            instr = count_instructions(&bench, &opts.callgrind)?;
            for w in ["get_hit_8t", "set_8t"] {
                let c = ClientId::McShared8;
                eprintln!(
                    "resident memory, {}: {} ({} operations)",
                    workload(w).label,
                    c.label(),
                    opts.rss_ops
                );
                rss.push((w, bench.rss(c, workload(w), opts.rss_ops)?));
            }
        }
        passes.push(Pass {
            placement,
            description: placement.describe(cpus),
            measured: measure_all(&bench, opts)?,
        });
        drop(domain);
        drop(servers);
        drop(tls_server);
    }
    let mut profiles = Vec::new();
    for &(c, w) in &opts.callgrind.profiled {
        if let Some(counted) = instr.get(&(c, w)) {
            profiles.push(((c, w), profile(counted)?));
        }
    }
    machine.load_after = loadavg();

    let report = Report {
        opts,
        machine,
        passes,
        splits,
        rss,
        instr,
        profiles,
        elapsed: started.elapsed(),
    };
    write_rates(&opts.work.join("rates.csv"), &report.passes)?;
    let text = report.render();
    std::fs::write(&opts.out, &text)
        .map_err(|e| format!("cannot write {}: {e}", opts.out.display()))?;
    print!("{text}");
    eprintln!("wrote {}", opts.out.display());
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("client") {
        std::process::exit(rust_client::main(&args[1..]));
    }
    let opts = parse_options(&args);
    if let Err(e) = run(&opts) {
        eprintln!("bench: {e}");
        std::process::exit(2);
    }
}
