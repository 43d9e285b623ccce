//! Reading the sources with syn: the file modules of each crate, the paths each one names, its
//! functions with their lengths, and the `tokio::select!` invocations.

use proc_macro2::{TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// A function, method or trait default method.
#[derive(Debug, Clone)]
pub struct Function {
    /// Relative to the repository, with `/`.
    pub file: String,
    /// `name`, or `Type::name` for a method.
    pub name: String,
    pub line: usize,
    pub lines: usize,
    /// A `#[test]` or inside a `#[cfg(test)]` module.
    pub test: bool,
}

/// A module of a library crate (a file, or an inline `mod` in one).
#[derive(Debug, Clone)]
pub struct Module {
    /// `repro::run::verdict`.
    pub name: String,
    pub file: String,
    pub test: bool,
    /// Every path it names (use trees flattened, macro bodies scanned), with its line.
    pub paths: Vec<(String, usize)>,
    /// Its child modules, by name.
    pub children: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub struct Tree {
    pub functions: Vec<Function>,
    /// By name.
    pub modules: BTreeMap<String, Module>,
    /// Module → module it imports → where (the first `file:line path`).
    pub edges: BTreeMap<String, BTreeMap<String, String>>,
    /// `tokio::select!` invocations: file and line.
    pub selects: Vec<(String, usize)>,
}

/// The library crates whose module graph is checked: (crate name, root file).
const CRATES: &[(&str, &str)] = &[("repro", "src/lib.rs"), ("repro_oops", "crates/oops/src/lib.rs")];
/// Other code, for function lengths only.
const OTHER: &[&str] = &[
    "src/main.rs",
    "tests",
    "benches",
    "crates/oops/tests",
    "crates/oops/examples",
    "crates/oops/fuzz/fuzz_targets",
];

impl Tree {
    pub fn load(repo: &Path) -> Result<Tree, String> {
        let mut tree = Tree::default();
        for (krate, root) in CRATES {
            if repo.join(root).is_file() {
                tree.walk_module(repo, &repo.join(root), vec![krate.to_string()], false)?;
            }
        }
        for other in OTHER {
            let mut files = Vec::new();
            rust_files(&repo.join(other), &mut files);
            for f in files {
                let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
                let file = syn::parse_file(&text).map_err(|e| format!("{}: {e}", f.display()))?;
                let mut v = Visitor::new(rel(repo, &f), vec!["-".into()], false);
                v.visit_file(&file);
                tree.functions.extend(v.functions);
                tree.selects.extend(v.selects);
            }
        }
        tree.resolve();
        Ok(tree)
    }

    /// Reads the module in `path` named `name`, then its file children.
    fn walk_module(&mut self, repo: &Path, path: &Path, name: Vec<String>, test: bool) -> Result<(), String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = syn::parse_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut v = Visitor::new(rel(repo, path), name.clone(), test);
        v.visit_file(&file);
        let dir = child_dir(path);
        let file_children = std::mem::take(&mut v.file_children);
        self.functions.extend(v.functions);
        self.selects.extend(v.selects);
        for m in v.modules {
            self.modules.insert(m.name.clone(), m);
        }
        for (child, child_test) in file_children {
            let a = dir.join(format!("{child}.rs"));
            let b = dir.join(&child).join("mod.rs");
            let found = if a.is_file() { a } else { b };
            if !found.is_file() {
                return Err(format!("{}: module `{child}` has no file", path.display()));
            }
            let mut child_name = name.clone();
            child_name.push(child);
            self.walk_module(repo, &found, child_name, test || child_test)?;
        }
        Ok(())
    }

    /// Turns each module's paths into edges to the modules they name.
    fn resolve(&mut self) {
        let names: BTreeSet<String> = self.modules.keys().cloned().collect();
        let mut edges: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for m in self.modules.values().filter(|m| !m.test) {
            let here: Vec<&str> = m.name.split("::").collect();
            for (path, line) in &m.paths {
                let Some(target) = target(&here, &m.children, path, &names) else {
                    continue;
                };
                if target == m.name || self.modules.get(&target).is_some_and(|t| t.test) {
                    continue;
                }
                edges
                    .entry(m.name.clone())
                    .or_default()
                    .entry(target)
                    .or_insert_with(|| format!("{}:{line} {path}", m.file));
            }
        }
        self.edges = edges;
    }
}

/// The module a path in module `here` refers to: the deepest module its prefix names.
fn target(here: &[&str], children: &BTreeSet<String>, path: &str, names: &BTreeSet<String>) -> Option<String> {
    let segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str>;
    let rest: &[&str];
    match segs[0] {
        "crate" => {
            base = vec![here[0]];
            rest = &segs[1..];
        }
        "self" => {
            base = here.to_vec();
            rest = &segs[1..];
        }
        "super" => {
            base = here.to_vec();
            let supers = segs.iter().take_while(|s| **s == "super").count();
            for _ in 0..supers {
                base.pop()?;
            }
            if base.is_empty() {
                return None;
            }
            rest = &segs[supers..];
        }
        first if children.contains(first) => {
            base = here.to_vec();
            rest = &segs[..];
        }
        _ => return None,
    }
    let mut best = base.join("::");
    if !names.contains(&best) {
        return None;
    }
    for s in rest {
        base.push(s);
        let candidate = base.join("::");
        if names.contains(&candidate) {
            best = candidate;
        } else {
            break;
        }
    }
    Some(best)
}

/// Where the file children of the module in `path` live.
fn child_dir(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let parent = path.parent().unwrap_or(Path::new("."));
    if name == "mod.rs" || name == "lib.rs" || name == "main.rs" {
        parent.to_path_buf()
    } else {
        parent.join(path.file_stem().unwrap_or_default())
    }
}

fn rel(repo: &Path, p: &Path) -> String {
    p.strip_prefix(repo).unwrap_or(p).to_string_lossy().replace('\\', "/")
}

fn rust_files(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_file() {
        if p.extension().is_some_and(|e| e == "rs") {
            out.push(p.to_path_buf());
        }
        return;
    }
    let Ok(rd) = std::fs::read_dir(p) else { return };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for e in entries {
        let name = e.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == "target" || name == "data" || name.starts_with('.') {
            continue;
        }
        rust_files(&e, out);
    }
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .is_ok_and(|l| l.tokens.to_string().trim() == "test")
    })
}

fn is_test_fn(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().segments.last().is_some_and(|s| s.ident == "test"))
}

fn path_string(p: &syn::Path) -> String {
    p.segments
        .iter()
        .map(|s| s.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// Flattens a use tree into full paths.
fn use_paths(prefix: &str, tree: &syn::UseTree, out: &mut Vec<(String, proc_macro2::Span)>) {
    let join = |p: &str, s: &str| {
        if p.is_empty() {
            s.to_string()
        } else {
            format!("{p}::{s}")
        }
    };
    match tree {
        syn::UseTree::Path(p) => use_paths(&join(prefix, &p.ident.to_string()), &p.tree, out),
        syn::UseTree::Name(n) => out.push((join(prefix, &n.ident.to_string()), n.ident.span())),
        syn::UseTree::Rename(r) => out.push((join(prefix, &r.ident.to_string()), r.ident.span())),
        syn::UseTree::Glob(g) => out.push((prefix.to_string(), g.star_token.span)),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_paths(prefix, t, out);
            }
        }
    }
}

/// Path-like runs (`a::b::c`) in a macro's tokens, which syn does not parse.
fn token_paths(tokens: TokenStream, out: &mut Vec<(String, usize)>) {
    let mut run: Vec<String> = Vec::new();
    let mut line = 0;
    let mut colons = 0;
    let flush = |run: &mut Vec<String>, line: usize, out: &mut Vec<(String, usize)>| {
        if run.len() > 1 {
            out.push((run.join("::"), line));
        }
        run.clear();
    };
    for tt in tokens {
        match tt {
            TokenTree::Ident(i) => {
                if colons != 2 {
                    flush(&mut run, line, out);
                    line = i.span().start().line;
                }
                run.push(i.to_string());
                colons = 0;
            }
            TokenTree::Punct(p) if p.as_char() == ':' && !run.is_empty() => colons += 1,
            TokenTree::Group(g) => {
                flush(&mut run, line, out);
                colons = 0;
                token_paths(g.stream(), out);
            }
            _ => {
                flush(&mut run, line, out);
                colons = 0;
            }
        }
    }
    flush(&mut run, line, out);
}

struct Visitor {
    file: String,
    /// The module being visited (innermost last) and whether it is test code.
    stack: Vec<(Vec<String>, bool)>,
    impl_type: Vec<String>,
    modules: Vec<Module>,
    functions: Vec<Function>,
    selects: Vec<(String, usize)>,
    /// `mod x;` declarations of the file's own module: name and cfg(test).
    file_children: Vec<(String, bool)>,
}

impl Visitor {
    fn new(file: String, name: Vec<String>, test: bool) -> Self {
        let module = Module {
            name: name.join("::"),
            file: file.clone(),
            test,
            paths: Vec::new(),
            children: BTreeSet::new(),
        };
        Visitor {
            file,
            stack: vec![(name, test)],
            impl_type: Vec::new(),
            modules: vec![module],
            functions: Vec::new(),
            selects: Vec::new(),
            file_children: Vec::new(),
        }
    }

    fn current(&mut self) -> &mut Module {
        let name = self.stack.last().map(|(n, _)| n.join("::")).unwrap_or_default();
        let i = self.modules.iter().position(|m| m.name == name).unwrap_or(0);
        &mut self.modules[i]
    }

    fn in_test(&self) -> bool {
        self.stack.last().is_some_and(|(_, t)| *t)
    }

    fn function(&mut self, name: String, attrs: &[syn::Attribute], start: proc_macro2::Span, block: &syn::Block) {
        let line = start.start().line;
        let end = block.brace_token.span.close().end().line;
        let name = match self.impl_type.last() {
            Some(t) => format!("{t}::{name}"),
            None => name,
        };
        self.functions.push(Function {
            file: self.file.clone(),
            name,
            line,
            lines: end + 1 - line,
            test: self.in_test() || is_test_fn(attrs),
        });
    }
}

impl<'ast> Visit<'ast> for Visitor {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let test = self.in_test() || is_cfg_test(&m.attrs);
        let name = m.ident.to_string();
        self.current().children.insert(name.clone());
        let Some((_, items)) = &m.content else {
            if self.stack.len() == 1 {
                self.file_children.push((name, test));
            }
            return;
        };
        let mut full = self.stack.last().map(|(n, _)| n.clone()).unwrap_or_default();
        full.push(name);
        self.modules.push(Module {
            name: full.join("::"),
            file: self.file.clone(),
            test,
            paths: Vec::new(),
            children: BTreeSet::new(),
        });
        self.stack.push((full, test));
        for item in items {
            self.visit_item(item);
        }
        self.stack.pop();
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut paths = Vec::new();
        use_paths("", &u.tree, &mut paths);
        let m = self.current();
        for (p, span) in paths {
            m.paths.push((p, span.start().line));
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let line = p.segments.first().map_or(0, |s| s.ident.span().start().line);
        let s = path_string(p);
        self.current().paths.push((s, line));
        syn::visit::visit_path(self, p);
    }

    /// `pub(crate)` and `pub(super)` name no module the code uses.
    fn visit_vis_restricted(&mut self, _: &'ast syn::VisRestricted) {}

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        let segs: Vec<String> = mac.path.segments.iter().map(|s| s.ident.to_string()).collect();
        let line = mac.path.segments.first().map_or(0, |s| s.ident.span().start().line);
        if segs.last().is_some_and(|s| s == "select") && (segs.len() == 1 || segs[0] == "tokio") {
            self.selects.push((self.file.clone(), line));
        }
        let mut found = Vec::new();
        token_paths(mac.tokens.clone(), &mut found);
        self.current().paths.extend(found);
        syn::visit::visit_macro(self, mac);
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.function(f.sig.ident.to_string(), &f.attrs, f.sig.fn_token.span, &f.block);
        let saved = std::mem::take(&mut self.impl_type);
        let test = self.in_test() || is_test_fn(&f.attrs);
        if let Some((n, _)) = self.stack.last().cloned() {
            self.stack.push((n, test));
        }
        syn::visit::visit_item_fn(self, f);
        self.stack.pop();
        self.impl_type = saved;
    }

    fn visit_item_impl(&mut self, i: &'ast syn::ItemImpl) {
        let name = match &*i.self_ty {
            syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default(),
            _ => "_".to_string(),
        };
        self.impl_type.push(name);
        syn::visit::visit_item_impl(self, i);
        self.impl_type.pop();
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        self.function(f.sig.ident.to_string(), &f.attrs, f.sig.fn_token.span, &f.block);
        syn::visit::visit_impl_item_fn(self, f);
    }

    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        self.impl_type.push(t.ident.to_string());
        syn::visit::visit_item_trait(self, t);
        self.impl_type.pop();
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.function(f.sig.ident.to_string(), &f.attrs, f.sig.fn_token.span, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}
