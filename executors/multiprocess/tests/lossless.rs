//! Every data type crosses to a Python worker and back unchanged, at any size, and audio
//! reaches Python as a view of the shared memory.

mod support;

use bytes::Bytes;
use remotemedia_runtime_core::data::{PixelFormat, RuntimeData, TensorDtype};
use serde_json::json;
use support::{item, manifest, text, Harness};

fn every_variant() -> Vec<RuntimeData> {
    vec![
        RuntimeData::Audio {
            samples: vec![0.25f32, -1.0, 0.5, 0.0, f32::MIN_POSITIVE, 1e-30].into(),
            sample_rate: 48_000,
            channels: 2,
            stream_id: Some("audio:3".into()),
            timestamp_us: 1_234_567,
        },
        RuntimeData::Video {
            pixel_data: Bytes::from((0..48u8).collect::<Vec<_>>()),
            width: 4,
            height: 4,
            format: PixelFormat::Rgb24,
            codec: None,
            frame_number: 7,
            timestamp_us: 40_000,
            is_keyframe: true,
            stream_id: Some("video:0".into()),
        },
        RuntimeData::Text("héllo, wörld — ✓".into()),
        RuntimeData::Json(
            json!({"a": [1, 2.5, null, true], "b": {"c": "d"}, "big": 9007199254740993u64}),
        ),
        RuntimeData::Binary(Bytes::from_static(&[0, 1, 2, 254, 255])),
        RuntimeData::Tensor {
            data: Bytes::from((0..24u8).collect::<Vec<_>>()),
            shape: vec![2, 3],
            dtype: TensorDtype::I32,
        },
        RuntimeData::Tensor {
            data: Bytes::from(vec![1u8, 0, 1]),
            shape: vec![3],
            dtype: TensorDtype::Bool,
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_returns_every_variant_unchanged() {
    let harness = Harness::new();
    let pipeline = manifest("nodes: [{id: echo, node_type: EchoNode}]");
    let inputs = every_variant();
    let outputs = harness
        .runner
        .execute_collect(pipeline, inputs.iter().cloned().map(item).collect())
        .await
        .expect("echo pipeline");
    let got: Vec<RuntimeData> = outputs.into_iter().map(|o| o.data).collect();
    assert_eq!(got, inputs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_frame_round_trips() {
    let harness = Harness::new();
    let pipeline = manifest("nodes: [{id: echo, node_type: EchoNode}]");
    let frames = 16 * 1024 * 1024; // 64 MiB of f32
    let samples: Vec<f32> = (0..frames).map(|i| (i % 1000) as f32 / 1000.0).collect();
    let audio = RuntimeData::audio(samples, 16_000, 1);
    let blob = RuntimeData::Binary(Bytes::from(vec![0xA5u8; 64 << 20]));
    let outputs = harness
        .runner
        .execute_collect(pipeline, vec![item(audio.clone()), item(blob.clone())])
        .await
        .expect("large frames");
    assert_eq!(outputs.len(), 2);
    assert_eq!(outputs[0].data, audio);
    assert_eq!(outputs[1].data, blob);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computed_audio_comes_back_with_its_new_samples() {
    let harness = Harness::new();
    let pipeline = manifest(
        "nodes: [{id: scale, node_type: Scales, executor: multiprocess, params: {factor: 2.0}}]",
    );
    let input = RuntimeData::Audio {
        samples: vec![0.25f32; 100_000].into(),
        sample_rate: 16_000,
        channels: 1,
        stream_id: Some("mic".into()),
        timestamp_us: 20_000,
    };
    let output = harness
        .runner
        .execute_unary(pipeline, item(input))
        .await
        .expect("scaled audio");
    match output.data {
        RuntimeData::Audio {
            samples,
            stream_id,
            timestamp_us,
            ..
        } => {
            assert!(samples.iter().all(|&s| s == 0.5));
            assert_eq!(stream_id.as_deref(), Some("mic"));
            assert_eq!(timestamp_us, 20_000);
        }
        other => panic!("expected audio, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_reaches_python_as_a_read_only_view_of_shared_memory() {
    let harness = Harness::new();
    let pipeline =
        manifest("nodes: [{id: inspect, node_type: InspectAudio, executor: multiprocess}]");
    let audio = RuntimeData::audio(vec![0.5f32; 4096], 16_000, 1);
    let output = harness
        .runner
        .execute_unary(pipeline, item(audio))
        .await
        .expect("inspection");
    let report = output.data.as_json().expect("json report").clone();
    assert_eq!(report["type"], "ndarray");
    assert_eq!(report["dtype"], "float32");
    assert_eq!(report["owndata"], false, "{report}");
    assert_eq!(report["writeable"], false, "{report}");
    let mapping = report["mapping"].as_str().unwrap_or_default();
    assert!(
        mapping.starts_with("/dev/shm/"),
        "the samples live in {mapping:?}, not in shared memory: {report}"
    );
    assert_eq!(report["sum"], 2048.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_keeps_its_inputs_does_not_exhaust_shared_memory() {
    let harness = Harness::new();
    let pipeline = manifest("nodes: [{id: keep, node_type: KeepsInputs, executor: multiprocess}]");
    let session = harness
        .runner
        .create_stream_session(pipeline)
        .await
        .expect("session");
    for i in 0..100 {
        session
            .send_input(item(RuntimeData::audio(vec![1.0f32; 320], 16_000, 1)))
            .await
            .expect("send");
        let out = session
            .recv_output()
            .await
            .expect("recv")
            .expect("an output");
        assert_eq!(out.data.as_json(), Some(&json!(f64::from(i + 1))));
    }
    session.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_outputs_per_input_arrive_in_order() {
    let harness = Harness::new();
    let pipeline = manifest("nodes: [{id: fan, node_type: Fans, executor: multiprocess}]");
    let outputs = harness
        .runner
        .execute_unary_collect(pipeline, item(RuntimeData::Json(json!({"n": 1000}))))
        .await
        .expect("fan out");
    assert_eq!(outputs.len(), 1000);
    for (i, out) in outputs.iter().enumerate() {
        assert_eq!(out.data.as_json(), Some(&json!({"i": i})));
        assert_eq!(out.node_id(), Some("fan"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_nodes_mix_with_native_nodes() {
    let harness = Harness::new();
    let pipeline = manifest(
        r#"
nodes:
  - { id: collect, node_type: TextCollectorNode }
  - { id: upper, node_type: AsyncUpper, executor: multiprocess, params: { prefix: "> " } }
  - { id: echo, node_type: EchoNode }
"#,
    );
    let outputs = harness
        .runner
        .execute_collect(
            pipeline,
            vec![text("hello wor"), text("ld. how are"), text(" you")],
        )
        .await
        .expect("mixed pipeline");
    let got: Vec<&str> = outputs.iter().filter_map(|o| o.data.as_text()).collect();
    assert_eq!(got, vec!["> HELLO WORLD.", "> HOW ARE YOU"]);
    assert!(outputs.iter().all(|o| o.node_id() == Some("echo")));
}
