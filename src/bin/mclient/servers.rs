//! Which servers mclient talks to, and how keys are placed on them.

use memcache::client::{Client, ServerSpec};
use memcache::conn::Security;
use memcache::domain_security;
use memcache::hash::Distribution;
use memcache::registry::{DomainName, Reader};

use crate::cli::Cli;
use crate::Stop;

/// Environment variable with a comma-separated server list, used when neither `--servers` nor
/// `--domain` is given.
const ENV_SERVERS: &str = "MEMCACHE_SERVERS";
/// Environment variable naming the domain to use when nothing else names servers.
const ENV_DOMAIN: &str = "MEMCACHE_DOMAIN";
const DEFAULT_DOMAIN: &str = "default";

/// A server list with its placement and its replica count: enough to make any number of
/// clients that place keys alike (`bench` makes one per thread).
#[derive(Clone)]
pub struct ServerList {
    pub servers: Vec<ServerSpec>,
    pub distribution: Distribution,
    pub replicas: u32,
    timeout: Option<std::time::Duration>,
    /// TLS and login, shared by every client made from the list (and their session cache).
    security: Security,
}

impl ServerList {
    /// The servers to talk to: `--servers`, `--domain`, `$MEMCACHE_SERVERS`, then the domain
    /// `$MEMCACHE_DOMAIN` or `default`.
    pub fn from_cli(cli: &Cli) -> Result<ServerList, Stop> {
        let mut list = ServerList::choose(cli)?;
        if let Some(r) = cli.replicas {
            list.replicas = r;
        }
        list.timeout = cli.timeout_ms.map(std::time::Duration::from_millis);
        // A domain brings this host's TLS and login settings for it (mcadmin config); options
        // given on the command line replace them whole, as a C program's own calls do.
        if cli.security.is_given() {
            list.security = cli.security.security("mclient").map_err(Stop::failed)?;
        }
        Ok(list)
    }

    fn choose(cli: &Cli) -> Result<ServerList, Stop> {
        // An explicit list is placed as a 1.4 program that adds the same servers places it.
        let chosen = cli.distribution.unwrap_or(Distribution::Crc32Modulo);
        if let Some(list) = &cli.servers {
            return explicit(parse_servers(list, "--servers")?, chosen);
        }
        if let Some(name) = &cli.domain {
            return domain_servers(name);
        }
        if let Some(list) = std::env::var_os(ENV_SERVERS).filter(|v| !v.is_empty()) {
            let list = list
                .into_string()
                .map_err(|_| Stop::usage(format!("{ENV_SERVERS} is not UTF-8")))?;
            return explicit(parse_servers(&list, ENV_SERVERS)?, chosen);
        }
        if cli.distribution.is_some() {
            return Err(Stop::usage(
                "--distribution applies to a --servers or MEMCACHE_SERVERS list; a domain has \
                 its own",
            ));
        }
        let name = match std::env::var(ENV_DOMAIN) {
            Ok(name) if !name.is_empty() => name,
            _ => DEFAULT_DOMAIN.to_string(),
        };
        domain_servers(&name)
    }

    /// A client for this list, with the options of the command line.
    pub fn client(&self) -> Result<Client, Stop> {
        self.client_for(self.servers.clone())
    }

    /// A client for `servers` only, with this list's distribution and options (`ping` asks
    /// each server on its own).
    pub fn client_for(&self, servers: Vec<ServerSpec>) -> Result<Client, Stop> {
        let mut client = Client::new(servers, self.distribution).map_err(Stop::from)?;
        if let Some(t) = self.timeout {
            client.set_timeout(t);
        }
        client.set_replicas(self.replicas as usize);
        client.set_security(self.security.clone());
        Ok(client)
    }
}

fn explicit(servers: Vec<ServerSpec>, distribution: Distribution) -> Result<ServerList, Stop> {
    Ok(ServerList {
        servers,
        distribution,
        replicas: 1,
        timeout: None,
        security: Security::default(),
    })
}

/// A comma list of addresses: text that is not an address at all is a usage error, as in
/// mcadmin; an address that cannot name a server (a name too long) a failure.
fn parse_servers(list: &str, origin: &str) -> Result<Vec<ServerSpec>, Stop> {
    let servers = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            ServerSpec::parse(s).map_err(|e| {
                let message = format!("{origin}: {e}");
                if e.is_syntax() {
                    Stop::usage(message)
                } else {
                    Stop::failed(message)
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err(Stop::usage(format!("{origin}: no server given")));
    }
    Ok(servers)
}

/// The current list of a shared domain, read once from its segment.
fn domain_servers(name: &str) -> Result<ServerList, Stop> {
    // A runtime error, as in mcadmin: the name may come from the environment.
    let domain =
        DomainName::parse(name).map_err(|e| Stop::failed(format!("domain {name:?}: {e}")))?;
    let reader = Reader::open(&domain)
        .map_err(|e| Stop::failed(format!("domain {domain}: {e}")))?
        .ok_or_else(|| {
            Stop::failed(format!(
                "domain {domain} does not exist (create it with mcadmin)"
            ))
        })?;
    let list = reader
        .read()
        .map_err(|e| Stop::failed(format!("domain {domain}: {e}")))?;
    if list.servers.is_empty() {
        return Err(Stop::failed(format!(
            "domain {domain} has no servers (add one with: mcadmin --domain {domain} add HOST:PORT)"
        )));
    }
    let security = match domain_security::read_from_env(&domain)
        .and_then(|settings| settings.map(|s| s.load()).transpose())
    {
        Ok(loaded) => loaded.map(|l| l.security().clone()).unwrap_or_default(),
        Err(why) => {
            return Err(Stop::failed(format!(
                "domain {domain}: {why}; the domain's TLS and login settings are not used"
            )))
        }
    };
    Ok(ServerList {
        servers: list.servers,
        distribution: list.distribution,
        replicas: list.replicas,
        timeout: None,
        security,
    })
}
