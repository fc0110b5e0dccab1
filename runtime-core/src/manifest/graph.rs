//! The node graph of a manifest: edges resolved to indices, sources, sinks, cycle check.

use super::Manifest;
use crate::{Error, Result};
use std::collections::{HashMap, HashSet};

/// A manifest's nodes and edges, resolved to indices into `manifest.nodes`.
#[derive(Debug, Clone)]
pub struct PipelineGraph {
    /// For each node, the nodes its outputs go to.
    pub downstream: Vec<Vec<usize>>,
    /// For each node, how many edges come into it.
    pub upstream_count: Vec<usize>,
    /// Nodes with no incoming edge: pipeline inputs go to each of them.
    pub sources: Vec<usize>,
    /// Nodes with no outgoing edge: their outputs are the pipeline's outputs.
    pub sinks: Vec<usize>,
    /// A topological order of all nodes.
    pub order: Vec<usize>,
}

impl PipelineGraph {
    /// Resolves the manifest's connections (or the implicit chain when there are none),
    /// rejecting duplicate ids, unknown endpoints and cycles.
    pub fn build(manifest: &Manifest) -> Result<Self> {
        let mut index_of: HashMap<&str, usize> = HashMap::with_capacity(manifest.nodes.len());
        for (i, node) in manifest.nodes.iter().enumerate() {
            if let Some(first) = index_of.insert(node.id.as_str(), i) {
                return Err(Error::DuplicateNodeId {
                    id: node.id.clone(),
                    first,
                    second: i,
                });
            }
        }
        let n = manifest.nodes.len();
        let mut edges: Vec<(usize, usize)> = Vec::new();
        let mut seen: HashSet<(usize, usize)> = HashSet::new();
        if manifest.connections.is_empty() {
            edges.extend((1..n).map(|i| (i - 1, i)));
        } else {
            let known = || crate::error::id_list(manifest.nodes.iter().map(|n| n.id.as_str()));
            for (index, c) in manifest.connections.iter().enumerate() {
                let from =
                    *index_of
                        .get(c.from.as_str())
                        .ok_or_else(|| Error::UnknownEdgeEndpoint {
                            index,
                            end: "from",
                            node_id: c.from.clone(),
                            known: known(),
                        })?;
                let to =
                    *index_of
                        .get(c.to.as_str())
                        .ok_or_else(|| Error::UnknownEdgeEndpoint {
                            index,
                            end: "to",
                            node_id: c.to.clone(),
                            known: known(),
                        })?;
                if from == to {
                    return Err(Error::Cycle {
                        path: vec![c.from.clone(), c.to.clone()],
                    });
                }
                // A repeated edge would deliver every item twice; keep the first.
                if seen.insert((from, to)) {
                    edges.push((from, to));
                }
            }
        }

        let mut downstream = vec![Vec::new(); n];
        let mut upstream_count = vec![0usize; n];
        for &(from, to) in &edges {
            downstream[from].push(to);
            upstream_count[to] += 1;
        }

        // Kahn's algorithm; leftovers mean a cycle.
        let mut remaining = upstream_count.clone();
        let mut ready: Vec<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
        ready.reverse();
        let mut order = Vec::with_capacity(n);
        while let Some(i) = ready.pop() {
            order.push(i);
            for &d in downstream[i].iter().rev() {
                remaining[d] -= 1;
                if remaining[d] == 0 {
                    ready.push(d);
                }
            }
        }
        if order.len() < n {
            let path = find_cycle(&downstream, &remaining)
                .into_iter()
                .map(|i| manifest.nodes[i].id.clone())
                .collect();
            return Err(Error::Cycle { path });
        }

        let sources = (0..n).filter(|&i| upstream_count[i] == 0).collect();
        let sinks = (0..n).filter(|&i| downstream[i].is_empty()).collect();
        Ok(Self {
            downstream,
            upstream_count,
            sources,
            sinks,
            order,
        })
    }
}

/// Finds one cycle among the nodes Kahn's algorithm could not order (`remaining > 0`).
///
/// Iterative depth-first search with an explicit stack: manifests come from clients, and
/// their depth must never become the depth of our call stack.
fn find_cycle(downstream: &[Vec<usize>], remaining: &[usize]) -> Vec<usize> {
    const UNVISITED: u8 = 0;
    const ON_PATH: u8 = 1;
    const DONE: u8 = 2;
    let n = downstream.len();
    let mut state = vec![UNVISITED; n];
    // (node, index of the next edge to follow)
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for start in 0..n {
        if remaining[start] == 0 || state[start] != UNVISITED {
            continue;
        }
        state[start] = ON_PATH;
        stack.push((start, 0));
        while let Some(&mut (node, ref mut next_edge)) = stack.last_mut() {
            let Some(&next) = downstream[node].get(*next_edge) else {
                state[node] = DONE;
                stack.pop();
                continue;
            };
            *next_edge += 1;
            if remaining[next] == 0 {
                continue;
            }
            match state[next] {
                ON_PATH => {
                    let from = stack.iter().position(|&(p, _)| p == next).unwrap_or(0);
                    let mut cycle: Vec<usize> = stack[from..].iter().map(|&(p, _)| p).collect();
                    cycle.push(next);
                    return cycle;
                }
                UNVISITED => {
                    state[next] = ON_PATH;
                    stack.push((next, 0));
                }
                _ => {}
            }
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(nodes: &[&str], edges: &[(&str, &str)]) -> Manifest {
        let nodes: Vec<_> = nodes
            .iter()
            .map(|id| serde_json::json!({"id": id, "node_type": "PassThrough"}))
            .collect();
        let connections: Vec<_> = edges
            .iter()
            .map(|(f, t)| serde_json::json!({"from": f, "to": t}))
            .collect();
        serde_json::from_value(serde_json::json!({"nodes": nodes, "connections": connections}))
            .expect("test manifest has the manifest shape")
    }

    #[test]
    fn no_connections_means_a_chain_in_listed_order() {
        let g = PipelineGraph::build(&manifest(&["a", "b", "c"], &[])).expect("valid");
        assert_eq!(g.sources, vec![0]);
        assert_eq!(g.sinks, vec![2]);
        assert_eq!(g.order, vec![0, 1, 2]);
    }

    #[test]
    fn diamond_has_one_source_and_one_sink() {
        let m = manifest(
            &["a", "b", "c", "d"],
            &[("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")],
        );
        let g = PipelineGraph::build(&m).expect("valid");
        assert_eq!(g.sources, vec![0]);
        assert_eq!(g.sinks, vec![3]);
        assert_eq!(g.upstream_count[3], 2);
    }

    #[test]
    fn cycle_is_reported_with_its_path() {
        let m = manifest(&["a", "b", "c"], &[("a", "b"), ("b", "c"), ("c", "b")]);
        let err = PipelineGraph::build(&m).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid manifest: connections form a cycle: b -> c -> b"
        );
    }
}
