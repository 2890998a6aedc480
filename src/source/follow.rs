//! Following several domains, each from its own source, in one process.
//!
//! Each source follows in a thread of its own and hands what it finds to the thread that runs
//! [`follow`], which alone installs lists (so a stop never interrupts an install) and never
//! waits on the network: a stop takes effect within 50 ms. Sources still in an exchange then are
//! left to end it (bounded by their deadline) and install nothing.
//!
//! Reports, per domain: a source that fails is reported once, however often it fails and
//! whatever the failure becomes, and once more when it answers again; a list refused by the
//! install rules is reported once per reason.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use super::{install, Found, Installed, Pulled, Rules, Source, SourceError};
use crate::registry::{DomainList, DomainName, Namespace};

/// How often the running follow looks at its stop condition, at most.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// A domain and where its list comes from.
pub struct Following {
    pub domain: DomainName,
    pub source: Box<dyn Source>,
}

/// What the follow did or found, for its caller to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceEvent {
    /// The source's list was installed: over version `was`, or, with `was` `None`, in a segment
    /// created for it.
    Installed {
        domain: DomainName,
        source: String,
        was: Option<u64>,
        list: DomainList,
    },
    /// The source failed (first failure since it last answered), or what it answered was
    /// refused (first time for this reason). The installed list stays.
    Problem { domain: DomainName, message: String },
    /// The source answers again after a failure.
    Recovered { domain: DomainName, message: String },
}

/// What is known of one followed source.
#[derive(Default)]
struct Health {
    /// The failure reported, while the source fails.
    failing: Option<String>,
    /// The refusal reported, while the source's list is refused for that reason.
    refused: Option<String>,
    /// The failure to record the source's revision reported, while it fails for that reason.
    unrecorded: Option<String>,
}

/// Follows every domain of `following` from its source, installing in `ns` by `rules`, until
/// `stop` returns true (asked at least every 50 ms). `on_event` receives the events.
pub fn follow(
    ns: &Namespace,
    following: Vec<Following>,
    rules: Rules,
    mut stop: impl FnMut() -> bool,
    mut on_event: impl FnMut(&SourceEvent),
) {
    let (sender, found) = mpsc::channel::<(usize, Result<Found, SourceError>)>();
    let halt = Arc::new(AtomicBool::new(false));
    let mut watched = Vec::new();
    for (index, Following { domain, mut source }) in following.into_iter().enumerate() {
        let url = source.url();
        let (sender, halt) = (sender.clone(), Arc::clone(&halt));
        let spawned = std::thread::Builder::new()
            .name(format!("source {domain}"))
            .spawn(move || {
                source.follow(&halt, &mut |result| {
                    if !halt.load(Ordering::Relaxed) {
                        let _ = sender.send((index, result));
                    }
                })
            });
        if let Err(e) = spawned {
            on_event(&SourceEvent::Problem {
                domain: domain.clone(),
                message: format!("{domain}: {url}: cannot start a thread to follow it: {e}"),
            });
        }
        watched.push((domain, url, Health::default()));
    }
    drop(sender);
    while !stop() {
        let (index, result) = match found.recv_timeout(STOP_CHECK) {
            Ok(found) => found,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let (domain, url, health) = &mut watched[index];
        let event = match result {
            Err(e) => {
                let message = format!("{domain}: {url}: {e}; keeping the installed list");
                if health.failing.is_some() {
                    continue;
                }
                health.failing = Some(message.clone());
                SourceEvent::Problem {
                    domain: domain.clone(),
                    message,
                }
            }
            Ok(found) => {
                if health.failing.take().is_some() {
                    on_event(&SourceEvent::Recovered {
                        domain: domain.clone(),
                        message: format!("{domain}: {url}: answering again"),
                    });
                }
                let installed = install(ns, domain, &found.offer, rules);
                if let (Ok(_), Some(revision)) = (&installed, found.revision) {
                    let pulled = Pulled {
                        url: url.clone(),
                        revision,
                    };
                    let kept = pulled.keep(ns, domain).err().map(|e| {
                        format!(
                            "{domain}: cannot record revision {revision} of {url} \
                             (a publish --to it would be refused): {e}"
                        )
                    });
                    if let Some(message) = kept
                        .as_ref()
                        .filter(|&m| health.unrecorded.as_ref() != Some(m))
                    {
                        on_event(&SourceEvent::Problem {
                            domain: domain.clone(),
                            message: message.clone(),
                        });
                    }
                    health.unrecorded = kept;
                }
                match installed {
                    Ok(Installed::Unchanged { .. }) => {
                        health.refused = None;
                        continue;
                    }
                    Ok(Installed::Created { list }) => {
                        health.refused = None;
                        SourceEvent::Installed {
                            domain: domain.clone(),
                            source: url.clone(),
                            was: None,
                            list,
                        }
                    }
                    Ok(Installed::Replaced { was, list }) => {
                        health.refused = None;
                        SourceEvent::Installed {
                            domain: domain.clone(),
                            source: url.clone(),
                            was: Some(was),
                            list,
                        }
                    }
                    Err(refused) => {
                        let message = format!("{domain}: {url}: {refused}");
                        if health.refused.as_ref() == Some(&message) {
                            continue;
                        }
                        health.refused = Some(message.clone());
                        SourceEvent::Problem {
                            domain: domain.clone(),
                            message,
                        }
                    }
                }
            }
        };
        on_event(&event);
    }
    halt.store(true, Ordering::Relaxed);
}
