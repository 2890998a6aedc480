//! The Ruby binding (`bindings/ruby`, the `libmemcache` gem over Debian's ruby-ffi) against real
//! memcached: runs its Minitest suite with `rake test`, the library found through
//! `LIBMEMCACHE_PREFIX` as `make test` installed it, two fresh servers and `mcadmin` in a
//! shared-memory namespace of its own, which the suite's domain test edits while a Ruby handle
//! follows it; a memcached -Z and a memcached -Y for the TLS and login options
//! (support::secure_servers). Also builds the gem with `gem build`.

mod support;

use std::path::Path;
use std::process::Command;

use support::secure_servers::SecureServers;
use support::{spawn_c_with, temp_dir, Memcached, ShmPrefix, RUN_TIMEOUT};

fn binding_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("bindings/ruby")
}

/// Panics with the packages to install unless `ruby` runs and loads ffi, minitest and rake.
fn require_ruby() {
    let ok = Command::new("ruby")
        .args(["-e", "require 'ffi'; require 'minitest'; require 'rake'"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "ruby with ffi, minitest and rake is needed: run tools/install-deps \
         (Debian packages ruby ruby-ffi ruby-minitest rake)"
    );
}

#[test]
fn ruby_binding_minitest_suite() {
    let prefix = support::prefix();
    require_ruby();
    let a = Memcached::start();
    let b = Memcached::start();
    let secure = SecureServers::start("ruby-secure");
    let shm = ShmPrefix::new("ruby");
    let dir = binding_dir();
    let dir = dir.to_str().expect("UTF-8 path");
    let mut env = vec![
        // The gem finds the library through this variable (LD_LIBRARY_PATH is set as well).
        (
            "LIBMEMCACHE_PREFIX",
            prefix.to_str().expect("UTF-8 path").to_string(),
        ),
        ("MEMCACHE_TEST_SERVER_A", a.addr()),
        ("MEMCACHE_TEST_SERVER_B", b.addr()),
        ("MCADMIN", env!("CARGO_BIN_EXE_mcadmin").to_string()),
        // Writes and reads values with exact flags, as dalli lays them out.
        ("MCLIENT", env!("CARGO_BIN_EXE_mclient").to_string()),
        ("MEMCACHE_SHM_PREFIX", shm.prefix.clone()),
        // A fixed seed keeps Minitest's test order the same from run to run.
        ("SEED", "1".to_string()),
    ];
    env.extend(secure.env());
    // Rake's TestTask runs every test/test_*.rb in one Minitest process, with warnings on.
    let out = spawn_c_with(&["rake", "-C", dir], Path::new("test"), &env, RUN_TIMEOUT).wait();
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

/// `gem build` accepts the gemspec and produces libmemcache-<the library's version>.gem holding
/// the binding's files and its dependency on ffi.
#[test]
fn ruby_gem_builds() {
    require_ruby();
    let tmp = temp_dir("ruby-gem");
    let version = env!("CARGO_PKG_VERSION");
    let gem = tmp.join(format!("libmemcache-{version}.gem"));
    let dir = binding_dir();
    let out = Command::new("gem")
        .arg("build")
        .arg("-C")
        .arg(&dir)
        .arg("libmemcache.gemspec")
        .arg("--output")
        .arg(&gem)
        .output()
        .expect("run gem build");
    assert!(
        out.status.success(),
        "gem build failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(gem.is_file(), "no {}", gem.display());
    // The built gem's own specification, as `gem install` would read it.
    let spec = Command::new("ruby")
        .arg("-e")
        .arg(
            "require 'rubygems/package'; s = Gem::Package.new(ARGV[0]).spec; \
             puts s.name, s.version, s.files.sort.join(','), \
             s.runtime_dependencies.map(&:name).join(',')",
        )
        .arg(&gem)
        .output()
        .expect("run ruby");
    assert!(
        spec.status.success(),
        "{}",
        String::from_utf8_lossy(&spec.stderr)
    );
    let spec = String::from_utf8(spec.stdout).expect("UTF-8");
    let lines: Vec<&str> = spec.lines().collect();
    assert_eq!(lines.first(), Some(&"libmemcache"), "{spec}");
    assert_eq!(
        lines.get(1),
        Some(&version),
        "gem version is the library's: {spec}"
    );
    let files = lines.get(2).copied().unwrap_or("");
    for f in [
        "lib/memcache.rb",
        "lib/memcache/version.rb",
        "lib/memcache/library_path.rb",
    ] {
        assert!(
            files.split(',').any(|x| x == f),
            "{f} missing from the gem: {files}"
        );
    }
    assert_eq!(lines.get(3), Some(&"ffi"), "{spec}");
}
