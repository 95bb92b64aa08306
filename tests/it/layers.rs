//! The module graph of `src/`, read from the source text: no module imports from a module that
//! imports it back (directly or around a longer cycle), and the top-level modules only depend in
//! the directions `docs/ARCHITECTURE.md` draws.
//!
//! A module is one file. Its references are the paths it names with `crate::`, `super::` and
//! `self::` (in `use` lines, braces expanded, and inline), plus, in a `mod.rs`, the names of its
//! own child modules; each resolves to the longest module file that exists. Test code counts
//! like any other: a lower layer's tests may not reach into a higher layer either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules and the top-level modules each may use (besides itself). The order is the
/// layering of docs/ARCHITECTURE.md, lowest first.
const ALLOWED: &[(&str, &[&str])] = &[
    ("clock", &[]),
    ("hash", &[]),
    ("durable", &[]),
    ("config", &[]),
    ("codec", &["config"]),
    ("dsp", &["codec"]),
    ("qa", &["hash"]),
    ("capture", &["config"]),
    ("encode", &["config", "codec", "dsp"]),
    (
        "store",
        &["clock", "hash", "durable", "config", "codec", "dsp", "qa"],
    ),
    (
        "evidence",
        &[
            "clock", "hash", "durable", "config", "codec", "dsp", "store",
        ],
    ),
    (
        "import",
        &["clock", "hash", "config", "codec", "dsp", "store"],
    ),
    (
        "record",
        &[
            "clock", "hash", "config", "codec", "dsp", "capture", "store",
        ],
    ),
    (
        "check",
        &["clock", "hash", "config", "dsp", "store", "evidence"],
    ),
    (
        "serve",
        &[
            "clock", "hash", "config", "codec", "dsp", "qa", "store", "evidence", "record", "hub",
            // The web erasure on a box runs the CLI's `archive::lock::erase`, which removes
            // the archived versions too (serve::erasure_pages).
            "archive",
        ],
    ),
    (
        "archive",
        &["clock", "hash", "config", "dsp", "store", "evidence"],
    ),
    (
        "hub",
        &["archive", "clock", "hash", "config", "store", "evidence"],
    ),
    ("demo", &["clock", "config", "qa", "store"]),
    (
        "daemon",
        &[
            "archive", "clock", "config", "evidence", "hub", "record", "serve", "store",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `crate::a::b` for a file under src/ (lib side only: main.rs and cli/ are the binary).
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap_or(file);
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn file_of(module: &[String]) -> Option<PathBuf> {
    if module.is_empty() {
        return None;
    }
    let base = module.iter().fold(src(), |p, m| p.join(m));
    let as_file = base.with_extension("rs");
    let as_dir = base.join("mod.rs");
    [as_file, as_dir].into_iter().find(|p| p.exists())
}

/// The longest prefix of `path` that is a module file.
fn resolve(path: &[String]) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| file_of(m).is_some())
}

/// The file's text; without its trailing `#[cfg(test)] mod tests` when `with_tests` is false.
/// The cycle check leaves test modules out (their `use super::*` names their own file, which
/// this reader would take for the parent); the layering check keeps them, and all test-only
/// files: a lower layer's tests may not reach into a higher layer either.
fn code(text: &str, with_tests: bool) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) if !with_tests => &text[..i],
        _ => text,
    }
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.to_owned()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| format!("{prefix}{p}"))
        .collect()
}

/// Every path the code names that starts with crate::, super:: or self::.
fn paths_in(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // `use` items, braces and all (they may span lines).
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = &rest[..i];
        let at_line_start = before
            .rsplit('\n')
            .next()
            .is_some_and(|l| l.trim().is_empty() || l.trim() == "pub" || l.trim() == "pub(crate)");
        let tail = &rest[i + 4..];
        let end = tail.find(';').unwrap_or(tail.len());
        if at_line_start {
            let tree: String = tail[..end].split_whitespace().collect();
            out.extend(expand(&tree));
        }
        rest = &tail[end.min(tail.len())..];
    }
    // Inline paths.
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            let prev = code[..at].chars().next_back();
            if !prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                let p: String = code[at..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                // `super::{a, b}` ends here at `::`: the `use` reader above expands it.
                if !p.ends_with("::") {
                    out.push(p);
                }
            }
            from = at + start.len();
        }
    }
    out
}

/// The modules one file depends on.
fn deps_of(file: &Path, with_tests: bool) -> BTreeSet<Vec<String>> {
    let me = module_of(file);
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let code = code(&text, with_tests);
    let is_mod_rs = file.file_name().is_some_and(|n| n == "mod.rs");
    let mut deps = BTreeSet::new();
    for p in paths_in(code) {
        let segs: Vec<String> = p
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let Some(first) = segs.first() else { continue };
        let abs: Vec<String> = match first.as_str() {
            "crate" => segs[1..].to_vec(),
            "self" => me
                .iter()
                .cloned()
                .chain(segs[1..].iter().cloned())
                .collect(),
            "super" => {
                let ups = segs.iter().take_while(|s| *s == "super").count();
                let keep = me.len().saturating_sub(ups);
                me[..keep]
                    .iter()
                    .cloned()
                    .chain(segs[ups..].iter().cloned())
                    .collect()
            }
            _ => continue,
        };
        if let Some(m) = resolve(&abs) {
            if m != me {
                deps.insert(m);
            }
        }
    }
    if is_mod_rs {
        // A mod.rs naming its own child (`routes::router`) uses that child.
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            if name == "mod" || name == "tests" {
                continue;
            }
            let used = code.match_indices(&format!("{name}::")).any(|(i, _)| {
                !code[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
            });
            let child: Vec<String> = me.iter().cloned().chain([name]).collect();
            if used && file_of(&child).is_some() {
                deps.insert(child);
            }
        }
    }
    deps
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn graph(with_tests: bool) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files
        .iter()
        .filter(|f| {
            let m = module_of(f);
            // The binary's files and the crate root are not library modules.
            !matches!(m.first().map(String::as_str), Some("main" | "cli" | "lib"))
        })
        .map(|f| (module_of(f), deps_of(f, with_tests)))
        .collect()
}

/// One cycle through `start`, if there is one (depth-first search).
fn cycle_from(
    g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    start: &Vec<String>,
) -> Option<Vec<String>> {
    fn walk(
        g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        start: &Vec<String>,
        at: &Vec<String>,
        path: &mut Vec<Vec<String>>,
        seen: &mut BTreeSet<Vec<String>>,
    ) -> bool {
        for next in g.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(g, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.clone()];
    let mut seen = BTreeSet::new();
    walk(g, start, start, &mut path, &mut seen).then(|| path.iter().map(|m| m.join("::")).collect())
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let g = graph(false);
    assert!(g.len() > 50, "read only {} modules under src/", g.len());
    let cycles: BTreeSet<String> = g
        .keys()
        .filter_map(|m| cycle_from(&g, m))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(
        cycles.is_empty(),
        "module cycles:\n{}",
        cycles.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn top_level_modules_depend_only_downward() {
    let g = graph(true);
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut wrong = Vec::new();
    for (m, deps) in &g {
        let top = m[0].as_str();
        let Some(ok) = allowed.get(top) else {
            wrong.push(format!(
                "{top}: not in the layer table (docs/ARCHITECTURE.md)"
            ));
            continue;
        };
        for d in deps {
            let dt = d[0].as_str();
            if dt != top && !ok.contains(&dt) {
                wrong.push(format!("{} uses {}", m.join("::"), d.join("::")));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "dependencies against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_checker_sees_a_known_dependency_and_expands_braces() {
    // If the reader broke, the two tests above would pass on an empty graph.
    assert_eq!(
        expand("super::{a,b::{c,d}}"),
        vec!["super::a", "super::b::c", "super::b::d"]
    );
    let g = graph(false);
    let daemon = g
        .get(&vec!["daemon".to_owned()])
        .cloned()
        .unwrap_or_default();
    assert!(daemon.contains(&vec!["record".to_owned()]), "{daemon:?}");
    assert!(daemon.contains(&vec!["serve".to_owned()]), "{daemon:?}");
    // A mod.rs naming its child (finalize_call writes the ledger) and a `use super::{..}` group.
    let m = |s: &str| s.split("::").map(str::to_owned).collect::<Vec<_>>();
    assert!(g[&m("store")].contains(&m("store::ledger")));
    assert!(g[&m("serve::routes")].contains(&m("serve::login")));
    assert!(g[&m("serve::guard")].contains(&m("serve::identity")));
}
