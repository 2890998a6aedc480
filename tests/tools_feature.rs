//! The programs' crates stay out of the library: clap is compiled only with the `tools` feature
//! (on by default), and each program asks for it, so `cargo build --lib --no-default-features`
//! builds the library with nothing the programs alone need.

use std::path::Path;

/// The lines of the manifest's `[name]` table (or every `[[name]]` array entry, joined).
fn table(manifest: &str, header: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut inside = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == header;
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            lines.push(line.to_string());
        }
    }
    lines
}

fn manifest() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn clap_is_optional_and_only_the_tools_feature_enables_it() {
    let manifest = manifest();
    let deps = table(&manifest, "[dependencies]");
    let clap = deps
        .iter()
        .find(|l| l.starts_with("clap "))
        .expect("clap in [dependencies]");
    assert!(
        clap.contains("optional = true"),
        "clap not optional: {clap}"
    );

    let features = table(&manifest, "[features]");
    assert!(
        features.iter().any(|l| l == r#"default = ["tools"]"#),
        "tools is not a default feature: {features:?}"
    );
    let tools = features
        .iter()
        .find(|l| l.starts_with("tools "))
        .expect("a tools feature");
    assert!(
        tools.contains("\"dep:clap\""),
        "tools does not enable clap: {tools}"
    );
}

#[test]
fn every_program_requires_the_tools_feature() {
    let manifest = manifest();
    let bins = table(&manifest, "[[bin]]");
    for name in ["mcadmin", "mclient"] {
        assert!(
            bins.iter().any(|l| l == &format!("name = \"{name}\"")),
            "no [[bin]] entry for {name}: {bins:?}"
        );
    }
    let required = bins
        .iter()
        .filter(|l| l.as_str() == r#"required-features = ["tools"]"#)
        .count();
    let names = bins.iter().filter(|l| l.starts_with("name = ")).count();
    assert_eq!(
        required, names,
        "a program without required-features: {bins:?}"
    );
}
