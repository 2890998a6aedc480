//! The TLS and login servers the bindings' own test runners talk to: a memcached -Z with a
//! certificate from a CA the test makes, a second CA that did not sign it (the "wrong CA"), a
//! memcached -Z that also asks for a client certificate from that CA (mutual TLS), the client
//! certificate, a memcached -Y with one user, and a credentials file for it that only its owner
//! can read. The
//! drivers (tests/ruby.rs, tests/php.rs, tests/postgresql.rs) hand them to the runners as the
//! environment variables of [`SecureServers::env`].

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::certs::{Ca, Issued};
use super::{temp_dir, Memcached, Secure};

/// The user memcached -Y knows, and its password.
pub const USER: &str = "app";
pub const PASSWORD: &str = "s3cret";

pub struct SecureServers {
    _dir: PathBuf,
    ca: PathBuf,
    wrong_ca: PathBuf,
    auth_file: PathBuf,
    client: Issued,
    pub tls: Memcached,
    pub mutual: Memcached,
    pub auth: Memcached,
}

fn text(p: &Path) -> String {
    p.to_str().expect("a UTF-8 path").to_owned()
}

impl SecureServers {
    pub fn start(label: &str) -> SecureServers {
        let dir = temp_dir(label);
        let ca = Ca::new(&dir, "testca");
        let wrong = Ca::new(&dir, "otherca");
        // The bindings connect to 127.0.0.1; the name is checked.
        let Issued { cert, key } = ca.issue("server", "DNS:localhost,IP:127.0.0.1", 2, false);
        let tls = Memcached::start_secure(Secure {
            tls: Some((cert.clone(), key.clone())),
            ..Secure::default()
        });
        let client = ca.issue("client", "DNS:client", 2, true);
        let mutual = Memcached::start_secure(Secure {
            tls: Some((cert, key)),
            extra: vec![
                "ssl_verify_mode=2".into(),
                format!("ssl_ca_cert={}", text(&ca.cert)),
            ],
            ..Secure::default()
        });
        let users = dir.join("users");
        std::fs::write(&users, format!("{USER}:{PASSWORD}\n")).unwrap();
        let auth = Memcached::start_secure(Secure {
            auth_file: Some(users),
            ..Secure::default()
        });
        // mc_auth_file() refuses a file that others can read.
        let auth_file = dir.join("credentials");
        std::fs::write(&auth_file, format!("{USER}:{PASSWORD}\n")).unwrap();
        std::fs::set_permissions(&auth_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        SecureServers {
            ca: ca.cert.clone(),
            wrong_ca: wrong.cert.clone(),
            auth_file,
            client,
            _dir: dir,
            tls,
            mutual,
            auth,
        }
    }

    /// MEMCACHE_TEST_TLS_SERVER (`tls://127.0.0.1:PORT`), MEMCACHE_TEST_TLS_CA,
    /// MEMCACHE_TEST_TLS_WRONG_CA, MEMCACHE_TEST_MTLS_SERVER (`tls://`, asks for a client
    /// certificate), MEMCACHE_TEST_TLS_CLIENT_CERT, MEMCACHE_TEST_TLS_CLIENT_KEY,
    /// MEMCACHE_TEST_AUTH_SERVER, MEMCACHE_TEST_AUTH_USER, MEMCACHE_TEST_AUTH_PASSWORD and
    /// MEMCACHE_TEST_AUTH_FILE.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "MEMCACHE_TEST_TLS_SERVER",
                format!("tls://{}", self.tls.addr()),
            ),
            ("MEMCACHE_TEST_TLS_CA", text(&self.ca)),
            ("MEMCACHE_TEST_TLS_WRONG_CA", text(&self.wrong_ca)),
            (
                "MEMCACHE_TEST_MTLS_SERVER",
                format!("tls://{}", self.mutual.addr()),
            ),
            ("MEMCACHE_TEST_TLS_CLIENT_CERT", text(&self.client.cert)),
            ("MEMCACHE_TEST_TLS_CLIENT_KEY", text(&self.client.key)),
            ("MEMCACHE_TEST_AUTH_SERVER", self.auth.addr()),
            ("MEMCACHE_TEST_AUTH_USER", USER.to_owned()),
            ("MEMCACHE_TEST_AUTH_PASSWORD", PASSWORD.to_owned()),
            ("MEMCACHE_TEST_AUTH_FILE", text(&self.auth_file)),
        ]
    }
}
