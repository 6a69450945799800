//! The layer table of `docs/ARCHITECTURE.md` holds: every `crate::` path outside tests points
//! down the table, every top-level module is in the table and in the codemap, and `ml/` has no
//! import cycle between its files. An ordinary test over the source text (rust-analyzer's
//! `tidy` tests are the model), so a wrong import fails `cargo test`, not a review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The top-level modules `src/lib.rs` declares.
fn modules() -> Vec<String> {
    read(&root().join("src/lib.rs"))
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|m| m.trim_end_matches(';').to_string())
        .collect()
}

/// The layer table: module → row, top (0) to bottom.
fn layers() -> BTreeMap<String, usize> {
    let doc = read(&root().join("docs/ARCHITECTURE.md"));
    let start = doc
        .find("<!-- layers -->")
        .expect("docs/ARCHITECTURE.md has no `<!-- layers -->` table");
    let mut rows: BTreeMap<String, usize> = BTreeMap::new();
    for line in doc[start..]
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with('|'))
    {
        let Some(cell) = line.split('|').nth(2) else {
            continue;
        };
        let names: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        if names.is_empty() {
            continue; // the header or the separator
        }
        let row: usize = rows.values().max().map_or(0, |r: &usize| r + 1);
        for name in names {
            rows.insert(name.to_string(), row);
        }
    }
    rows
}

/// The source of a file as compiled outside tests: comment lines dropped, and everything from
/// the first `#[cfg(test)]` on (tests sit at the end of a file, and may import anything).
fn code(path: &Path) -> String {
    let text = read(path);
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first segment of every `prefix` path in `code`: `crate::a::b` gives `a`,
/// `crate::{a::b, c}` gives `a` and `c`.
fn targets(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => {
                        items.push(std::mem::take(&mut item));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                    _ if depth == 1 => item.push(c),
                    _ => {}
                }
            }
            for it in items {
                let name: String = it
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(path) else {
        return files;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            files.extend(rust_files(&p));
        } else if p.extension().is_some_and(|e| e == "rs") {
            files.push(p);
        }
    }
    files.sort();
    files
}

/// The files of top-level module `m`: `src/m.rs` or `src/m/`.
fn files_of(m: &str) -> Vec<PathBuf> {
    let file = root().join(format!("src/{m}.rs"));
    if file.exists() {
        vec![file]
    } else {
        rust_files(&root().join(format!("src/{m}")))
    }
}

#[test]
fn imports_point_down_the_layer_table() {
    let modules = modules();
    let layers = layers();
    let mut wrong = Vec::new();
    for m in &modules {
        let Some(&row) = layers.get(m) else {
            wrong.push(format!(
                "module `{m}` is not in the layer table of docs/ARCHITECTURE.md; add it in the row where it belongs"
            ));
            continue;
        };
        for file in files_of(m) {
            for target in targets(&code(&file), "crate::") {
                if target == *m || !modules.contains(&target) {
                    continue; // within the module, or a macro like `crate::say!`
                }
                match layers.get(&target) {
                    Some(&t) if t > row => {}
                    _ => wrong.push(format!(
                        "{}: `{m}` imports `{target}`, which is not below it in the layer table; move the code to the layer it belongs to",
                        file.strip_prefix(root()).unwrap_or(&file).display()
                    )),
                }
            }
        }
    }
    for name in layers.keys() {
        if !modules.contains(name) {
            wrong.push(format!(
                "the layer table names `{name}`, which src/lib.rs does not declare"
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}\n", wrong.join("\n"));
}

#[test]
fn every_module_is_in_the_codemap() {
    let doc = read(&root().join("docs/ARCHITECTURE.md"));
    let codemap = doc
        .split("## Codemap")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/ARCHITECTURE.md has a `## Codemap` section");
    let missing: Vec<String> = modules()
        .into_iter()
        .filter(|m| {
            !codemap.contains(&format!("`src/{m}.rs`")) && !codemap.contains(&format!("`src/{m}/"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "modules missing from the codemap of docs/ARCHITECTURE.md: {missing:?}"
    );
}

#[test]
fn ml_files_import_each_other_without_a_cycle() {
    let dir = root().join("src/ml");
    let names: BTreeSet<String> = rust_files(&dir)
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|n| n != "mod")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in &names {
        let source = code(&dir.join(format!("{name}.rs")));
        let mut to = targets(&source, "crate::ml::");
        to.extend(targets(&source, "super::"));
        to.retain(|t| names.contains(t) && t != name);
        edges.insert(name.clone(), to);
    }
    // Depth-first search for a back edge, reporting the cycle as a chain.
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut chain = path[i..].to_vec();
            chain.push(n.to_string());
            return Some(chain.join(" -> "));
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for t in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(t, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        let cycle = visit(n, &edges, &mut Vec::new(), &mut done);
        assert!(cycle.is_none(), "import cycle in src/ml: {cycle:?}");
    }
}

#[test]
fn the_path_reader_sees_groups_and_plain_paths() {
    let code = "use crate::{a::B, c, d::{e, f}};\nlet x = crate::g::h();\nmycrate::z();";
    let got: Vec<String> = targets(code, "crate::").into_iter().collect();
    assert_eq!(got, ["a", "c", "d", "g"]);
}

/// Every library error type says what kind of failure it is (not found, conflict, invalid,
/// unavailable, internal), so the API can map it to a status without reading messages; and no
/// two error types share a name across modules.
#[test]
fn every_library_error_has_a_kind_and_a_name_of_its_own() {
    let mut errors: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut kinds = BTreeSet::new();
    let all = rust_files(&root().join("src"));
    for file in &all {
        let text = code(file);
        let mut derives_error = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("#[derive(") && line.contains("thiserror::Error") {
                derives_error = true;
                continue;
            }
            if derives_error && !line.starts_with("#[") {
                let name = line
                    .trim_start_matches("pub ")
                    .trim_start_matches("enum ")
                    .trim_start_matches("struct ")
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .next()
                    .unwrap_or_default()
                    .to_string();
                if let Some(other) = errors.insert(name.clone(), file.clone()) {
                    panic!(
                        "error type `{name}` is defined in {} and {}; give one a name of its own",
                        other.display(),
                        file.display()
                    );
                }
                derives_error = false;
            }
            if let Some(rest) = line.strip_prefix("impl ")
                && let Some((_, ty)) = rest.split_once("Kind for ")
            {
                kinds.insert(ty.trim_end_matches(" {").trim().to_string());
            }
        }
    }
    assert!(errors.contains_key("StoreError"), "{errors:?}");
    let missing: Vec<_> = errors
        .iter()
        .filter(|(name, _)| !kinds.contains(*name))
        .map(|(name, file)| format!("{name} ({})", file.display()))
        .collect();
    assert!(
        missing.is_empty(),
        "these errors have no `impl Kind`: {}",
        missing.join(", ")
    );
}
