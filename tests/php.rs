//! The PHP package (`bindings/php`, a Composer package over PHP's FFI extension) against real
//! memcached: `composer validate --strict` accepts its composer.json, `composer dump-autoload`
//! writes the PSR-4 autoloader (into a vendor directory of the test's own), and PHPUnit runs the
//! package's tests through it with the library installed by `make test` (`LIBMEMCACHE_PREFIX`),
//! two fresh servers, `mcadmin` in a shared-memory namespace and state directory of their own,
//! Debian's php-memcached extension to exchange values with, a memcached -Z and a memcached -Y
//! for the TLS and login options (support::secure_servers), and php-fpm for the preloaded
//! set-up a web server needs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::secure_servers::SecureServers;
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
    let secure = SecureServers::start("php-secure");
    let shm = ShmPrefix::new("php");
    let state = temp_dir("php-state");
    let mut env = vec![
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
    env.extend(secure.env());
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

/// C declarations without comments and preprocessor lines, split at the `;` that end them.
fn declarations(header: &str) -> Vec<String> {
    let mut text = String::new();
    let mut rest = header;
    while let Some(at) = rest.find("/*") {
        text.push_str(&rest[..at]);
        rest = rest[at..]
            .find("*/")
            .map_or("", |end| &rest[at + end + 2..]);
    }
    text.push_str(rest);
    // C++'s `extern "C" {` and its `}` stand between `#ifdef __cplusplus` and `#endif`; a
    // macro may go on over lines ending with a backslash.
    let (mut in_cplusplus, mut in_macro) = (false, false);
    let text: String = text
        .lines()
        .map(str::trim_start)
        .filter(|l| {
            if in_macro {
                in_macro = l.ends_with('\\');
                return false;
            }
            if l.starts_with("#ifdef __cplusplus") {
                in_cplusplus = true;
            } else if l.starts_with("#endif") {
                in_cplusplus = false;
            }
            if l.starts_with('#') {
                in_macro = l.ends_with('\\');
                return false;
            }
            !in_cplusplus && !l.starts_with("//")
        })
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = Vec::new();
    let (mut depth, mut current) = (0, String::new());
    for c in text.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ';' if depth == 0 => {
                out.push(current.split_whitespace().collect::<Vec<_>>().join(" "));
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out
}

/// A parameter, field or return type as the ABI sees it: every pointer is "*" (a `char *` and
/// a `void *` are passed alike), `const` and the name dropped, an array's length kept.
fn abi_type(declarator: &str) -> String {
    let d = declarator.replace("const ", "");
    if d.contains('*') {
        return "*".to_owned();
    }
    let (d, array) = match d.find('[') {
        Some(at) => (&d[..at], &d[at..]),
        None => (d.as_str(), ""),
    };
    let words: Vec<&str> = d.split_whitespace().collect();
    let kept = if words.len() > 1 && !matches!(words.as_slice(), ["struct", _]) {
        &words[..words.len() - 1]
    } else {
        &words[..]
    };
    format!("{}{array}", kept.join(" "))
}

/// name => (return type, parameter types) of every function declared in `header`.
fn functions(header: &str) -> std::collections::HashMap<String, (String, Vec<String>)> {
    declarations(header)
        .into_iter()
        .filter(|d| !d.starts_with("struct") || !d.contains('{'))
        .filter(|d| !d.starts_with("typedef"))
        .filter_map(|d| {
            let open = d.find('(')?;
            let head = d[..open].trim_end();
            let name_at = head.rfind(|c: char| !(c.is_alphanumeric() || c == '_'))? + 1;
            let name = head[name_at..].to_owned();
            let ret = abi_type(&format!("{} {name}", &head[..name_at]));
            let params = d[open + 1..d.rfind(')')?]
                .split(',')
                .map(|p| p.trim())
                .filter(|p| !p.is_empty() && *p != "void")
                .map(abi_type)
                .collect();
            Some((name, (ret, params)))
        })
        .collect()
}

/// The fields of `struct name { ... }` in `header`, as ABI types.
fn struct_fields(header: &str, name: &str) -> Option<Vec<String>> {
    let decl = declarations(header)
        .into_iter()
        .find(|d| d.starts_with(&format!("struct {name} {{")))?;
    let body = &decl[decl.find('{')? + 1..decl.rfind('}')?];
    Some(
        body.split(';')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(abi_type)
            .collect(),
    )
}

/// The PHP package's own copy of the declarations it calls (ffi/libmemcache.h, which PHP's FFI
/// parses) agrees with the generated include/memcache.h: every function it declares exists there
/// with the same return type and parameters, and struct memcache_bulk has the same fields. A
/// mismatch would not fail to compile anywhere: FFI would pass arguments the library reads
/// differently.
#[test]
fn php_ffi_header_matches_memcache_h() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ours = std::fs::read_to_string(package_dir().join("ffi/libmemcache.h")).unwrap();
    let theirs = std::fs::read_to_string(root.join("include/memcache.h")).unwrap();
    let declared = functions(&theirs);
    let used = functions(&ours);
    assert!(
        used.contains_key("mc_bulk") && used.contains_key("mc_set"),
        "no declarations parsed from ffi/libmemcache.h: {:?}",
        used.keys()
    );
    for (name, signature) in &used {
        // libc's, found through the library's own dependency on it.
        if name == "free" {
            continue;
        }
        let theirs = declared
            .get(name)
            .unwrap_or_else(|| panic!("ffi/libmemcache.h declares {name}, memcache.h does not"));
        assert_eq!(
            signature, theirs,
            "{name}: ffi/libmemcache.h (left) differs from include/memcache.h (right)"
        );
    }
    assert_eq!(
        struct_fields(&ours, "memcache_bulk"),
        struct_fields(&theirs, "memcache_bulk"),
        "struct memcache_bulk"
    );
    assert_eq!(
        struct_fields(&ours, "memcache_bulk").map(|f| f.len()),
        Some(7)
    );
}
