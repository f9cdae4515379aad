//! The crate's floors (README, "Layout"): a module uses only modules on its own floor or
//! below, and no two modules use each other. Read from the sources, so an import that runs up
//! a floor or closes a cycle fails here, not in a review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every top-level module of the library, with its floor (higher uses lower).
const FLOORS: &[(&str, u8)] = &[
    ("cli", 4),
    ("pipeline", 3),
    ("check", 3),
    ("source", 2),
    ("sink", 2),
    ("metrics", 2),
    ("report", 2),
    ("progress", 2),
    ("records", 1),
    ("config", 1),
    ("range", 1),
    ("error", 1),
    ("http", 1),
];

fn floor(module: &str) -> Option<u8> {
    FLOORS.iter().find(|(m, _)| *m == module).map(|(_, f)| *f)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The modules each top-level module names as `crate::<module>`, with where.
fn uses() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut uses: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str();
        let module = first.to_string_lossy().trim_end_matches(".rs").to_string();
        if floor(&module).is_none() {
            continue; // main.rs, lib.rs: above every floor
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for (i, _) in line.match_indices("crate::") {
                let before = &line[..i];
                if before.ends_with(char::is_alphanumeric) || before.ends_with('_') {
                    continue; // e.g. `pulsar2mysql_crate::`
                }
                let name: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name != module && floor(&name).is_some() {
                    uses.entry(module.clone())
                        .or_default()
                        .entry(name)
                        .or_insert_with(|| format!("{}:{}", rel.display(), n + 1));
                }
            }
        }
    }
    uses
}

#[test]
fn every_module_is_on_a_floor() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    for line in lib.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_suffix(';') else {
            continue;
        };
        let Some(name) = rest
            .strip_prefix("pub mod ")
            .or_else(|| rest.strip_prefix("pub(crate) mod "))
        else {
            continue;
        };
        assert!(
            floor(name).is_some(),
            "src/lib.rs declares module `{name}`: give it a floor in tests/layers.rs and the README"
        );
    }
}

/// The sink's files in their order (README, "Layout"): each uses only files before it.
const SINK_ORDER: &[&str] = &[
    "sql",
    "target",
    "migrations",
    "job_lock",
    "schema",
    "tsv",
    "key_order",
    "checkpoint",
    "dead_letter",
    "fence",
    "write_error",
    "skipped",
    "batch",
    "batch_builder",
    "load_data",
    "connect",
    "commit",
];

/// Inside folder `src/<dir>`: which of its modules (a file `x.rs` or a folder `x/`) names
/// which sibling, as `super::<sibling>` or `crate::<dir>::<sibling>`, with where.
fn sibling_uses(dir: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let root = src.join(dir);
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let siblings: BTreeSet<String> = files
        .iter()
        .map(|f| module_in(&root, f))
        .filter(|m| m != "mod")
        .collect();
    let mut uses: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in &files {
        let module = module_in(&root, file);
        let rel = file.strip_prefix(&src).unwrap();
        // A file inside a module's folder (`x/tests.rs`) reaches its siblings' siblings as
        // `super::super::`; a file `x.rs` reaches them as `super::`.
        let nested = file.parent() != Some(root.as_path());
        let prefixes = if nested {
            vec!["super::super::".to_string(), format!("crate::{dir}::")]
        } else {
            vec!["super::".to_string(), format!("crate::{dir}::")]
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for prefix in &prefixes {
                for (i, _) in line.match_indices(prefix.as_str()) {
                    let before = &line[..i];
                    if before.ends_with(char::is_alphanumeric)
                        || before.ends_with('_')
                        || before.ends_with("::")
                    {
                        continue;
                    }
                    let name: String = line[i + prefix.len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if name != module && siblings.contains(&name) {
                        uses.entry(module.clone())
                            .or_default()
                            .entry(name)
                            .or_insert_with(|| format!("{}:{}", rel.display(), n + 1));
                    }
                }
            }
        }
    }
    uses
}

/// The module of folder `root` that `file` belongs to: `x` for `x.rs` and `x/...`.
fn module_in(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap();
    let first = rel.components().next().unwrap().as_os_str();
    first.to_string_lossy().trim_end_matches(".rs").to_string()
}

/// A cycle of the graph, if it has one, as its modules in order (the first again at the end).
fn find_cycle(uses: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        uses: &BTreeMap<String, BTreeMap<String, String>>,
        done: &mut BTreeSet<String>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in uses.get(node).into_iter().flat_map(|u| u.keys()) {
            if let Some(cycle) = visit(next, uses, done, path) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    uses.keys()
        .find_map(|node| visit(node, uses, &mut done, &mut Vec::new()))
}

/// The cycle found, with where each of its steps is written.
fn show_cycle(uses: &BTreeMap<String, BTreeMap<String, String>>, cycle: &[String]) -> String {
    cycle
        .windows(2)
        .map(|w| format!("{} uses {} ({})", w[0], w[1], uses[&w[0]][&w[1]]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_cycle_search_finds_a_long_cycle() {
    let edge = |from: &str, to: &str| {
        (
            from.to_string(),
            [(to.to_string(), "x:1".to_string())].into(),
        )
    };
    let graph: BTreeMap<String, BTreeMap<String, String>> = [
        edge("a", "b"),
        edge("b", "c"),
        edge("c", "d"),
        edge("d", "b"),
    ]
    .into();
    assert_eq!(find_cycle(&graph).unwrap(), ["b", "c", "d", "b"]);
    let line: BTreeMap<String, BTreeMap<String, String>> = [edge("a", "b"), edge("b", "c")].into();
    assert_eq!(find_cycle(&line), None);
}

#[test]
fn no_folder_of_src_has_an_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut cycles = Vec::new();
    let top = uses();
    if let Some(cycle) = find_cycle(&top) {
        cycles.push(format!("src/: {}", show_cycle(&top, &cycle)));
    }
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            dirs.push(path.file_name().unwrap().to_string_lossy().to_string());
        }
    }
    for dir in dirs {
        let uses = sibling_uses(&dir);
        if let Some(cycle) = find_cycle(&uses) {
            cycles.push(format!("src/{dir}/: {}", show_cycle(&uses, &cycle)));
        }
    }
    assert!(cycles.is_empty(), "{}", cycles.join("\n\n"));
}

#[test]
fn each_sink_file_uses_only_files_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sink");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = BTreeSet::new();
    for file in &files {
        let module = module_in(&src, file);
        if module != "mod" && !SINK_ORDER.contains(&module.as_str()) {
            wrong.insert(format!(
                "src/sink/{module}: not in the sink's order (tests/layers.rs and README)"
            ));
        }
    }
    let at = |m: &str| SINK_ORDER.iter().position(|o| *o == m);
    for (module, used) in sibling_uses("sink") {
        for (other, place) in used {
            if at(&other) >= at(&module) {
                wrong.insert(format!(
                    "{place}: sink's `{module}` uses `{other}`, which comes after it"
                ));
            }
        }
    }
    let declared: Vec<String> = std::fs::read_to_string(src.join("mod.rs"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_suffix(';')?
                .rsplit_once("mod ")
                .map(|(_, m)| m.to_string())
        })
        .collect();
    assert_eq!(
        declared, SINK_ORDER,
        "src/sink/mod.rs declares its modules in the sink's order"
    );
    assert!(
        wrong.is_empty(),
        "{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn no_module_uses_one_above_it_or_one_that_uses_it() {
    let uses = uses();
    let mut wrong = BTreeSet::new();
    for (module, used) in &uses {
        for (other, place) in used {
            if floor(other) > floor(module) {
                wrong.insert(format!(
                    "{place}: `{module}` (floor {}) uses `{other}` (floor {}), a floor above",
                    floor(module).unwrap(),
                    floor(other).unwrap()
                ));
            }
            if let Some(back) = uses.get(other).and_then(|u| u.get(module)) {
                wrong.insert(format!(
                    "{place}: `{module}` uses `{other}`, and {back}: `{other}` uses `{module}`"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    );
}
