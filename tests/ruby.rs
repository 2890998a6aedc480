//! The Ruby binding (`bindings/ruby`, over Debian's ruby-ffi) against real memcached: runs its
//! Minitest suite with the library installed by `make test` (`LIBMEMCACHE_PREFIX`), two fresh
//! servers and `mcadmin` in a shared-memory namespace of its own, which the suite's domain test
//! edits while a Ruby handle follows it.

mod support;

use std::path::Path;
use std::process::Command;

use support::{spawn_c_with, Memcached, ShmPrefix, RUN_TIMEOUT};

/// Panics with the packages to install unless `ruby` runs and loads ffi and minitest.
fn require_ruby() {
    let ok = Command::new("ruby")
        .args(["-e", "require 'ffi'; require 'minitest'"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "ruby with ffi and minitest is needed: run tools/install-deps \
         (Debian packages ruby ruby-ffi ruby-minitest)"
    );
}

#[test]
fn ruby_binding_minitest_suite() {
    support::prefix();
    require_ruby();
    let a = Memcached::start();
    let b = Memcached::start();
    let shm = ShmPrefix::new("ruby");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/ruby");
    let lib = dir.join("lib");
    let lib = lib.to_str().expect("UTF-8 path");
    let env = [
        ("MEMCACHE_TEST_SERVER_A", a.addr()),
        ("MEMCACHE_TEST_SERVER_B", b.addr()),
        ("MCADMIN", env!("CARGO_BIN_EXE_mcadmin").to_string()),
        ("MEMCACHE_SHM_PREFIX", shm.prefix.clone()),
        // A fixed seed keeps Minitest's test order the same from run to run.
        ("SEED", "1".to_string()),
    ];
    let suite = dir.join("test/test_memcache.rb");
    let out = spawn_c_with(&["ruby", "-w", "-I", lib], &suite, &env, RUN_TIMEOUT).wait();
    out.assert_success();
    let summary = out
        .stdout
        .lines()
        .find(|l| l.contains(" runs, ") && l.contains(" assertions, "))
        .unwrap_or_else(|| panic!("no Minitest summary in:\n{}", out.stdout));
    assert!(
        !summary.starts_with("0 runs") && summary.contains(" 0 failures, 0 errors"),
        "Minitest: {summary}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.stdout,
        out.stderr
    );
}
