//! The PHP binding (`bindings/php`, over PHP's FFI extension) against real memcached: runs its
//! test script with the library installed by `make test` (`LIBMEMCACHE_PREFIX`), two fresh
//! servers and `mcadmin` in a shared-memory namespace of its own, which the script's domain test
//! edits while a PHP object follows it.

mod support;

use std::path::Path;
use std::process::Command;

use support::{spawn_c_with, Memcached, ShmPrefix, RUN_TIMEOUT};

/// Panics with the package to install unless `php` runs with the FFI extension.
fn require_php() {
    let ok = Command::new("php")
        .args([
            "-d",
            "ffi.enable=1",
            "-r",
            "exit(extension_loaded('FFI') ? 0 : 1);",
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "php with the FFI extension is needed: run tools/install-deps (Debian package php-cli)"
    );
}

#[test]
fn php_binding_test_script() {
    support::prefix();
    require_php();
    let a = Memcached::start();
    let b = Memcached::start();
    let shm = ShmPrefix::new("php");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/php/tests/run.php");
    let env = [
        ("MEMCACHE_TEST_SERVER_A", a.addr()),
        ("MEMCACHE_TEST_SERVER_B", b.addr()),
        ("MCADMIN", env!("CARGO_BIN_EXE_mcadmin").to_string()),
        ("MEMCACHE_SHM_PREFIX", shm.prefix.clone()),
    ];
    let out = spawn_c_with(&["php", "-d", "ffi.enable=1"], &script, &env, RUN_TIMEOUT).wait();
    out.assert_success();
    let summary = out
        .stdout
        .lines()
        .rev()
        .find(|l| l.ends_with(" failed") && l.contains(" passed, "))
        .unwrap_or_else(|| panic!("no \"N passed, N failed\" line in:\n{}", out.stdout));
    assert!(
        !summary.starts_with("0 passed") && summary.ends_with(" 0 failed"),
        "run.php: {summary}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.stdout,
        out.stderr
    );
}
