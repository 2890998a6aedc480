//! The man pages render without a single groff warning, and every function `memcache.h`
//! declares has a man3 page of its own or is named by one (`make install` gives each such name
//! a `.so` page), so the pages cannot fall behind the header unnoticed.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use support::man::{groff_warnings, header_functions, man3_pages, name_section};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn stem(page: &Path) -> String {
    page.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_page_renders_without_warnings() {
    let mut pages = vec!["man/mclient.1".to_string(), "man/mcadmin.8".to_string()];
    pages.extend(man3_pages().iter().map(|p| {
        p.strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }));
    let complaints: String = pages.iter().map(|p| groff_warnings(root(), p)).collect();
    println!("rendered {} pages", pages.len());
    assert!(complaints.is_empty(), "{complaints}");
}

#[test]
fn every_header_function_has_a_man3_page() {
    let functions = header_functions(&read(&root().join("include/memcache.h")));
    // Guard against a parser that silently finds nothing: 1.4 exports 152 functions.
    assert!(
        functions.len() >= 152,
        "only {} functions found in memcache.h",
        functions.len()
    );

    // name -> the pages whose NAME section lists it.
    let mut named_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for page in man3_pages() {
        let names = name_section(&read(&page));
        let own = stem(&page);
        if own != "memcache" && !names.contains(&own) {
            problems.push(format!("{own}.3 does not list its own name in NAME"));
        }
        for name in names {
            named_by.entry(name).or_default().push(own.clone());
        }
    }
    for (name, pages) in &named_by {
        if pages.len() > 1 {
            // Two pages would both claim the installed NAME.3 link.
            problems.push(format!("{name} is listed by several pages: {pages:?}"));
        }
        if name != "memcache" && !functions.contains(name) {
            problems.push(format!(
                "{name} (listed by {pages:?}) is not a function of memcache.h"
            ));
        }
    }
    let named: BTreeSet<&String> = named_by.keys().collect();
    for f in &functions {
        if !named.contains(f) {
            problems.push(format!(
                "{f} has no man3 page: add it to a page's NAME section"
            ));
        }
    }
    println!(
        "{} functions of memcache.h, named by {} man3 pages",
        functions.len(),
        man3_pages().len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn header_parser_sees_declarations_not_macros_or_comments() {
    let header = "\
/* mc_in_comment(void) */
#define MCM_ERR(_c) mcm_err(ctxt, \\
        mc_in_macro(x))
int mc_set(struct memcache *mc, // mc_in_line_comment(
           char *key);
void *mcm_aget(struct memcache_ctxt *ctxt);
/* ---- hand-written: declared by 1.4 but never implemented by it ---- */
void mc_server_reset_dns(struct memcache *mc);
";
    let found: Vec<String> = header_functions(header).into_iter().collect();
    assert_eq!(found, ["mc_set", "mcm_aget"]);
}
