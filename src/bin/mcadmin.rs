//! mcadmin(8): edits the shared server lists (domains) that every libmemcache handle on this
//! host follows. Exit status: 0 success, 1 usage error, 2 runtime error.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use memcache::conn::split_host_port;
use memcache::hash::Distribution;
use memcache::registry::{
    self, DomainList, DomainName, Reader, RegistryError, ServerEntry, Writer,
};

#[derive(Parser)]
#[command(
    name = "mcadmin",
    version,
    about = "Edit the shared memcached server lists (domains) used by libmemcache on this host",
    after_help = "Every long-running program using the domain picks up a change on its next operation.\n\
                  Exit status: 0 success, 1 usage error, 2 runtime error."
)]
struct Cli {
    /// The domain to work on (1-64 bytes of A-Z a-z 0-9 _ . -)
    #[arg(
        long,
        global = true,
        default_value = "default",
        env = "MEMCACHE_DOMAIN"
    )]
    domain: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Add a server (creates the domain if needed)
    Add {
        /// HOST:PORT, [IPv6]:PORT or a unix socket path
        server: String,
        /// Weight for ketama-md5 placement
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        weight: u32,
    },
    /// Remove a server
    Delete { server: String },
    /// Replace the whole list (creates the domain if needed)
    Set {
        #[arg(required = true)]
        servers: Vec<String>,
    },
    /// Show the version, distribution and servers
    List {
        #[arg(long)]
        json: bool,
    },
    /// Create an empty domain
    Create,
    /// Remove the domain's segment; handles keep their last list
    Destroy,
    /// List the domains on this host
    Domains,
    /// Show or change the domain's settings
    Config {
        #[arg(long, value_parser = ["ketama-md5", "crc32-modulo"])]
        distribution: Option<String>,
        /// Copies of each key (used by handles that support redundancy)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=16))]
        replicas: Option<u32>,
    },
}

/// Why mcadmin stops: one line for stderr and the exit status.
enum Failure {
    /// The command line is wrong (status 1).
    Usage(String),
    /// The command could not be carried out (status 2).
    Runtime(String),
}

use Failure::Runtime;

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Failure {
        Runtime(e.to_string())
    }
}

fn parse_server(spec: &str, weight: u32) -> Result<ServerEntry, Failure> {
    let (host, port) = split_host_port(spec.as_bytes());
    let host = String::from_utf8(host.to_vec())
        .map_err(|_| Failure::Usage(format!("{spec}: host is not UTF-8")))?;
    let port = std::str::from_utf8(port)
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(|| Failure::Usage(format!("{spec}: port is not a number from 0 to 65535")))?;
    Ok(ServerEntry { host, port, weight })
}

fn same_server(a: &ServerEntry, b: &ServerEntry) -> bool {
    a.host == b.host && a.port == b.port
}

fn show(entry: &ServerEntry) -> String {
    if entry.host.starts_with('/') {
        entry.host.clone()
    } else if entry.host.contains(':') {
        format!("[{}]:{}", entry.host, entry.port)
    } else {
        format!("{}:{}", entry.host, entry.port)
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn print_list(name: &DomainName, list: &DomainList, json: bool) {
    if json {
        let servers: Vec<String> = list
            .servers
            .iter()
            .map(|s| {
                format!(
                    "{{\"host\":{},\"port\":{},\"weight\":{}}}",
                    json_string(&s.host),
                    s.port,
                    s.weight
                )
            })
            .collect();
        println!(
            "{{\"domain\":{},\"version\":{},\"distribution\":{},\"replicas\":{},\"servers\":[{}]}}",
            json_string(name.as_str()),
            list.version,
            json_string(list.distribution.name()),
            list.replicas,
            servers.join(",")
        );
        return;
    }
    println!("domain {name}");
    println!("version {}", list.version);
    println!("distribution {}", list.distribution.name());
    println!("replicas {}", list.replicas);
    for s in &list.servers {
        println!("server {} weight {}", show(s), s.weight);
    }
}

fn existing(name: &DomainName) -> Result<Writer, Failure> {
    match Writer::open(name, false) {
        Err(RegistryError::NotFound) => Err(Runtime(format!(
            "domain {name} does not exist (mcadmin --domain {name} create)"
        ))),
        other => Ok(other?),
    }
}

/// The current list through a read-only mapping: viewing needs no write access, so any user
/// can look at root's domains (segments are mode 0644).
fn current(name: &DomainName) -> Result<DomainList, Failure> {
    match Reader::open(name)? {
        Some(reader) => Ok(reader.read()?),
        None => Err(Runtime(format!(
            "domain {name} does not exist (mcadmin --domain {name} create)"
        ))),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let name = DomainName::parse(&cli.domain)
        .map_err(|e| Runtime(format!("domain {:?}: {e}", cli.domain)))?;
    match cli.command {
        Command::Add { server, weight } => {
            let entry = parse_server(&server, weight)?;
            let shown = show(&entry);
            let mut w = Writer::open(&name, true)?;
            let version = w.update(|list| {
                if list.servers.iter().any(|s| same_server(s, &entry)) {
                    return Err(RegistryError::BadEntry(format!(
                        "{shown} is already in domain {name}"
                    )));
                }
                list.servers.push(entry);
                Ok(())
            })?;
            eprintln!("mcadmin: added {shown} to {name} (version {version})");
        }
        Command::Delete { server } => {
            let entry = parse_server(&server, 1)?;
            let shown = show(&entry);
            let version = existing(&name)?.update(|list| {
                let before = list.servers.len();
                list.servers.retain(|s| !same_server(s, &entry));
                if list.servers.len() == before {
                    return Err(RegistryError::BadEntry(format!(
                        "{shown} is not in domain {name}"
                    )));
                }
                Ok(())
            })?;
            eprintln!("mcadmin: deleted {shown} from {name} (version {version})");
        }
        Command::Set { servers } => {
            let entries = servers
                .iter()
                .map(|s| parse_server(s, 1))
                .collect::<Result<Vec<_>, _>>()?;
            let version = Writer::open(&name, true)?.update(|list| {
                list.servers = entries;
                Ok(())
            })?;
            eprintln!(
                "mcadmin: set {} servers in {name} (version {version})",
                servers.len()
            );
        }
        Command::List { json } => {
            print_list(&name, &current(&name)?, json);
        }
        Command::Create => {
            if Writer::open(&name, false).is_ok() {
                return Err(Runtime(format!("domain {name} already exists")));
            }
            Writer::open(&name, true)?;
            eprintln!("mcadmin: created {name}");
        }
        Command::Destroy => {
            registry::destroy(&name)?;
            eprintln!("mcadmin: destroyed {name}");
        }
        Command::Domains => {
            for d in registry::list_domains()? {
                match current(&d) {
                    Ok(list) => println!(
                        "{d} version {} servers {}",
                        list.version,
                        list.servers.len()
                    ),
                    Err(Runtime(e) | Failure::Usage(e)) => println!("{d} unreadable: {e}"),
                }
            }
        }
        Command::Config {
            distribution,
            replicas,
        } => {
            if distribution.is_some() || replicas.is_some() {
                let dist = distribution.as_deref().and_then(Distribution::parse);
                existing(&name)?.update(|list| {
                    if let Some(d) = dist {
                        list.distribution = d;
                    }
                    if let Some(r) = replicas {
                        list.replicas = r;
                    }
                    Ok(())
                })?;
            }
            let list = current(&name)?;
            println!("distribution {}", list.distribution.name());
            println!("replicas {}", list.replicas);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not errors: clap prints them in full.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprintln!("mcadmin: a command is required. Usage: mcadmin [--domain NAME] COMMAND (see mcadmin --help)");
            return ExitCode::from(1);
        }
        Err(e) => {
            // clap's message, folded to one line: the problem and the argument it names,
            // without the usage hint that follows.
            let text = e.to_string();
            let first = text
                .lines()
                .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage:"))
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            eprintln!("mcadmin: {first} (see mcadmin --help)");
            return ExitCode::from(1);
        }
    };
    let (code, msg) = match run(cli) {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => (1, msg),
        Err(Runtime(msg)) => (2, msg),
    };
    eprintln!("mcadmin: {msg}");
    ExitCode::from(code)
}
