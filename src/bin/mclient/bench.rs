//! `mclient bench`: a load generator in the spirit of libmemcached's memcslap. Threads, each
//! with a client of its own (its own connections), run a weighted mix of operations on random
//! keys of a fixed key space for a bounded time or number of operations; the report gives each
//! operation's count, rate and latency percentiles.

use std::io::{IsTerminal, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use memcache::client::Client;
use memcache::command::Stored;
use memcache::exit_code::Exit;
use memcache::key;

use crate::json::JsonLine;
use crate::output::Out;
use crate::servers::ServerList;
use crate::{note, Stop};

#[derive(Args)]
pub struct BenchArgs {
    /// The operation mix: OP=WEIGHT,... with OP get, set, delete or touch
    #[arg(long, value_name = "OP=W,...", default_value = "get=9,set=1", value_parser = Mix::parse)]
    pub mix: Mix,
    /// How many distinct keys the operations pick from (uniformly)
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub keys: u64,
    /// Bytes of each value that set stores
    #[arg(long = "value-size", value_name = "BYTES", default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=1 << 20))]
    pub value_size: u32,
    /// Threads, each with its own connections
    #[arg(long, short = 't', value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,
    /// Stop after this many seconds (decimals allowed, at most 3600)
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop after this many operations in all, if that comes before --duration
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub ops: Option<u64>,
    /// The keys are PREFIX0 to PREFIX<N-1>
    #[arg(
        long = "key-prefix",
        value_name = "PREFIX",
        default_value = "mclient-bench:"
    )]
    pub key_prefix: String,
    /// Do not store every key once before measuring (gets then mostly miss)
    #[arg(long)]
    pub no_prefill: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if (0.01..=3600.0).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!(
            "{text:?} is not a number of seconds from 0.01 to 3600"
        )),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Get,
    Set,
    Delete,
    Touch,
}

impl Op {
    const ALL: [Op; 4] = [Op::Get, Op::Set, Op::Delete, Op::Touch];

    fn name(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Set => "set",
            Op::Delete => "delete",
            Op::Touch => "touch",
        }
    }
}

/// The weight of each operation, indexed like `Op::ALL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix([u32; 4]);

impl Mix {
    fn parse(text: &str) -> Result<Mix, String> {
        let mut weights = [0u32; 4];
        for part in text.split(',') {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected OP=WEIGHT"))?;
            let i = Op::ALL
                .iter()
                .position(|op| op.name() == name.trim())
                .ok_or_else(|| format!("{name:?}: the operations are get, set, delete, touch"))?;
            weights[i] = weight
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|&w| w <= 1_000_000)
                .ok_or_else(|| format!("{weight:?}: a weight is a whole number up to 1000000"))?;
        }
        if weights.iter().all(|&w| w == 0) {
            return Err("at least one operation needs a weight above 0".into());
        }
        Ok(Mix(weights))
    }

    fn total(&self) -> u64 {
        self.0.iter().map(|&w| u64::from(w)).sum()
    }

    /// The operation for a draw in `0..total()`.
    fn pick(&self, mut draw: u64) -> usize {
        for (i, &w) in self.0.iter().enumerate() {
            if draw < u64::from(w) {
                return i;
            }
            draw -= u64::from(w);
        }
        unreachable!("a draw below the total weight")
    }

    fn describe(&self) -> String {
        Op::ALL
            .iter()
            .zip(self.0)
            .filter(|(_, w)| *w > 0)
            .map(|(op, w)| format!("{}={w}", op.name()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Latencies in nanoseconds, in buckets 1/32 of a power of two wide: fixed memory whatever the
/// run's length, percentiles within about 3%, and two histograms merge by adding counts.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - SUB_BITS;
        let mantissa = (v >> shift) as usize - SUB;
        SUB + shift as usize * SUB + mantissa
    }

    /// The smallest value of bucket `i` and the bucket's width.
    fn bounds(i: usize) -> (u64, u64) {
        if i < SUB {
            return (i as u64, 1);
        }
        let shift = (i - SUB) / SUB;
        let mantissa = (i - SUB) % SUB;
        (((SUB + mantissa) as u64) << shift, 1 << shift)
    }

    fn record(&mut self, ns: u64) {
        self.counts[Histogram::index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    /// The value below which a fraction `q` of the samples lie (the middle of its bucket,
    /// never above the largest sample); 0 without samples.
    fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, width) = Histogram::bounds(i);
                return (low + width / 2).min(self.max);
            }
        }
        self.max
    }
}

/// What one thread counted.
struct Tally {
    latency: Vec<Histogram>,
    misses: [u64; 4],
    errors: [u64; 4],
    first_error: Option<String>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency: vec![Histogram::new(); 4],
            misses: [0; 4],
            errors: [0; 4],
            first_error: None,
        }
    }

    fn merge(&mut self, other: Tally) {
        for i in 0..4 {
            self.latency[i].merge(&other.latency[i]);
            self.misses[i] += other.misses[i];
            self.errors[i] += other.errors[i];
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// xorshift64*: a fast generator, seeded per thread so that runs repeat their key sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The bounds every thread honours, and the operations started (for `--ops` and progress).
struct Shared<'a> {
    args: &'a BenchArgs,
    exptime: u64,
    started: AtomicU64,
}

impl Shared<'_> {
    fn key(&self, buf: &mut Vec<u8>, n: u64) {
        buf.clear();
        buf.extend_from_slice(self.args.key_prefix.as_bytes());
        let _ = write!(buf, "{n}");
    }

    /// Stores every key of thread `t`'s share once, within the run's duration.
    fn prefill(&self, c: &mut Client, t: u64, value: &[u8]) {
        let deadline = Instant::now() + self.args.duration;
        let mut key = Vec::new();
        let threads = u64::from(self.args.threads);
        let mut n = t;
        while n < self.args.keys && Instant::now() < deadline {
            self.key(&mut key, n);
            let _ = c.set(&key, value, 0, self.exptime);
            n += threads;
        }
    }

    /// One thread's measured run, until the deadline or the last of `--ops`.
    fn measure(&self, c: &mut Client, t: u64, value: &[u8], deadline: Instant) -> Tally {
        let mut tally = Tally::new();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut key = Vec::new();
        let total_weight = self.args.mix.total();
        loop {
            let begin = Instant::now();
            if begin >= deadline {
                break;
            }
            let nth = self.started.fetch_add(1, Ordering::Relaxed);
            if self.args.ops.is_some_and(|limit| nth >= limit) {
                break;
            }
            let op = self.args.mix.pick(rng.next() % total_weight);
            self.key(&mut key, rng.next() % self.args.keys);
            let answer = match Op::ALL[op] {
                Op::Get => c.get(&key).map(|item| item.is_some()),
                Op::Set => c
                    .set(&key, value, 0, self.exptime)
                    .map(|s| s == Stored::Stored),
                Op::Delete => c.delete(&key),
                Op::Touch => c.touch(&key, self.exptime),
            };
            let ns = u64::try_from(begin.elapsed().as_nanos()).unwrap_or(u64::MAX);
            tally.latency[op].record(ns);
            match answer {
                Ok(true) => {}
                Ok(false) => tally.misses[op] += 1,
                Err(e) => {
                    tally.errors[op] += 1;
                    tally.first_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
        tally
    }
}

pub fn run(list: &ServerList, args: &BenchArgs, exptime: u64, json: bool) -> Result<Exit, Stop> {
    let last_key = format!("{}{}", args.key_prefix, args.keys - 1);
    key::check(last_key.as_bytes())
        .map_err(|e| Stop::usage(format!("--key-prefix: {}", e.message())))?;
    // Clients are made before any thread starts, so a bad list stops the run at once.
    let clients = (0..args.threads)
        .map(|_| list.client())
        .collect::<Result<Vec<_>, _>>()?;
    let shared = Shared {
        args,
        exptime,
        started: AtomicU64::new(0),
    };
    let value: Vec<u8> = (0..args.value_size)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let progress = std::io::stderr().is_terminal();
    // Every thread starts measuring together, once every prefill is done.
    let prefilled = Barrier::new(args.threads as usize + 1);
    let (elapsed, tally) = thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel();
        let mut handles = Vec::new();
        for (t, mut c) in clients.into_iter().enumerate() {
            let (shared, value, done_tx, prefilled) =
                (&shared, &value, done_tx.clone(), &prefilled);
            handles.push(scope.spawn(move || {
                if !shared.args.no_prefill {
                    shared.prefill(&mut c, t as u64, value);
                }
                prefilled.wait();
                let deadline = Instant::now() + shared.args.duration;
                let tally = shared.measure(&mut c, t as u64, value, deadline);
                let _ = done_tx.send(());
                tally
            }));
        }
        drop(done_tx);
        prefilled.wait();
        let start = Instant::now();
        let mut finished = 0;
        while finished < args.threads {
            match done_rx.recv_timeout(Duration::from_secs(1)) {
                Ok(()) => finished += 1,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if progress {
                show_progress(
                    start.elapsed(),
                    shared.started.load(Ordering::Relaxed),
                    args,
                );
            }
        }
        let elapsed = start.elapsed();
        if progress {
            eprint!("\r\x1b[K");
        }
        let mut tally = Tally::new();
        for h in handles {
            if let Ok(t) = h.join() {
                tally.merge(t);
            }
        }
        (elapsed, tally)
    });
    let mut out = Out::new();
    report(&mut out, args, elapsed, &tally, json)?;
    out.flush()?;
    let errors: u64 = tally.errors.iter().sum();
    if errors > 0 {
        note(&format!(
            "{errors} operations failed; the first: {}",
            tally.first_error.as_deref().unwrap_or("?")
        ));
        return Ok(Exit::Failed);
    }
    Ok(Exit::Ok)
}

/// One line on a terminal, rewritten in place.
fn show_progress(elapsed: Duration, started: u64, args: &BenchArgs) {
    let done = args.ops.map_or(started, |limit| started.min(limit));
    let secs = elapsed.as_secs_f64();
    eprint!(
        "\r\x1b[Kbench: {secs:.1}/{:.1} s, {done} ops, {:.0} ops/s",
        args.duration.as_secs_f64(),
        done as f64 / secs.max(1e-9)
    );
}

fn report(
    out: &mut Out,
    args: &BenchArgs,
    elapsed: Duration,
    tally: &Tally,
    json: bool,
) -> Result<(), Stop> {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let us = |ns: u64| ns as f64 / 1000.0;
    let mut rows: Vec<(&str, &Histogram, u64, u64)> = Vec::new();
    let mut all = Histogram::new();
    for (i, op) in Op::ALL.iter().enumerate() {
        if args.mix.0[i] > 0 {
            rows.push((
                op.name(),
                &tally.latency[i],
                tally.misses[i],
                tally.errors[i],
            ));
        }
        all.merge(&tally.latency[i]);
    }
    let total = (
        "total",
        &all,
        tally.misses.iter().sum(),
        tally.errors.iter().sum(),
    );
    if !json {
        out.write(
            format!(
                "mclient bench: {} thread{}, {} keys, {}-byte values, mix {}, {secs:.2} s\n\
                 {:<8}{:>10}{:>12}{:>10}{:>10}{:>10}{:>10}{:>10}{:>9}{:>8}\n",
                args.threads,
                if args.threads == 1 { "" } else { "s" },
                args.keys,
                args.value_size,
                args.mix.describe(),
                "op",
                "ops",
                "ops/s",
                "p50_us",
                "p90_us",
                "p99_us",
                "p999_us",
                "max_us",
                "misses",
                "errors"
            )
            .as_bytes(),
        )?;
    }
    for (name, h, misses, errors) in rows.into_iter().chain([total]) {
        let rate = h.total as f64 / secs;
        let q = [0.5, 0.9, 0.99, 0.999].map(|q| us(h.quantile(q)));
        let line = if json {
            let mut line = JsonLine::new()
                .str("op", name)
                .raw("ops", h.total)
                .raw("ops_per_sec", format!("{rate:.1}"));
            for (label, v) in ["p50_us", "p90_us", "p99_us", "p999_us"].iter().zip(q) {
                line = line.raw(label, format!("{v:.1}"));
            }
            line = line
                .raw("max_us", format!("{:.1}", us(h.max)))
                .raw("misses", misses)
                .raw("errors", errors);
            if name == "total" {
                line = line
                    .raw("seconds", format!("{secs:.3}"))
                    .raw("threads", args.threads)
                    .raw("keys", args.keys)
                    .raw("value_size", args.value_size)
                    .str("mix", &args.mix.describe());
            }
            line.line()
        } else {
            format!(
                "{name:<8}{:>10}{rate:>12.1}{:>10.1}{:>10.1}{:>10.1}{:>10.1}{:>10.1}{misses:>9}{errors:>8}\n",
                h.total,
                q[0],
                q[1],
                q[2],
                q[3],
                us(h.max)
            )
            .into_bytes()
        };
        out.write(&line)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for v in (0..5000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let i = Histogram::index(v);
            assert!(i < BUCKETS && i >= last, "{v}");
            let (low, width) = Histogram::bounds(i);
            assert!(
                low <= v && v - low < width,
                "{v} in bucket {i} ({low}, {width})"
            );
            // A bucket is at most 1/32 of its values wide.
            assert!(width == 1 || width * 32 <= low, "{v}");
            last = i;
        }
        assert_eq!(Histogram::index(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn quantiles_within_the_bucket_width() {
        let mut h = Histogram::new();
        for v in 1..=10_000u64 {
            h.record(v * 1000);
        }
        for (q, exact) in [(0.5, 5_000_000f64), (0.9, 9_000_000.0), (0.99, 9_900_000.0)] {
            let got = h.quantile(q) as f64;
            assert!(
                (got - exact).abs() / exact < 0.035,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.quantile(1.0), 10_000_000);
        assert_eq!(Histogram::new().quantile(0.5), 0);
    }

    #[test]
    fn mixes() {
        let mix = Mix::parse("get=9, set=1").unwrap();
        assert_eq!(mix.0, [9, 1, 0, 0]);
        assert_eq!(mix.describe(), "get=9,set=1");
        let picks: Vec<usize> = (0..10).map(|d| mix.pick(d)).collect();
        assert_eq!(picks, [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        for bad in ["get", "get=x", "frob=1", "get=0", "get=2000000"] {
            assert!(Mix::parse(bad).is_err(), "{bad}");
        }
    }
}
