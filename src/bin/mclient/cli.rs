//! The command line of mclient(1): options, commands and their arguments (clap).

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};
use memcache::exit_code::Exit;
use memcache::hash::Distribution;

use crate::bench::BenchArgs;
use crate::security::SecurityArgs;

#[derive(Parser)]
#[command(
    name = "mclient",
    version,
    about = "Run memcached commands against a server list or a shared domain",
    after_help = format!(
        "Servers: --servers or --domain; without either, $MEMCACHE_SERVERS, else the domain \
         $MEMCACHE_DOMAIN, else the domain \"default\".\n{}\nSee mclient(1).",
        Exit::summary()
    )
)]
pub struct Cli {
    /// Use the server list of this shared domain (managed with mcadmin)
    #[arg(long, value_name = "NAME", conflicts_with = "servers", global = true)]
    pub domain: Option<String>,

    /// Use these servers: HOST:PORT, HOST, [V6]:PORT or /socket/path, comma-separated
    #[arg(long, value_name = "HOST:PORT,...", global = true)]
    pub servers: Option<String>,

    /// Key placement for a --servers or $MEMCACHE_SERVERS list: crc32-modulo (default, as
    /// libmemcache 1.4) or ketama-md5; a domain brings its own
    #[arg(long, value_name = "NAME", value_parser = parse_distribution, conflicts_with = "domain", global = true)]
    pub distribution: Option<Distribution>,

    /// Expiry for storage commands and touch: seconds from now (up to 30 days) or a Unix time;
    /// 0 never expires
    #[arg(long, value_name = "N", default_value_t = 0, global = true)]
    pub exptime: u64,

    /// Client flags stored with the value
    #[arg(long, value_name = "N", default_value_t = 0, global = true)]
    pub flags: u32,

    /// Keep N copies of each key on distinct servers, as the library's mc_replicas() does:
    /// writes go to every copy, reads try them in order [default: 1, or the domain's count]
    #[arg(short = 'r', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16), global = true)]
    pub replicas: Option<u32>,

    /// Limit for each connect, write and read, in milliseconds [default: 2000]
    #[arg(long = "timeout-ms", value_name = "N", value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub timeout_ms: Option<u64>,

    /// Print results as JSON Lines: one object per key or server (see mclient(1))
    #[arg(long, global = true)]
    pub json: bool,

    #[command(flatten)]
    pub security: SecurityArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Write the values of KEYs to standard output (byte-exact; see --print-keys, --json)
    Get {
        /// Before each value found write "KEY FLAGS BYTES" and a newline, and a newline after
        /// the value, so that a script can split the values of several keys
        #[arg(long)]
        print_keys: bool,
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<OsString>,
    },
    /// Write each KEY found as "KEY FLAGS BYTES CAS", a newline, the value and a newline
    Gets {
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<OsString>,
    },
    /// Store VALUE (or standard input) under KEY
    Set(StoreArgs),
    /// Store only if KEY does not exist
    Add(StoreArgs),
    /// Store only if KEY exists
    Replace(StoreArgs),
    /// Append to the value of an existing KEY
    Append(StoreArgs),
    /// Prepend to the value of an existing KEY
    Prepend(StoreArgs),
    /// Store only if KEY still has the cas unique CAS (from gets)
    Cas {
        #[arg(value_name = "KEY")]
        key: OsString,
        #[arg(value_name = "CAS")]
        cas: u64,
        /// The value; read from standard input (binary-safe) when absent
        #[arg(value_name = "VALUE", allow_hyphen_values = true)]
        value: Option<OsString>,
    },
    /// Delete each KEY
    Delete {
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<OsString>,
    },
    /// Tell whether each KEY exists (status 0 when all do), without printing values
    Exists {
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<OsString>,
    },
    /// Add N (default 1) to the decimal number stored under KEY and print the result
    Incr(ArithArgs),
    /// Subtract N (default 1, stopping at 0) and print the result
    Decr(ArithArgs),
    /// Set a new expiry (--exptime) on each KEY without fetching it
    Touch {
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<OsString>,
    },
    /// Print every server's statistics as "SERVER<TAB>NAME<TAB>VALUE" lines
    Stats {
        /// A statistics group, e.g. settings, slabs, items, conns
        #[arg(value_name = "GROUP")]
        group: Vec<String>,
    },
    /// Invalidate every item on every server (flush_all)
    Flush,
    /// Print every server's version as "SERVER<TAB>VERSION" lines
    Version,
    /// Connect to every server and ask its version: "SERVER<TAB>VERSION<TAB>MILLISECONDS"
    Ping,
    /// Store many keys from FILE (or standard input) with bulk calls: "KEY VALUE" lines, or
    /// with --records the "KEY FLAGS BYTES" records that get --print-keys writes
    Load {
        /// Read "KEY FLAGS BYTES", a newline, the value and a newline per key
        #[arg(long)]
        records: bool,
        /// Store only the keys that do not exist (add); the others are reported not stored
        #[arg(long)]
        add: bool,
        #[arg(value_name = "FILE")]
        file: Option<std::path::PathBuf>,
    },
    /// Load generator: ops/s and latency percentiles per operation of a mix
    Bench(BenchArgs),
}

#[derive(Args)]
pub struct StoreArgs {
    #[arg(value_name = "KEY")]
    pub key: OsString,
    /// The value; read from standard input (binary-safe) when absent
    #[arg(value_name = "VALUE", allow_hyphen_values = true)]
    pub value: Option<OsString>,
}

#[derive(Args)]
pub struct ArithArgs {
    #[arg(value_name = "KEY")]
    pub key: OsString,
    #[arg(value_name = "N", default_value_t = 1)]
    pub delta: u64,
}

fn parse_distribution(s: &str) -> Result<Distribution, String> {
    Distribution::parse(s).ok_or_else(|| "expected crc32-modulo or ketama-md5".to_string())
}
