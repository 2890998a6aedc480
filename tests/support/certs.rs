//! Certificates a test makes with the `openssl` command: a CA of its own, and certificates it
//! issues (for chosen names, already expired, for clients), in PEM files in a test directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A throwaway CA in `dir`.
pub struct Ca {
    dir: PathBuf,
    pub cert: PathBuf,
    key: PathBuf,
}

/// One issued certificate and its key.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new P-256 key in `dir/name.key` and a request for `cn` in `dir/name.csr`.
fn key_and_request(dir: &Path, name: &str, cn: &str) {
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={cn}"),
        ],
        dir,
    );
}

impl Ca {
    /// A CA called `name`, valid for two days, in `dir`.
    pub fn new(dir: &Path, name: &str) -> Ca {
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
            ],
            dir,
        );
        Ca {
            dir: dir.to_path_buf(),
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        }
    }

    /// A certificate `name` for the subject alternative names `sans` (e.g.
    /// "DNS:localhost,IP:127.0.0.1"), valid for `days` from now (-1: expired yesterday), for a
    /// server or, with `client`, for a client.
    pub fn issue(&self, name: &str, sans: &str, days: i32, client: bool) -> Issued {
        let dir = &self.dir;
        key_and_request(dir, name, name);
        let usage = if client { "clientAuth" } else { "serverAuth" };
        let ext = format!("{name}.ext");
        std::fs::write(
            dir.join(&ext),
            format!("subjectAltName={sans}\nextendedKeyUsage={usage}\n"),
        )
        .unwrap();
        // Distinct serials for the certificates of one CA (names differ).
        let serial = name
            .bytes()
            .fold(1000u64, |n, b| {
                n.wrapping_mul(31).wrapping_add(u64::from(b)) % 1_000_000_007
            })
            .to_string();
        openssl(
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                self.cert.to_str().expect("a UTF-8 path"),
                "-CAkey",
                self.key.to_str().expect("a UTF-8 path"),
                "-set_serial",
                &serial,
                "-days",
                &days.to_string(),
                "-extfile",
                &ext,
                "-out",
                &format!("{name}.pem"),
            ],
            dir,
        );
        Issued {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        }
    }
}
