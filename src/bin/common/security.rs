//! The TLS and login options mclient and mcadmin share: `--tls`, `--tls-ca`, `--tls-cert`,
//! `--tls-key`, `--tls-insecure`, `--auth-file`.

use std::path::PathBuf;

use clap::Args;
use memcache::conn::{Credentials, Security, TlsOptions};

#[derive(Args, Clone, Debug, Default)]
pub struct SecurityArgs {
    /// Speak TLS to every server, not only to those written tls://HOST:PORT
    #[arg(long, global = true)]
    pub tls: bool,

    /// Trust the CA certificates in this PEM file instead of the system's
    #[arg(long = "tls-ca", value_name = "FILE", global = true)]
    pub tls_ca: Option<PathBuf>,

    /// Present this PEM certificate chain to servers that ask for one (mutual TLS)
    #[arg(long = "tls-cert", value_name = "FILE", global = true)]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert [default: in the --tls-cert file]
    #[arg(
        long = "tls-key",
        value_name = "FILE",
        requires = "tls_cert",
        global = true
    )]
    pub tls_key: Option<PathBuf>,

    /// Accept any server certificate for any name (tests and migrations only: anyone on the
    /// path can pose as the server); says so on standard error
    #[arg(long = "tls-insecure", global = true)]
    pub tls_insecure: bool,

    /// Log in to servers started with memcached -Y: user:password on the first line of FILE,
    /// which must be yours and unreadable by others
    #[arg(long = "auth-file", value_name = "FILE", global = true)]
    pub auth_file: Option<PathBuf>,
}

impl SecurityArgs {
    /// Whether any of these options was given.
    pub fn is_given(&self) -> bool {
        self.tls
            || self.tls_ca.is_some()
            || self.tls_cert.is_some()
            || self.tls_key.is_some()
            || self.tls_insecure
            || self.auth_file.is_some()
    }

    /// The settings these options ask for; the files are read now. `program` names the
    /// warning's origin.
    pub fn security(&self, program: &str) -> Result<Security, String> {
        let mut security = Security::default();
        let options = TlsOptions {
            ca_file: self.tls_ca.clone(),
            cert_file: self.tls_cert.clone(),
            key_file: self.tls_key.clone(),
            insecure: self.tls_insecure,
        };
        if options != TlsOptions::default() {
            security.set_tls(options).map_err(|e| e.to_string())?;
        }
        if self.tls_insecure {
            eprintln!(
                "{program}: warning: --tls-insecure: server certificates are not checked; \
                 anyone on the path can pose as the servers"
            );
        }
        security.set_all_tls(self.tls);
        if let Some(path) = &self.auth_file {
            security.set_auth(Some(Credentials::from_file(path)?));
        }
        Ok(security)
    }
}
