//! include/memcache.h is generated from src/ffi by cbindgen between two hand-written macro
//! sections; this test regenerates it and fails when the checked-in copy is stale.
//! Regenerate with: UPDATE_HEADER=1 cargo test --test header

use std::path::Path;

/// Declarations that are not part of libmemcache 1.4: moved to a marked section at the end.
const BEYOND_14: &[&str] = &[
    "mc_append",
    "mcm_append",
    "mc_prepend",
    "mcm_prepend",
    "mc_cas",
    "mcm_cas",
    "mc_touch",
    "mcm_touch",
    "mc_incr64",
    "mcm_incr64",
    "mc_decr64",
    "mcm_decr64",
    "mc_agets",
    "mcm_agets",
    "mc_distribution",
    "mc_distribution_get",
    "mc_server_add_weighted",
    "mcm_server_add_weighted",
    "mc_last_error",
    "mc_retry_interval",
    "mc_server_version",
    "mcm_server_version",
    "mc_replicas",
    "mc_new2",
    "mcm_new2",
    "mc_new_private",
    "mcm_new_private",
    "mc_strerror",
    "mc_domain_version",
    "mc_tls_ca",
    "mc_tls_cert",
    "mc_tls_insecure",
    "mc_tls",
    "mc_auth",
    "mc_auth_file",
    "MC_EXISTS",
    "MC_NOT_FOUND",
    "MC_DIST_CRC32_MODULO",
    "MC_DIST_KETAMA_MD5",
    "memcache_bulk",
    "mc_bulk",
    "mcm_bulk",
    "MC_BULK_SET",
    "MC_BULK_ADD",
    "MC_BULK_REPLACE",
    "MC_BULK_APPEND",
    "MC_BULK_PREPEND",
    "MC_BULK_DELETE",
    "MC_BULK_TOUCH",
    "MC_BULK_DONE",
    "MC_BULK_NOT_STORED",
    "MC_BULK_REFUSED",
    "MC_BULK_NOT_FOUND",
    "MC_BULK_FAILED",
    "MC_BULK_BAD_KEY",
];

fn declares(item: &str, name: &str) -> bool {
    item.lines()
        .filter(|l| !l.trim_start().starts_with(['*', '/']))
        .any(|l| {
            l.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| w == name)
                && (l.contains(&format!("{name}("))
                    || l.starts_with(&format!("#define {name} "))
                    || l.starts_with(&format!("struct {name} {{")))
        })
}

/// cbindgen exports every public constant of the crate; the header keeps only the C API's
/// (the registry's layout constants, for one, are not part of it).
fn is_api(item: &str) -> bool {
    // A generated constant is a doc comment and exactly one `#define`; anything else (the
    // hand-written sections' guarded blocks, declarations) is kept as it is.
    let mut directives = item.lines().filter(|l| l.starts_with('#'));
    let (Some(define), None) = (directives.next(), directives.next()) else {
        return true;
    };
    let Some(name) = define
        .strip_prefix("#define ")
        .and_then(|rest| rest.split_whitespace().next())
    else {
        return true;
    };
    name == "MEMCACHE_H"
        || ["MCM_", "MC_", "MEMCACHE_"]
            .iter()
            .any(|p| name.starts_with(p))
        || ["MAX_KEY_LEN", "ERR_FLAG", "WARN_FLAG", "NO_ERRNO_FLAG"].contains(&name)
}

/// Splits cbindgen's output into items: a blank line ends an item only after a line that ends a
/// declaration (`;`, `}`) or a preprocessor line, never inside a doc comment.
fn items(body: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut pos, mut last) = (0usize, 0usize, "");
    for line in body.split_inclusive('\n') {
        let t = line.trim();
        if t.is_empty() && (last.ends_with(';') || last.ends_with('}') || last.starts_with('#')) {
            out.push(&body[start..pos]);
            start = pos + line.len();
        } else if !t.is_empty() {
            last = t;
        }
        pos += line.len();
    }
    out.push(&body[start..]);
    out.into_iter().filter(|i| !i.trim().is_empty()).collect()
}

fn generate(root: &Path) -> String {
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let read = |f: &str| std::fs::read_to_string(root.join("cbindgen").join(f)).expect(f);
    config.after_includes = Some(read("prologue.h"));
    let bindings = cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen");
    let mut out = Vec::new();
    bindings.write(&mut out);
    let text = String::from_utf8(out).expect("utf-8");

    // Split off the trailing include guard, move beyond-1.4 items to their own section.
    let end = text.rfind("#endif").expect("include guard");
    let (body, guard_end) = text.split_at(end);
    let mut kept = Vec::new();
    let mut modern = Vec::new();
    for item in items(body).into_iter().filter(|i| is_api(i)) {
        if BEYOND_14.iter().any(|n| declares(item, n)) {
            modern.push(item);
        } else {
            kept.push(item);
        }
    }
    let mut header = kept.join("\n");
    let cpp = |open: bool| {
        if open {
            "#ifdef __cplusplus\nextern \"C\" {\n#endif\n"
        } else {
            "#ifdef __cplusplus\n}  // extern \"C\"\n#endif\n"
        }
    };
    header.push_str("\n/* ==== Beyond libmemcache 1.4: calls and constants the 2006 library never had. ==== */\n\n");
    let (consts, fns): (Vec<&str>, Vec<&str>) =
        modern.into_iter().partition(|i| i.contains("#define"));
    header.push_str(&consts.join("\n"));
    header.push_str("\n\n");
    header.push_str(cpp(true));
    header.push('\n');
    header.push_str(&fns.join("\n"));
    header.push_str("\n\n");
    header.push_str(cpp(false));
    header.push('\n');
    header.push_str(&read("epilogue.h"));
    header.push('\n');
    header.push_str(guard_end);
    header
}

#[test]
fn checked_in_header_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fresh = generate(root);
    let path = root.join("include/memcache.h");
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&path, &fresh).expect("write header");
    }
    for internal in [
        "#define MAGIC",
        "#define MAX_SERVERS",
        "#define SEGMENT_SIZE",
    ] {
        assert!(
            !fresh.contains(internal),
            "{internal}: a registry internal leaked into memcache.h"
        );
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == fresh,
        "include/memcache.h is stale: run `UPDATE_HEADER=1 cargo test --test header`"
    );
}
