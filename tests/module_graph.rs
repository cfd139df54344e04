//! House rules of the source tree, run by `cargo test`:
//! - the library's top-level modules form no cycle: each `crate::X` path in a module's files
//!   (tests excluded) is an edge, and following edges never leads back; readers of inputs
//!   (`sources`) never reach into the index they feed (a one-file stand-in for `cargo modules`);
//! - the state is the only door to its database: no SQL outside `src/state/` (issue 40);
//! - no file of `src/` grows past 650 lines: rooms by concern.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
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

fn src_files() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(&src).unwrap().to_string_lossy().to_string();
            (rel, std::fs::read_to_string(&f).unwrap())
        })
        .collect()
}

/// Does this line hold a statement against a database: a keyword that starts one, followed by
/// what that statement needs (`SELECT … FROM`, `INSERT INTO`, `UPDATE t SET`, `DELETE FROM`,
/// `CREATE TABLE/INDEX`, `ALTER TABLE`, `DROP TABLE`)?
fn sql_on(line: &str) -> bool {
    let words: Vec<&str> = line
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .collect();
    let has = |a: &str, b: &str, within: usize| {
        words
            .iter()
            .enumerate()
            .any(|(i, w)| *w == a && words[i + 1..].iter().take(within).any(|x| *x == b))
    };
    has("SELECT", "FROM", 12)
        || has("INSERT", "INTO", 1)
        || has("UPDATE", "SET", 2)
        || has("DELETE", "FROM", 1)
        || has("CREATE", "TABLE", 3)
        || has("CREATE", "INDEX", 3)
        || has("ALTER", "TABLE", 1)
        || has("DROP", "TABLE", 1)
}

#[test]
fn sql_lives_in_src_state_only() {
    // The provider's own account databases (`--sql`) are read by their source, not the state.
    const ACCOUNT_STORES: &str = "sources/accounts/sql/";
    let mut found = Vec::new();
    let mut seen_in_state = 0;
    for (rel, text) in src_files() {
        // Tests may hold SQL-looking input (a combolist's junk line); the code may not.
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (n, line) in code.lines().enumerate() {
            if !sql_on(line) {
                continue;
            }
            if rel.starts_with("state/") {
                seen_in_state += 1;
            } else if !rel.starts_with(ACCOUNT_STORES) && !line.trim_start().starts_with("//") {
                found.push(format!("src/{rel}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    // The detector finds the state's own statements, or it would find nothing anywhere.
    assert!(
        seen_in_state > 50,
        "only {seen_in_state} SQL lines in src/state/?"
    );
    assert!(
        found.is_empty(),
        "SQL outside src/state/ (make it a method of State, grouped by what it keeps):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_detector_knows_sql_from_prose() {
    assert!(sql_on(
        r#""SELECT count(*) FROM suspensions WHERE server = ?1""#
    ));
    assert!(sql_on("\"UPDATE notices SET status = ?1"));
    assert!(sql_on("DELETE FROM held WHERE"));
    assert!(!sql_on("/// Select the accounts from the file"));
    assert!(!sql_on("value_name = \"SELECT\","));
}

#[test]
fn no_file_in_src_is_over_650_lines() {
    let long: Vec<String> = src_files()
        .into_iter()
        .map(|(rel, text)| (rel, text.lines().count()))
        .filter(|(_, n)| *n > 650)
        .map(|(rel, n)| format!("src/{rel}: {n} lines"))
        .collect();
    assert!(
        long.is_empty(),
        "split by concern (a module per concern, at most 650 lines):\n{}",
        long.join("\n")
    );
}
