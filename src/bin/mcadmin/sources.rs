//! `--from URL` and `--to URL`: the sources of `watch`, `pull` and `publish`. Each URL becomes a
//! `memcache::source::Source` (the install rules and the follow loop are the library's); the
//! record on the memcached servers (`memcache://`) keeps its own versioned workflow
//! (`memcache::propagate`).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use memcache::domain_file::DomainFile;
use memcache::propagate::Watcher;
use memcache::registry::{DomainName, Namespace};
use memcache::source::{
    self, Base, FileSource, Following, Installed, Pulled, Rules, Source, SourceEvent,
};

mod dns;
mod etcd;

use dns::DnsSource;
use etcd::EtcdSource;

use super::{
    current, describe, log, log_installed, log_watch_event, one_domain, parse_domain, parse_server,
    stop_requested, Failure, Runtime,
};

/// Where a list comes from, as named on the command line.
enum Url {
    /// `memcache://HOST:PORT`: the record published on the domain's servers.
    Memcache(String),
    /// Every other scheme.
    Source(Box<dyn Source>),
}

/// The source a URL names, each exchange bounded by `timeout`. An unknown scheme or a malformed URL is a usage error.
fn parse_url(url: &str, timeout: Duration) -> Result<Url, Failure> {
    let usage = |e: String| Failure::Usage(e);
    let (scheme, _) = url.split_once(':').unwrap_or(("", url));
    match scheme {
        "memcache" => {
            let server = url
                .strip_prefix("memcache://")
                .map(|s| s.trim_end_matches('/'))
                .filter(|s| !s.is_empty() && !s.contains('/'))
                .ok_or_else(|| usage(format!("{url}: expected memcache://HOST:PORT")))?;
            parse_server(server, 1)?;
            Ok(Url::Memcache(server.to_owned()))
        }
        "file" => Ok(Url::Source(Box::new(
            FileSource::from_url(url).map_err(usage)?,
        ))),
        "etcd" => Ok(Url::Source(Box::new(
            EtcdSource::from_url(url, timeout).map_err(usage)?,
        ))),
        "dns" => Ok(Url::Source(Box::new(
            DnsSource::from_url(url, timeout).map_err(usage)?,
        ))),
        _ => Err(usage(format!(
            "{url}: unknown source (file:///PATH, etcd://HOST:PORT/KEY, dns:NAME, dns://SERVER/NAME or memcache://HOST:PORT)"
        ))),
    }
}

/// `pull --from URL`: one look at the source, installed by the rules.
pub fn pull_from(
    ns: &Namespace,
    name: &DomainName,
    url: &str,
    rules: Rules,
    max_ahead: Duration,
    timeout: Duration,
) -> Result<(), Failure> {
    let mut source = match parse_url(url, timeout)? {
        Url::Memcache(server) => return super::pull(ns, name, &server, max_ahead, timeout),
        Url::Source(source) => source,
    };
    let found = source.fetch().map_err(|e| Runtime(format!("{url}: {e}")))?;
    let installed = source::install(ns, name, &found.offer, rules);
    if let (Ok(_), Some(revision)) = (&installed, found.revision) {
        remember(ns, name, url, revision)?;
    }
    match installed {
        Ok(Installed::Created { list }) => {
            eprintln!("mcadmin: created {name} from {url}: {}", describe(&list))
        }
        Ok(Installed::Replaced { was, list }) => eprintln!(
            "mcadmin: installed {name} from {url} (was version {was}): {}",
            describe(&list)
        ),
        Ok(Installed::Unchanged { version }) => {
            eprintln!("mcadmin: {name} already has the list of {url} (version {version})")
        }
        Err(e) => return Err(Runtime(format!("{name}: {url}: {e}"))),
    }
    Ok(())
}

/// `publish --to URL`: the local list written to a source that can be written.
pub fn publish_to(
    ns: &Namespace,
    name: &DomainName,
    url: &str,
    force: bool,
    timeout: Duration,
) -> Result<(), Failure> {
    let mut source = match parse_url(url, timeout)? {
        Url::Memcache(server) => return super::publish(ns, name, &[server], force, timeout),
        Url::Source(source) => source,
    };
    let base = match Pulled::recall(ns, name).map_err(Runtime)? {
        _ if force => Base::Current,
        Some(pulled) if pulled.url == url => Base::Pulled(pulled.revision),
        _ => Base::Absent,
    };
    let list = current(ns, name)?;
    let done = source
        .publish(&DomainFile::of(name, &list), base)
        .map_err(|e| Runtime(format!("{name}: {url}: {e}")))?;
    if let Some(revision) = done.revision {
        remember(ns, name, url, revision)?;
    }
    eprintln!(
        "mcadmin: published {name} version {} to {url}: {}",
        list.version, done.said
    );
    Ok(())
}

/// Keeps the revision of `url` that `name`'s list now matches, for the next `publish --to`.
fn remember(ns: &Namespace, name: &DomainName, url: &str, revision: i64) -> Result<(), Failure> {
    let pulled = Pulled {
        url: url.to_owned(),
        revision,
    };
    pulled.keep(ns, name).map(drop).map_err(|e| {
        Runtime(format!(
            "{name}: cannot record revision {revision} of {url} (a publish --to it would be \
             refused): {e}"
        ))
    })
}

/// `watch --from URL...`: each `--domain` from the `--from` given in the same position, until
/// SIGTERM or SIGINT. Domains following `memcache://` servers run the record's watcher, each
/// server's group in a thread of its own; every other source is followed by the library.
pub fn watch_from(
    ns: Namespace,
    domains: &[String],
    urls: &[String],
    rules: Rules,
    interval: Duration,
    max_ahead: Duration,
    timeout: Duration,
) -> Result<(), Failure> {
    let names = match domains {
        [] | [_] => vec![one_domain(domains)?],
        more => more
            .iter()
            .map(|d| parse_domain(d))
            .collect::<Result<Vec<_>, _>>()?,
    };
    if names.len() != urls.len() {
        return Err(Failure::Usage(format!(
            "{} --domain and {} --from: give one --from after each --domain",
            names.len(),
            urls.len()
        )));
    }
    let mut following = Vec::new();
    let mut by_server: BTreeMap<String, Vec<DomainName>> = BTreeMap::new();
    let mut shown = Vec::new();
    for (name, url) in names.into_iter().zip(urls) {
        if shown.iter().any(|(n, _): &(DomainName, _)| n == &name) {
            return Err(Failure::Usage(format!("domain {name} is given twice")));
        }
        shown.push((name.clone(), url.clone()));
        match parse_url(url, timeout)? {
            Url::Memcache(server) => by_server.entry(server).or_default().push(name),
            Url::Source(source) => following.push(Following {
                domain: name,
                source,
            }),
        }
    }
    super::install_stop_handlers()?;
    for (name, url) in &shown {
        log(&format!("following {name} from {url}"));
    }
    std::thread::scope(|scope| -> Result<(), Failure> {
        for (server, domains) in by_server {
            let seed = parse_server(&server, 1)?;
            let mut watcher = Watcher::new(ns.clone(), Some(domains), Some(seed))
                .map_err(|e| Runtime(e.to_string()))?;
            watcher.set_timeout(timeout);
            watcher.set_max_ahead(max_ahead);
            scope.spawn(move || watcher.run(interval, stop_requested, log_watch_event));
        }
        source::follow(&ns, following, rules, stop_requested, |event| match event {
            SourceEvent::Installed {
                domain,
                source,
                was,
                list,
            } => log_installed(domain, source, *was, list),
            SourceEvent::Problem { message, .. } | SourceEvent::Recovered { message, .. } => {
                log(message)
            }
        });
        Ok(())
    })?;
    super::log_stopped();
    Ok(())
}
