//! mclient(1): one memcached command from the shell, over the safe Rust client.
//!
//! Values travel byte-exact: from an argument or standard input to the server, and from the
//! server to standard output, which carries nothing but the documented output. Exit status: 0 on
//! success or a hit, 1 on a miss / not stored / not found, 2 on an error (and on bad usage, as
//! clap reports it). See man/mclient.1.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use memcache::client::{Client, ClientError, ServerSpec};
use memcache::command::Stored;
use memcache::hash::Distribution;
use memcache::protocol::StoreCmd;
use memcache::registry::{DomainName, Reader};

/// Environment variable with a comma-separated server list, used when neither `--servers` nor
/// `--domain` is given.
const ENV_SERVERS: &str = "MEMCACHE_SERVERS";
/// Environment variable naming the domain to use when nothing else names servers.
const ENV_DOMAIN: &str = "MEMCACHE_DOMAIN";
const DEFAULT_DOMAIN: &str = "default";

#[derive(Parser)]
#[command(
    name = "mclient",
    version,
    about = "Run one memcached command against a server list or a shared domain",
    after_help = "Servers: --servers or --domain; without either, $MEMCACHE_SERVERS, else the \
                  domain $MEMCACHE_DOMAIN, else the domain \"default\".\n\
                  Exit status: 0 success or hit, 1 miss / not stored / not found, \
                  2 error or bad usage.\n\
                  See mclient(1)."
)]
struct Cli {
    /// Use the server list of this shared domain (managed with mcadmin)
    #[arg(long, value_name = "NAME", conflicts_with = "servers", global = true)]
    domain: Option<String>,

    /// Use these servers: HOST:PORT, HOST, [V6]:PORT or /socket/path, comma-separated
    #[arg(long, value_name = "HOST:PORT,...", global = true)]
    servers: Option<String>,

    /// Key placement for a --servers or $MEMCACHE_SERVERS list: crc32-modulo (default, as
    /// libmemcache 1.4) or ketama-md5; a domain brings its own
    #[arg(long, value_name = "NAME", value_parser = parse_distribution, conflicts_with = "domain", global = true)]
    distribution: Option<Distribution>,

    /// Expiry for storage commands and touch: seconds from now (up to 30 days) or a Unix time;
    /// 0 never expires
    #[arg(long, value_name = "N", default_value_t = 0, global = true)]
    exptime: u64,

    /// Client flags stored with the value
    #[arg(long, value_name = "N", default_value_t = 0, global = true)]
    flags: u32,

    /// Keep N copies of each key on distinct servers, as the library's mc_replicas() does:
    /// writes go to every copy, reads try them in order [default: 1, or the domain's count]
    #[arg(short = 'r', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=16), global = true)]
    replicas: Option<u32>,

    /// Limit for each connect, write and read, in milliseconds [default: 2000]
    #[arg(long = "timeout-ms", value_name = "N", value_parser = clap::value_parser!(u64).range(1..), global = true)]
    timeout_ms: Option<u64>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the values of KEYs to standard output, byte-exact and concatenated
    Get {
        /// Write "KEY<TAB>LENGTH" and a newline before each value found
        #[arg(long)]
        print_keys: bool,
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
    /// Delete KEY
    Delete {
        #[arg(value_name = "KEY")]
        key: OsString,
    },
    /// Add N (default 1) to the decimal number stored under KEY and print the result
    Incr(ArithArgs),
    /// Subtract N (default 1, stopping at 0) and print the result
    Decr(ArithArgs),
    /// Set a new expiry (--exptime) on KEY without fetching it
    Touch {
        #[arg(value_name = "KEY")]
        key: OsString,
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
}

#[derive(Args)]
struct StoreArgs {
    #[arg(value_name = "KEY")]
    key: OsString,
    /// The value; read from standard input (binary-safe) when absent
    #[arg(value_name = "VALUE", allow_hyphen_values = true)]
    value: Option<OsString>,
}

#[derive(Args)]
struct ArithArgs {
    #[arg(value_name = "KEY")]
    key: OsString,
    #[arg(value_name = "N", default_value_t = 1)]
    delta: u64,
}

fn parse_distribution(s: &str) -> Result<Distribution, String> {
    Distribution::parse(s).ok_or_else(|| "expected ketama-md5 or crc32-modulo".to_string())
}

/// How a command that ran to its end came out.
enum Outcome {
    /// Exit 0.
    Done,
    /// Exit 1, with an optional note for standard error (a `get` miss has none).
    Miss(Option<String>),
    /// Exit 2, every error already reported on standard error (one line per failed server).
    Failed,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Miss(note)) => {
            if let Some(note) = note {
                eprintln!("mclient: {}", one_line(&note));
            }
            ExitCode::from(1)
        }
        Ok(Outcome::Failed) => ExitCode::from(2),
        Err(message) => {
            eprintln!("mclient: {}", one_line(&message));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<Outcome, String> {
    let (servers, distribution, replicas) = server_list(&cli)?;
    let mut client = Client::new(servers, distribution).map_err(|e| e.to_string())?;
    if let Some(ms) = cli.timeout_ms {
        client.set_timeout(Duration::from_millis(ms));
    }
    client.set_replicas(cli.replicas.unwrap_or(replicas) as usize);
    let (exptime, flags) = (cli.exptime, cli.flags);
    match cli.command {
        Command::Get { print_keys, keys } => get(&mut client, &keys, print_keys),
        Command::Set(a) => store(&mut client, StoreCmd::Set, a, flags, exptime),
        Command::Add(a) => store(&mut client, StoreCmd::Add, a, flags, exptime),
        Command::Replace(a) => store(&mut client, StoreCmd::Replace, a, flags, exptime),
        Command::Append(a) => store(&mut client, StoreCmd::Append, a, flags, exptime),
        Command::Prepend(a) => store(&mut client, StoreCmd::Prepend, a, flags, exptime),
        Command::Delete { key } => {
            let key = key.as_bytes();
            found(client.delete(key).map_err(err)?, key)
        }
        Command::Touch { key } => {
            let key = key.as_bytes();
            found(client.touch(key, exptime).map_err(err)?, key)
        }
        Command::Incr(a) => arith(&mut client, true, a),
        Command::Decr(a) => arith(&mut client, false, a),
        Command::Stats { group } => stats(&mut client, &group.join(" ")),
        Command::Flush => each_server(client.flush_all(), |_, ()| Vec::new()),
        Command::Version => each_server(client.version(), |name, v| line(name, &v)),
    }
}

/// A server list, its distribution and its replica count.
type ServerList = (Vec<ServerSpec>, Distribution, u32);

/// The servers to talk to: `--servers`, `--domain`, `$MEMCACHE_SERVERS`, then the domain
/// `$MEMCACHE_DOMAIN` or `default`.
fn server_list(cli: &Cli) -> Result<ServerList, String> {
    // An explicit list is placed as a 1.4 program that adds the same servers places it.
    let chosen = cli.distribution.unwrap_or(Distribution::Crc32Modulo);
    if let Some(list) = &cli.servers {
        return Ok((parse_servers(list, "--servers")?, chosen, 1));
    }
    if let Some(name) = &cli.domain {
        return domain_servers(name);
    }
    if let Some(list) = std::env::var_os(ENV_SERVERS).filter(|v| !v.is_empty()) {
        let list = list
            .into_string()
            .map_err(|_| format!("{ENV_SERVERS} is not UTF-8"))?;
        return Ok((parse_servers(&list, ENV_SERVERS)?, chosen, 1));
    }
    if cli.distribution.is_some() {
        return Err(
            "--distribution applies to a --servers or MEMCACHE_SERVERS list; \
                    a domain has its own"
                .into(),
        );
    }
    let name = match std::env::var(ENV_DOMAIN) {
        Ok(name) if !name.is_empty() => name,
        _ => DEFAULT_DOMAIN.to_string(),
    };
    domain_servers(&name)
}

fn parse_servers(list: &str, origin: &str) -> Result<Vec<ServerSpec>, String> {
    let servers = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| ServerSpec::parse(s).map_err(|e| format!("{origin}: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err(format!("{origin}: no server given"));
    }
    Ok(servers)
}

/// The current list of a shared domain, read once from its segment.
fn domain_servers(name: &str) -> Result<ServerList, String> {
    let domain = DomainName::parse(name).map_err(|e| format!("domain {name:?}: {e}"))?;
    let reader = Reader::open(&domain)
        .map_err(|e| format!("domain {domain}: {e}"))?
        .ok_or_else(|| format!("domain {domain} does not exist (create it with mcadmin)"))?;
    let list = reader.read().map_err(|e| format!("domain {domain}: {e}"))?;
    if list.servers.is_empty() {
        return Err(format!(
            "domain {domain} has no servers (add one with: mcadmin --domain {domain} add HOST:PORT)"
        ));
    }
    Ok((list.servers, list.distribution, list.replicas))
}

fn err(e: ClientError) -> String {
    e.to_string()
}

fn get(client: &mut Client, keys: &[OsString], print_keys: bool) -> Result<Outcome, String> {
    let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    let items = if let [key] = keys[..] {
        vec![client.get(key).map_err(err)?]
    } else {
        client.get_multi(&keys).map_err(err)?
    };
    let mut out = Out::new();
    let mut all_found = true;
    for (key, item) in keys.iter().zip(&items) {
        let Some(item) = item else {
            all_found = false;
            continue;
        };
        if print_keys {
            out.write(key)?;
            out.write(format!("\t{}\n", item.value.len()).as_bytes())?;
        }
        out.write(&item.value)?;
    }
    out.flush()?;
    Ok(if all_found {
        Outcome::Done
    } else {
        Outcome::Miss(None)
    })
}

fn store(
    client: &mut Client,
    cmd: StoreCmd,
    args: StoreArgs,
    flags: u32,
    exptime: u64,
) -> Result<Outcome, String> {
    let key = args.key.as_bytes();
    let value = match args.value {
        Some(v) => v.into_vec(),
        None => {
            let mut v = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut v)
                .map_err(|e| format!("reading the value from standard input: {e}"))?;
            v
        }
    };
    match client
        .store(cmd, key, &value, flags, exptime)
        .map_err(err)?
    {
        Stored::Stored => Ok(Outcome::Done),
        Stored::NotStored => Ok(miss(key, "not stored")),
        Stored::Exists => Ok(miss(key, "exists (changed since it was read)")),
        Stored::NotFound => Ok(miss(key, "not found")),
        Stored::ServerError(message) => {
            let server = client
                .server_for(key)
                .map_or_else(|| "server".to_string(), |i| client.servers()[i].to_string());
            Err(format!("{server}: server error: {message}"))
        }
    }
}

fn arith(client: &mut Client, incr: bool, args: ArithArgs) -> Result<Outcome, String> {
    let key = args.key.as_bytes();
    let result = if incr {
        client.incr(key, args.delta)
    } else {
        client.decr(key, args.delta)
    };
    match result.map_err(err)? {
        Some(n) => {
            let mut out = Out::new();
            out.write(format!("{n}\n").as_bytes())?;
            out.flush()?;
            Ok(Outcome::Done)
        }
        None => Ok(miss(key, "not found")),
    }
}

fn stats(client: &mut Client, group: &str) -> Result<Outcome, String> {
    let group = (!group.is_empty()).then_some(group.as_bytes());
    each_server(client.stats(group), |name, lines| {
        let mut text = Vec::new();
        for (stat, value) in lines {
            text.extend(line(name, &format!("{stat}\t{value}")));
        }
        text
    })
}

/// The per-server results of an admin command: what `show` makes of each success goes to
/// standard output; each failure is a line on standard error, and any makes the exit status 2.
fn each_server<T>(
    results: Vec<(String, Result<T, ClientError>)>,
    show: impl Fn(&str, T) -> Vec<u8>,
) -> Result<Outcome, String> {
    let mut out = Out::new();
    let mut failed = false;
    for (name, result) in results {
        match result {
            Ok(v) => out.write(&show(&name, v))?,
            Err(e) => {
                failed = true;
                eprintln!("mclient: {}", one_line(&e.to_string()));
            }
        }
    }
    out.flush()?;
    Ok(if failed {
        Outcome::Failed
    } else {
        Outcome::Done
    })
}

/// `SERVER<TAB>REST` and a newline.
fn line(server: &str, rest: &str) -> Vec<u8> {
    format!("{server}\t{rest}\n").into_bytes()
}

fn miss(key: &[u8], what: &str) -> Outcome {
    Outcome::Miss(Some(format!("{}: {what}", String::from_utf8_lossy(key))))
}

fn found(yes: bool, key: &[u8]) -> Result<Outcome, String> {
    Ok(if yes {
        Outcome::Done
    } else {
        miss(key, "not found")
    })
}

/// Buffered standard output whose errors (a closed pipe, a full disk) become the exit status 2.
struct Out(io::BufWriter<io::StdoutLock<'static>>);

impl Out {
    fn new() -> Out {
        Out(io::BufWriter::new(io::stdout().lock()))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.0.write_all(bytes).map_err(out_error)
    }

    fn flush(&mut self) -> Result<(), String> {
        self.0.flush().map_err(out_error)
    }
}

fn out_error(e: io::Error) -> String {
    format!("writing to standard output: {e}")
}

/// Messages may quote server replies and keys: control characters are shown escaped so the
/// message stays one line.
fn one_line(message: &str) -> String {
    message
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}
