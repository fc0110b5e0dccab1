//! `cargo xtask dep-audit`: runtime-core must not reach any transport or executor crate,
//! through normal or build dependencies, directly or transitively, on any target.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};

/// Crates the core must never depend on.
pub const FORBIDDEN: &[&str] = &[
    "tonic",
    "tonic-build",
    "prost",
    "prost-build",
    "pyo3",
    "numpy",
    "webrtc",
    "iceoryx2",
    "bollard",
    "ffmpeg-next",
    "ffmpeg-sys-next",
    "wasm-bindgen",
];

const CORE: &str = "remotemedia-runtime-core";

/// A dependency graph: package id → (name, normal/build dependency ids).
pub type Graph = HashMap<String, (String, Vec<String>)>;

pub fn run() -> Result<()> {
    let output =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["metadata", "--format-version", "1", "--all-features"])
            .output()
            .context("cannot run cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: Value =
        serde_json::from_slice(&output.stdout).context("cargo metadata printed invalid JSON")?;
    let (graph, core) = graph_from_metadata(&metadata)?;
    let violations = find_forbidden(&graph, &core, FORBIDDEN);
    if violations.is_empty() {
        let reachable = reachable_count(&graph, &core);
        println!(
            "dep-audit: {CORE} reaches {reachable} crates (normal + build, all features, all targets), none of: {}",
            FORBIDDEN.join(", ")
        );
        return Ok(());
    }
    for path in &violations {
        eprintln!("dep-audit: forbidden dependency: {}", path.join(" -> "));
    }
    bail!(
        "{CORE} depends on {} forbidden crate(s); it must stay free of transport and executor crates",
        violations.len()
    )
}

/// Builds the normal+build dependency graph from `cargo metadata` output.
pub fn graph_from_metadata(metadata: &Value) -> Result<(Graph, String)> {
    let names: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .context("metadata has no packages")?
        .iter()
        .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
        .collect();
    let mut graph = Graph::new();
    let mut core = None;
    for node in metadata["resolve"]["nodes"]
        .as_array()
        .context("metadata has no resolve graph")?
    {
        let id = node["id"].as_str().context("resolve node without id")?;
        let name = names.get(id).copied().unwrap_or(id).to_owned();
        if name == CORE {
            core = Some(id.to_owned());
        }
        let deps = node["deps"]
            .as_array()
            .map(|deps| {
                deps.iter()
                    .filter(|d| {
                        d["dep_kinds"].as_array().is_some_and(|kinds| {
                            kinds
                                .iter()
                                .any(|k| k["kind"].is_null() || k["kind"].as_str() == Some("build"))
                        })
                    })
                    .filter_map(|d| d["pkg"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        graph.insert(id.to_owned(), (name, deps));
    }
    let core = core.with_context(|| format!("{CORE} is not in the workspace"))?;
    Ok((graph, core))
}

/// Breadth-first search from `root`; returns the shortest path (as crate names) to each
/// forbidden crate reached.
pub fn find_forbidden(graph: &Graph, root: &str, forbidden: &[&str]) -> Vec<Vec<String>> {
    let mut parent: HashMap<&str, &str> = HashMap::new();
    let mut queue = VecDeque::from([root]);
    let mut seen = std::collections::HashSet::from([root]);
    let mut hits = Vec::new();
    while let Some(id) = queue.pop_front() {
        let Some((name, deps)) = graph.get(id) else {
            continue;
        };
        if id != root && forbidden.contains(&name.as_str()) {
            let mut path = vec![name.clone()];
            let mut cur = id;
            while let Some(&p) = parent.get(cur) {
                path.push(graph.get(p).map_or(p.to_owned(), |(n, _)| n.clone()));
                cur = p;
            }
            path.reverse();
            hits.push(path);
            continue;
        }
        for dep in deps {
            if seen.insert(dep.as_str()) {
                parent.insert(dep.as_str(), id);
                queue.push_back(dep.as_str());
            }
        }
    }
    hits
}

fn reachable_count(graph: &Graph, root: &str) -> usize {
    let mut seen = std::collections::HashSet::from([root]);
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if let Some((_, deps)) = graph.get(id) {
            for d in deps {
                if seen.insert(d.as_str()) {
                    stack.push(d.as_str());
                }
            }
        }
    }
    seen.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        edges
            .iter()
            .map(|(n, deps)| {
                (
                    (*n).to_owned(),
                    (
                        (*n).to_owned(),
                        deps.iter().map(|d| (*d).to_owned()).collect(),
                    ),
                )
            })
            .collect()
    }

    #[test]
    fn transitive_forbidden_crate_is_reported_with_its_path() {
        let g = graph(&[
            ("core", &["serde", "helper"]),
            ("serde", &[]),
            ("helper", &["tonic"]),
            ("tonic", &["prost"]),
            ("prost", &[]),
        ]);
        let hits = find_forbidden(&g, "core", FORBIDDEN);
        assert_eq!(hits, vec![vec!["core", "helper", "tonic"]]);
    }

    #[test]
    fn clean_graph_has_no_hits() {
        let g = graph(&[("core", &["serde"]), ("serde", &[])]);
        assert!(find_forbidden(&g, "core", FORBIDDEN).is_empty());
    }
}
