//! The files of src/ffi/ form layers: each uses (`super::name`) only files below it, so the graph
//! has no cycle and each file can be read knowing only the ones under it. This test keeps it so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module of src/ffi/ and the sibling modules it names as `super::name`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi");
    let mut modules = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            modules.insert(name, std::fs::read_to_string(&path).unwrap());
        }
    }
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .filter(|(name, _)| name.as_str() != "mod")
        .map(|(name, text)| {
            let mut uses = BTreeSet::new();
            for (at, _) in text.match_indices("super::") {
                let used: String = text[at + "super::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                // `super::x` inside a file's own `mod tests` names an item of that file.
                if used != *name && names.contains(&used) {
                    uses.insert(used);
                }
            }
            (name.clone(), uses)
        })
        .collect()
}

/// The modules in layers, lowest first, or the modules left in (or above) a cycle.
fn layers(graph: &BTreeMap<String, BTreeSet<String>>) -> Result<Vec<Vec<String>>, Vec<String>> {
    let mut placed = BTreeSet::new();
    let mut layers = Vec::new();
    while placed.len() < graph.len() {
        let layer: Vec<String> = graph
            .iter()
            .filter(|(name, uses)| !placed.contains(*name) && uses.is_subset(&placed))
            .map(|(name, _)| name.clone())
            .collect();
        if layer.is_empty() {
            return Err(graph
                .keys()
                .filter(|name| !placed.contains(*name))
                .cloned()
                .collect());
        }
        placed.extend(layer.iter().cloned());
        layers.push(layer);
    }
    Ok(layers)
}

#[test]
fn ffi_modules_form_layers_without_a_cycle() {
    let graph = graph();
    assert!(graph.len() > 10, "src/ffi/ was not read: {graph:?}");
    match layers(&graph) {
        Ok(layers) => {
            for (i, layer) in layers.iter().enumerate() {
                println!("layer {i}: {}", layer.join(" "));
            }
        }
        Err(stuck) => {
            let detail: Vec<String> = stuck
                .iter()
                .map(|m| format!("{m} -> {:?}", graph[m]))
                .collect();
            panic!(
                "src/ffi/ has an import cycle among (or above) these modules:\n{}",
                detail.join("\n")
            );
        }
    }
}

#[test]
fn a_cycle_is_found() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    graph.insert("c".to_string(), BTreeSet::new());
    assert_eq!(layers(&graph), Err(vec!["a".to_string(), "b".to_string()]));
}
