//! The executor's behaviour: graph shapes, quiescence, end of stream, failures, isolation,
//! backpressure, metrics.

use async_trait::async_trait;
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::nodes::registry::{FnNodeFactory, NodeRegistry};
use remotemedia_runtime_core::nodes::{Node, NodeContext, NodeExecutor, Outputs};
use remotemedia_runtime_core::transport::{ExecutorConfig, PipelineRunner, TransportData};
use remotemedia_runtime_core::{register_rust_node_default, Error, Result};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Sleeps 20 ms per input (async), then passes it on.
struct SlowNode;

#[async_trait]
impl NodeExecutor for SlowNode {
    fn node_type(&self) -> &str {
        "SlowNode"
    }
    async fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        outputs.push(input);
        Ok(())
    }
}

/// Never finishes processing.
struct HangNode;

static HANG_CLEANUPS: AtomicUsize = AtomicUsize::new(0);

#[async_trait]
impl NodeExecutor for HangNode {
    fn node_type(&self) -> &str {
        "HangNode"
    }
    async fn process(&mut self, _input: RuntimeData, _outputs: &mut Outputs) -> Result<()> {
        std::future::pending::<()>().await;
        Ok(())
    }
    async fn cleanup(&mut self) -> Result<()> {
        HANG_CLEANUPS.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Fails to initialize.
struct BrokenInitNode;

#[async_trait]
impl NodeExecutor for BrokenInitNode {
    fn node_type(&self) -> &str {
        "BrokenInitNode"
    }
    async fn initialize(&mut self, ctx: &NodeContext) -> Result<()> {
        Err(Error::node(format!("model for {} not found", ctx.node_id)))
    }
    async fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        outputs.push(input);
        Ok(())
    }
}

/// Panics on the text "boom".
#[derive(Default)]
struct PanicNode;

impl Node for PanicNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        if input.as_text() == Some("boom") {
            panic!("exploded on purpose");
        }
        outputs.push(input);
        Ok(())
    }
}

/// Emits nothing.
#[derive(Default)]
struct SinkHoleNode;

impl Node for SinkHoleNode {
    fn process(&mut self, _input: RuntimeData, _outputs: &mut Outputs) -> Result<()> {
        Ok(())
    }
}

fn registry() -> NodeRegistry {
    let mut registry = NodeRegistry::with_builtins();
    registry.register_rust(Arc::new(FnNodeFactory::new("SlowNode", None, |_| {
        Ok(Box::new(SlowNode) as Box<dyn NodeExecutor>)
    })));
    registry.register_rust(Arc::new(FnNodeFactory::new("HangNode", None, |_| {
        Ok(Box::new(HangNode) as Box<dyn NodeExecutor>)
    })));
    registry.register_rust(Arc::new(FnNodeFactory::new("BrokenInitNode", None, |_| {
        Ok(Box::new(BrokenInitNode) as Box<dyn NodeExecutor>)
    })));
    register_rust_node_default!(registry, PanicNode);
    register_rust_node_default!(registry, SinkHoleNode);
    registry
}

fn runner() -> PipelineRunner {
    PipelineRunner::with_registry(registry()).expect("runner")
}

fn manifest(yaml: &str) -> Arc<Manifest> {
    Arc::new(Manifest::from_yaml(yaml).expect("test manifest is valid"))
}

fn text(t: &str) -> TransportData {
    TransportData::new(RuntimeData::Text(t.to_owned()))
}

fn texts(outputs: &[TransportData]) -> Vec<(String, String)> {
    outputs
        .iter()
        .map(|o| {
            (
                o.node_id().unwrap_or("?").to_owned(),
                o.data.as_text().unwrap_or("<not text>").to_owned(),
            )
        })
        .collect()
}

const DIAMOND: &str = r#"
nodes:
  - {id: a, node_type: PassThrough}
  - {id: b, node_type: PassThrough}
  - {id: c, node_type: PassThrough}
  - {id: d, node_type: PassThrough}
connections:
  - {from: a, to: b}
  - {from: a, to: c}
  - {from: b, to: d}
  - {from: c, to: d}
"#;

#[tokio::test]
async fn fan_out_then_fan_in_delivers_one_copy_per_path() {
    let outputs = runner()
        .execute_unary_collect(manifest(DIAMOND), text("x"))
        .await
        .expect("runs");
    assert_eq!(
        texts(&outputs),
        [("d".into(), "x".into()), ("d".into(), "x".into())]
    );
}

#[tokio::test]
async fn every_sink_output_names_its_node() {
    let outputs = runner()
        .execute_unary_collect(
            manifest(
                "nodes: [{id: src, node_type: PassThrough}, {id: left, node_type: PassThrough}, {id: right, node_type: PassThrough}]\nconnections: [{from: src, to: left}, {from: src, to: right}]",
            ),
            text("x"),
        )
        .await
        .expect("runs");
    let mut nodes: Vec<String> = texts(&outputs).into_iter().map(|(n, _)| n).collect();
    nodes.sort();
    assert_eq!(nodes, ["left", "right"]);
}

#[tokio::test]
async fn fan_out_shares_audio_buffers_instead_of_copying() {
    let samples: Vec<f32> = vec![0.5; 48_000];
    let ptr = samples.as_ptr();
    let outputs = runner()
        .execute_unary_collect(
            manifest(DIAMOND),
            TransportData::new(RuntimeData::audio(samples, 48_000, 1)),
        )
        .await
        .expect("runs");
    assert_eq!(outputs.len(), 2);
    for output in outputs {
        let RuntimeData::Audio { samples, .. } = output.data else {
            panic!("audio expected");
        };
        assert_eq!(samples.as_ptr(), ptr, "the buffer was copied");
    }
}

#[tokio::test]
async fn recv_output_waits_for_inputs_still_in_flight() {
    let session = runner()
        .create_stream_session(manifest("nodes: [{id: slow, node_type: SlowNode}]"))
        .await
        .expect("session");
    session.send_input(text("1")).await.expect("send");
    session.send_input(text("2")).await.expect("send");
    let mut got = Vec::new();
    while let Some(output) = session.recv_output().await.expect("recv") {
        got.push(output);
    }
    assert_eq!(
        texts(&got),
        [("slow".into(), "1".into()), ("slow".into(), "2".into())]
    );
    assert!(session.is_active());
}

#[tokio::test]
async fn recv_output_returns_none_promptly_when_nothing_was_sent() {
    let session = runner()
        .create_stream_session(manifest("nodes: [{id: p, node_type: PassThrough}]"))
        .await
        .expect("session");
    let none = tokio::time::timeout(Duration::from_secs(1), session.recv_output())
        .await
        .expect("does not hang");
    assert!(none.expect("no error").is_none());
}

#[tokio::test]
async fn close_flushes_buffering_nodes_and_their_output_stays_receivable() {
    let session = runner()
        .create_stream_session(manifest(
            "nodes: [{id: collect, node_type: TextCollectorNode}, {id: out, node_type: PassThrough}]",
        ))
        .await
        .expect("session");
    session.send_input(text("Hello wor")).await.expect("send");
    assert!(session.recv_output().await.expect("recv").is_none());
    session
        .send_input(text("ld. And then"))
        .await
        .expect("send");
    let first = session
        .recv_output()
        .await
        .expect("recv")
        .expect("a sentence");
    assert_eq!(first.data.as_text(), Some("Hello world."));
    assert!(session.recv_output().await.expect("recv").is_none());

    session.close().await.expect("close");
    assert!(!session.is_active());
    let tail = session
        .recv_output()
        .await
        .expect("recv")
        .expect("the flushed tail");
    assert_eq!(tail.data.as_text(), Some("And then"));
    assert_eq!(tail.node_id(), Some("out"));
    assert!(session.recv_output().await.expect("recv").is_none());
}

#[tokio::test]
async fn send_after_close_is_an_error_and_close_is_idempotent() {
    let session = runner()
        .create_stream_session(manifest("nodes: [{id: p, node_type: PassThrough}]"))
        .await
        .expect("session");
    session.close().await.expect("close");
    session.close().await.expect("second close");
    let err = session.send_input(text("late")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "session {} is closed: input was closed with close()",
            session.session_id()
        )
    );
}

#[tokio::test]
async fn node_error_names_the_node_and_leaves_a_parallel_session_working() {
    let runner = runner();
    let calc = manifest("nodes: [{id: calc, node_type: CalculatorNode}]");
    let healthy = runner
        .create_stream_session(Arc::clone(&calc))
        .await
        .expect("session");
    let failing = runner
        .create_stream_session(Arc::clone(&calc))
        .await
        .expect("session");

    let divide_by_zero = serde_json::json!({"operation": "divide", "operands": [1, 0]});
    failing
        .send_input(TransportData::new(RuntimeData::Json(divide_by_zero)))
        .await
        .expect("send is accepted");
    let err = failing.recv_output().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "node 'calc' (CalculatorNode) failed: division by zero"
    );
    assert_eq!(err.node_id(), Some("calc"));
    assert!(!failing.is_active());
    assert_eq!(
        failing
            .send_input(text("more"))
            .await
            .unwrap_err()
            .to_string(),
        err.to_string()
    );

    let add = serde_json::json!({"operation": "add", "operands": [2, 2]});
    healthy
        .send_input(TransportData::new(RuntimeData::Json(add)))
        .await
        .expect("healthy session accepts input");
    let out = healthy
        .recv_output()
        .await
        .expect("no error")
        .expect("output");
    assert_eq!(out.data.as_json().expect("json")["result"], 4);
}

#[tokio::test]
async fn node_panic_is_caught_and_reported_with_the_node_id() {
    let runner = runner();
    let err = runner
        .execute_unary(
            manifest(
                "nodes: [{id: first, node_type: PassThrough}, {id: bomb, node_type: PanicNode}]",
            ),
            text("boom"),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "node 'bomb' (PanicNode) failed (panicked): exploded on purpose"
    );
    // The runner keeps working.
    let ok = runner
        .execute_unary(
            manifest("nodes: [{id: bomb, node_type: PanicNode}]"),
            text("fine"),
        )
        .await
        .expect("next call works");
    assert_eq!(ok.data.as_text(), Some("fine"));
}

#[tokio::test]
async fn initialization_failure_names_the_node() {
    let err = runner()
        .create_stream_session(manifest(
            "nodes: [{id: ok, node_type: PassThrough}, {id: model, node_type: BrokenInitNode}]",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "node 'model' (BrokenInitNode) failed to start: model for model not found"
    );
}

#[tokio::test]
async fn execute_unary_with_no_output_returns_promptly() {
    let err = tokio::time::timeout(
        Duration::from_secs(2),
        runner().execute_unary(
            manifest("nodes: [{id: hole, node_type: SinkHoleNode}]"),
            text("x"),
        ),
    )
    .await
    .expect("does not hang")
    .unwrap_err();
    assert!(matches!(err, Error::NoOutput), "{err}");
}

#[tokio::test]
async fn execute_unary_with_several_outputs_points_to_the_collecting_form() {
    let m = manifest(DIAMOND);
    let err = runner()
        .execute_unary(Arc::clone(&m), text("x"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pipeline produced 2 outputs (from nodes: d); execute_unary returns exactly one, use execute_unary_collect to receive all of them"
    );
    let all = runner()
        .execute_unary_collect(m, text("x"))
        .await
        .expect("collects");
    assert_eq!(all.len(), 2);
}

#[tokio::test]
async fn unary_counts_outputs_produced_at_flush() {
    let out = runner()
        .execute_unary(
            manifest("nodes: [{id: collect, node_type: TextCollectorNode}]"),
            text("no terminator here"),
        )
        .await
        .expect("flush output is the result");
    assert_eq!(out.data.as_text(), Some("no terminator here"));
}

#[tokio::test]
async fn hundred_concurrent_sessions_stay_isolated() {
    let runner = runner();
    let m = manifest(
        "nodes: [{id: collect, node_type: TextCollectorNode}, {id: chunk, node_type: AudioChunkerNode, params: {chunk_size: 7}}]",
    );
    let all_open = Arc::new(tokio::sync::Barrier::new(101));
    let mut handles = Vec::new();
    for i in 0..100 {
        let runner = runner.clone();
        let m = Arc::clone(&m);
        let all_open = Arc::clone(&all_open);
        handles.push(tokio::spawn(async move {
            let session = runner.create_stream_session(m).await.expect("session");
            all_open.wait().await;
            let mut got = Vec::new();
            for part in [
                format!("session {i} "),
                "says hi. ".to_owned(),
                format!("bye {i}"),
            ] {
                session.send_input(text(&part)).await.expect("send");
                while let Some(o) = session.recv_output().await.expect("recv") {
                    got.push(o.data.as_text().unwrap_or_default().to_owned());
                }
                tokio::task::yield_now().await;
            }
            session.close().await.expect("close");
            while let Some(o) = session.recv_output().await.expect("recv") {
                got.push(o.data.as_text().unwrap_or_default().to_owned());
            }
            (i, got)
        }));
    }
    all_open.wait().await;
    assert_eq!(runner.sessions().len(), 100);
    for handle in handles {
        let (i, got) = handle.await.expect("task");
        assert_eq!(got, [format!("session {i} says hi."), format!("bye {i}")]);
    }
    assert!(runner.sessions().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_delivers_every_item_in_order() {
    // Capacity 2: the sender is held back by the slow node; nothing may be dropped.
    let runner = runner().with_config(ExecutorConfig::default().with_channel_capacity(2));
    let session = Arc::new(
        runner
            .create_stream_session(manifest(
                "nodes: [{id: fast, node_type: PassThrough}, {id: slow, node_type: SlowNode}]",
            ))
            .await
            .expect("session"),
    );
    let sender = {
        let session = Arc::clone(&session);
        tokio::spawn(async move {
            for i in 0..30 {
                session
                    .send_input(text(&i.to_string()))
                    .await
                    .expect("send");
            }
            session.close().await.expect("close");
        })
    };
    let mut got = Vec::new();
    while let Some(o) = session.next_output().await.expect("recv") {
        got.push(o.data.as_text().unwrap_or_default().to_owned());
    }
    sender.await.expect("sender");
    let expected: Vec<String> = (0..30).map(|i| i.to_string()).collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn dropping_a_session_cancels_a_hung_node() {
    let runner = runner();
    let before = HANG_CLEANUPS.load(Ordering::SeqCst);
    let session = runner
        .create_stream_session(manifest("nodes: [{id: hang, node_type: HangNode}]"))
        .await
        .expect("session");
    session.send_input(text("x")).await.expect("send");
    assert!(
        tokio::time::timeout(Duration::from_millis(100), session.recv_output())
            .await
            .is_err(),
        "a hung node keeps recv_output waiting"
    );
    drop(session);
    for _ in 0..100 {
        if runner.sessions().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        runner.sessions().is_empty(),
        "the hung session was torn down"
    );
    assert_eq!(
        HANG_CLEANUPS.load(Ordering::SeqCst),
        before + 1,
        "cleanup ran"
    );
}

#[tokio::test]
async fn metrics_count_processed_items_per_node() {
    let session = runner()
        .create_stream_session(manifest(
            "nodes: [{id: chunk, node_type: AudioChunkerNode, params: {chunk_size: 100}}, {id: out, node_type: PassThrough}]",
        ))
        .await
        .expect("session");
    for _ in 0..3 {
        session
            .send_input(TransportData::new(RuntimeData::audio(
                vec![0.0f32; 250],
                16_000,
                1,
            )))
            .await
            .expect("send");
        while session.recv_output().await.expect("recv").is_some() {}
    }
    let metrics = session.metrics();
    assert_eq!(metrics[0].node_id, "chunk");
    assert_eq!(metrics[0].processed, 3);
    assert_eq!(metrics[0].emitted, 7);
    assert_eq!(metrics[1].processed, 7);
    assert!(metrics[1].latency_max_ns > 0);
    assert_eq!(metrics[1].errors, 0);
}

#[test]
fn pipelines_run_on_a_single_threaded_runtime() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let outputs = runner()
            .execute_unary_collect(manifest(DIAMOND), text("x"))
            .await
            .expect("runs");
        assert_eq!(outputs.len(), 2);
    });
}

#[test]
fn running_outside_a_tokio_runtime_is_a_clear_error() {
    let runner = runner();
    let err = futures_lite_block_on(
        runner.create_stream_session(manifest("nodes: [{id: p, node_type: PassThrough}]")),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("pipelines must run inside a tokio runtime"),
        "{err}"
    );
}

/// Polls a future to completion without a tokio runtime.
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}

/// An in-process stand-in for an out-of-process backend: builds `PassThrough` instances
/// and records what it was asked for.
struct RecordingBackend {
    created: std::sync::Mutex<Vec<(String, String, String)>>,
}

#[async_trait]
impl remotemedia_runtime_core::nodes::registry::ExecutorBackend for RecordingBackend {
    fn name(&self) -> &str {
        "multiprocess"
    }
    async fn create_node(
        &self,
        spec: remotemedia_runtime_core::nodes::registry::NodeSpec,
    ) -> Result<Box<dyn NodeExecutor>> {
        self.created.lock().expect("lock").push((
            spec.session_id.clone(),
            spec.node.id.clone(),
            spec.node.node_type.clone(),
        ));
        Ok(Box::new(
            remotemedia_runtime_core::nodes::RustNodeExecutor::new(
                spec.node.node_type,
                Box::new(remotemedia_runtime_core::nodes::PassThroughNode),
            ),
        ))
    }
}

#[tokio::test]
async fn python_node_types_are_created_by_the_registered_backend() {
    let backend = Arc::new(RecordingBackend {
        created: std::sync::Mutex::new(Vec::new()),
    });
    let mut registry = registry();
    remotemedia_runtime_core::register_python_node!(registry, "WhisperNode");
    registry.register_backend(backend.clone());
    let runner = PipelineRunner::with_registry(registry).expect("runner");
    let out = runner
        .execute_unary(
            manifest(
                "nodes: [{id: pre, node_type: PassThrough}, {id: asr, node_type: WhisperNode}, {id: explicit, node_type: AnyClass, executor: multiprocess}]",
            ),
            text("hi"),
        )
        .await
        .expect("runs");
    assert_eq!(out.node_id(), Some("explicit"));
    let created = backend.created.lock().expect("lock").clone();
    let ids: Vec<(&str, &str)> = created
        .iter()
        .map(|(_, id, t)| (id.as_str(), t.as_str()))
        .collect();
    assert_eq!(ids, [("asr", "WhisperNode"), ("explicit", "AnyClass")]);
    assert_eq!(
        created[0].0, created[1].0,
        "one session id for the whole pipeline"
    );
}
