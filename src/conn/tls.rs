//! TLS settings and the client side of the handshake's configuration, through rustls with the
//! ring provider (no cmake or C toolchain beyond a C compiler, and a smaller library than
//! aws-lc-rs).
//!
//! One [`TlsClient`] belongs to one handle: every server of the handle starts its connections
//! from it, so they share its session cache and a reconnect after a failover resumes the session
//! instead of a full handshake. A child process after fork() takes [`TlsClient::after_fork`]: the
//! same settings with an empty cache, so no ticket the parent holds is ever presented twice.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use once_cell::sync::Lazy;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore};

/// Sessions remembered per handle: a handle rarely has more servers than this.
const SESSIONS: usize = 256;

/// What a user sets: where the trusted CAs are, the client certificate for mutual TLS, and
/// whether server certificates are checked at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of the CAs to trust; None: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to servers that ask for one.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file` (may be the same file).
    pub key_file: Option<PathBuf>,
    /// No check of the server's certificate or name: only for tests and migrations, and the
    /// caller reports it once.
    pub insecure: bool,
}

/// Why TLS settings cannot be used: the message names the file and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// The client configuration of one handle, cheap to clone (the clones share the session cache).
#[derive(Clone)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsClient")
    }
}

/// The system's trusted roots, read once per process (hundreds of files).
static SYSTEM_ROOTS: Lazy<Result<Arc<RootCertStore>, TlsError>> = Lazy::new(|| {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "none found".to_owned(), ToString::to_string);
        return Err(TlsError(format!(
            "no system CA certificates could be read ({why}): name a CA file"
        )));
    }
    Ok(Arc::new(roots))
});

/// ring's provider. rustls 0.23.48 deprecates it because ring has no post-quantum key exchange;
/// the servers we speak to (memcached on the distribution's OpenSSL 3.0) offer none either, and
/// aws-lc-rs would add its C build and size to every program that links the library.
///
/// Its key exchanges are offered X25519 first. rustls lists ring's P-384 first, and ring has no
/// assembly for P-384: it made every handshake, resumed or not, cost about 6 million
/// instructions of key exchange (`make bench`, reconnect). OpenSSL, memcached's TLS, itself
/// prefers X25519; P-256 and P-384 stay offered for servers that insist on a NIST curve.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    use rustls::crypto::ring::kx_group;
    let mut provider = rustls::crypto::ring::default_provider();
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    Arc::new(provider)
}

impl TlsClient {
    /// Reads the files `options` names and builds the configuration.
    pub fn new(options: &TlsOptions) -> Result<TlsClient, TlsError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS: {e}")))?;
        let builder = if options.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoCheck(provider)))
        } else {
            let roots = match &options.ca_file {
                Some(path) => Arc::new(read_roots(path)?),
                None => SYSTEM_ROOTS.clone()?,
            };
            builder.with_root_certificates(roots)
        };
        let mut config = match (&options.cert_file, &options.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), key) => {
                let chain = read_chain(cert)?;
                let key = read_key(key.as_deref().unwrap_or(cert))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| TlsError(format!("{}: {e}", cert.display())))?
            }
            (None, Some(key)) => {
                return Err(TlsError(format!(
                    "{}: a client key needs its certificate",
                    key.display()
                )))
            }
        };
        config.resumption = Resumption::in_memory_sessions(SESSIONS);
        Ok(TlsClient {
            config: Arc::new(config),
        })
    }

    /// The same settings with an empty session cache: for a child after fork(), which must not
    /// present the parent's tickets.
    pub fn after_fork(&self) -> TlsClient {
        self.with_resumption(Resumption::in_memory_sessions(SESSIONS))
    }

    /// The same settings without session resumption (every reconnect a full handshake):
    /// `mc_tls_resumption(mc, 0)`.
    pub fn without_resumption(&self) -> TlsClient {
        self.with_resumption(Resumption::disabled())
    }

    fn with_resumption(&self, resumption: Resumption) -> TlsClient {
        let mut config = (*self.config).clone();
        config.resumption = resumption;
        TlsClient {
            config: Arc::new(config),
        }
    }

    /// A new client connection to `host` (a DNS name or an IP literal, checked against the
    /// server's certificate).
    pub fn start(&self, host: &str) -> Result<ClientConnection, TlsError> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| TlsError(format!("{host:?} is not a host name TLS can check")))?;
        let mut conn = ClientConnection::new(self.config.clone(), name)
            .map_err(|e| TlsError(format!("TLS: {e}")))?;
        // A large value is encrypted as a whole and then sent: the writer never refuses bytes.
        conn.set_buffer_limit(None);
        Ok(conn)
    }
}

fn pem_error(path: &Path, what: &str, e: impl fmt::Display) -> TlsError {
    TlsError(format!("{}: cannot read {what}: {e}", path.display()))
}

fn read_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let certs = read_chain(path)?;
    let (_, bad) = roots.add_parsable_certificates(certs);
    if roots.is_empty() {
        return Err(TlsError(format!(
            "{}: none of its {bad} certificates is a usable CA",
            path.display()
        )));
    }
    Ok(roots)
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(path, "certificates", e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, "certificates", e))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "{}: no PEM certificate in it",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| pem_error(path, "a private key", e))
}

/// `--tls-insecure`: any certificate for any name, but the handshake's signatures are still
/// checked, so the session is at least with whoever holds the certificate's key.
#[derive(Debug)]
struct NoCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What a TLS failure means to the person reading the report: rustls's words, with the likely
/// cause where its words are about bytes.
pub fn explain(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!("TLS: {e} (does the server speak TLS on this port?)")
        }
        _ => format!("TLS: {e}"),
    }
}
