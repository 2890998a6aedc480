//! Issue 14: the crates only the programs need (the "tools" feature: clap, and the clients of
//! mcadmin's sources) never reach the shared library. The library is built with the default
//! features, so this looks at what it actually holds: no symbol of any of those crates, and no
//! shared library needed beyond the C runtime.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The shared library `make install` installs, before it is stripped: `make build` (which
/// `make test` runs through `make install`) leaves it in target/release. The suite's own build
/// (`cargo test --profile suite`) makes no shared library.
fn shipped_library() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/libmemcache.so")
}

/// The crates the "tools" feature turns on, from Cargo.toml: `tools = ["dep:clap", ...]`.
fn tool_crates() -> Vec<String> {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let line = manifest
        .lines()
        .find(|l| l.trim_start().starts_with("tools = ["))
        .expect("a tools feature in Cargo.toml");
    let crates: Vec<String> = line
        .split('"')
        .filter_map(|word| word.strip_prefix("dep:"))
        .map(|name| name.replace('-', "_"))
        .collect();
    assert!(crates.contains(&"clap".to_owned()), "{line}");
    crates
}

#[test]
fn the_shared_library_holds_no_tool_crate() {
    let lib = shipped_library();
    assert!(
        lib.exists(),
        "{} not built: run `make build`",
        lib.display()
    );
    let out = Command::new("nm")
        .args(["--demangle", "--defined-only"])
        .arg(&lib)
        .output()
        .expect("run nm");
    assert!(out.status.success(), "{out:?}");
    let symbols = String::from_utf8_lossy(&out.stdout);
    // The library's own symbols are there (it was not stripped), so an absence means something.
    assert!(
        symbols.contains("memcache::engine::"),
        "no symbols to look at"
    );
    for name in tool_crates() {
        let found: Vec<&str> = symbols
            .lines()
            .filter(|l| l.contains(&format!(" {name}::")) || l.contains(&format!("<{name}::")))
            .take(3)
            .collect();
        assert!(
            found.is_empty(),
            "{name} is linked into {}: {found:?}",
            lib.display()
        );
    }

    let out = Command::new("readelf")
        .arg("-d")
        .arg(&lib)
        .output()
        .expect("run readelf");
    let needed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_owned()))
        .collect();
    let allowed = [
        "libgcc_s.so.1",
        "libc.so.6",
        "ld-linux-x86-64.so.2",
        "libm.so.6",
    ];
    assert!(
        !needed.is_empty() && needed.iter().all(|n| allowed.contains(&n.as_str())),
        "the library needs {needed:?}"
    );
}
