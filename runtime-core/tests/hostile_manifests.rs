//! Manifests written to hurt: each is refused with a clear error, in time and memory
//! linear in its text, on a thread with a small stack (as an async worker has).

use remotemedia_runtime_core::manifest::{Manifest, ManifestLimits};
use remotemedia_runtime_core::Error;
use std::time::{Duration, Instant};

/// Runs `f` on a thread with a 256 KiB stack, within `limit` of time.
fn bounded<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let started = Instant::now();
    let result = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("thread")
        .join()
        .expect("no stack overflow, no panic");
    assert!(started.elapsed() < limit, "took {:?}", started.elapsed());
    result
}

fn ring(nodes: usize) -> String {
    let mut json = String::from("{\"nodes\": [");
    for i in 0..nodes {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            "{{\"id\": \"n{i}\", \"node_type\": \"PassThrough\"}}"
        ));
    }
    json.push_str("], \"connections\": [");
    for i in 0..nodes {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&format!(
            "{{\"from\": \"n{i}\", \"to\": \"n{}\"}}",
            (i + 1) % nodes
        ));
    }
    json.push_str("]}");
    json
}

#[test]
fn a_ring_of_13500_nodes_is_refused_for_its_size_within_the_default_limits() {
    let text = ring(13_500);
    assert!(text.len() > 1_000_000);
    let err = bounded(Duration::from_secs(5), move || {
        Manifest::from_json(&text).unwrap_err()
    });
    assert_eq!(
        err.to_string(),
        "manifest refused: the manifest has 13500 nodes, over the limit of 1024 nodes"
    );
    let big = format!("{} ", ring(13_500)).repeat(2);
    let err = Manifest::from_json(&big).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "manifest refused: the manifest is {} bytes, over the limit of 1048576 bytes",
            big.len()
        )
    );
}

#[test]
fn a_ring_within_raised_limits_is_a_cycle_named_in_a_few_ids_without_recursion() {
    let limits = ManifestLimits {
        max_bytes: 4 << 20,
        max_nodes: 20_000,
        max_connections: 20_000,
        ..ManifestLimits::default()
    };
    let text = ring(13_500);
    let err = bounded(Duration::from_secs(5), move || {
        Manifest::from_json_with_limits(&text, &limits).unwrap_err()
    });
    let message = err.to_string();
    assert!(
        message
            .starts_with("invalid manifest: connections form a cycle: n0 -> n1 -> n2 -> n3 -> ..."),
        "{message}"
    );
    assert!(message.ends_with("(13500 nodes on the cycle)"), "{message}");
    assert!(message.len() < 200, "{} bytes", message.len());
}

#[test]
fn too_many_nodes_are_refused_before_the_graph_is_built() {
    let limits = ManifestLimits {
        max_bytes: 4 << 20,
        ..ManifestLimits::default()
    };
    let text = ring(2000);
    let err = Manifest::from_json_with_limits(&text, &limits).unwrap_err();
    assert_eq!(
        err.to_string(),
        "manifest refused: the manifest has 2000 nodes, over the limit of 1024 nodes"
    );
    assert!(err.is_manifest_error());
}

#[test]
fn a_yaml_alias_bomb_is_refused_before_it_expands() {
    // 100^3 values from a few kilobytes (the attack used 260 KB and 20,000 aliases).
    let a = format!("a: &a [{}]\n", vec!["1"; 100].join(", "));
    let b = format!("b: &b [{}]\n", vec!["*a"; 100].join(", "));
    let c = format!("c: [{}]\n", vec!["*b"; 100].join(", "));
    let text = format!(
        "version: v1\nmetadata:\n  name: bomb\n  {}  {}  {}nodes: [{{id: x, node_type: PassThrough}}]\n",
        a, b, c
    );
    let err = bounded(Duration::from_secs(2), move || {
        Manifest::from_yaml(&text).unwrap_err()
    });
    assert!(
        err.to_string().starts_with(
            "manifest refused: the manifest has more values, counting each YAML alias as the values it repeats, over the limit of"
        ),
        "{err}"
    );
}

#[test]
fn deep_nesting_is_refused_before_the_parser_runs() {
    let text = format!(
        "nodes: [{{id: x, node_type: PassThrough, params: {{a: {}1{}}}}}]",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let err = bounded(Duration::from_secs(1), move || {
        Manifest::from_yaml(&text).unwrap_err()
    });
    assert_eq!(
        err.to_string(),
        "manifest refused: the manifest nests 100004 levels deep, over the limit of 32 levels"
    );
    let json = format!("{{\"nodes\": {}{}}}", "[".repeat(5000), "]".repeat(5000));
    let err = bounded(Duration::from_secs(1), move || {
        Manifest::from_json(&json).unwrap_err()
    });
    assert!(err.to_string().contains("nests 5001 levels deep"), "{err}");
}

#[test]
fn a_param_that_is_not_a_finite_number_names_node_and_param() {
    for (value, shown) in [(".inf", ".inf"), ("-.inf", "-.inf"), (".nan", ".nan")] {
        let text = format!(
            "nodes:\n  - id: loud\n    node_type: AudioGainNode\n    params:\n      gain_db: {value}\n"
        );
        let err = Manifest::from_yaml(&text).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidParam { node_id, param, .. } if node_id == "loud" && param == "gain_db"),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "node 'loud' (AudioGainNode): param 'gain_db': {shown} is not a finite number (in the mapping at line 5)"
            )
        );
    }
}

#[test]
fn a_param_given_twice_names_node_and_param() {
    let text = "nodes:\n  - id: c\n    node_type: AudioChunkerNode\n    params:\n      chunk_size: 320\n      chunk_size: 999999\n";
    let err = Manifest::from_yaml(text).unwrap_err();
    assert_eq!(
        err.to_string(),
        "node 'c' (AudioChunkerNode): param 'chunk_size': given twice (in the mapping at line 5)"
    );
    let json = r#"{"nodes": [{"id": "c", "node_type": "AudioChunkerNode", "params": {"chunk_size": 1, "chunk_size": 2}}]}"#;
    let err = Manifest::from_json(json).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("node 'c' (AudioChunkerNode): param 'chunk_size': given twice (line 1)"),
        "{err}"
    );
}

#[test]
fn a_key_given_twice_elsewhere_is_a_parse_error_with_its_line() {
    let text = "nodes:\n  - id: a\n    id: b\n    node_type: PassThrough\n";
    let err = Manifest::from_yaml(text).unwrap_err();
    let message = err.to_string();
    assert_eq!(
        message,
        "manifest is not valid YAML at line 2, column 5: nodes[0]: key 'id' is given twice in one mapping"
    );
}

#[test]
fn ordinary_manifests_are_untouched_by_the_limits() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/pipelines/stream-health.yaml"
    ))
    .expect("example");
    assert!(Manifest::from_yaml(&text).is_ok());
}

#[test]
fn a_dense_dag_within_raised_limits_validates_in_linear_time() {
    // 400 nodes, each feeding every later one: 79,800 connections in 3 MB. De-duplicating
    // edges pairwise (as once done) costs minutes here in a debug build; a linear pass
    // costs about a second.
    let n = 400;
    let nodes: Vec<String> = (0..n)
        .map(|i| format!("{{\"id\": \"node{i}\", \"node_type\": \"PassThrough\"}}"))
        .collect();
    let edges: Vec<String> = (0..n)
        .flat_map(|i| {
            (i + 1..n).map(move |j| format!("{{\"from\": \"node{i}\", \"to\": \"node{j}\"}}"))
        })
        .collect();
    let text = format!(
        "{{\"nodes\": [{}], \"connections\": [{}]}}",
        nodes.join(","),
        edges.join(",")
    );
    let limits = ManifestLimits {
        max_bytes: 4 << 20,
        max_connections: 100_000,
        ..ManifestLimits::default()
    };
    let manifest = bounded(Duration::from_secs(30), move || {
        Manifest::from_json_with_limits(&text, &limits).expect("a dense DAG is valid")
    });
    assert_eq!(manifest.connections.len(), 79_800);
}
