//! `make install` as a packager runs it (`DESTDIR=<tmp> PREFIX=/usr`) puts exactly the expected
//! files there, with their modes and links: the library, headers and `.pc`, `mclient` and
//! `mcadmin` (which run), their man pages, a man3 page or `.so` link for every function, the
//! systemd units with every `@...@` replaced, and the example configuration. `make uninstall`
//! with the same variables takes every file away again. The units pass `systemd-analyze verify`
//! where it is installed.
//!
//! Uses `make install-files`, the install without its cargo build: the artifacts in
//! target/release are those `make test` (its `make install`) or `make build` made, and a cargo
//! inside cargo test would wait for the build directory's lock.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use support::man::{groff_warnings, header_functions, man3_pages, name_section};
use support::temp_dir;

/// What one installed path is.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    File(u32),
    Link(String),
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn make(target: &str, vars: &[(&str, &Path)]) {
    let mut cmd = Command::new("make");
    cmd.arg("-s").arg(target).current_dir(root());
    for (name, value) in vars {
        cmd.arg(format!("{name}={}", value.display()));
    }
    let out = cmd.output().expect("run make");
    assert!(
        out.status.success(),
        "make {target} {vars:?} failed (run `make build` first if target/release is empty):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file and symbolic link under `dir`, by path relative to it.
fn tree(dir: &Path) -> BTreeMap<String, Entry> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Entry>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
            let path = entry.expect("directory entry").path();
            let meta = fs::symlink_metadata(&path).expect("lstat");
            let rel = path
                .strip_prefix(base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if meta.is_dir() {
                walk(base, &path, out);
            } else if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).expect("readlink");
                out.insert(rel, Entry::Link(target.to_string_lossy().into_owned()));
            } else {
                out.insert(rel, Entry::File(meta.permissions().mode() & 0o7777));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// The tree `make install PREFIX=/usr` must produce: path -> entry.
fn expected_tree() -> BTreeMap<String, Entry> {
    let mut want = BTreeMap::new();
    let mut file = |path: &str, mode: u32| {
        want.insert(path.to_string(), Entry::File(mode));
    };
    file("usr/bin/mclient", 0o755);
    file("usr/sbin/mcadmin", 0o755);
    file("usr/lib/libmemcache.so.0.4.0", 0o755);
    file("usr/lib/.debug/libmemcache.so.0.4.0.debug", 0o644);
    file("usr/lib/libmemcache.a", 0o644);
    file("usr/lib/pkgconfig/libmemcache.pc", 0o644);
    file("usr/include/memcache.h", 0o644);
    file("usr/include/memcache/buffer.h", 0o644);
    file("usr/include/memcache/_buffer.h", 0o644);
    file("usr/share/man/man1/mclient.1", 0o644);
    file("usr/share/man/man8/mcadmin.8", 0o644);
    file("usr/lib/systemd/system/memcache-restore.service", 0o644);
    file("usr/lib/systemd/system/memcache-watch@.service", 0o644);
    file("usr/share/doc/libmemcache/examples/watch.conf", 0o644);
    // One man3 file per page and per function: the page itself or its `.so` link.
    for page in man3_pages() {
        file(
            &format!(
                "usr/share/man/man3/{}",
                page.file_name().unwrap().to_string_lossy()
            ),
            0o644,
        );
    }
    for f in header_functions(&read(&root().join("include/memcache.h"))) {
        file(&format!("usr/share/man/man3/{f}.3"), 0o644);
    }
    want.insert(
        "usr/lib/libmemcache.so.0".into(),
        Entry::Link("libmemcache.so.0.4.0".into()),
    );
    want.insert(
        "usr/lib/libmemcache.so".into(),
        Entry::Link("libmemcache.so.0".into()),
    );
    want
}

/// A systemd unit as section -> (key, value) lines, in order; comments and blanks dropped.
fn unit_sections(text: &str) -> BTreeMap<String, Vec<(String, String)>> {
    let mut sections: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
            sections.entry(current.clone()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("unit line without `=`: {line}"));
        assert!(!current.is_empty(), "`{line}` before any [section]");
        sections
            .entry(current.clone())
            .or_default()
            .push((key.trim().to_string(), value.trim().to_string()));
    }
    sections
}

/// Checks that `unit` has `key=value` in `section`, reporting into `problems`.
fn expect_line(
    problems: &mut Vec<String>,
    unit: &str,
    sections: &BTreeMap<String, Vec<(String, String)>>,
    section: &str,
    key: &str,
    value: &str,
) {
    let found = sections
        .get(section)
        .is_some_and(|lines| lines.iter().any(|(k, v)| k == key && v == value));
    if !found {
        problems.push(format!("{unit}: no [{section}] {key}={value}"));
    }
}

/// Any `@WORD@` left over from the substitution.
fn placeholders(text: &str) -> Vec<String> {
    let mut left = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let after = &rest[at + 1..];
        let word: String = after
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || *c == '_')
            .collect();
        if !word.is_empty() && after[word.len()..].starts_with('@') {
            left.push(format!("@{word}@"));
        }
        rest = after;
    }
    left
}

#[test]
fn destdir_install_is_the_expected_tree_and_uninstall_removes_it() {
    let dest = temp_dir("install-tree");
    let vars = [("DESTDIR", dest.as_path()), ("PREFIX", Path::new("/usr"))];
    make("install-files", &vars);

    // The exact tree: every path, its kind and its mode.
    let got = tree(&dest);
    let want = expected_tree();
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let differing: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .map(|(k, v)| format!("{k}: want {v:?}, got {:?}", got[k]))
        .collect();
    println!("installed {} files and links", got.len());
    assert!(
        missing.is_empty() && extra.is_empty() && differing.is_empty(),
        "missing {missing:?}\nunexpected {extra:?}\ndiffering {differing:?}"
    );

    // The programs run from where they were installed.
    for program in ["usr/bin/mclient", "usr/sbin/mcadmin"] {
        let out = Command::new(dest.join(program))
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("run {program}: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Usage:"),
            "{program} --help: {}\n{text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Man pages: each link names a page that lists it, and every page renders from the
    // installed tree (where man resolves `.so man3/...`) without a warning.
    let man = dest.join("usr/share/man");
    let mut complaints = String::new();
    for (path, _) in got.iter().filter(|(p, _)| p.starts_with("usr/share/man/")) {
        let rel = path.strip_prefix("usr/share/man/").unwrap();
        let text = read(&dest.join(path));
        if let Some(target) = text.strip_prefix(".so ") {
            let target = target.trim_end();
            let name = Path::new(rel).file_stem().unwrap().to_string_lossy();
            let page = read(&man.join(target));
            if !name_section(&page).iter().any(|n| *n == name) {
                complaints.push_str(&format!(
                    "{rel} links to {target}, which does not name it\n"
                ));
            }
        }
        complaints.push_str(&groff_warnings(&man, rel));
    }
    assert!(complaints.is_empty(), "{complaints}");

    // Every @...@ was replaced, with the /usr layout's directories.
    for path in [
        "usr/lib/systemd/system/memcache-restore.service",
        "usr/lib/systemd/system/memcache-watch@.service",
        "usr/share/doc/libmemcache/examples/watch.conf",
        "usr/lib/pkgconfig/libmemcache.pc",
    ] {
        let left = placeholders(&read(&dest.join(path)));
        assert!(left.is_empty(), "{path} keeps {left:?}");
    }
    let pc = read(&dest.join("usr/lib/pkgconfig/libmemcache.pc"));
    assert!(pc.contains("prefix=/usr\n"), "{pc}");

    make("uninstall", &vars);
    let left = tree(&dest);
    assert!(
        left.is_empty(),
        "make uninstall left {:?}",
        left.keys().collect::<Vec<_>>()
    );
    for dir in [
        "usr/include/memcache",
        "usr/share/doc/libmemcache",
        "usr/lib/.debug",
    ] {
        assert!(
            !dest.join(dir).exists(),
            "make uninstall left the directory {dir}"
        );
    }
    let _ = fs::remove_dir_all(&dest);
}

#[test]
fn systemd_units_say_what_the_operator_relies_on() {
    let dest = temp_dir("install-units");
    make(
        "install-files",
        &[("DESTDIR", dest.as_path()), ("PREFIX", Path::new("/usr"))],
    );
    let units = dest.join("usr/lib/systemd/system");
    let mut problems = Vec::new();

    let name = "memcache-restore.service";
    let restore = unit_sections(&read(&units.join(name)));
    for (section, key, value) in [
        ("Service", "Type", "oneshot"),
        ("Service", "RemainAfterExit", "yes"),
        ("Service", "ExecStart", "/usr/sbin/mcadmin restore"),
        // Before every service with default dependencies, i.e. every possible client.
        ("Unit", "Before", "sysinit.target shutdown.target"),
        ("Unit", "DefaultDependencies", "no"),
        ("Install", "WantedBy", "multi-user.target"),
    ] {
        expect_line(&mut problems, name, &restore, section, key, value);
    }

    let name = "memcache-watch@.service";
    let watch = unit_sections(&read(&units.join(name)));
    for (section, key, value) in [
        (
            "Service",
            "ExecStart",
            "/usr/sbin/mcadmin --domain %i watch $MEMCACHE_WATCH_ARGS",
        ),
        ("Service", "EnvironmentFile", "-/etc/memcache/watch-%i.conf"),
        ("Service", "Restart", "on-failure"),
        ("Service", "KillSignal", "SIGTERM"),
        ("Unit", "After", "memcache-restore.service"),
        ("Install", "WantedBy", "multi-user.target"),
    ] {
        expect_line(&mut problems, name, &watch, section, key, value);
    }

    // Both may write the segments and the state directory, and nothing removes the segments.
    for (name, unit) in [
        ("memcache-restore.service", &restore),
        ("memcache-watch@.service", &watch),
    ] {
        for (key, value) in [
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ReadWritePaths", "/dev/shm"),
            ("StateDirectory", "memcache"),
            ("RemoveIPC", "no"),
        ] {
            expect_line(&mut problems, name, unit, "Service", key, value);
        }
        let service = &unit["Service"];
        for forbidden in ["DynamicUser", "PrivateDevices", "PrivateIPC", "User"] {
            if service
                .iter()
                .any(|(k, v)| k == forbidden && v != "no" && v != "root")
            {
                problems.push(format!(
                    "{name}: {forbidden}= would hide or remove the segments"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let _ = fs::remove_dir_all(&dest);
}

/// The example options file of the watch unit names every option of `mcadmin watch` but the
/// domain (the unit gives it) and --help, and every variable they read, so an operator finds in
/// it what the service can be told.
#[test]
fn the_watch_example_names_every_watch_option() {
    let help = Command::new(env!("CARGO_BIN_EXE_mcadmin"))
        .args(["watch", "--help"])
        .output()
        .expect("run mcadmin watch --help");
    assert!(
        help.status.success(),
        "mcadmin watch --help: {}",
        help.status
    );
    let help = String::from_utf8_lossy(&help.stdout);
    let example = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/watch.conf.in"));
    let mut options = Vec::new();
    for line in help.lines().map(str::trim_start) {
        let Some(option) = line.split_whitespace().find(|w| w.starts_with("--")) else {
            continue;
        };
        if !line.starts_with('-') || ["--domain", "--help"].contains(&option) {
            continue;
        }
        options.push(option.to_string());
        // clap shows a variable as "[env: NAME=]".
        if let Some((_, rest)) = line.split_once("[env: ") {
            let variable = rest.split('=').next().unwrap_or_default();
            options.push(variable.to_string());
        }
    }
    assert!(options.len() >= 3, "no options found in:\n{help}");
    let missing: Vec<&String> = options
        .iter()
        .filter(|o| !example.contains(o.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "systemd/watch.conf.in does not name {missing:?}"
    );
}

/// systemd's own check of the units, with the paths they name really there: an install under
/// a prefix in target/ (no DESTDIR), and MANPATH so that their Documentation= pages are found.
#[test]
fn systemd_analyze_verifies_the_units() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        println!("systemd-analyze is not installed: the structural checks above stand alone");
        return;
    };
    assert!(version.status.success(), "systemd-analyze --version failed");
    let prefix = temp_dir("install-verify").join("prefix");
    make("install-files", &[("PREFIX", prefix.as_path())]);
    let units = prefix.join("lib/systemd/system");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("memcache-restore.service"))
        // A template is verified through an instance of it.
        .arg(units.join("memcache-watch@demo.service"))
        .env("MANPATH", prefix.join("share/man"))
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .expect("run systemd-analyze verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {}\n{said}",
        out.status
    );
    let _ = fs::remove_dir_all(prefix.parent().unwrap());
}
