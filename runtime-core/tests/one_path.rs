//! One way through the core: the runner is a transport, sessions are driven through the
//! traits, validation runs once, inputs' sequence numbers and metadata reach the outputs
//! they lead to, and every variant of outside data is checked the same way.

use async_trait::async_trait;
use remotemedia_runtime_core::data::{Bytes, PixelFormat, RuntimeData, TensorDtype};
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::nodes::params::NodeParams;
use remotemedia_runtime_core::nodes::registry::{
    BackendSettings, ExecutorBackend, NodeFactory, NodeRegistry, NodeSpec, PythonNodeType,
};
use remotemedia_runtime_core::nodes::schema::ParamsSchema;
use remotemedia_runtime_core::nodes::{NodeExecutor, PassThroughNode, RustNodeExecutor};
use remotemedia_runtime_core::transport::{
    PipelineRunner, PipelineTransport, StreamSession, TransportData,
};
use remotemedia_runtime_core::{Error, Result};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn manifest(yaml: &str) -> Arc<Manifest> {
    Arc::new(Manifest::from_yaml(yaml).expect("valid manifest"))
}

async fn drain(session: &dyn StreamSession) -> Vec<TransportData> {
    let mut outputs = Vec::new();
    while let Some(output) = session.recv_output().await.expect("no failure") {
        outputs.push(output);
    }
    outputs
}

#[tokio::test]
async fn the_runner_is_a_pipeline_transport() {
    let runner = PipelineRunner::new().expect("runner");
    let transport: &dyn PipelineTransport = &runner;
    let calc = manifest("nodes: [{id: calc, node_type: CalculatorNode}]");
    let request = json!({"operation": "multiply", "operands": [6, 7]});
    let output = transport
        .execute(Arc::clone(&calc), TransportData::new(request.into()))
        .await
        .expect("execute");
    assert_eq!(output.data.as_json().expect("json")["result"], 42);
    assert_eq!(output.node_id(), Some("calc"));

    let session = transport.stream(calc).await.expect("stream");
    let request = json!({"operation": "add", "operands": [1, 2]});
    session
        .send_input(TransportData::new(request.into()))
        .await
        .expect("send");
    assert_eq!(drain(&*session).await.len(), 1);
    session.close().await.expect("close");
    assert!(!session.is_active());
    assert_eq!(session.next_output().await.expect("ended"), None);
}

#[tokio::test]
async fn next_output_waits_through_quiescence_until_the_session_ends() {
    let runner = PipelineRunner::new().expect("runner");
    let session: Arc<dyn StreamSession> = runner
        .stream(manifest(
            "nodes: [{id: collect, node_type: TextCollectorNode}]",
        ))
        .await
        .expect("stream")
        .into();
    let reader = {
        let session = Arc::clone(&session);
        tokio::spawn(async move {
            let mut texts = Vec::new();
            while let Some(output) = session.next_output().await.expect("no failure") {
                texts.push(output.data.as_text().expect("text").to_owned());
            }
            texts
        })
    };
    for fragment in ["One. Tw", "o. Thr", "ee"] {
        session
            .send_input(TransportData::new(fragment.into()))
            .await
            .expect("send");
    }
    session.close().await.expect("close");
    let texts = reader.await.expect("reader");
    assert_eq!(texts, ["One.", "Two.", "Three"]);
}

#[tokio::test]
async fn an_inputs_sequence_and_metadata_reach_every_output_it_leads_to() {
    let runner = PipelineRunner::new().expect("runner");
    // Fan-out to two sinks, one through a chunker that emits several items per input.
    let session = runner
        .stream(manifest(
            "nodes:\n  - {id: chunk, node_type: AudioChunkerNode, params: {chunk_size: 100}}\n  - {id: a, node_type: PassThrough}\n  - {id: b, node_type: PassThrough}\nconnections:\n  - {from: chunk, to: a}\n  - {from: chunk, to: b}\n",
        ))
        .await
        .expect("stream");
    for (sequence, utterance) in [(7u64, "u-1"), (8, "u-2")] {
        let input = TransportData::new(RuntimeData::audio(vec![0.1f32; 250], 16_000, 1))
            .with_sequence(sequence)
            .with_metadata("utterance", utterance);
        session.send_input(input).await.expect("send");
    }
    session.close().await.expect("close");
    let outputs = drain(&*session).await;
    // 500 frames: 5 chunks, each to both sinks.
    assert_eq!(outputs.len(), 10, "{outputs:?}");
    for output in &outputs {
        let expected = if output.input_sequence == Some(7) {
            "u-1"
        } else {
            "u-2"
        };
        assert_eq!(output.metadata["utterance"], expected, "{output:?}");
        assert!(matches!(output.node_id(), Some("a" | "b")));
    }
    let from = |seq| {
        outputs
            .iter()
            .filter(|o| o.input_sequence == Some(seq))
            .count()
    };
    assert_eq!(from(7), 4, "two chunks of the first input, twice");
    // The second input completes two chunks and leaves 50 frames, flushed at the end
    // with the origin of the last input.
    assert_eq!(from(8), 6);
    let sequences: Vec<u64> = outputs.iter().filter_map(|o| o.sequence).collect();
    assert_eq!(sequences, (0..10).collect::<Vec<_>>(), "emission order");
}

#[tokio::test]
async fn an_input_without_sequence_or_metadata_leads_to_plain_outputs() {
    let runner = PipelineRunner::new().expect("runner");
    let output = runner
        .execute_unary(
            manifest("nodes: [{id: echo, node_type: PassThrough}]"),
            TransportData::new("hi".into()),
        )
        .await
        .expect("echo");
    assert_eq!(output.input_sequence, None);
    assert!(output.metadata.is_empty());
    assert_eq!(output.sequence, Some(0));
}

/// A factory that counts how often its params schema is consulted.
struct CountingFactory {
    schema_calls: Arc<AtomicUsize>,
}

impl NodeFactory for CountingFactory {
    fn create(&self, params: Value) -> Result<Box<dyn NodeExecutor>> {
        assert_eq!(
            params,
            json!({"level": 3}),
            "normalized params, defaults filled"
        );
        Ok(Box::new(RustNodeExecutor::new(
            "Counted",
            Box::new(PassThroughNode),
        )))
    }
    fn node_type(&self) -> &str {
        "Counted"
    }
    fn params_schema(&self) -> Option<ParamsSchema> {
        self.schema_calls.fetch_add(1, Ordering::SeqCst);
        Some(ParamsSchema::new().integer("level", Some(3), 0, 9, "a level"))
    }
}

#[tokio::test]
async fn validation_runs_once_and_sessions_start_from_its_result() {
    let schema_calls = Arc::new(AtomicUsize::new(0));
    let mut registry = NodeRegistry::new();
    registry.register_rust(Arc::new(CountingFactory {
        schema_calls: Arc::clone(&schema_calls),
    }));
    let runner = PipelineRunner::with_registry(registry).expect("runner");
    let pipeline = Arc::new(
        runner
            .validate(&Manifest::from_yaml("nodes: [{id: n, node_type: Counted}]").expect("parse"))
            .expect("valid"),
    );
    assert_eq!(schema_calls.load(Ordering::SeqCst), 1, "validated once");
    for _ in 0..3 {
        let session = runner
            .create_stream_session(&pipeline)
            .await
            .expect("start");
        session.close().await.expect("close");
    }
    let session = runner
        .stream_pipeline(Arc::clone(&pipeline))
        .await
        .expect("start");
    session.close().await.expect("close");
    assert_eq!(
        schema_calls.load(Ordering::SeqCst),
        1,
        "starting sessions checks nothing again"
    );
}

/// A backend that parses its node block at validation and expects it back at creation.
struct BlockBackend {
    validated: AtomicUsize,
}

#[async_trait]
impl ExecutorBackend for BlockBackend {
    fn name(&self) -> &str {
        "block"
    }
    fn validate_node(
        &self,
        node: &remotemedia_runtime_core::manifest::NodeManifest,
    ) -> Result<Option<BackendSettings>> {
        self.validated.fetch_add(1, Ordering::SeqCst);
        Ok(Some(Arc::new(format!("settings of {}", node.id))))
    }
    async fn create_node(&self, spec: NodeSpec) -> Result<Box<dyn NodeExecutor>> {
        let settings = spec
            .settings::<String>()
            .cloned()
            .ok_or_else(|| Error::Node("create_node got no settings from validation".to_owned()))?;
        assert_eq!(settings, format!("settings of {}", spec.node.id));
        Ok(Box::new(RustNodeExecutor::new(
            spec.node.node_type.clone(),
            Box::new(PassThroughNode),
        )))
    }
}

#[tokio::test]
async fn a_backend_parses_its_block_once_and_gets_the_result_for_every_session() {
    let backend = Arc::new(BlockBackend {
        validated: AtomicUsize::new(0),
    });
    let mut registry = NodeRegistry::with_builtins();
    registry.register_backend(backend.clone());
    registry.register_python_type(PythonNodeType::new("Remote"));
    let runner = PipelineRunner::with_registry(registry).expect("runner");
    let pipeline = Arc::new(
        runner
            .validate(
                &Manifest::from_yaml("nodes: [{id: far, node_type: Remote, executor: block}]")
                    .expect("parse"),
            )
            .expect("valid"),
    );
    for _ in 0..2 {
        let outputs = runner
            .execute_collect(&pipeline, vec![TransportData::new("x".into())])
            .await
            .expect("runs");
        assert_eq!(outputs[0].node_id(), Some("far"));
    }
    assert_eq!(backend.validated.load(Ordering::SeqCst), 1);
}

#[test]
fn typed_params_are_the_one_source_of_defaults() {
    use remotemedia_runtime_core::nodes::audio::{AudioChunkerParams, FastResampleParams};
    let registry = NodeRegistry::with_builtins();
    let schema = registry
        .rust_factory("AudioChunkerNode")
        .and_then(|f| f.params_schema())
        .expect("schema");
    let declared = schema
        .params()
        .iter()
        .find(|p| p.name == "chunk_size")
        .and_then(|p| p.default.clone());
    assert_eq!(
        declared,
        Some(json!(AudioChunkerParams::default().chunk_size))
    );
    // What validation fills in parses into the typed params, default for default.
    let normalized = schema
        .validate("c", "AudioChunkerNode", &Value::Null)
        .expect("valid");
    let parsed =
        AudioChunkerParams::from_normalized("AudioChunkerNode", &normalized).expect("parse");
    assert_eq!(parsed, AudioChunkerParams::default());
    let resample = FastResampleParams::schema()
        .validate(
            "r",
            "FastResampleNode",
            &json!({"sourceRate": 44100, "quality": "high"}),
        )
        .expect("valid");
    let parsed = FastResampleParams::from_normalized("FastResampleNode", &resample).expect("parse");
    assert_eq!(
        parsed.target_rate,
        FastResampleParams::default().target_rate
    );
    assert_eq!(
        parsed.source_rate,
        remotemedia_runtime_core::nodes::audio::RateSetting::Hz(44100)
    );
}

#[test]
fn every_variant_of_outside_data_is_checked_the_same_way() {
    let audio = |samples: Vec<f32>, rate: u32, channels: u16| RuntimeData::Audio {
        samples: samples.into(),
        sample_rate: rate,
        channels,
        stream_id: None,
        timestamp_us: 0,
    };
    let video = |bytes: usize, format: PixelFormat| RuntimeData::Video {
        pixel_data: Bytes::from(vec![0u8; bytes]),
        width: 3,
        height: 3,
        format,
        codec: None,
        frame_number: 0,
        timestamp_us: 0,
        is_keyframe: false,
        stream_id: None,
    };
    let tensor = |bytes: usize, shape: Vec<usize>| RuntimeData::Tensor {
        data: Bytes::from(vec![0u8; bytes]),
        shape,
        dtype: TensorDtype::I16,
    };
    let rejected = |data: RuntimeData| data.check().unwrap_err().to_string();
    assert_eq!(
        rejected(audio(vec![0.0; 4], 4_294_967_295, 1)),
        "invalid data: audio sample rate 4294967295 Hz is outside 1..=768000 Hz"
    );
    assert_eq!(
        rejected(audio(vec![0.0; 4], 16_000, 0)),
        "invalid data: audio has 0 channels, outside 1..=64"
    );
    let with_nan = audio(vec![0.0, f32::NAN], 16_000, 1);
    assert!(with_nan.check().is_ok(), "the structure is fine");
    assert_eq!(
        with_nan.check_samples().unwrap_err().to_string(),
        "invalid data: audio sample 1 is NaN (samples must be finite numbers)"
    );
    assert!(
        with_nan.checked().is_err(),
        "what enters from a client is both"
    );
    let mut long = vec![0.25f32; 10_000];
    long[7_777] = f32::NEG_INFINITY;
    assert_eq!(
        audio(long, 16_000, 1)
            .check_samples()
            .unwrap_err()
            .to_string(),
        "invalid data: audio sample 7777 is -inf (samples must be finite numbers)"
    );
    // 3x3 4:2:0: 9 luma + 2 * (2 * 2) chroma bytes.
    assert!(video(17, PixelFormat::Yuv420p).check().is_ok());
    assert_eq!(
        rejected(video(27, PixelFormat::Rgba32)),
        "invalid data: a 3x3 rgba32 video frame has 36 bytes, got 27"
    );
    assert!(
        video(5, PixelFormat::Encoded).check().is_ok(),
        "a bitstream has any length"
    );
    assert!(tensor(12, vec![2, 3]).check().is_ok());
    assert_eq!(
        rejected(tensor(10, vec![2, 3])),
        "invalid data: tensor of shape [2, 3] and dtype i16 has 12 bytes, got 10"
    );
    assert_eq!(
        rejected(tensor(0, vec![usize::MAX, 4])),
        format!(
            "invalid data: tensor of shape [{}, 4] and dtype i16 is too large",
            usize::MAX
        )
    );
    assert_eq!(
        PixelFormat::parse_named("bgr").unwrap_err().to_string(),
        "invalid data: unknown pixel format 'bgr' (known: yuv420p, nv12, rgb24, rgba32, gray8, encoded)"
    );
    assert_eq!(TensorDtype::parse("float32"), Some(TensorDtype::F32));
    assert!(TensorDtype::parse_named("complex64").is_err());
}

#[test]
fn the_frame_codec_checks_what_it_decodes() {
    use remotemedia_runtime_core::data::codec;
    let frame = codec::encode(&RuntimeData::Video {
        pixel_data: Bytes::from(vec![0u8; 12]),
        width: 2,
        height: 2,
        format: PixelFormat::Rgb24,
        codec: None,
        frame_number: 0,
        timestamp_us: 0,
        is_keyframe: true,
        stream_id: None,
    });
    assert!(codec::decode(Bytes::from(frame.clone())).is_ok());
    // A frame claiming 2x3 pixels with only 12 bytes of payload.
    let text = String::from_utf8_lossy(&frame).replace("\"height\":2", "\"height\":3");
    let forged = text.into_bytes();
    assert_eq!(forged.len(), frame.len());
    let err = codec::decode(Bytes::from(forged)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid data: a 2x3 rgb24 video frame has 18 bytes, got 12"
    );
}

#[tokio::test]
async fn outputs_have_no_node_id_key_in_their_metadata() {
    let runner = PipelineRunner::new().expect("runner");
    let outputs = runner
        .execute_collect(
            manifest("nodes: [{id: echo, node_type: PassThrough}]"),
            vec![TransportData::new("x".into())],
        )
        .await
        .expect("runs");
    assert_eq!(outputs[0].node_id.as_deref(), Some("echo"));
    assert!(
        outputs[0].metadata.is_empty(),
        "the node id is a typed field"
    );
}
