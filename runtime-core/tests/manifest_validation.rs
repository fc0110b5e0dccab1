//! Every way a manifest can be wrong gets its own error, naming the node, param or line.

use remotemedia_runtime_core::manifest::{Manifest, PipelineGraph};
use remotemedia_runtime_core::nodes::registry::NodeRegistry;
use remotemedia_runtime_core::transport::PipelineRunner;
use remotemedia_runtime_core::Error;
use std::sync::Arc;

fn validate_yaml(yaml: &str) -> Result<(), Error> {
    let manifest = Manifest::from_yaml(yaml)?;
    NodeRegistry::with_builtins()
        .validate(&manifest)
        .map(|_| ())
}

fn error_text(yaml: &str) -> String {
    validate_yaml(yaml)
        .expect_err("manifest must be rejected")
        .to_string()
}

#[test]
fn valid_yaml_and_json_manifests_parse_to_the_same_pipeline() {
    let yaml = Manifest::from_yaml(
        r#"
version: v1
metadata: { name: demo }
nodes:
  - id: chunk
    node_type: AudioChunkerNode
    params: { chunk_size: 320 }
  - { id: out, node_type: PassThrough }
connections:
  - { from: chunk, to: out }
"#,
    )
    .expect("valid yaml");
    let json = Manifest::from_json(
        r#"{"version": "v1", "metadata": {"name": "demo"},
            "nodes": [{"id": "chunk", "node_type": "AudioChunkerNode", "params": {"chunk_size": 320}},
                      {"id": "out", "node_type": "PassThrough"}],
            "connections": [{"from": "chunk", "to": "out"}]}"#,
    )
    .expect("valid json");
    assert_eq!(yaml, json);
    NodeRegistry::with_builtins()
        .validate(&yaml)
        .expect("registry accepts it");
}

#[test]
fn json_syntax_error_reports_line_and_column() {
    let err = Manifest::from_json("{\n  \"nodes\": [\n    {\"id\": \"a\",, }\n  ]\n}").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("manifest is not valid JSON at line 3, column"),
        "{text}"
    );
}

#[test]
fn yaml_syntax_error_reports_line() {
    let err = Manifest::from_yaml("nodes:\n  - id: a\n    node_type: [unclosed\n").unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("manifest is not valid YAML at line"),
        "{text}"
    );
}

#[test]
fn missing_nodes_key_is_named() {
    let err = Manifest::from_yaml("version: v1\n").unwrap_err();
    assert!(err.to_string().contains("missing field `nodes`"), "{err}");
}

#[test]
fn misspelt_top_level_key_is_rejected() {
    let err = Manifest::from_yaml(
        "nodes: [{id: a, node_type: PassThrough}]\nconections: [{from: a, to: a}]\n",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `conections`"),
        "{err}"
    );
}

#[test]
fn empty_manifest_is_rejected() {
    assert_eq!(
        error_text("nodes: []"),
        "invalid manifest: the manifest has no nodes"
    );
}

#[test]
fn unsupported_version_is_rejected() {
    assert_eq!(
        error_text("version: v9\nnodes: [{id: a, node_type: PassThrough}]"),
        "invalid manifest: unsupported version 'v9' (expected 'v1')"
    );
}

#[test]
fn unknown_node_type_names_node_and_type() {
    assert_eq!(
        error_text("nodes: [{id: mystery, node_type: NoSuchNode}]"),
        "node 'mystery': unknown node type 'NoSuchNode'"
    );
}

#[test]
fn unknown_node_type_close_to_a_real_one_gets_a_suggestion() {
    assert_eq!(
        error_text("nodes: [{id: calc, node_type: CalculatorNod}]"),
        "node 'calc': unknown node type 'CalculatorNod' (did you mean 'CalculatorNode'?)"
    );
}

#[test]
fn duplicate_node_id_names_both_positions() {
    assert_eq!(
        error_text(
            "nodes:\n  - {id: a, node_type: PassThrough}\n  - {id: b, node_type: PassThrough}\n  - {id: a, node_type: PassThrough}\n"
        ),
        "invalid manifest: duplicate node id 'a' (nodes[0] and nodes[2])"
    );
}

#[test]
fn edge_to_unknown_node_names_the_connection() {
    assert_eq!(
        error_text(
            "nodes: [{id: a, node_type: PassThrough}, {id: b, node_type: PassThrough}]\nconnections: [{from: a, to: b}, {from: b, to: c}]\n"
        ),
        "invalid manifest: connections[1].to refers to unknown node 'c' (known nodes: a, b)"
    );
}

#[test]
fn edge_from_unknown_node_names_the_connection() {
    assert_eq!(
        error_text("nodes: [{id: a, node_type: PassThrough}]\nconnections: [{from: x, to: a}]\n"),
        "invalid manifest: connections[0].from refers to unknown node 'x' (known nodes: a)"
    );
}

#[test]
fn cycle_names_the_nodes_on_it() {
    assert_eq!(
        error_text(
            "nodes: [{id: a, node_type: PassThrough}, {id: b, node_type: PassThrough}, {id: c, node_type: PassThrough}]\nconnections: [{from: a, to: b}, {from: b, to: c}, {from: c, to: a}]\n"
        ),
        "invalid manifest: connections form a cycle: a -> b -> c -> a"
    );
}

#[test]
fn self_loop_is_a_cycle() {
    assert_eq!(
        error_text("nodes: [{id: a, node_type: PassThrough}]\nconnections: [{from: a, to: a}]\n"),
        "invalid manifest: connections form a cycle: a -> a"
    );
}

#[test]
fn param_of_wrong_type_names_node_param_and_types() {
    assert_eq!(
        error_text("nodes: [{id: chunker, node_type: AudioChunkerNode, params: {chunk_size: big}}]"),
        "node 'chunker' (AudioChunkerNode): param 'chunk_size': wrong type: expected integer, found string \"big\""
    );
}

#[test]
fn param_out_of_range_names_node_param_and_range() {
    assert_eq!(
        error_text("nodes: [{id: chunker, node_type: AudioChunkerNode, params: {chunk_size: -5}}]"),
        "node 'chunker' (AudioChunkerNode): param 'chunk_size': value -5 is out of range 1..=1048576"
    );
    assert_eq!(
        error_text("nodes: [{id: chunker, node_type: AudioChunkerNode, params: {chunk_size: 0}}]"),
        "node 'chunker' (AudioChunkerNode): param 'chunk_size': value 0 is out of range 1..=1048576"
    );
}

#[test]
fn unknown_param_names_node_param_and_known_params() {
    assert_eq!(
        error_text("nodes: [{id: chunker, node_type: AudioChunkerNode, params: {chunk: 5}}]"),
        "node 'chunker' (AudioChunkerNode): param 'chunk': unknown param (known params: chunk_size)"
    );
    assert_eq!(
        error_text("nodes: [{id: p, node_type: PassThrough, params: {x: 1}}]"),
        "node 'p' (PassThrough): param 'x': unknown param (this node takes no params)"
    );
}

#[test]
fn camel_case_params_are_accepted() {
    validate_yaml("nodes: [{id: c, node_type: AudioChunkerNode, params: {chunkSize: 64}}]")
        .expect("camelCase params are accepted");
}

#[test]
fn params_that_are_not_a_mapping_are_rejected() {
    assert_eq!(
        error_text("nodes: [{id: c, node_type: AudioChunkerNode, params: [1, 2]}]"),
        "invalid manifest: node 'c': params must be a mapping of names to values, found list [1,2]"
    );
}

#[test]
fn unknown_node_key_is_rejected() {
    assert_eq!(
        error_text("nodes: [{id: c, node_type: PassThrough, parms: {}}]"),
        "invalid manifest: node 'c': unknown key 'parms' (node keys: id, node_type, params, executor, docker, multiprocess)"
    );
}

#[test]
fn empty_node_id_is_rejected() {
    assert_eq!(
        error_text("nodes: [{id: '', node_type: PassThrough}]"),
        "invalid manifest: nodes[0] (PassThrough) has an empty id"
    );
}

#[test]
fn unregistered_executor_names_node_and_executor() {
    let text = error_text("nodes: [{id: py, node_type: SomePythonNode, executor: multiprocess}]");
    assert!(
        text.starts_with("node 'py' (SomePythonNode) needs the 'multiprocess' executor, which is not available here (available: native)"),
        "{text}"
    );
}

#[test]
fn multiprocess_block_implies_the_multiprocess_executor() {
    let manifest = Manifest::from_yaml(
        "nodes: [{id: asr, node_type: MyAsr, multiprocess: {python_executable: /usr/bin/python3}}]",
    )
    .expect("valid structure");
    assert_eq!(manifest.nodes[0].requested_executor(), Some("multiprocess"));
}

#[test]
fn multiprocess_block_with_conflicting_executor_or_docker_is_rejected() {
    assert_eq!(
        error_text("nodes: [{id: m, node_type: X, executor: docker, multiprocess: {}}]"),
        "invalid manifest: node 'm': has a multiprocess block but executor is 'docker'"
    );
    assert_eq!(
        error_text("nodes: [{id: m, node_type: X, docker: {}, multiprocess: {}}]"),
        "invalid manifest: node 'm': has both a docker and a multiprocess block; a node runs in one place"
    );
}

#[test]
fn docker_block_with_conflicting_executor_is_rejected() {
    assert_eq!(
        error_text("nodes: [{id: d, node_type: X, executor: multiprocess, docker: {python_version: '3.11'}}]"),
        "invalid manifest: node 'd': has a docker block but executor is 'multiprocess'"
    );
}

#[tokio::test]
async fn runner_rejects_invalid_manifest_before_any_session_starts() {
    let runner = PipelineRunner::new().expect("runner");
    let manifest = Arc::new(
        Manifest::from_yaml(
            "nodes: [{id: c, node_type: AudioChunkerNode, params: {chunk_size: 0}}]",
        )
        .expect("structurally valid"),
    );
    let err = runner.create_stream_session(manifest).await.unwrap_err();
    assert!(err.is_manifest_error());
    assert_eq!(err.node_id(), Some("c"));
    assert!(runner.sessions().is_empty());
}

#[test]
fn manifest_file_errors_name_the_path() {
    let err = Manifest::from_file("/nonexistent/pipeline.yaml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read manifest /nonexistent/pipeline.yaml:"),
        "{err}"
    );
}

/// The YAML blocks of docs/MANIFEST.md, in order, without the indentation of their fence
/// (the chain examples sit inside a list item).
fn manifest_guide_examples() -> Vec<String> {
    let guide = include_str!("../../docs/MANIFEST.md");
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for line in guide.lines() {
        let indent = line.len() - line.trim_start().len();
        match (&mut current, line.trim_start()) {
            (None, "```yaml") => current = Some((indent, String::new())),
            (Some((_, block)), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some((fence, block)), _) => {
                block.push_str(line.get(*fence..).unwrap_or(""));
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_manifest_guide_examples_validate_and_the_implicit_chain_is_the_listed_order() {
    let examples = manifest_guide_examples();
    assert_eq!(examples.len(), 3, "{examples:?}");
    for example in &examples {
        validate_yaml(example).unwrap_or_else(|e| panic!("{e}\n{example}"));
    }
    let implicit =
        PipelineGraph::build(&Manifest::from_yaml(&examples[1]).expect("parses")).expect("graph");
    let explicit =
        PipelineGraph::build(&Manifest::from_yaml(&examples[2]).expect("parses")).expect("graph");
    assert_eq!(implicit.downstream, vec![vec![1], vec![2], vec![]]);
    assert_eq!(implicit.downstream, explicit.downstream);
    assert_eq!((implicit.sources, implicit.sinks), (vec![0], vec![2]));
}

#[test]
fn an_edge_given_twice_counts_once() {
    let manifest = Manifest::from_yaml(
        "nodes: [{id: a, node_type: PassThrough}, {id: b, node_type: PassThrough}]\nconnections: [{from: a, to: b}, {from: a, to: b}]",
    )
    .expect("parses");
    let graph = PipelineGraph::build(&manifest).expect("graph");
    assert_eq!(graph.downstream, vec![vec![1], vec![]]);
    assert_eq!(graph.upstream_count, vec![0, 1]);
}
