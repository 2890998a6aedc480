//! The Rust-core client of `make bench`: `memcache::client::Client` on the workloads of
//! `bench/clients.c`, with the same data, warm-up, checks and protocol with the harness (RUN is
//! `ops:N` or `slices`, see clients.c), so its figures merge into the same table. The harness
//! runs it as `bench client WORKLOAD RUN SERVER...`, a process of its own like the C clients.

use std::io::{BufRead, Write};
use std::time::Instant;

use memcache::client::{Answer, BulkOp, Client, ServerSpec, Write as BulkWrite};
use memcache::command::Stored;
use memcache::hash::Distribution;
use memcache::protocol::StoreCmd;

const VALUE_LEN: usize = 100;
const BIG_LEN: usize = 10240;
const MGET_KEYS: usize = 100;
/// Warm-up operations before timing, as in clients.c.
const WARMUP: u64 = 200;

/// Everything a workload touches: the client, its keys and the value bytes.
struct Bench {
    client: Client,
    value: Vec<u8>,
    /// Built once (and leaked, for the life of the process) so an operation allocates nothing
    /// of the harness's own.
    mget_keys: Vec<&'static [u8]>,
    /// Per process, as the clients of a workload run side by side: "bench:counter:PID".
    counter_key: Vec<u8>,
    /// What the next incr must return (the setup resets the counter to 0).
    counter: u64,
}

/// Exits like clients.c's die(): a message on stderr and status 2.
fn die(what: &str) -> ! {
    eprintln!("rust client: {what}");
    std::process::exit(2);
}

impl Bench {
    fn new(servers: &[String]) -> Bench {
        let specs = servers
            .iter()
            .map(|s| ServerSpec::parse(s).unwrap_or_else(|e| die(&e.to_string())))
            .collect();
        // crc32-modulo: the C API's default for a private handle, so both place keys alike.
        let client =
            Client::new(specs, Distribution::Crc32Modulo).unwrap_or_else(|e| die(&e.to_string()));
        let mut bench = Bench {
            client,
            value: vec![b'x'; BIG_LEN],
            mget_keys: (0..MGET_KEYS)
                .map(|i| &*format!("bench:mget:{i:03}").into_bytes().leak())
                .collect(),
            counter_key: format!("bench:counter:{:010}", std::process::id()).into_bytes(),
            counter: 0,
        };
        bench.store_data();
        bench
    }

    fn store_data(&mut self) {
        let value = &self.value[..VALUE_LEN];
        let c = &mut self.client;
        let stored = |r: Result<Stored, _>| matches!(r, Ok(Stored::Stored));
        if !stored(c.set(b"bench:hit", value, 0, 0))
            || !stored(c.set(&self.counter_key, b"0", 0, 0))
        {
            die("setup set failed");
        }
        if c.delete(b"bench:miss").is_err() {
            die("setup delete failed");
        }
        for key in &self.mget_keys {
            if !stored(c.set(key, value, 0, 0)) {
                die("setup set failed");
            }
        }
    }

    fn get_hit(&mut self) {
        match self.client.get(b"bench:hit") {
            Ok(Some(item)) if item.value.len() == VALUE_LEN => {}
            other => die(&format!("get hit: {other:?}")),
        }
    }

    fn get_miss(&mut self) {
        if !matches!(self.client.get(b"bench:miss"), Ok(None)) {
            die("get miss found a value or failed");
        }
    }

    fn set(&mut self) {
        let r = self
            .client
            .set(b"bench:set", &self.value[..VALUE_LEN], 0, 0);
        if !matches!(r, Ok(Stored::Stored)) {
            die(&format!("set: {r:?}"));
        }
    }

    fn set_10k(&mut self) {
        let r = self.client.set(b"bench:set10k", &self.value, 0, 0);
        if !matches!(r, Ok(Stored::Stored)) {
            die(&format!("set of 10 KiB: {r:?}"));
        }
    }

    fn incr(&mut self) {
        self.counter += 1;
        match self.client.incr(&self.counter_key, 1) {
            Ok(Some(v)) if v == self.counter => {}
            other => die(&format!("incr: {other:?}")),
        }
    }

    fn mget(&mut self) {
        let found = match self.client.get_multi(&self.mget_keys) {
            Ok(items) => items
                .iter()
                .filter(|i| i.as_ref().is_some_and(|i| i.value.len() == VALUE_LEN))
                .count(),
            Err(e) => die(&format!("multi-get: {e}")),
        };
        if found != MGET_KEYS {
            die(&format!("multi-get found {found} of {MGET_KEYS} keys"));
        }
    }

    /// The 100 multi-get keys stored in one bulk call, each answer checked.
    fn bulk_set(&mut self) {
        let value = &self.value[..VALUE_LEN];
        let writes: Vec<BulkWrite> = self
            .mget_keys
            .iter()
            .map(|&key| BulkWrite {
                key,
                value,
                flags: 0,
                exptime: 0,
            })
            .collect();
        match self.client.bulk(BulkOp::Store(StoreCmd::Set), &writes) {
            Ok(done) if done.answers.iter().all(|a| *a == Answer::Done) => {}
            Ok(done) => die(&format!("bulk set: {:?}", done.first_error)),
            Err(e) => die(&format!("bulk set: {e}")),
        }
    }
}

/// `WORKLOAD ops:N|slices SERVER...`. Returns the exit status.
pub fn main(args: &[String]) -> i32 {
    if args.len() < 3 {
        eprintln!("usage: bench client WORKLOAD ops:N|slices SERVER...");
        return 1;
    }
    let op: fn(&mut Bench) = match args[0].as_str() {
        "get_hit" => Bench::get_hit,
        "get_miss" => Bench::get_miss,
        "set" => Bench::set,
        "set_10k" => Bench::set_10k,
        "incr" => Bench::incr,
        "mget" => Bench::mget,
        "bulkset" => Bench::bulk_set,
        other => die(&format!("unknown workload {other}")),
    };
    let ops: Option<u64> = match args[1].strip_prefix("ops:") {
        Some(n) => Some(n.parse().unwrap_or_else(|_| die("bad ops:N"))),
        None if args[1] == "slices" => None,
        None => die("RUN is ops:N or slices"),
    };
    let mut bench = Bench::new(&args[2..]);
    for _ in 0..WARMUP {
        op(&mut bench);
    }
    let mut out = std::io::stdout().lock();
    if let Some(n) = ops {
        let start = Instant::now();
        for _ in 0..n {
            op(&mut bench);
        }
        say(
            &mut out,
            &format!("{n} {:.9}", start.elapsed().as_secs_f64()),
        );
        return 0;
    }
    say(&mut out, "ready");
    // Each operation's latency in the current slice, as clients.c's slice() keeps them.
    // Written once now (calloc'd zeros would stay untouched), so that no page faults happen
    // inside the first slice.
    let mut latency: Vec<f64> = Vec::with_capacity(1 << 18);
    latency.resize(1 << 18, 1.0);
    latency.clear();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap_or_else(|e| die(&format!("stdin: {e}")));
        let secs: f64 = line.trim().parse().unwrap_or_else(|_| die("bad slice"));
        latency.clear();
        let start = Instant::now();
        let mut t = start;
        let mut done = 0u64;
        let elapsed = loop {
            op(&mut bench);
            done += 1;
            let t1 = Instant::now();
            if latency.len() < latency.capacity() {
                latency.push((t1 - t).as_secs_f64());
            }
            t = t1;
            let elapsed = (t - start).as_secs_f64();
            if elapsed >= secs {
                break elapsed;
            }
        };
        let mid = latency.len() / 2;
        let (_, median, _) = latency.select_nth_unstable_by(mid, f64::total_cmp);
        say(&mut out, &format!("{done} {elapsed:.9} {:.9}", *median));
    }
    0
}

/// One line to the harness, flushed at once: it is waiting for it.
fn say(out: &mut impl Write, line: &str) {
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .unwrap_or_else(|e| die(&format!("stdout: {e}")));
}
