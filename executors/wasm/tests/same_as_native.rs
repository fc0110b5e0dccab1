//! Every built-in audio and video node gives the same outputs in the WASM engine (under Node.js) as
//! natively, for the same input sent in the same chunks: the same items from the same
//! nodes, the same rates, channels and timestamps, the same JSON; samples bit-exact or
//! within 1e-6 (wasm32 has no hardware `sin`/`exp`/`log`: Rust's software versions can
//! differ from the C library's in the last bit, and resampler filters are built with them).
//!
//! Needs Node.js and the package built by `cargo xtask wasm` (`REMOTEMEDIA_WASM_PKG`);
//! `cargo xtask ci` runs it with `--ignored`.

use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::transport::{PipelineRunner, TransportData};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

const RATE: u32 = 16_000;
const CHUNK: usize = 320;

/// Each native audio node (and chains of them), on mono or stereo input.
const CASES: &[(&str, u16, &str)] = &[
    ("passthrough", 1, "nodes: [{id: p, node_type: PassThrough}]"),
    ("resample-up", 1, "nodes: [{id: r, node_type: FastResampleNode, params: {target_rate: 48000, quality: High}}]"),
    ("resample-live", 1, "nodes: [{id: r, node_type: FastResampleNode, params: {target_rate: 48000}}]"),
    ("resample-down", 2, "nodes: [{id: r, node_type: FastResampleNode, params: {target_rate: 8000, quality: Low}}]"),
    ("chunker", 2, "nodes: [{id: c, node_type: AudioChunkerNode, params: {chunk_size: 1000}}]"),
    ("format", 2, "nodes: [{id: f, node_type: AudioFormatConverterNode, params: {channels: 1}}]"),
    ("gain", 1, "nodes: [{id: g, node_type: AudioGainNode, params: {gain_db: 9.5}}]"),
    ("level", 1, "nodes: [{id: l, node_type: AudioLevelNode}]"),
    ("silence", 1, "nodes: [{id: s, node_type: SilenceDetectorNode, params: {sustained_silence_ms: 200}}]"),
    ("clipping", 1, "nodes: [{id: g, node_type: AudioGainNode, params: {gain_db: 20, clip: true}}, {id: c, node_type: ClippingDetectorNode}]"),
    ("clipping-stereo", 2, "nodes: [{id: g, node_type: AudioGainNode, params: {gain_db: 14, clip: true}}, {id: c, node_type: ClippingDetectorNode}, {id: l, node_type: AudioLevelNode}]"),
    ("balance", 2, "nodes: [{id: b, node_type: ChannelBalanceNode}]"),
    ("vad", 1, "nodes: [{id: v, node_type: VADNode}]"),
    ("utterances", 1, "nodes: [{id: v, node_type: VADNode, params: {min_silence_duration_ms: 300}}, {id: u, node_type: AudioBufferAccumulatorNode}]"),
    ("filter", 1, "nodes: [{id: v, node_type: VADNode}, {id: f, node_type: TypeFilterNode, params: {types: [json]}}]"),
];

fn speech(channels: u16) -> Vec<f32> {
    let mut reader = hound::WavReader::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/media/speech.wav"
    ))
    .expect("speech.wav");
    let mono: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect();
    if channels == 1 {
        return mono;
    }
    // The right channel quieter, so balance and down-mixing have something to do.
    mono.iter().flat_map(|&s| [s, s * 0.25]).collect()
}

fn output_json(out: &TransportData) -> Value {
    match &out.data {
        RuntimeData::Audio {
            samples,
            sample_rate,
            channels,
            timestamp_us,
            ..
        } => json!({
            "nodeId": out.node_id(),
            "type": "audio",
            "sampleRate": sample_rate,
            "channels": channels,
            "timestampUs": timestamp_us,
            "bits": samples.iter().map(|s| s.to_bits()).collect::<Vec<u32>>(),
        }),
        RuntimeData::Video {
            pixel_data,
            width,
            height,
            format,
            frame_number,
            timestamp_us,
            ..
        } => json!({
            "nodeId": out.node_id(),
            "type": "video",
            "width": width,
            "height": height,
            "format": format.as_str(),
            "frameNumber": frame_number,
            "timestampUs": timestamp_us,
            "pixels": pixel_data.to_vec(),
        }),
        RuntimeData::Text(t) => json!({"nodeId": out.node_id(), "type": "text", "value": t}),
        RuntimeData::Json(v) => json!({"nodeId": out.node_id(), "type": "json", "value": v}),
        other => panic!("unexpected {}", other.type_name()),
    }
}

/// The speech in chunks of [`CHUNK`] frames, as audio items of track `audio:0`.
fn audio_items(samples: &[f32], channels: u16) -> Vec<RuntimeData> {
    samples
        .chunks(CHUNK * usize::from(channels))
        .enumerate()
        .map(|(i, part)| RuntimeData::Audio {
            samples: part.to_vec().into(),
            sample_rate: RATE,
            channels,
            stream_id: Some(Arc::from("audio:0")),
            timestamp_us: ((i * CHUNK) as f64 * 1e6 / f64::from(RATE)).round() as u64,
        })
        .collect()
}

/// Every output of `yaml` natively, for `items` sent one at a time (each item's outputs
/// taken before the next), then the flush.
async fn native(yaml: &str, items: &[RuntimeData]) -> Vec<Value> {
    let runner = PipelineRunner::new().unwrap();
    let session = runner
        .create_stream_session(Arc::new(Manifest::from_yaml(yaml).unwrap()))
        .await
        .unwrap();
    let mut outputs = Vec::new();
    for item in items {
        session
            .send_input(TransportData::new(item.clone()))
            .await
            .unwrap();
        while let Some(o) = session.recv_output().await.unwrap() {
            outputs.push(output_json(&o));
        }
    }
    session.close().await.unwrap();
    while let Some(o) = session.next_output().await.unwrap() {
        outputs.push(output_json(&o));
    }
    outputs
}

/// An item as `run-items.mjs` reads it (the output form without a node id).
fn item_json(data: &RuntimeData) -> Value {
    let mut v = output_json(&TransportData::new(data.clone()));
    v.as_object_mut().expect("an object").remove("nodeId");
    v
}

/// Every output of `yaml` in the WASM engine under Node.js, for the same items.
fn in_wasm(name: &str, yaml: &str, items: &[RuntimeData]) -> Vec<Value> {
    let pkg = std::env::var("REMOTEMEDIA_WASM_PKG")
        .expect("REMOTEMEDIA_WASM_PKG: the package from `cargo xtask wasm`");
    let dir = std::env::temp_dir().join(format!("rm-wasm-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.yaml"), yaml).unwrap();
    let list: Vec<Value> = items.iter().map(item_json).collect();
    std::fs::write(dir.join("items.json"), serde_json::to_vec(&list).unwrap()).unwrap();
    let out = std::process::Command::new("node")
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/run-items.mjs"))
        .arg(dir.join("manifest.yaml"))
        .arg(dir.join("items.json"))
        .env("REMOTEMEDIA_WASM_PKG", pkg)
        .output()
        .expect("node");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script's JSON")
}

/// Compares JSON numbers within `tolerance` (relative to 1), everything else exactly.
fn close_enough(a: &Value, b: &Value, tolerance: f64) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= tolerance * x.abs().max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| close_enough(a, b, tolerance))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| close_enough(v, w, tolerance)))
        }
        _ => a == b,
    }
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs Node.js and the package from cargo xtask wasm: cargo xtask ci runs it"]
async fn every_audio_node_gives_the_native_outputs() {
    let mut report = Vec::new();
    for (name, channels, yaml) in CASES {
        let items = audio_items(&speech(*channels), *channels);
        let want = native(yaml, &items).await;
        let got = in_wasm(name, yaml, &items);
        assert_eq!(
            got.len(),
            want.len(),
            "{name}: {} outputs in wasm, {} natively",
            got.len(),
            want.len()
        );
        assert!(!want.is_empty(), "{name}: no outputs");
        let (mut exact, mut total, mut worst) = (0usize, 0usize, 0f32);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g["nodeId"], w["nodeId"], "{name} output {i}");
            assert_eq!(g["type"], w["type"], "{name} output {i}");
            if w["type"] == "audio" {
                for key in ["sampleRate", "channels", "timestampUs"] {
                    assert_eq!(g[key], w[key], "{name} output {i}: {key}");
                }
                let (gb, wb) = (g["bits"].as_array().unwrap(), w["bits"].as_array().unwrap());
                assert_eq!(gb.len(), wb.len(), "{name} output {i}: length");
                for (x, y) in gb.iter().zip(wb) {
                    let (x, y) = (x.as_u64().unwrap() as u32, y.as_u64().unwrap() as u32);
                    total += 1;
                    if x == y {
                        exact += 1;
                    } else {
                        let d = (f32::from_bits(x) - f32::from_bits(y)).abs();
                        worst = worst.max(d);
                        assert!(
                            d <= 1e-6,
                            "{name} output {i}: {} vs {}",
                            f32::from_bits(x),
                            f32::from_bits(y)
                        );
                    }
                }
            } else {
                assert!(
                    close_enough(&g["value"], &w["value"], 1e-9),
                    "{name} output {i}: {} vs {}",
                    g["value"],
                    w["value"]
                );
            }
        }
        report.push(format!(
            "{name}: {} outputs, samples {exact}/{total} bit-exact, worst {worst:e}",
            want.len()
        ));
    }
    eprintln!("{}", report.join("\n"));
}

/// Each native video node (and A/V sync, which takes audio too).
const VIDEO_CASES: &[(&str, &str)] = &[
    ("to-yuv420p", "nodes: [{id: c, node_type: VideoFormatConverterNode, params: {pixel_format: yuv420p, width: 32}}]"),
    ("to-gray8", "nodes: [{id: c, node_type: VideoFormatConverterNode, params: {pixel_format: gray8, height: 24}}]"),
    ("freeze", "nodes: [{id: f, node_type: VideoFreezeDetectorNode, params: {freeze_ms: 200}}]"),
    ("black", "nodes: [{id: b, node_type: BlackFrameDetectorNode, params: {min_duration_ms: 200}}]"),
    ("avsync", "nodes: [{id: s, node_type: AVSyncNode, params: {window_ms: 400}}]"),
];

/// 64x48 rgb24 frames at 25 fps — moving for 20 frames, still for 15, black for 15, moving
/// for 10 — with 20 ms of tone between them.
fn video_items() -> Vec<RuntimeData> {
    let (width, height) = (64u32, 48u32);
    let mut items = Vec::new();
    for n in 0..60u64 {
        let shift = match n {
            0..20 => n,
            20..35 => 20,
            _ => n,
        } as usize;
        let black = (35..50).contains(&n);
        let mut pixels = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height as usize {
            for x in 0..width as usize {
                if black {
                    pixels.extend_from_slice(&[0, 0, 0]);
                } else {
                    let v = ((x * 4 + y * 2 + shift * 7) % 256) as u8;
                    pixels.extend_from_slice(&[v, v / 2, 255 - v]);
                }
            }
        }
        items.push(RuntimeData::Video {
            pixel_data: pixels.into(),
            width,
            height,
            format: remotemedia_runtime_core::data::PixelFormat::Rgb24,
            codec: None,
            frame_number: n,
            timestamp_us: n * 40_000,
            is_keyframe: n == 0,
            stream_id: Some(Arc::from("video:0")),
        });
        for half in 0..2u64 {
            let start = n * 640 + half * 320;
            let samples: Vec<f32> = (start..start + 320)
                .map(|i| (i as f32 * 0.07).sin() * 0.3)
                .collect();
            items.push(RuntimeData::Audio {
                samples: samples.into(),
                sample_rate: RATE,
                channels: 1,
                stream_id: Some(Arc::from("audio:0")),
                timestamp_us: start * 1_000_000 / u64::from(RATE),
            });
        }
    }
    items
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "needs Node.js and the package from cargo xtask wasm: cargo xtask ci runs it"]
async fn every_video_node_gives_the_native_outputs() {
    let items = video_items();
    for (name, yaml) in VIDEO_CASES {
        let want = native(yaml, &items).await;
        let got = in_wasm(name, yaml, &items);
        assert!(!want.is_empty(), "{name}: no outputs");
        assert_eq!(got.len(), want.len(), "{name}: output count");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(close_enough(g, w, 1e-9), "{name} output {i}: {g} vs {w}");
        }
        let events = want.iter().filter(|w| w["type"] == "json").count();
        if matches!(*name, "freeze" | "black" | "avsync") {
            assert!(events > 0, "{name}: no events to compare");
        }
        eprintln!(
            "{name}: {} outputs ({events} events), the same in wasm",
            want.len()
        );
    }
}
