//! The simpler audio nodes through real pipelines, and their params validation.

mod support;

use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::nodes::registry::NodeRegistry;
use support::*;

fn reject(yaml: &str) -> String {
    let manifest = Manifest::from_yaml(yaml).expect("structurally valid");
    NodeRegistry::with_builtins()
        .validate(&manifest)
        .expect_err("params must be rejected")
        .to_string()
}

#[tokio::test]
async fn chunker_output_concatenates_bit_exactly_to_stereo_input() {
    let stereo = interleave(&[noise(0.5, 10_007, 1), noise(0.5, 10_007, 2)]);
    let outputs = run_stream(
        "nodes: [{id: c, node_type: AudioChunkerNode, params: {chunk_size: 256}}]",
        chunks(&stereo, 48_000, 2, 333),
    )
    .await;
    assert_eq!(concat_audio(&outputs), stereo);
    let frames: Vec<usize> = outputs
        .iter()
        .filter_map(|o| o.data.audio_frames())
        .collect();
    assert!(frames[..frames.len() - 1].iter().all(|&f| f == 256));
    assert_eq!(*frames.last().expect("a tail"), 10_007 % 256);
    for (i, o) in outputs.iter().enumerate() {
        let RuntimeData::Audio {
            timestamp_us,
            stream_id,
            ..
        } = &o.data
        else {
            panic!()
        };
        assert_eq!(*timestamp_us, (i as u64 * 256) * 1_000_000 / 48_000);
        assert_eq!(stream_id.as_deref(), Some("audio:0"));
    }
}

#[tokio::test]
async fn gain_scales_by_decibels_and_clips() {
    let outputs = run_stream(
        "nodes: [{id: g, node_type: AudioGainNode, params: {gain_db: 6.0206}}]",
        vec![RuntimeData::audio(vec![0.25f32, -0.25, 0.75], 16_000, 1)],
    )
    .await;
    let out = concat_audio(&outputs);
    assert!((out[0] - 0.5).abs() < 1e-4 && (out[1] + 0.5).abs() < 1e-4);
    assert_eq!(out[2], 1.0, "clipped");

    let outputs = run_stream(
        "nodes: [{id: g, node_type: AudioGainNode, params: {gainDb: -20, clip: false}}]",
        vec![RuntimeData::audio(vec![2.0f32], 16_000, 1)],
    )
    .await;
    assert!((concat_audio(&outputs)[0] - 0.2).abs() < 1e-6);
}

#[tokio::test]
async fn level_of_a_full_scale_sine_and_of_silence() {
    let outputs = run_stream(
        "nodes: [{id: l, node_type: AudioLevelNode}]",
        vec![
            RuntimeData::audio(sine(1000.0, 1.0, 48_000, 0.1), 48_000, 1),
            RuntimeData::audio(vec![0.0f32; 4800], 48_000, 1),
            RuntimeData::audio(sine(1000.0, 0.01, 48_000, 0.1), 48_000, 1),
        ],
    )
    .await;
    let reports = jsons(&outputs);
    assert_eq!(reports[0]["rms_db"], -3.01);
    assert_eq!(reports[0]["peak_db"], 0.0);
    assert_eq!(reports[0]["is_silence"], false);
    assert_eq!(reports[1]["rms_db"], -120.0);
    assert_eq!(reports[1]["is_silence"], true);
    assert_eq!(reports[1]["health"], 0.0);
    assert_eq!(reports[2]["is_low_volume"], true);
    let health = reports[2]["health"].as_f64().expect("health");
    assert!((0.0..1.0).contains(&health) && health > 0.0, "{health}");
}

#[tokio::test]
async fn format_converter_downmixes_and_decodes_pcm() {
    let stereo = interleave(&[vec![1.0f32, 0.5], vec![0.0f32, -0.5]]);
    let outputs = run_stream(
        "nodes: [{id: f, node_type: AudioFormatConverterNode, params: {channels: 1}}]",
        vec![RuntimeData::audio(stereo, 44_100, 2)],
    )
    .await;
    let RuntimeData::Audio {
        samples,
        channels,
        sample_rate,
        ..
    } = &outputs[0].data
    else {
        panic!()
    };
    assert_eq!(
        (&**samples, *channels, *sample_rate),
        (&[0.5f32, 0.0][..], 1, 44_100)
    );

    let pcm: Vec<u8> = [0i16, 16384, -16384, 32767]
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    let outputs = run_stream(
        "nodes: [{id: f, node_type: AudioFormatConverterNode, params: {input_format: s16, input_channels: 2, channels: 1, sample_rate: 8000}}]",
        vec![RuntimeData::Binary(pcm.into())],
    )
    .await;
    let RuntimeData::Audio {
        samples,
        channels,
        sample_rate,
        ..
    } = &outputs[0].data
    else {
        panic!()
    };
    assert_eq!((*channels, *sample_rate), (1, 8000));
    assert_eq!(samples.len(), 2);
    assert!((samples[0] - 0.25).abs() < 1e-4 && (samples[1] - 0.25).abs() < 1e-3);
}

#[tokio::test]
async fn timestamps_advance_through_a_resample_chunk_chain() {
    let outputs = run_stream(
        "nodes:\n  - {id: r, node_type: FastResampleNode, params: {target_rate: 16000}}\n  - {id: c, node_type: AudioChunkerNode, params: {chunk_size: 320}}\n",
        chunks(&sine(440.0, 0.5, 48_000, 1.0), 48_000, 1, 1024),
    )
    .await;
    assert_eq!(outputs.len(), 50);
    for (i, o) in outputs.iter().enumerate() {
        let RuntimeData::Audio { timestamp_us, .. } = &o.data else {
            panic!()
        };
        assert_eq!(*timestamp_us, i as u64 * 20_000, "chunk {i}");
    }
}

#[tokio::test]
async fn non_audio_passes_through_audio_nodes() {
    for node in [
        "AudioChunkerNode",
        "FastResampleNode",
        "AudioFormatConverterNode",
        "AudioGainNode",
        "AudioLevelNode",
        "SilenceDetectorNode",
        "ClippingDetectorNode",
        "ChannelBalanceNode",
        "VADNode",
        "AudioBufferAccumulatorNode",
    ] {
        let outputs = run_stream(
            &format!("nodes: [{{id: n, node_type: {node}}}]"),
            vec![RuntimeData::Text("not audio".into())],
        )
        .await;
        assert_eq!(outputs.len(), 1, "{node}");
        assert_eq!(outputs[0].data.as_text(), Some("not audio"), "{node}");
    }
}

#[test]
fn nonsense_params_are_rejected_with_node_and_param() {
    assert_eq!(
        reject("nodes: [{id: chunk, node_type: AudioChunkerNode, params: {chunk_size: -512}}]"),
        "node 'chunk' (AudioChunkerNode): param 'chunk_size': value -512 is out of range 1..=1048576"
    );
    assert_eq!(
        reject("nodes: [{id: rs, node_type: FastResampleNode, params: {quality: Ultra}}]"),
        "node 'rs' (FastResampleNode): param 'quality': value \"Ultra\" is not one of Low, Medium, High"
    );
    assert_eq!(
        reject("nodes: [{id: rs, node_type: FastResampleNode, params: {target_rate: 0}}]"),
        "node 'rs' (FastResampleNode): param 'target_rate': value 0 is out of range 1000..=768000"
    );
    assert_eq!(
        reject("nodes: [{id: rs, node_type: AudioResampleNode, params: {source_rate: fast}}]"),
        "node 'rs' (AudioResampleNode): param 'source_rate': value \"fast\" is not one of auto"
    );
    assert_eq!(
        reject("nodes: [{id: g, node_type: AudioGainNode, params: {gain_db: loud}}]"),
        "node 'g' (AudioGainNode): param 'gain_db': wrong type: expected number, found string \"loud\""
    );
    assert_eq!(
        reject("nodes: [{id: v, node_type: VADNode, params: {threshold: 1.5}}]"),
        "node 'v' (VADNode): param 'threshold': value 1.5 is out of range 0..=1"
    );
    assert_eq!(
        reject("nodes: [{id: s, node_type: SilenceDetectorNode, params: {sustained_ms: 100}}]"),
        "node 's' (SilenceDetectorNode): param 'sustained_ms': unknown param (known params: silence_threshold_db, sustained_silence_ms, dropout_count_threshold, dropout_window_ms)"
    );
    assert_eq!(
        reject("nodes: [{id: f, node_type: AudioFormatConverterNode, params: {input_format: s24}}]"),
        "node 'f' (AudioFormatConverterNode): param 'input_format': value \"s24\" is not one of s16, f32"
    );
}

#[tokio::test]
async fn malformed_audio_is_a_node_error_naming_the_node() {
    let runner = remotemedia_runtime_core::transport::PipelineRunner::new().expect("runner");
    let manifest = std::sync::Arc::new(
        Manifest::from_yaml("nodes: [{id: level, node_type: AudioLevelNode}]").expect("valid"),
    );
    let err = runner
        .execute_unary(
            manifest,
            remotemedia_runtime_core::transport::TransportData::new(RuntimeData::audio(
                vec![0.0f32; 3],
                16_000,
                2,
            )),
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "node 'level' (AudioLevelNode) failed: invalid audio: 3 samples is not a whole number of 2-channel frames"
    );
}
