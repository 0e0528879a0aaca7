//! The crate's layering, checked: each folder imports only from the folders below it, and no two
//! modules import each other, directly or around a circle (`docs/architecture.md`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Top-level modules from the top layer down; a module may import only from its own layer or
/// those after it.
const LAYERS: &[&[&str]] = &[
  &["node"],
  &["transport"],
  &["services"],
  &["core"],
  &["error"],
  &["patch"],
  &["clock", "doc", "name", "user"],
];

fn layer(module: &str) -> usize {
  LAYERS
    .iter()
    .position(|names| names.contains(&module))
    .unwrap_or_else(|| panic!("src/{module} is in no layer of tests/layers.rs"))
}

/// Every `.rs` file under `src/` by its module path (`core::replica`), with its text.
fn modules() -> BTreeMap<String, String> {
  let mut found = BTreeMap::new();
  let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
  let root = stack[0].clone();
  while let Some(dir) = stack.pop() {
    for entry in fs::read_dir(&dir).unwrap() {
      let path = entry.unwrap().path();
      if path.is_dir() {
        stack.push(path);
      } else if path.extension().is_some_and(|ext| ext == "rs") {
        let relative = path.strip_prefix(&root).unwrap().with_extension("");
        let parts: Vec<String> = relative
          .iter()
          .map(|part| part.to_string_lossy().into_owned())
          .filter(|part| part != "mod")
          .collect();
        if parts != ["lib"] {
          found.insert(parts.join("::"), fs::read_to_string(&path).unwrap());
        }
      }
    }
  }
  found
}

/// The modules `text` names as `crate::a::b...`, resolved to the longest known module path.
fn imports(text: &str, known: &BTreeMap<String, String>) -> BTreeSet<String> {
  let mut named = BTreeSet::new();
  // Test modules may reach anywhere: they build what they test.
  let text = text.split("#[cfg(test)]\nmod tests").next().unwrap();
  for (at, _) in text.match_indices("crate::") {
    let rest = &text[at + "crate::".len()..];
    let path: String = rest
      .chars()
      .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
      .collect();
    let parts: Vec<&str> = path.split("::").filter(|part| !part.is_empty()).collect();
    if let Some(module) = (1..=parts.len())
      .rev()
      .map(|len| parts[..len].join("::"))
      .find(|candidate| known.contains_key(candidate))
    {
      named.insert(module);
    }
  }
  named
}

fn top(module: &str) -> &str {
  module.split("::").next().unwrap()
}

#[test]
fn folders_import_only_downward() {
  let modules = modules();
  let mut upward = Vec::new();
  for (module, text) in &modules {
    for imported in imports(text, &modules) {
      if layer(top(&imported)) < layer(top(module)) {
        upward.push(format!("{module} -> {imported}"));
      }
    }
  }
  assert!(upward.is_empty(), "imports up a layer: {upward:#?}");
}

#[test]
fn no_module_imports_itself_around_a_circle() {
  let modules = modules();
  let graph: BTreeMap<&str, BTreeSet<String>> = modules
    .iter()
    .map(|(module, text)| (module.as_str(), imports(text, &modules)))
    .collect();
  // Depth-first search; meeting a module on the current path again closes a circle.
  fn visit<'a>(
    module: &'a str,
    graph: &'a BTreeMap<&str, BTreeSet<String>>,
    path: &mut Vec<&'a str>,
    done: &mut BTreeSet<&'a str>,
  ) -> Option<Vec<String>> {
    if let Some(start) = path.iter().position(|on| *on == module) {
      let mut circle: Vec<String> = path[start..].iter().map(|m| m.to_string()).collect();
      circle.push(module.to_owned());
      return Some(circle);
    }
    if !done.insert(module) {
      return None;
    }
    path.push(module);
    for next in graph.get(module).into_iter().flatten() {
      // A module may name itself (`crate::core::link::Link` inside `core::link`).
      if next != module {
        if let Some(circle) = visit(next, graph, path, done) {
          return Some(circle);
        }
      }
    }
    path.pop();
    None
  }
  let mut done = BTreeSet::new();
  for module in graph.keys() {
    if let Some(circle) = visit(module, &graph, &mut Vec::new(), &mut done) {
      panic!("a circle of imports: {}", circle.join(" -> "));
    }
  }
}
