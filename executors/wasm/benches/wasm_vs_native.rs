//! `cargo xtask bench wasm`: the audio nodes in the WASM engine (under Node.js) against the
//! same nodes natively, side by side in one run. Each case runs 60 s of the bundled speech
//! (looped) in 20 ms frames through a session, sending a frame and taking its outputs
//! before the next (what a live stream does); best of three after a warm-up, on both sides.
//! The PassThrough row is the per-frame cost of the session machinery itself: for wasm, the
//! JS ↔ wasm calls and copies of one 20 ms frame in and out.
//!
//! `cargo bench -p remotemedia-wasm --bench wasm_vs_native -- <wasm-pkg-dir>`

use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::transport::{PipelineRunner, TransportData};
use std::sync::Arc;
use std::time::Instant;

const RATE: u32 = 16_000;
const SECONDS: usize = 60;

const CASES: &[(&str, &str)] = &[
    ("PassThrough", "nodes: [{id: p, node_type: PassThrough}]"),
    (
        "FastResampleNode 16→48 kHz (Medium)",
        "nodes: [{id: r, node_type: FastResampleNode, params: {target_rate: 48000}}]",
    ),
    (
        "AudioChunkerNode (512)",
        "nodes: [{id: c, node_type: AudioChunkerNode, params: {chunk_size: 512}}]",
    ),
    (
        "AudioGainNode",
        "nodes: [{id: g, node_type: AudioGainNode, params: {gain_db: 6}}]",
    ),
    (
        "AudioLevelNode",
        "nodes: [{id: l, node_type: AudioLevelNode}]",
    ),
    ("VADNode", "nodes: [{id: v, node_type: VADNode}]"),
    (
        "VAD → accumulator",
        "nodes: [{id: v, node_type: VADNode}, {id: u, node_type: AudioBufferAccumulatorNode}]",
    ),
];

fn speech() -> Vec<f32> {
    let mut reader = hound::WavReader::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/media/speech.wav"
    ))
    .expect("speech.wav");
    let clip: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect();
    clip.iter()
        .copied()
        .cycle()
        .take(RATE as usize * SECONDS)
        .collect()
}

async fn native_once(yaml: &str, frames: &[&[f32]]) -> (f64, usize) {
    let runner = PipelineRunner::new().unwrap();
    let session = runner
        .create_stream_session(Arc::new(Manifest::from_yaml(yaml).unwrap()))
        .await
        .unwrap();
    let started = Instant::now();
    let mut outputs = 0;
    for (i, frame) in frames.iter().enumerate() {
        let input = TransportData::new(RuntimeData::Audio {
            samples: frame.to_vec().into(),
            sample_rate: RATE,
            channels: 1,
            stream_id: None,
            timestamp_us: i as u64 * 20_000,
        });
        session.send_input(input).await.unwrap();
        while session.recv_output().await.unwrap().is_some() {
            outputs += 1;
        }
    }
    session.close().await.unwrap();
    while session.next_output().await.unwrap().is_some() {
        outputs += 1;
    }
    (started.elapsed().as_secs_f64() * 1000.0, outputs)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let pkg = args
        .first()
        .cloned()
        .or_else(|| std::env::var("REMOTEMEDIA_WASM_PKG").ok())
        .expect("the package directory from `cargo xtask wasm`");
    let audio = speech();
    let frames: Vec<&[f32]> = audio.chunks_exact(RATE as usize / 50).collect();
    // The same single-threaded executor as in a page: one thread, tasks on one loop.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut native = Vec::new();
    for (name, yaml) in CASES {
        runtime.block_on(native_once(yaml, &frames));
        let mut runs: Vec<(f64, usize)> = (0..3)
            .map(|_| runtime.block_on(native_once(yaml, &frames)))
            .collect();
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        native.push((*name, runs[0]));
    }
    let dir = std::env::temp_dir().join(format!("rm-wasm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cases: Vec<serde_json::Value> = CASES
        .iter()
        .map(|(name, yaml)| serde_json::json!({"name": name, "yaml": yaml}))
        .collect();
    std::fs::write(
        dir.join("cases.json"),
        serde_json::to_string(&cases).unwrap(),
    )
    .unwrap();
    let bytes: Vec<u8> = audio.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(dir.join("audio.f32"), bytes).unwrap();
    let out = std::process::Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/throughput.mjs"
        ))
        .arg(dir.join("cases.json"))
        .arg(dir.join("audio.f32"))
        .arg(RATE.to_string())
        .env("REMOTEMEDIA_WASM_PKG", &pkg)
        .output()
        .expect("node");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    println!("## {SECONDS} s of 16 kHz mono in 20 ms frames, best of 3\n");
    println!("| node | native | wasm (Node.js {}) | wasm / native | native x real time | wasm x real time | per frame, wasm |", node_version());
    println!("|---|---|---|---|---|---|---|");
    for ((name, (native_ms, native_outputs)), w) in native.iter().zip(&wasm) {
        let wasm_ms = w["ms"].as_f64().unwrap();
        assert_eq!(
            w["outputs"].as_u64().unwrap() as usize,
            *native_outputs,
            "{name}: outputs differ"
        );
        let real = SECONDS as f64 * 1000.0;
        println!(
            "| {name} | {native_ms:.1} ms | {wasm_ms:.1} ms | {:.2}x | {:.0}x | {:.0}x | {:.1} µs |",
            wasm_ms / native_ms,
            real / native_ms,
            real / wasm_ms,
            wasm_ms * 1000.0 / frames.len() as f64
        );
    }
}

fn node_version() -> String {
    std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
