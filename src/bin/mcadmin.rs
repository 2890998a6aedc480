//! mcadmin(8): edits the shared server lists (domains) that every libmemcache handle on this
//! host follows, and carries them between hosts through the memcached servers themselves
//! (`publish`, `pull`, `watch`: the workflows of `memcache::propagate`, which this file only
//! calls and reports on). Every change is also kept in the state directory
//! (`memcache::state_dir`), from which `restore` recreates the domains after a reboot; `export`
//! and `import` move a domain as a domain file (`memcache::domain_file`). Exit statuses:
//! `memcache::exit_code`, shared with mclient (0 success, 2 usage error, 3 runtime error).
//!
//! The only `unsafe` code is the stop-signal handler of `watch`, at the end.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use memcache::address::ServerAddr;
use memcache::domain_file::{self, DomainFile, ImportError, Imported, MAX_FILE_LEN};
use memcache::domain_security::{self, DomainSecurity};
use memcache::exit_code::Exit;
use memcache::hash::Distribution;
use memcache::propagate::{
    self, Adopted, ClientAddr, NetError, PublishError, PullError, ServerConnection, WatchError,
    WatchEvent, Watcher, NET_TIMEOUT,
};
use memcache::registry::{DomainList, DomainName, Namespace, RegistryError, Writer};
use memcache::source::Rules;
use memcache::state_dir::{self, Restored, StateDir};

// The sources of watch/pull/publish; a directory of its own beside this file.
#[path = "mcadmin/sources.rs"]
mod sources;
// `status`: the table and the JSON of memcache::status.
#[path = "mcadmin/status.rs"]
mod status;
// The JSON of --json, shared with mclient.
#[path = "common/json.rs"]
mod json;
// --tls-* and --auth-file, shared with mclient.
#[path = "common/security.rs"]
mod security;

use json::json_string;

#[derive(Parser)]
#[command(
    name = "mcadmin",
    version,
    about = "Edit the shared memcached server lists (domains) used by libmemcache on this host",
    after_help = format!(
        "Every long-running program using the domain picks up a change on its next operation.\n\
         Every change is also kept in $MEMCACHE_STATE_DIR (default /var/lib/memcache/domains);\n\
         `mcadmin restore` recreates the domains from it after a reboot.\n{}",
        Exit::summary()
    )
)]
struct Cli {
    /// The domain to work on (1-64 bytes of A-Z a-z 0-9 _ . -) [default: $MEMCACHE_DOMAIN, else
    /// "default"]. `watch` takes it several times [default: every domain of this host]
    #[arg(long, global = true, value_name = "NAME", action = clap::ArgAction::Append)]
    domain: Vec<String>,
    /// Limit for each connect, write and read of publish, pull, watch and clients, in
    /// milliseconds [default: 2000]
    #[arg(long = "timeout-ms", value_name = "N", global = true,
          value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: Option<u64>,
    /// TLS and login for the servers publish, pull, watch, status and clients talk to.
    #[command(flatten)]
    security: security::SecurityArgs,
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
    /// Replace the whole list (creates the domain if needed); servers already in the list keep
    /// their weight unless given as SERVER=WEIGHT
    Set {
        /// HOST:PORT, [IPv6]:PORT or a unix socket path, each optionally =WEIGHT
        #[arg(required = true)]
        servers: Vec<String>,
    },
    /// Print the domain as a domain file (see mcadmin(8)), for `import` on this or another host
    Export,
    /// Make the domain's list the one of a domain file (FILE, or - for stdin); no change if it
    /// is the same
    Import { file: String },
    /// Recreate the domains kept in the state directory (every one, or the --domain given)
    Restore,
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
    /// Show or change the domain's settings. With --tls, --tls-ca, --tls-cert, --tls-key and
    /// --auth-file (the options mcadmin itself takes), every program of this host following the
    /// domain uses them from its next operation on; kept in the state directory, paths only
    Config {
        #[arg(long, value_parser = ["ketama-md5", "crc32-modulo"])]
        distribution: Option<String>,
        /// Copies of each key (used by handles that support redundancy)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=16))]
        replicas: Option<u32>,
        /// Speak TLS only to the servers written tls://HOST:PORT (undoes --tls)
        #[arg(long = "no-tls")]
        no_tls: bool,
        /// Trust the system's CAs again (undoes --tls-ca)
        #[arg(long = "no-tls-ca")]
        no_tls_ca: bool,
        /// Present no client certificate (undoes --tls-cert and --tls-key)
        #[arg(long = "no-tls-cert")]
        no_tls_cert: bool,
        /// Log in no more (undoes --auth-file)
        #[arg(long = "no-auth-file")]
        no_auth_file: bool,
    },
    /// Store the list on every server of the domain (and on servers just removed from it)
    Publish {
        /// Also tell this server (e.g. one removed before anything was published); repeatable
        #[arg(long, value_name = "SERVER")]
        also: Vec<String>,
        /// Supersede whatever version the servers or this host hold, even one dated ahead of
        /// the clock: the list is republished in the next epoch (every host takes it as newer)
        #[arg(long)]
        force: bool,
        /// Write the list to this source instead (file:///PATH, memcache://HOST:PORT)
        #[arg(long, value_name = "URL")]
        to: Option<String>,
    },
    /// Install the list a server holds if it is newer than this host's, or the list of a source
    /// (--from) if it differs
    Pull {
        /// HOST:PORT, [IPv6]:PORT or a unix socket path
        #[arg(required_unless_present = "from", conflicts_with = "from")]
        server: Option<String>,
        /// Where the list is: file:///PATH, memcache://HOST:PORT (see mcadmin(8))
        #[arg(long, value_name = "URL")]
        from: Option<String>,
        /// Install a list with no server from --from (refused by default)
        #[arg(long, requires = "from")]
        allow_empty: bool,
        /// Refuse a record dated further ahead of this host's clock (s, m, h or d suffix)
        #[arg(long, value_name = "DURATION", env = "MEMCACHE_MAX_AHEAD", default_value = "1d",
              value_parser = parse_max_ahead)]
        max_ahead: Duration,
    },
    /// Keep the domains of this host in sync with their servers (runs until SIGTERM/SIGINT)
    Watch {
        /// Seconds between two rounds (decimals allowed)
        #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_interval)]
        interval: Duration,
        /// Where to get a domain that has no segment on this host yet
        #[arg(long, value_name = "SERVER", conflicts_with = "from")]
        seed: Option<String>,
        /// Follow this source instead of the domain's servers, once per --domain in the same
        /// order: file:///PATH, memcache://HOST:PORT (see mcadmin(8))
        #[arg(long, value_name = "URL")]
        from: Vec<String>,
        /// Install a list with no server from --from (refused by default)
        #[arg(long, requires = "from")]
        allow_empty: bool,
        /// Refuse a record dated further ahead of this host's clock (s, m, h or d suffix)
        #[arg(long, value_name = "DURATION", env = "MEMCACHE_MAX_AHEAD", default_value = "1d",
              value_parser = parse_max_ahead)]
        max_ahead: Duration,
    },
    /// Show the client addresses connected to the domain's servers (stats conns)
    Clients {
        #[arg(long)]
        json: bool,
    },
    /// Show each server's health (up or down and since when, round trip, version, uptime,
    /// items, hit ratio, evictions) and the local processes attached to the domain; exit
    /// status 1 when a server is down
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// `watch --interval`: a number of seconds from 0.1 to one day.
fn parse_interval(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if (0.1..=86_400.0).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err(format!(
            "{text:?} is not a number of seconds from 0.1 to 86400"
        )),
    }
}

/// `--max-ahead`: whole seconds, or a number with an `s`, `m`, `h` or `d` suffix, at most a
/// year.
fn parse_max_ahead(text: &str) -> Result<Duration, String> {
    let (digits, unit) = match text.char_indices().last() {
        Some((at, 's')) => (&text[..at], 1),
        Some((at, 'm')) => (&text[..at], 60),
        Some((at, 'h')) => (&text[..at], 3600),
        Some((at, 'd')) => (&text[..at], 86_400),
        _ => (text, 1),
    };
    match digits.parse::<u64>() {
        Ok(n) if digits.bytes().all(|b| b.is_ascii_digit()) && n * unit <= 366 * 86_400 => {
            Ok(Duration::from_secs(n * unit))
        }
        _ => Err(format!(
            "{text:?} is not a duration such as 3600, 90m, 36h or 1d (at most 366d)"
        )),
    }
}

/// Why mcadmin stops: one line for stderr and the exit status.
enum Failure {
    /// The command line is wrong (`Exit::Usage`).
    Usage(String),
    /// The command could not be carried out (`Exit::Failed`).
    Runtime(String),
    /// The command ran and its answer is no (`Exit::Miss`).
    Miss(String),
}

use Failure::Runtime;

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Failure {
        Runtime(e.to_string())
    }
}

/// This host's namespace (`MEMCACHE_SHM_PREFIX`), keeping every change in its state directory
/// when it has one.
fn host() -> Result<Namespace, Failure> {
    let ns = Namespace::from_env()?;
    Ok(match StateDir::from_env(&ns).map_err(Runtime)? {
        Some(state) => ns.with_keeper(Arc::new(state)),
        None => ns,
    })
}

/// The state directory `restore` reads; an error when the namespace has none.
fn state_dir(ns: &Namespace) -> Result<StateDir, Failure> {
    StateDir::from_env(ns).map_err(Runtime)?.ok_or_else(|| {
        Runtime(format!(
            "the namespace {} (MEMCACHE_SHM_PREFIX) has no state directory: set {}",
            ns.prefix(),
            state_dir::ENV_VAR
        ))
    })
}

/// A server named on the command line: text that is not an address at all is a usage error,
/// an address that cannot name a server a runtime one.
fn parse_server(spec: &str, weight: u32) -> Result<ServerAddr, Failure> {
    ServerAddr::parse_weighted(spec, weight).map_err(|e| {
        if e.is_syntax() {
            Failure::Usage(format!("{spec}: {}", e.reason()))
        } else {
            Runtime(format!("server {spec}: {}", e.reason()))
        }
    })
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
        println!("server {s} weight {}", s.weight);
    }
}

fn no_domain(name: &DomainName) -> Failure {
    Runtime(format!(
        "domain {name} does not exist (mcadmin --domain {name} create)"
    ))
}

fn existing(ns: &Namespace, name: &DomainName) -> Result<Writer, Failure> {
    match ns.open_writer(name, false) {
        Err(RegistryError::NotFound) => Err(no_domain(name)),
        other => Ok(other?),
    }
}

/// The current list through a read-only mapping: viewing needs no write access, so any user
/// can look at root's domains (segments are mode 0644).
fn current(ns: &Namespace, name: &DomainName) -> Result<DomainList, Failure> {
    match ns.open_reader(name)? {
        Some(reader) => Ok(reader.read()?),
        None => Err(no_domain(name)),
    }
}

fn parse_domain(name: &str) -> Result<DomainName, Failure> {
    DomainName::parse(name).map_err(|e| Runtime(format!("domain {name:?}: {e}")))
}

/// The one domain of every command but `watch`: `--domain`, else `$MEMCACHE_DOMAIN`, else
/// `default`.
fn one_domain(given: &[String]) -> Result<DomainName, Failure> {
    match given {
        [] => match std::env::var_os("MEMCACHE_DOMAIN") {
            Some(v) if !v.is_empty() => match v.to_str() {
                Some(name) => parse_domain(name),
                None => Err(Runtime(format!("MEMCACHE_DOMAIN={v:?} is not UTF-8"))),
            },
            _ => parse_domain("default"),
        },
        [name] => parse_domain(name),
        more => Err(Failure::Usage(format!(
            "--domain is given {} times; only watch follows several domains",
            more.len()
        ))),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let ns = host()?;
    let timeout = cli.timeout_ms.map_or(NET_TIMEOUT, Duration::from_millis);
    if let Command::Config {
        distribution,
        replicas,
        no_tls,
        no_tls_ca,
        no_tls_cert,
        no_auth_file,
    } = cli.command
    {
        // The TLS options name the domain's settings here, not mcadmin's own connections.
        let undo = Undo {
            tls: no_tls,
            ca: no_tls_ca,
            cert: no_tls_cert,
            auth: no_auth_file,
        };
        let name = one_domain(&cli.domain)?;
        return config(&ns, &name, distribution, replicas, &cli.security, undo);
    }
    let own_security = cli.security.is_given();
    propagate::use_security(cli.security.security("mcadmin").map_err(Runtime)?);
    let command = match cli.command {
        Command::Watch {
            from,
            allow_empty,
            interval,
            max_ahead,
            ..
        } if !from.is_empty() => {
            let rules = Rules { allow_empty };
            return sources::watch_from(
                ns,
                &cli.domain,
                &from,
                rules,
                interval,
                max_ahead,
                timeout,
            );
        }
        Command::Watch {
            interval,
            seed,
            max_ahead,
            ..
        } => {
            return watch(
                ns,
                &cli.domain,
                interval,
                seed.as_deref(),
                max_ahead,
                timeout,
            )
        }
        Command::Restore => return restore(&ns, &cli.domain),
        other => other,
    };
    let name = one_domain(&cli.domain)?;
    match command {
        Command::Add { server, weight } => {
            let entry = parse_server(&server, weight)?;
            let shown = entry.to_string();
            let mut w = ns.open_writer(&name, true)?;
            let version = w.update(|list| {
                if list.servers.iter().any(|s| s.same_server(&entry)) {
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
            let shown = entry.to_string();
            let version = existing(&ns, &name)?.update(|list| {
                let before = list.servers.len();
                list.servers.retain(|s| !s.same_server(&entry));
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
                .map(|s| parse_weighted_server(s))
                .collect::<Result<Vec<_>, _>>()?;
            let version = ns.open_writer(&name, true)?.update(|list| {
                list.replace_servers(entries);
                Ok(())
            })?;
            eprintln!(
                "mcadmin: set {} servers in {name} (version {version})",
                servers.len()
            );
        }
        Command::List { json } => {
            print_list(&name, &current(&ns, &name)?, json);
        }
        Command::Export => {
            let list = current(&ns, &name)?;
            print!("{}", domain_file::format(&DomainFile::of(&name, &list)));
        }
        Command::Import { file } => import(&ns, &name, &file)?,
        Command::Create => {
            if ns.open_writer(&name, false).is_ok() {
                return Err(Runtime(format!("domain {name} already exists")));
            }
            ns.open_writer(&name, true)?;
            eprintln!("mcadmin: created {name}");
        }
        Command::Destroy => {
            ns.destroy(&name)?;
            // Its TLS and login settings go with it: a domain created again under the name
            // starts without them.
            if let Some(state) = StateDir::from_env(&ns).map_err(Runtime)? {
                domain_security::forget(&state, &name)
                    .map_err(|e| Runtime(format!("{name}: its TLS and login settings: {e}")))?;
            }
            eprintln!("mcadmin: destroyed {name}");
        }
        Command::Domains => {
            for d in ns.list_domains()? {
                match current(&ns, &d) {
                    Ok(list) => println!(
                        "{d} version {} servers {}",
                        list.version,
                        list.servers.len()
                    ),
                    Err(Runtime(e) | Failure::Usage(e) | Failure::Miss(e)) => {
                        println!("{d} unreadable: {e}")
                    }
                }
            }
        }
        Command::Publish {
            to: Some(url),
            also,
            force,
        } => {
            if !also.is_empty() {
                return Err(Failure::Usage("--also is for publish without --to".into()));
            }
            sources::publish_to(&ns, &name, &url, force, timeout)?
        }
        Command::Publish { also, force, .. } => publish(&ns, &name, &also, force, timeout)?,
        Command::Pull {
            from: Some(url),
            allow_empty,
            max_ahead,
            ..
        } => sources::pull_from(&ns, &name, &url, Rules { allow_empty }, max_ahead, timeout)?,
        Command::Pull {
            server, max_ahead, ..
        } => {
            let server = server.as_deref().unwrap_or_default();
            pull(&ns, &name, server, max_ahead, timeout)?
        }
        Command::Clients { json } => clients(&ns, &name, json, timeout)?,
        Command::Status { json } => status::status(&ns, &name, json, timeout, own_security)?,
        Command::Watch { .. } | Command::Restore | Command::Config { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(())
}

/// `config`'s --no-* options: the settings to drop.
struct Undo {
    tls: bool,
    ca: bool,
    cert: bool,
    auth: bool,
}

/// `config`: changes the distribution, the copies and this host's TLS and login settings of the
/// domain (`memcache::domain_security`), all under one new version so that running programs
/// take them on their next operation; then shows them. The files named are checked now: a CA or
/// certificate that cannot be used, or a credentials file others can read, is refused and
/// nothing changes.
fn config(
    ns: &Namespace,
    name: &DomainName,
    distribution: Option<String>,
    replicas: Option<u32>,
    given: &security::SecurityArgs,
    undo: Undo,
) -> Result<(), Failure> {
    let clash = [
        (given.tls && undo.tls, "--tls and --no-tls"),
        (
            given.tls_ca.is_some() && undo.ca,
            "--tls-ca and --no-tls-ca",
        ),
        (
            given.tls_cert.is_some() && undo.cert,
            "--tls-cert and --no-tls-cert",
        ),
        (
            given.auth_file.is_some() && undo.auth,
            "--auth-file and --no-auth-file",
        ),
    ];
    if let Some((_, both)) = clash.iter().find(|(clash, _)| *clash) {
        return Err(Failure::Usage(format!("{both} contradict each other")));
    }
    if given.tls_insecure {
        return Err(Failure::Usage(
            "--tls-insecure is not kept in a domain: every program of the host would accept any              certificate; give it to the one mclient or mcadmin command that needs it"
                .into(),
        ));
    }
    let changes_security = given.is_given() || undo.tls || undo.ca || undo.cert || undo.auth;
    let state = StateDir::from_env(ns).map_err(Runtime)?;
    if changes_security || distribution.is_some() || replicas.is_some() {
        let mut writer = existing(ns, name)?;
        if changes_security {
            let Some(state) = &state else {
                return Err(Runtime(format!(
                    "the namespace {} (MEMCACHE_SHM_PREFIX) has no state directory to keep TLS                      and login settings in: set {}",
                    ns.prefix(),
                    state_dir::ENV_VAR
                )));
            };
            let kept = domain_security::read(state, name).map_err(|e| {
                Runtime(format!(
                    "{e}; fix or remove the file before changing the settings"
                ))
            })?;
            let settings = new_settings(kept.unwrap_or_default(), given, &undo)?;
            settings
                .load_with(memcache::conn::Credentials::parse_file)
                .map_err(Runtime)?;
            if let Some(auth) = &settings.auth_file {
                domain_security::check_credentials_file(auth).map_err(Runtime)?;
            }
            // The file first, then the version its readers wait for.
            domain_security::write(state, name, &settings).map_err(|e| {
                Runtime(format!(
                    "{}: {e}; nothing changed",
                    domain_security::file_of(state, name).display()
                ))
            })?;
        }
        let dist = distribution.as_deref().and_then(Distribution::parse);
        let version = writer.update(|list| {
            if let Some(d) = dist {
                list.distribution = d;
            }
            if let Some(r) = replicas {
                list.replicas = r;
            }
            Ok(())
        })?;
        eprintln!("mcadmin: changed the settings of {name} (version {version})");
    }
    let list = current(ns, name)?;
    println!("distribution {}", list.distribution.name());
    println!("replicas {}", list.replicas);
    // What the domain's programs will find, or why they will not use it.
    let shown = match &state {
        Some(state) => domain_security::read(state, name).unwrap_or_else(|e| {
            eprintln!("mcadmin: warning: {e}: the domain's programs refuse it");
            None
        }),
        None => None,
    };
    // A domain without settings shows the two lines it always did.
    for line in shown.map(|s| s.format(name)).unwrap_or_default().lines() {
        if !line.starts_with('#') && !line.starts_with("domain ") {
            println!("{line}");
        }
    }
    Ok(())
}

/// `kept` with the options of the command line applied: paths made absolute (the programs that
/// read them run elsewhere).
fn new_settings(
    kept: DomainSecurity,
    given: &security::SecurityArgs,
    undo: &Undo,
) -> Result<DomainSecurity, Failure> {
    let absolute = |path: &std::path::PathBuf| {
        std::path::absolute(path).map_err(|e| Runtime(format!("{}: {e}", path.display())))
    };
    let mut settings = kept;
    if given.tls {
        settings.tls = true;
    }
    if undo.tls {
        settings.tls = false;
    }
    if undo.ca {
        settings.ca_file = None;
    }
    if let Some(ca) = &given.tls_ca {
        settings.ca_file = Some(absolute(ca)?);
    }
    if undo.cert {
        settings.cert_file = None;
        settings.key_file = None;
    }
    if let Some(cert) = &given.tls_cert {
        settings.cert_file = Some(absolute(cert)?);
        settings.key_file = given.tls_key.as_ref().map(absolute).transpose()?;
    }
    if undo.auth {
        settings.auth_file = None;
    }
    if let Some(auth) = &given.auth_file {
        settings.auth_file = Some(absolute(auth)?);
    }
    Ok(settings)
}

/// A server of `set`: `ADDRESS` or `ADDRESS=WEIGHT`.
fn parse_weighted_server(spec: &str) -> Result<(ServerAddr, Option<u32>), Failure> {
    ServerAddr::parse_with_weight(spec).map_err(|e| {
        if e.is_syntax() {
            Failure::Usage(format!("{spec}: {}", e.reason()))
        } else {
            Runtime(format!("server {spec}: {}", e.reason()))
        }
    })
}

// ---------------------------------------------------------------------------------------------
// import, restore: memcache::domain_file and memcache::state_dir do the work

/// `import FILE`: the file (or stdin for `-`), read with a size bound, parsed strictly.
fn import(ns: &Namespace, name: &DomainName, path: &str) -> Result<(), Failure> {
    let mut bytes = Vec::new();
    let read = if path == "-" {
        std::io::stdin()
            .take(MAX_FILE_LEN as u64 + 1)
            .read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_LEN as u64 + 1).read_to_end(&mut bytes))
    };
    read.map_err(|e| Runtime(format!("{path}: {e}")))?;
    let file = domain_file::parse(&bytes).map_err(|e| Runtime(format!("{path}: {e}")))?;
    match domain_file::import(ns, name, &file) {
        Ok(Imported::Created { version }) => {
            eprintln!("mcadmin: created {name} from {path} (version {version})")
        }
        Ok(Imported::Replaced { was, version }) => {
            eprintln!("mcadmin: imported {path} into {name} (version {version}, was {was})")
        }
        Ok(Imported::Unchanged { version }) => {
            eprintln!("mcadmin: {name} already has the list of {path} (version {version})")
        }
        Err(ImportError::File(e)) => return Err(Runtime(format!("{path}: {e}"))),
        Err(ImportError::Registry(e)) => return Err(e.into()),
    }
    Ok(())
}

/// `restore`: one line per domain; fails (2) if any domain could not be restored, after trying
/// every one.
fn restore(ns: &Namespace, domains: &[String]) -> Result<(), Failure> {
    let only = match domains {
        [] => None,
        _ => Some(one_domain(domains)?),
    };
    let state = state_dir(ns)?;
    let reports = state_dir::restore(ns, &state, only.as_ref()).map_err(Runtime)?;
    let mut failed = 0;
    for report in &reports {
        let d = &report.domain;
        match &report.result {
            Ok(Restored::Created { version }) => {
                eprintln!("mcadmin: restore: {d}: created (version {version})")
            }
            Ok(Restored::Installed { was, version }) => {
                eprintln!("mcadmin: restore: {d}: installed version {version} over version {was}")
            }
            Ok(Restored::UpToDate { version }) => {
                eprintln!("mcadmin: restore: {d}: up to date (version {version})")
            }
            Ok(Restored::KeptNewer { local, kept }) => eprintln!(
                "mcadmin: restore: {d}: kept the segment's version {local}, newer than the \
                 kept version {kept}"
            ),
            Ok(Restored::Conflict { version }) => {
                failed += 1;
                eprintln!(
                    "mcadmin: restore: {d}: conflict: the segment holds version {version} with \
                     another list than {}; nothing changed",
                    state.file(d).display()
                )
            }
            Err(why) => {
                failed += 1;
                eprintln!("mcadmin: restore: {d}: {why}");
            }
        }
    }
    let n = reports.len();
    let summary = format!(
        "restored {} of {n} domain{} from {}",
        n - failed,
        plural(n),
        state.path().display()
    );
    if failed > 0 {
        return Err(Runtime(format!("{summary}; {failed} failed")));
    }
    eprintln!("mcadmin: {summary}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// publish, pull, watch: memcache::propagate does the work; here are the arguments and the lines

/// A list in one short line: its version and up to 8 servers.
fn describe(list: &DomainList) -> String {
    let n = list.servers.len();
    let mut text = format!("version {}, {n} server{}", list.version, plural(n));
    let mut servers: Vec<String> = list
        .servers
        .iter()
        .take(8)
        .map(ServerAddr::to_string)
        .collect();
    if n > 8 {
        servers.push(format!("and {} more", n - 8));
    }
    if n > 0 {
        text.push_str(": ");
        text.push_str(&servers.join(","));
    }
    text
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `publish`: every server that could not be updated is reported on a line of its own; the
/// others are updated all the same, and the command fails if any was not.
fn publish(
    ns: &Namespace,
    name: &DomainName,
    also: &[String],
    force: bool,
    timeout: Duration,
) -> Result<(), Failure> {
    let also = also
        .iter()
        .map(|s| parse_server(s, 1))
        .collect::<Result<Vec<_>, _>>()?;
    let how = if force {
        propagate::supersede
    } else {
        propagate::publish
    };
    let published = how(ns, name, &also, timeout).map_err(|e| match e {
        PublishError::NoDomain(_) => no_domain(name),
        PublishError::Unpublishable(e) => {
            Runtime(format!("the list of {name} cannot be published: {e}"))
        }
        other => Runtime(other.to_string()),
    })?;
    if published.previous.is_none() {
        // Only the servers know what was published before: when none of them does (a first
        // publish, or a list whose servers were all replaced), removed servers are unknown.
        eprintln!(
            "mcadmin: note: no server holds an earlier record of {name}; servers removed since \
             the last publish are told only if named with --also"
        );
    }
    for told in &published.told {
        if let Some(why) = &told.replaced_invalid {
            eprintln!(
                "mcadmin: {}: replacing an invalid record: {why}",
                told.server
            );
        }
        if let Err(why) = &told.result {
            eprintln!("mcadmin: {}: not updated: {why}", told.server);
        }
    }
    let (told, failed) = (published.told.len(), published.failed());
    let summary = format!(
        "published {name} version {} to {} of {told} server{} ({} retired)",
        published.record.list.version,
        told - failed,
        plural(told),
        published.record.retired.len()
    );
    if failed > 0 {
        return Err(Runtime(format!("{summary}; {failed} failed")));
    }
    eprintln!("mcadmin: {summary}");
    Ok(())
}

fn pull(
    ns: &Namespace,
    name: &DomainName,
    spec: &str,
    max_ahead: Duration,
    timeout: Duration,
) -> Result<(), Failure> {
    let server = parse_server(spec, 1)?;
    let pulled =
        propagate::pull_within(ns, name, &server, timeout, max_ahead).map_err(|e| match e {
            PullError::NoRecord { server } => Runtime(format!(
            "{server} holds no record of domain {name} (mcadmin --domain {name} publish stores it)"
        )),
            PullError::Conflict { server, version } => Runtime(format!(
                "conflict: {server} holds version {version} of {name} with a different list than \
             this host's; nothing changed"
            )),
            other => Runtime(other.to_string()),
        })?;
    let list = &pulled.record.list;
    let v = list.version;
    match pulled.adopted {
        Adopted::Created => {
            eprintln!("mcadmin: created {name} from {server}: {}", describe(list))
        }
        Adopted::Installed { was } => eprintln!(
            "mcadmin: installed {name} from {server} (was version {was}): {}",
            describe(list)
        ),
        Adopted::UpToDate => eprintln!("mcadmin: {name} is up to date (version {v})"),
        Adopted::Older { local } => eprintln!(
            "mcadmin: ignored version {v} of {name} from {server}: the local version {local} is newer"
        ),
        Adopted::Conflict => unreachable!("a conflict is an error of pull"),
    }
    Ok(())
}

fn log(line: &str) {
    eprintln!("mcadmin: watch: {line}");
}

/// `watch`: every `interval`, brings each domain up to date from its servers, until SIGTERM or
/// SIGINT. Logs to stderr, one line per change installed and per new problem.
fn watch(
    ns: Namespace,
    domains: &[String],
    interval: Duration,
    seed: Option<&str>,
    max_ahead: Duration,
    timeout: Duration,
) -> Result<(), Failure> {
    let domains = if domains.is_empty() {
        None
    } else {
        Some(
            domains
                .iter()
                .map(|d| parse_domain(d))
                .collect::<Result<Vec<_>, _>>()?,
        )
    };
    let seed = seed.map(|s| parse_server(s, 1)).transpose()?;
    let following = match &domains {
        Some(names) => names
            .iter()
            .map(DomainName::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        None => "every domain of this host".to_owned(),
    };
    let health = StateDir::from_env(&ns).map_err(Runtime)?;
    let mut watcher = Watcher::new(ns, domains, seed).map_err(|e| match e {
        WatchError::SeedNeedsDomains => Failure::Usage(
            "--seed needs --domain: a server cannot tell which domains it holds".into(),
        ),
        other => Runtime(other.to_string()),
    })?;
    watcher.set_timeout(timeout);
    watcher.set_max_ahead(max_ahead);
    if let Some(dir) = health {
        watcher.set_health_dir(dir);
    }
    install_stop_handlers()?;
    log(&format!(
        "following {following} every {}s",
        interval.as_secs_f64()
    ));
    watcher.run(interval, stop_requested, log_watch_event);
    log_stopped();
    Ok(())
}

/// One line per event of the record's watcher.
fn log_watch_event(event: &WatchEvent) {
    match event {
        WatchEvent::Installed {
            domain,
            source,
            was,
            list,
        } => log_installed(domain, source, *was, list),
        WatchEvent::Problem { message, .. } => log(message),
    }
}

/// The line of a watch that installed `list` in `domain` from `source`, over version `was` (or
/// in a segment created for it).
fn log_installed(
    domain: &DomainName,
    source: &dyn std::fmt::Display,
    was: Option<u64>,
    list: &DomainList,
) {
    match was {
        None => log(&format!(
            "{domain}: created from {source}: {}",
            describe(list)
        )),
        Some(was) => log(&format!(
            "{domain}: installed from {source} (was version {was}): {}",
            describe(list)
        )),
    }
}

/// The last line of a watch: which signal stopped it.
fn log_stopped() {
    let signal = if STOP_SIGNAL.load(Ordering::Relaxed) == libc::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    log(&format!("stopped by {signal}"));
}

// ---------------------------------------------------------------------------------------------
// clients

/// One client connection a server reported.
struct ClientConn {
    server: String,
    conn: ServerConnection,
    port: Option<u16>,
}

/// The client connections of one server, without our own.
fn server_clients(
    server: &ServerAddr,
    timeout: Duration,
) -> Result<Vec<(ClientAddr, ServerConnection)>, NetError> {
    let mut slot = propagate::connect(server, timeout)?;
    let own = slot.conn_mut().and_then(|conn| conn.local_addr());
    let all = slot.exchange(&mut Vec::new(), propagate::connections)?;
    let mut ours_seen = false;
    Ok(all
        .into_iter()
        .filter(ServerConnection::is_client)
        .filter_map(|c| {
            let client = c.client()?;
            // Ours is the one executing the command: over TCP the one with our address, over
            // a unix socket (where every client shows the same address) the first in that state.
            let ours = match own {
                Some(own) => {
                    client.port == Some(own.port())
                        && client.host.parse::<IpAddr>().ok().map(canonical)
                            == Some(canonical(own.ip()))
                }
                None => client.port.is_none() && c.state == "conn_parse_cmd",
            };
            if ours && !ours_seen {
                ours_seen = true;
                return None;
            }
            Some((client, c))
        })
        .collect())
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `clients`: every client address (IP, or `unix:PATH`) connected to the domain's servers, with
/// the servers it is connected to. Servers that cannot be asked are reported on stderr; the
/// command fails only when none could be.
fn clients(
    ns: &Namespace,
    name: &DomainName,
    json: bool,
    timeout: Duration,
) -> Result<(), Failure> {
    let list = current(ns, name)?;
    let mut by_client: BTreeMap<String, Vec<ClientConn>> = BTreeMap::new();
    let mut failed: Vec<(String, String)> = Vec::new();
    for server in &list.servers {
        match server_clients(server, timeout) {
            Ok(conns) => {
                for (client, conn) in conns {
                    by_client.entry(client.host).or_default().push(ClientConn {
                        server: server.to_string(),
                        conn,
                        port: client.port,
                    });
                }
            }
            Err(e) => {
                eprintln!("mcadmin: {server}: {e}");
                failed.push((server.to_string(), e.to_string()));
            }
        }
    }
    // Servers in list order, each once.
    let servers_of = |conns: &[ClientConn]| -> Vec<String> {
        let mut servers: Vec<String> = Vec::new();
        for server in list.servers.iter().map(ServerAddr::to_string) {
            if conns.iter().any(|c| c.server == server) {
                servers.push(server);
            }
        }
        servers
    };
    if json {
        let clients: Vec<String> = by_client
            .iter()
            .map(|(client, conns)| {
                let servers: Vec<String> =
                    servers_of(conns).iter().map(|s| json_string(s)).collect();
                let detail: Vec<String> = conns
                    .iter()
                    .map(|c| {
                        format!(
                            "{{\"server\":{},\"port\":{},\"state\":{},\"idle\":{}}}",
                            json_string(&c.server),
                            c.port.map_or("null".to_owned(), |p| p.to_string()),
                            json_string(&c.conn.state),
                            c.conn
                                .idle_secs
                                .map_or("null".to_owned(), |s| s.to_string())
                        )
                    })
                    .collect();
                format!(
                    "{{\"client\":{},\"servers\":[{}],\"connections\":[{}]}}",
                    json_string(client),
                    servers.join(","),
                    detail.join(",")
                )
            })
            .collect();
        let failed: Vec<String> = failed
            .iter()
            .map(|(server, error)| {
                format!(
                    "{{\"server\":{},\"error\":{}}}",
                    json_string(server),
                    json_string(error)
                )
            })
            .collect();
        println!(
            "{{\"domain\":{},\"clients\":[{}],\"failed\":[{}]}}",
            json_string(name.as_str()),
            clients.join(","),
            failed.join(",")
        );
    } else {
        for (client, conns) in &by_client {
            println!(
                "{client} connections {} servers {}",
                conns.len(),
                servers_of(conns).join(",")
            );
        }
    }
    if !list.servers.is_empty() && failed.len() == list.servers.len() {
        return Err(Runtime(format!(
            "no server of {name} could be asked for its clients"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The system calls

/// The signal that asked `watch` to stop, 0 while none has. The handler stores it and does
/// nothing else, which is all a signal handler may safely do here.
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn request_stop(signal: libc::c_int) {
    STOP_SIGNAL.store(signal, Ordering::Relaxed);
}

fn stop_requested() -> bool {
    STOP_SIGNAL.load(Ordering::Relaxed) != 0
}

/// SIGTERM and SIGINT end `watch` within 50 ms, between two installs (never in the middle of
/// one), whatever its servers are doing: the exchanges run in pollers that the exit abandons.
fn install_stop_handlers() -> Result<(), Failure> {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let handler = request_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: `request_stop` is a valid handler for the life of the process and only does an
        // atomic store, which is async-signal-safe.
        if unsafe { libc::signal(signal, handler) } == libc::SIG_ERR {
            return Err(Runtime(format!(
                "cannot install the handler of signal {signal}: {}",
                std::io::Error::last_os_error()
            )));
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
            return Exit::Usage.into();
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
            return Exit::Usage.into();
        }
    };
    let (code, msg) = match run(cli) {
        Ok(()) => return ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => (Exit::Usage, msg),
        Err(Runtime(msg)) => (Exit::Failed, msg),
        Err(Failure::Miss(msg)) => (Exit::Miss, msg),
    };
    eprintln!("mcadmin: {msg}");
    code.into()
}
