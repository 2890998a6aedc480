//! What the man page tests share: the functions `memcache.h` declares, the names a man page's
//! NAME section lists, and rendering a page with groff so that any warning fails the test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The comment that opens the header's last section: 1.4 declared these functions but never
/// implemented or exported them, so no page can promise them (memcache(3) says so in prose).
const NOT_PROVIDED: &str = "declared by 1.4 but never implemented";

/// The man3 pages of the source tree (`man/man3/*.3` under the crate), sorted.
pub fn man3_pages() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/man3");
    let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "3"))
        .collect();
    pages.sort();
    pages
}

/// Every function `memcache.h` declares and the library exports: the identifiers starting with
/// `mc_`, `mcm_`, `mcMem` or `mcErr` that stand before a `(` outside comments and preprocessor
/// lines.
pub fn header_functions(header: &str) -> BTreeSet<String> {
    let end = header
        .find(NOT_PROVIDED)
        .expect("memcache.h has its section of functions 1.4 never implemented");
    let code = strip_comments(&header[..end]);
    let mut names = BTreeSet::new();
    let mut continued = false;
    for line in code.lines() {
        // A macro body (and its continuation lines) may call functions; it declares none.
        let directive = continued || line.trim_start().starts_with('#');
        continued = directive && line.trim_end().ends_with('\\');
        if directive {
            continue;
        }
        let bytes = line.as_bytes();
        for (at, _) in line.match_indices('(') {
            let start = bytes[..at]
                .iter()
                .rposition(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
                .map_or(0, |p| p + 1);
            let name = &line[start..at];
            if ["mc_", "mcm_", "mcMem", "mcErr"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                names.insert(name.to_string());
            }
        }
    }
    names
}

/// `text` without its `/* ... */` and `// ...` comments (line breaks kept).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let block = rest.find("/*");
        let line = rest.find("//");
        match (block, line) {
            (Some(b), l) if l.is_none_or(|l| b < l) => {
                out.push_str(&rest[..b]);
                let close = rest[b..].find("*/").map_or(rest.len(), |c| b + c + 2);
                out.extend(rest[b..close].chars().filter(|&c| c == '\n'));
                rest = &rest[close..];
            }
            (_, Some(l)) => {
                out.push_str(&rest[..l]);
                rest = &rest[rest[l..].find('\n').map_or(rest.len(), |n| l + n)..];
            }
            _ => {
                out.push_str(rest);
                rest = "";
            }
        }
    }
    out
}

/// The names a page's NAME section lists (the line after `.SH NAME`, up to ` \-`), in order.
pub fn name_section(page: &str) -> Vec<String> {
    let mut lines = page.lines().skip_while(|l| *l != ".SH NAME");
    let line = lines
        .nth(1)
        .unwrap_or_else(|| panic!("no `.SH NAME` line followed by the names"));
    let (names, _) = line
        .split_once(" \\-")
        .unwrap_or_else(|| panic!("NAME line without ` \\-`: {line}"));
    names
        .split(',')
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

/// Renders `page` (relative to `dir`, where `.so` requests are resolved) with groff's man
/// macros and every warning on, for the PostScript and the terminal devices; returns what groff
/// said about it, empty when the page is clean.
pub fn groff_warnings(dir: &Path, page: &str) -> String {
    let mut said = String::new();
    for device in ["ps", "utf8"] {
        let out = Command::new("groff")
            .args(["-man", "-ww", "-z", "-T", device, page])
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("run groff ({e}): install groff-base (tools/install-deps does)")
            });
        if !out.status.success() || !out.stderr.is_empty() {
            said.push_str(&format!(
                "groff -T{device} {page}: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    said
}
