//! A handle's settings for new connections beyond the socket: TLS (which servers, which CAs,
//! which client certificate) and the login. The C handle and the Rust client each keep one and
//! ask it for the [`Greeting`] of each connect.

use super::{Credentials, Greeting, TlsClient, TlsError, TlsOptions};

/// See the module's comment. Clones share the TLS session cache.
#[derive(Clone, Default)]
pub struct Security {
    options: TlsOptions,
    /// Every server over TLS, not only those written `tls://`.
    all_tls: bool,
    /// Built from `options` when they are set, or at the first TLS connect; its session cache
    /// is shared by every server of the handle.
    client: Option<TlsClient>,
    auth: Option<Credentials>,
    /// Session resumption turned off: every connect a full handshake, no ticket kept.
    no_resumption: bool,
}

impl Security {
    /// Uses `options` from the next connect on. The files are read now: settings that cannot
    /// be used are refused and the previous ones stay.
    pub fn set_tls(&mut self, options: TlsOptions) -> Result<(), TlsError> {
        let client = self.with_cache(TlsClient::new(&options)?);
        self.options = options;
        self.client = Some(client);
        Ok(())
    }

    /// Session resumption for later connects (`on`, the default), or a full handshake every
    /// time with no session ticket kept: for sites whose policy wants each connect fully
    /// authenticated, and for measuring what resumption saves.
    pub fn set_resumption(&mut self, on: bool) {
        self.no_resumption = !on;
        if let Some(client) = self.client.take() {
            self.client = Some(self.with_cache(client.after_fork()));
        }
    }

    /// `client` with the session cache this handle wants: none when resumption is off.
    fn with_cache(&self, client: TlsClient) -> TlsClient {
        if self.no_resumption {
            client.without_resumption()
        } else {
            client
        }
    }

    pub fn tls_options(&self) -> &TlsOptions {
        &self.options
    }

    /// TLS for every server of the handle (`on`), or only for those written `tls://`.
    pub fn set_all_tls(&mut self, on: bool) {
        self.all_tls = on;
    }

    pub fn set_auth(&mut self, auth: Option<Credentials>) {
        self.auth = auth;
    }

    /// Whether a connection to a server written with `tls` (its `tls://`) speaks TLS.
    pub fn uses_tls(&self, tls: bool) -> bool {
        tls || self.all_tls
    }

    /// What a new connection to `host` does first. Err when TLS is wanted and the default
    /// settings cannot be built (no CA could be read).
    pub fn greeting<'a>(&'a mut self, tls: bool, host: &'a str) -> Result<Greeting<'a>, TlsError> {
        let tls = if self.uses_tls(tls) {
            if self.client.is_none() {
                self.client = Some(self.with_cache(TlsClient::new(&self.options)?));
            }
            let client = self.client.as_ref().expect("just built");
            Some((client, host))
        } else {
            None
        };
        Ok(Greeting {
            tls,
            auth: self.auth.as_ref(),
        })
    }

    /// In a child after fork(): the same settings, none of the parent's TLS sessions.
    pub fn after_fork(&mut self) {
        if let Some(client) = self.client.take() {
            self.client = Some(self.with_cache(client.after_fork()));
        }
    }
}
