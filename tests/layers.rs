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
