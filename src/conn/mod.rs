//! Sockets to memcached servers: resolution, timeouts, and a buffered stream that
//! the protocol reader walks over. No `unsafe`: socket2 and rustix do the system calls.
#![forbid(unsafe_code)]

mod auth;
mod resolve;
mod security;
mod stream;
mod tls;

pub use auth::Credentials;
pub use resolve::{resolve, Endpoint, ResolveError};
pub use security::Security;
pub use stream::{errno_of, later, wait_readable, Conn, Fail, Lent};
pub use tls::{TlsClient, TlsError, TlsOptions};

/// What a new connection does before its first command: a TLS handshake with the server named
/// `host` (checked against its certificate), then a login. Both within the connect's deadline.
#[derive(Clone, Copy, Default)]
pub struct Greeting<'a> {
    pub tls: Option<(&'a TlsClient, &'a str)>,
    pub auth: Option<&'a Credentials>,
}

impl Greeting<'_> {
    /// Runs the greeting on a new connection.
    pub fn run(&self, conn: &mut Conn) -> Result<(), Fail> {
        if let Some((client, host)) = self.tls {
            conn.start_tls(client, host)?;
        }
        if let Some(auth) = self.auth {
            auth.login(conn)?;
        }
        Ok(())
    }
}
