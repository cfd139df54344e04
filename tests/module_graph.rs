//! The library's top-level modules form no cycle: each `crate::X` path in a module's files (tests
//! excluded) is an edge, and following edges never leads back. Readers of inputs (`sources`) never
//! reach into the index they feed. A one-file stand-in for `cargo modules`, run by `cargo test`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Module -> the other top-level modules it names.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().to_string();
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if ["main", "lib", "cli"].contains(&top.as_str()) {
            continue; // the binary and the crate root name everything
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (i, _) in code.match_indices("crate::") {
            let name: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty()
                && name != top
                && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            {
                edges.entry(top.clone()).or_default().insert(name);
            }
        }
    }
    edges
}

#[test]
fn top_level_modules_have_no_cycle() {
    let edges = edges();
    assert!(
        edges.contains_key("check") && edges.contains_key("index"),
        "{edges:?}"
    );
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(n) {
            return;
        }
        if let Some(i) = path.iter().position(|p| p == n) {
            panic!("module cycle: {} -> {n}", path[i..].join(" -> "));
        }
        path.push(n.to_string());
        for m in edges.get(n).into_iter().flatten() {
            visit(m, edges, path, done);
        }
        path.pop();
        done.insert(n.to_string());
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        visit(n, &edges, &mut Vec::new(), &mut done);
    }
}

#[test]
fn readers_of_inputs_do_not_reach_into_the_index() {
    let edges = edges();
    for leaf in ["sources", "bytes", "hashes", "email", "scheme", "input"] {
        let names = edges.get(leaf).cloned().unwrap_or_default();
        assert!(
            !names.contains("index"),
            "{leaf} names crate::index: {names:?}"
        );
        assert!(
            !names.contains("check"),
            "{leaf} names crate::check: {names:?}"
        );
    }
}
