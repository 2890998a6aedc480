//! The install rules every source obeys, in one place: a list is installed only when it differs
//! from the installed one, as a new local version (kept durably when the namespace has a state
//! directory); an empty list is refused unless the operator allowed it; a list that fails the
//! segment's checks, or a file naming another domain, is refused with the reason.
#![forbid(unsafe_code)]

use std::fmt;

use super::Offer;
use crate::domain_file::{self, DomainFile, ImportError, Imported};
use crate::hash::Distribution;
use crate::registry::{DomainList, DomainName, Namespace, RegistryError};

/// What the operator allows beyond the defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rules {
    /// Install a list with no server (every program then has no server to use).
    pub allow_empty: bool,
}

/// What an offered list came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Installed {
    /// The domain had no segment: created with the list.
    Created { list: DomainList },
    /// The list differed: installed as `list.version`, over version `was`.
    Replaced { was: u64, list: DomainList },
    /// The domain already has this list: nothing written.
    Unchanged { version: u64 },
}

/// Why an offered list was not installed; the installed list stays.
#[derive(Debug)]
pub enum Refused {
    /// No server, and empty lists are not allowed.
    Empty,
    /// The list or the file fails a check (named in the message).
    Invalid(String),
    /// The segment could not be read or written, or the durable copy not kept.
    Registry(RegistryError),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Empty => {
                f.write_str("the source holds an empty list; refused (--allow-empty installs it)")
            }
            Refused::Invalid(why) => write!(f, "the source's list is refused: {why}"),
            Refused::Registry(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Refused {}

/// Offers `offer` to the domain `name` of `ns` under `rules`. Servers alone (from DNS) keep the
/// domain's distribution and copies (the defaults for a new domain).
pub fn install(
    ns: &Namespace,
    name: &DomainName,
    offer: &Offer,
    rules: Rules,
) -> Result<Installed, Refused> {
    if offer.servers().is_empty() && !rules.allow_empty {
        return Err(Refused::Empty);
    }
    let file = match offer {
        Offer::File(file) => file.clone(),
        Offer::Servers(servers) => {
            let local = ns
                .open_reader(name)
                .and_then(|r| r.map(|r| r.read()).transpose())
                .map_err(Refused::Registry)?;
            let (distribution, replicas) =
                local.as_ref().map_or((Distribution::KetamaMd5, 1), |l| {
                    (l.distribution, l.replicas)
                });
            DomainFile {
                domain: None,
                version: None,
                distribution,
                replicas,
                servers: servers.clone(),
            }
        }
    };
    // The segment's checks first, so that a bad list is refused with its reason whether or not
    // the domain exists yet.
    file.list(2).validate().map_err(|e| match e {
        RegistryError::BadEntry(why) => Refused::Invalid(why),
        other => Refused::Invalid(other.to_string()),
    })?;
    match domain_file::import(ns, name, &file) {
        Ok(Imported::Unchanged { version }) => Ok(Installed::Unchanged { version }),
        Ok(Imported::Created { version }) => Ok(Installed::Created {
            list: file.list(version),
        }),
        Ok(Imported::Replaced { was, version }) => Ok(Installed::Replaced {
            was,
            list: file.list(version),
        }),
        Err(ImportError::File(e)) => Err(Refused::Invalid(e.to_string())),
        Err(ImportError::Registry(RegistryError::BadEntry(why))) => Err(Refused::Invalid(why)),
        Err(ImportError::Registry(RegistryError::TooManyServers)) => {
            Err(Refused::Invalid(RegistryError::TooManyServers.to_string()))
        }
        Err(ImportError::Registry(e)) => Err(Refused::Registry(e)),
    }
}
