//! The PHP package (`bindings/php`, a Composer package over PHP's FFI extension) against real
//! memcached: `composer validate --strict` accepts its composer.json, `composer dump-autoload`
//! writes the PSR-4 autoloader (into a vendor directory of the test's own), and PHPUnit runs the
//! package's tests through it with the library installed by `make test` (`LIBMEMCACHE_PREFIX`),
//! two fresh servers, `mcadmin` in a shared-memory namespace and state directory of their own,
//! Debian's php-memcached extension to exchange values with, and php-fpm for the preloaded
//! set-up a web server needs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::{spawn_c_with, temp_dir, Memcached, ShmPrefix, RUN_TIMEOUT};

fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/php")
}

/// Panics with the packages to install unless `php` has FFI and memcached and composer,
/// phpunit, php-fpm and cgi-fcgi are there: a missing runtime fails the test, it never skips.
fn require_php() {
    let ok = |cmd: &mut Command| cmd.output().map(|o| o.status.success()).unwrap_or(false);
    assert!(
        ok(Command::new("php").args([
            "-r",
            "exit(extension_loaded('FFI') && extension_loaded('memcached') ? 0 : 1);"
        ])),
        "php with the FFI and memcached extensions is needed: run tools/install-deps \
         (Debian packages php-cli php-memcached)"
    );
    for (found, package) in [
        ("command -v composer", "composer"),
        ("command -v phpunit", "phpunit"),
        ("command -v cgi-fcgi", "libfcgi-bin"),
        ("ls /usr/sbin/php-fpm*", "php-fpm"),
    ] {
        assert!(
            ok(Command::new("sh").args(["-c", found])),
            "`{found}` found nothing: run tools/install-deps (Debian package {package})"
        );
    }
}

fn text(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_string()
}

/// Composer with a home of its own (no user configuration, no cache writes elsewhere).
fn composer(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new("composer")
        .args(args)
        .arg("--no-interaction")
        .arg("-d")
        .arg(package_dir())
        .env("COMPOSER_HOME", home)
        .env("COMPOSER_ALLOW_SUPERUSER", "1")
        .env("COMPOSER_VENDOR_DIR", home.join("vendor"))
        .output()
        .expect("run composer")
}

#[test]
fn php_package_phpunit_suite() {
    let prefix = support::prefix();
    require_php();
    let home = temp_dir("php-composer");

    let validate = composer(&home, &["validate", "--strict"]);
    assert!(
        validate.status.success(),
        "composer validate --strict: {}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
    let dump = composer(&home, &["dump-autoload"]);
    assert!(
        dump.status.success(),
        "composer dump-autoload: {}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let psr4 = std::fs::read_to_string(home.join("vendor/composer/autoload_psr4.php"))
        .expect("composer wrote the PSR-4 map");
    assert!(psr4.contains("'Libmemcache\\\\'"), "{psr4}");

    let a = Memcached::start();
    let b = Memcached::start();
    let shm = ShmPrefix::new("php");
    let state = temp_dir("php-state");
    let env = [
        ("LIBMEMCACHE_PREFIX", text(&prefix)),
        ("COMPOSER_VENDOR_DIR", text(&home.join("vendor"))),
        ("MEMCACHE_TEST_SERVER_A", a.addr()),
        ("MEMCACHE_TEST_SERVER_B", b.addr()),
        ("MCADMIN", env!("CARGO_BIN_EXE_mcadmin").to_string()),
        ("MEMCACHE_SHM_PREFIX", shm.prefix.clone()),
        ("MEMCACHE_STATE_DIR", text(&state)),
        // What the no-argument constructor follows until a server is added: an empty domain
        // of the test's namespace, whatever the caller's environment names.
        ("MEMCACHE_DOMAIN", "phptest".to_string()),
    ];
    let dir = package_dir();
    let out = spawn_c_with(
        &["phpunit", "--configuration"],
        &dir.join("phpunit.xml.dist"),
        &env,
        RUN_TIMEOUT,
    )
    .wait();
    out.assert_success();
    // "OK (N tests, M assertions)" only when nothing failed, was skipped or was risky.
    let summary = out
        .stdout
        .lines()
        .find(|l| l.starts_with("OK (") && l.contains(" tests, "))
        .unwrap_or_else(|| {
            panic!(
                "no clean PHPUnit summary in:\n{}\n--- stderr ---\n{}",
                out.stdout, out.stderr
            )
        });
    assert!(!summary.starts_with("OK (0 tests"), "PHPUnit: {summary}");
}
