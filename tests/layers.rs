//! The shape of src/: modules import only downwards (front ends -> jobs -> engine) and no
//! module imports itself back through others (no circles, between files or between the
//! folders of a layer). Plain Rust over the `crate::` and `super::` paths of src/**/*.rs;
//! ARCHITECTURE.md explains the layers. The checker's own tests below run it on small
//! made-up trees, so a check that cannot fail would show here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers, bottom first: a module may import from its own layer and the ones below.
const LAYERS: [&str; 3] = ["engine", "jobs", "front"];

/// The crate root's own names (`crate::Error`, `crate::Result`: the engine's error type).
const ROOT_NAMES: [&str; 2] = ["Error", "Result"];

/// The module path of a file under src/ (`a/b.rs` -> `a::b`, `a/mod.rs` -> `a`,
/// `lib.rs` -> the root ``); None for the binary's root, main.rs (a crate of its own).
fn module_of(rel: &str) -> Option<String> {
    let rel = rel.strip_suffix(".rs")?;
    if rel == "main" {
        return None;
    }
    if rel == "lib" {
        return Some(String::new());
    }
    let rel = rel.strip_suffix("/mod").unwrap_or(rel);
    Some(rel.replace('/', "::"))
}

/// The source with comments, strings and char literals blanked out (newlines kept).
fn strip(src: &str) -> Vec<char> {
    let c: Vec<char> = src.chars().collect();
    let mut out = c.clone();
    let blank = |out: &mut Vec<char>, a: usize, b: usize| {
        for ch in out.iter_mut().take(b.min(c.len())).skip(a) {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    };
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            let e = (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len());
            blank(&mut out, i, e);
            i = e;
        } else if c[i] == '/' && next == Some('*') {
            let (mut depth, mut j) = (1, i + 2);
            while j < c.len() && depth > 0 {
                if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if c[i] == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !is_ident(c[i - 1]) || c[i - 1] == 'b')
        {
            // r"..." or r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                i += 1;
                continue;
            }
            j += 1;
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while j < c.len() && c[j..].iter().take(close.len()).ne(close.iter()) {
                j += 1;
            }
            let e = (j + close.len()).min(c.len());
            blank(&mut out, i, e);
            i = e;
        } else if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i, j + 1);
            i = j + 1;
        } else if c[i] == '\'' {
            // a char literal ('x', '\n', '\u{..}'); a lifetime ('a) stays
            if next == Some('\\') {
                let e = (i + 3..c.len()).find(|&j| c[j] == '\'').unwrap_or(c.len());
                blank(&mut out, i, e + 1);
                i = e + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                blank(&mut out, i, i + 3);
                i += 3;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

fn is_ident(ch: char) -> bool {
    ch.is_alphanumeric() || ch == '_'
}

struct Parser<'a> {
    c: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.c.len() && self.c[self.i].is_whitespace() {
            self.i += 1;
        }
    }
    fn ident(&mut self) -> Option<String> {
        self.ws();
        let s = self.i;
        while self.i < self.c.len() && is_ident(self.c[self.i]) {
            self.i += 1;
        }
        (self.i > s).then(|| self.c[s..self.i].iter().collect())
    }
    fn eat(&mut self, s: &str) -> bool {
        self.ws();
        let n = s.chars().count();
        if self.c[self.i.min(self.c.len())..]
            .iter()
            .take(n)
            .copied()
            .eq(s.chars())
        {
            self.i += n;
            true
        } else {
            false
        }
    }
    /// A path or use tree after `crate::` / `super::`: every full path it names.
    fn tree(&mut self, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.eat("{") {
            loop {
                if self.eat("}") {
                    return;
                }
                self.tree(prefix.clone(), out);
                if !self.eat(",") {
                    self.eat("}");
                    return;
                }
            }
        }
        if self.eat("*") {
            out.push(prefix);
            return;
        }
        let Some(id) = self.ident() else {
            out.push(prefix);
            return;
        };
        let mut p = prefix;
        if id != "self" {
            p.push(id);
        }
        if self.eat("::") {
            self.tree(p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every path a file names through `crate::` or `super::`, resolved to absolute segments,
/// with its line; and whether the file prints or uses egui outside its tests.
struct Scanned {
    paths: Vec<(usize, Vec<String>)>,
    prints: Vec<usize>,
    gui: Vec<usize>,
}

fn scan(module: &str, src: &str) -> Scanned {
    let c = strip(src);
    let base: Vec<String> = module
        .split("::")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let line_of = |i: usize| c[..i].iter().filter(|&&ch| ch == '\n').count() + 1;
    let tests_from = {
        let s: String = c.iter().collect();
        s.find("#[cfg(test)]")
            .map(|b| s[..b].chars().count())
            .unwrap_or(c.len())
    };
    let mut out = Scanned {
        paths: vec![],
        prints: vec![],
        gui: vec![],
    };
    // inline modules (`mod tests { .. }`): their names and the depth their body is at
    let mut inline: Vec<(String, usize)> = vec![];
    let mut depth = 0usize;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '{' {
            depth += 1;
            i += 1;
            continue;
        }
        if ch == '}' {
            depth = depth.saturating_sub(1);
            while inline.last().is_some_and(|m| m.1 > depth) {
                inline.pop();
            }
            i += 1;
            continue;
        }
        if !is_ident(ch) || (i > 0 && (is_ident(c[i - 1]) || c[i - 1] == ':')) {
            i += 1;
            continue;
        }
        let mut p = Parser { c: &c, i };
        let word = p.ident().unwrap_or_default();
        match word.as_str() {
            "mod" => {
                if let Some(name) = p.ident()
                    && p.eat("{")
                {
                    depth += 1;
                    inline.push((name, depth));
                }
                i = p.i;
            }
            "crate" | "super" if p.eat("::") => {
                let mut start: Vec<String> = if word == "crate" {
                    vec![]
                } else {
                    let mut b = base.clone();
                    b.extend(inline.iter().map(|m| m.0.clone()));
                    b.pop();
                    b
                };
                // super::super::...
                loop {
                    let save = p.i;
                    if p.ident().as_deref() == Some("super") && p.eat("::") {
                        start.pop();
                    } else {
                        p.i = save;
                        break;
                    }
                }
                let mut paths = vec![];
                p.tree(start, &mut paths);
                let line = line_of(i);
                out.paths.extend(paths.into_iter().map(|x| (line, x)));
                i = p.i;
            }
            "println" | "eprintln" | "print" | "eprint" | "dbg" if p.eat("!") => {
                if i < tests_from {
                    out.prints.push(line_of(i));
                }
                i = p.i;
            }
            "egui" | "eframe" | "egui_plot" => {
                if i < tests_from {
                    out.gui.push(line_of(i));
                }
                i = p.i;
            }
            _ => i = p.i,
        }
    }
    out
}

#[derive(Debug, Default)]
struct Report {
    /// module -> modules it imports
    edges: BTreeMap<String, BTreeSet<String>>,
    /// circles between files (modules), each as its members
    file_circles: Vec<Vec<String>>,
    /// circles between the folders (or top files) of the layers, e.g. engine::distill
    unit_circles: Vec<Vec<String>>,
    /// imports from a lower layer to a higher one, e.g. "jobs::studio -> front::web"
    upward: Vec<String>,
    /// everything else that breaks the rules, one line each
    other: Vec<String>,
}

impl Report {
    fn problems(&self) -> Vec<String> {
        let mut v = vec![];
        for c in &self.file_circles {
            v.push(format!("import circle between files: {}", c.join(" -> ")));
        }
        for c in &self.unit_circles {
            v.push(format!("import circle between folders: {}", c.join(" -> ")));
        }
        for u in &self.upward {
            v.push(format!("upward import: {u}"));
        }
        v.extend(self.other.iter().cloned());
        v
    }
}

fn layer(module: &str) -> Option<usize> {
    let top = module.split("::").next()?;
    LAYERS.iter().position(|l| *l == top)
}

/// The unit of a module: its layer and first folder (or file) below it.
fn unit(module: &str) -> String {
    module.split("::").take(2).collect::<Vec<_>>().join("::")
}

/// Strongly connected components with more than one member (Tarjan), members in order.
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> T<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on.insert(v);
            for w in self.edges.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[v].min(self.low[w]);
                    self.low.insert(v, l);
                } else if self.on.contains(w) {
                    let l = self.low[v].min(self.index[w]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = vec![];
                loop {
                    let w = self.stack.pop().expect("on the stack");
                    self.on.remove(w);
                    comp.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: vec![],
        on: BTreeSet::new(),
        out: vec![],
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out.sort();
    t.out
}

/// Check a tree given as (path under src/, text) pairs.
fn check(files: &[(String, String)]) -> Report {
    let modules: BTreeMap<String, &str> = files
        .iter()
        .filter_map(|(p, _)| module_of(p).map(|m| (m, p.as_str())))
        .collect();
    let mut r = Report::default();
    for (path, text) in files {
        let Some(m) = module_of(path) else { continue };
        r.edges.entry(m.clone()).or_default();
        if m.is_empty() {
            continue; // lib.rs: the front door re-exports every layer
        }
        let Some(own) = layer(&m) else {
            r.other.push(format!(
                "src/{path}: outside the layers (put it under one of src/{})",
                LAYERS.join("/, src/")
            ));
            continue;
        };
        let s = scan(&m, text);
        if own == 0 {
            for l in &s.prints {
                r.other.push(format!(
                    "src/{path}:{l}: the engine prints nothing (return the text, or send an event)"
                ));
            }
        }
        if own < 2 {
            for l in &s.gui {
                r.other.push(format!(
                    "src/{path}:{l}: egui belongs to the front ends (src/front/app)"
                ));
            }
        }
        for (line, segs) in s.paths {
            // the longest prefix of the path that is a module: the file it imports from
            let target = (0..=segs.len())
                .rev()
                .map(|k| segs[..k].join("::"))
                .find(|p| modules.contains_key(p))
                .unwrap_or_default();
            if target.is_empty() {
                if !segs
                    .first()
                    .is_some_and(|s| ROOT_NAMES.contains(&s.as_str()))
                {
                    r.other.push(format!(
                        "src/{path}:{line}: crate::{} is a front-door alias of src/lib.rs; inside src/ write the module's own path (crate::{}::...)",
                        segs.join("::"),
                        LAYERS.join("|")
                    ));
                }
                continue;
            }
            if target == m {
                continue;
            }
            if layer(&target).is_some_and(|t| t > own) {
                r.upward
                    .push(format!("{m} -> {target} (src/{path}:{line})"));
            }
            r.edges.entry(m.clone()).or_default().insert(target);
        }
    }
    r.file_circles = circles(&r.edges);
    let mut units: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, bs) in &r.edges {
        if a.is_empty() {
            continue;
        }
        let ua = unit(a);
        let e = units.entry(ua.clone()).or_default();
        for b in bs {
            if unit(b) != ua {
                e.insert(unit(b));
            }
        }
    }
    r.unit_circles = circles(&units);
    r
}

fn read_tree(root: &Path) -> Vec<(String, String)> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, root, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    let mut out = vec![];
    walk(root, root, &mut out);
    out
}

#[test]
fn src_imports_only_downwards_and_has_no_circles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = read_tree(&root);
    let r = check(&files);
    let n_edges: usize = r.edges.values().map(|e| e.len()).sum();
    println!(
        "{} files, {} imports between modules, {} problems",
        files.len(),
        n_edges,
        r.problems().len()
    );
    assert!(files.len() > 40, "read src/: {} files", files.len());
    assert!(n_edges > 100, "the scan finds the imports ({n_edges})");
    // a known edge, so a scan that finds nothing fails here
    assert!(r.edges["jobs::gallery"].contains("jobs::generate"));
    assert!(
        r.problems().is_empty(),
        "src/ breaks its layers (see ARCHITECTURE.md):\n  {}",
        r.problems().join("\n  ")
    );
}

fn tree(files: &[(&str, &str)]) -> Vec<(String, String)> {
    files
        .iter()
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect()
}

#[test]
fn the_checker_finds_a_circle_between_files_and_between_folders() {
    let r = check(&tree(&[
        ("lib.rs", "pub mod engine;"),
        ("engine/mod.rs", "pub mod a; pub mod b; pub mod c;"),
        ("engine/a/mod.rs", "use crate::engine::b::X;\npub struct Y;"),
        (
            "engine/b/mod.rs",
            "pub struct X;\nfn f() { crate::engine::c::g() }",
        ),
        ("engine/c.rs", "pub fn g() { let _ = crate::engine::a::Y; }"),
    ]));
    assert_eq!(
        r.file_circles,
        vec![vec!["engine::a", "engine::b", "engine::c"]]
    );
    assert_eq!(r.unit_circles.len(), 1, "{:?}", r.unit_circles);
    assert!(r.upward.is_empty());
    // two files of one folder importing each other: a file circle, not a folder circle
    let r = check(&tree(&[
        (
            "engine/d/mod.rs",
            "pub mod x; use crate::engine::d::x::X; pub struct D;",
        ),
        ("engine/d/x.rs", "use super::D; pub struct X;"),
    ]));
    assert_eq!(r.file_circles, vec![vec!["engine::d", "engine::d::x"]]);
    assert!(r.unit_circles.is_empty());
    // the same without the back edge is fine
    let r = check(&tree(&[
        ("engine/d/mod.rs", "pub mod x; pub struct D;"),
        ("engine/d/x.rs", "use super::D; pub struct X;"),
    ]));
    assert!(r.problems().is_empty(), "{:?}", r.problems());
}

#[test]
fn the_checker_finds_an_upward_import_and_other_breaks() {
    let r = check(&tree(&[
        ("engine/e.rs", "pub fn e() {}"),
        (
            "jobs/j.rs",
            "use crate::engine::e::e;\nuse crate::front::f::F;",
        ),
        ("front/f.rs", "pub struct F; use crate::jobs::j;"),
        ("stray.rs", "pub fn s() {}"),
        (
            "engine/p.rs",
            "pub fn p() { println!(\"no\"); }\nuse crate::schedule::Grid;\nfn q() -> crate::Result<()> { Ok(()) }",
        ),
        ("jobs/g.rs", "use eframe::egui;"),
    ]));
    assert_eq!(r.upward, vec!["jobs::j -> front::f (src/jobs/j.rs:2)"]);
    assert_eq!(r.file_circles, vec![vec!["front::f", "jobs::j"]]);
    let other = r.other.join("\n");
    assert!(
        other.contains("src/stray.rs: outside the layers"),
        "{other}"
    );
    assert!(
        other.contains("src/engine/p.rs:1: the engine prints"),
        "{other}"
    );
    assert!(
        other.contains("src/engine/p.rs:2: crate::schedule::Grid is a front-door alias"),
        "{other}"
    );
    assert!(other.contains("src/jobs/g.rs:1: egui belongs"), "{other}");
    assert!(!other.contains("crate::Result"), "{other}");
}

#[test]
fn the_checker_reads_use_trees_super_paths_and_skips_comments_strings_and_tests() {
    let r = check(&tree(&[
        (
            "engine/mod.rs",
            "pub mod a; pub mod b; pub mod c; pub mod d;",
        ),
        ("engine/a.rs", "pub struct A;"),
        ("engine/b/mod.rs", "pub mod inner; pub struct B;"),
        ("engine/b/inner.rs", "pub struct I;"),
        ("engine/c.rs", "pub struct C;"),
        (
            "engine/d.rs",
            r##"use crate::engine::{a::A, b::{self, inner::{I}}};
// use crate::engine::c::C;   a comment
/* crate::engine::c::C */
const S: &str = "crate::engine::c::C";
const R: &str = r#"crate::engine::c::C"#;
fn life<'a>(x: &'a str) -> char { let _ = x; 'c' }
#[cfg(test)]
mod tests {
    use super::*;
    fn t() { println!("tests may print"); }
}
"##,
        ),
    ]));
    assert_eq!(
        r.edges["engine::d"],
        ["engine::a", "engine::b", "engine::b::inner"]
            .into_iter()
            .map(String::from)
            .collect::<BTreeSet<_>>()
    );
    assert!(r.problems().is_empty(), "{:?}", r.problems());
    // super:: from a file reaches its folder's mod.rs; super::super one more up
    let r = check(&tree(&[
        ("engine/x/mod.rs", "pub mod y; pub struct X;"),
        ("engine/x/y/mod.rs", "pub mod z; use super::X;"),
        (
            "engine/x/y/z.rs",
            "use super::super::X; fn f() { super::g() }",
        ),
    ]));
    assert!(r.edges["engine::x::y"].contains("engine::x"));
    let z = &r.edges["engine::x::y::z"];
    assert!(
        z.contains("engine::x") && z.contains("engine::x::y"),
        "{z:?}"
    );
}
