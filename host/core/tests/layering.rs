//! The domain crate's layering, checked on its sources (issue 16):
//!
//! - its manifest names no HTTP server, middleware or OpenAPI crate, and
//!   none is in its dependency tree (`cargo tree -e normal`), so the
//!   domain cannot come to depend on the API or an HTTP stack again;
//! - its modules' `crate::` references form no cycle: a lower layer
//!   (error, time, validate, wake, config; breaker, events, auth; alerts,
//!   registry; kv; heal, gates, processes; scheduler; gateway; read
//!   models; services) never uses a higher one;
//! - no source file of the host crates is over 1,000 lines and no
//!   function over 120, tests left out, so that each stays readable.
#![expect(
    clippy::unwrap_used,
    reason = "a test helper that cannot read the sources fails the test loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Crates the domain must not depend on directly.
const FORBIDDEN: &[&str] = &[
    "axum",
    "tower",
    "tower-http",
    "hyper",
    "hyper-util",
    "http-body",
    "utoipa",
    "utoipa-axum",
];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_domain_crate_names_no_http_server_or_openapi_crate() {
    let text = std::fs::read_to_string(manifest_dir().join("Cargo.toml")).unwrap();
    let manifest: toml::Table = text.parse().unwrap();
    let mut named = Vec::new();
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(deps) = manifest.get(section).and_then(|d| d.as_table()) {
            named.extend(deps.keys().cloned());
        }
    }
    assert!(!named.is_empty(), "no dependencies read from Cargo.toml");
    let bad: Vec<&String> = named
        .iter()
        .filter(|n| FORBIDDEN.contains(&n.as_str()))
        .collect();
    assert!(
        bad.is_empty(),
        "warden-core depends on {bad:?}; HTTP server and OpenAPI code belongs in warden-api"
    );
}

/// Crates the domain must not pull in at all, through any dependency:
/// the HTTP stack (outbound HTTP goes through `outbound::Connector`,
/// which the `warden` binary backs with reqwest) and the server and
/// OpenAPI crates.
const FORBIDDEN_ANYWHERE: &[&str] = &[
    "axum",
    "tower",
    "tower-http",
    "hyper",
    "hyper-util",
    "reqwest",
    "utoipa",
];

/// What `cargo tree -p warden-core -e normal` names (the issue's own
/// check): every crate the domain is built with, one per line.
#[test]
fn no_http_stack_is_in_the_domain_crates_dependency_tree() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let out = std::process::Command::new(cargo)
        .args([
            "tree",
            "-p",
            "warden-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(manifest_dir())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(
        names.contains("tokio") && names.contains("warden-store"),
        "cargo tree printed no dependencies: {text}"
    );
    let bad: Vec<&&str> = FORBIDDEN_ANYWHERE
        .iter()
        .filter(|n| names.contains(**n))
        .collect();
    assert!(
        bad.is_empty(),
        "warden-core's dependency tree holds {bad:?}; run `cargo tree -p warden-core -e normal -i <crate>` to see which dependency brings it"
    );
}

/// The top-level module a source file belongs to (`gateway/mod.rs` and
/// `gateway/budget.rs` are both `gateway`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str();
    let first = first.to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `crate::x` references of a file's code, tests and comments left out.
fn references(text: &str) -> BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or("");
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
        // `use crate::{a, b::C}`
        if let Some(at) = line.find("use crate::{") {
            for part in line[at + "use crate::{".len()..].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
    }
    out
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.graph.contains_key(w) {
                continue;
            }
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn no_module_joins_an_import_cycle() {
    let src = manifest_dir().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let refs = graph.entry(module.clone()).or_default();
        refs.extend(references(&text).into_iter().filter(|r| *r != module));
    }
    assert!(graph.len() > 10, "read only {} modules", graph.len());
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "modules in an import cycle: {found:?}; a lower layer must not use a higher one"
    );
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let text = "use crate::{b, time};\nfn f() { crate::c::g(); } // crate::d\n";
    graph.insert("a".into(), references(text));
    graph.insert("b".into(), BTreeSet::from(["c".to_string()]));
    graph.insert("c".into(), BTreeSet::from(["a".to_string()]));
    graph.insert("d".into(), BTreeSet::from(["a".to_string()]));
    let found = cycles(&graph);
    assert_eq!(
        found,
        vec![BTreeSet::from(["a".into(), "b".into(), "c".into()])]
    );
}

/// The longest a source file of host/ may be, tests left out.
const MAX_FILE_LINES: usize = 1_000;
/// The longest a function of host/ may be, tests left out.
const MAX_FN_LINES: usize = 120;

/// The lines of `text` before its first `#[cfg(test)]`: the code a
/// size check counts.
fn code_lines(text: &str) -> Vec<&str> {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .collect()
}

/// The functions of `text` longer than `max` lines, as `(name, lines)`,
/// tests left out ([`code_lines`]). Braces are counted per line, which
/// the sources' formatting (rustfmt) makes reliable enough for a size
/// check.
fn long_functions(text: &str, max: usize) -> Vec<(String, usize)> {
    let lines = code_lines(text);
    let mut long = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let code = lines[i].split("//").next().unwrap_or("").trim_start();
        let head = [
            "pub ",
            "pub(crate) ",
            "pub(super) ",
            "async ",
            "const ",
            "unsafe ",
        ]
        .iter()
        .fold(code, |c, p| c.strip_prefix(p).unwrap_or(c));
        let Some(rest) = head.strip_prefix("fn ") else {
            i += 1;
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut opened, mut j) = (0i64, false, i);
        while j < lines.len() {
            let l = lines[j].split("//").next().unwrap_or("");
            if !opened && l.trim_end().ends_with(';') {
                break;
            }
            depth += l.matches('{').count() as i64 - l.matches('}').count() as i64;
            opened |= l.contains('{');
            if opened && depth <= 0 {
                break;
            }
            j += 1;
        }
        if opened && j - i + 1 > max {
            long.push((name, j - i + 1));
        }
        i = if opened { j + 1 } else { i + 1 };
    }
    long
}

#[test]
fn no_host_file_or_function_is_too_long() {
    let host = manifest_dir().parent().unwrap();
    let mut files = Vec::new();
    for krate in ["runtime", "store", "core", "api", "server"] {
        rust_files(&host.join(krate).join("src"), &mut files);
    }
    assert!(files.len() > 100, "{} files", files.len());
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let code = code_lines(&text).len();
        if code > MAX_FILE_LINES {
            found.push(format!("{}: {code} lines", f.display()));
        }
        for (name, n) in long_functions(&text, MAX_FN_LINES) {
            found.push(format!("{}: fn {name} is {n} lines", f.display()));
        }
    }
    assert!(
        found.is_empty(),
        "over {MAX_FILE_LINES} lines per file or {MAX_FN_LINES} per function; split by concern:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_length_check_finds_a_long_function() {
    let body = "    let x = 1;\n".repeat(MAX_FN_LINES);
    let text = format!(
        "pub async fn long(a: u8) -> u8 {{\n{body}    x\n}}\n\nfn short() {{}}\n\nfn decl();\n"
    );
    assert_eq!(
        long_functions(&text, MAX_FN_LINES),
        vec![("long".to_string(), MAX_FN_LINES + 3)]
    );
    // Tests are left out.
    let text = format!("#[cfg(test)]\n{text}");
    assert!(long_functions(&text, MAX_FN_LINES).is_empty());
}
