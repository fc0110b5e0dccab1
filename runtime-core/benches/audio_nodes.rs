//! Throughput of the native audio nodes on generated audio, for `cargo xtask bench audio`,
//! which runs the Python way of doing the same work on the same signals in the same run
//! and prints both side by side.
//!
//! `cargo bench -p remotemedia-runtime-core --bench audio_nodes -- <work-dir>` writes the
//! signals (raw f32 little-endian) and `rust.json` into `<work-dir>`.
//!
//! Each case processes 60 s of audio in 20 ms chunks (streaming, as in a live session),
//! calling the node directly; the best of 5 runs is reported as x-realtime.

use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::nodes::audio::{
    AudioFormatConverterNode, AudioGainNode, AudioLevelNode, ClippingDetectorNode,
    FastResampleNode, ResampleQuality, SilenceDetectorNode, VADNode,
};
use remotemedia_runtime_core::nodes::{AudioChunkerNode, Node, Outputs};
use serde_json::json;
use std::f64::consts::PI;
use std::path::{Path, PathBuf};
use std::time::Instant;

// The signal measurements the tests use (THD+N, ...), so both report the same figures.
#[path = "../tests/support/mod.rs"]
mod support;

const SECONDS: f64 = 60.0;
const RUNS: usize = 5;

fn sine(freq: f64, amplitude: f64, rate: u32) -> Vec<f32> {
    let n = (f64::from(rate) * SECONDS) as usize;
    (0..n)
        .map(|i| (amplitude * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

/// Speech-like test signal: harmonics of 120 Hz under a 4 Hz envelope, with 1 s pauses
/// every 4 s (so the VAD has something to decide).
fn speech_like(rate: u32) -> Vec<f32> {
    let n = (f64::from(rate) * SECONDS) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            if t % 4.0 > 3.0 {
                return 0.0;
            }
            let envelope = 0.55 + 0.45 * (2.0 * PI * 4.0 * t).sin();
            let voiced: f64 = (1..=12)
                .map(|h| (2.0 * PI * 120.0 * h as f64 * t).sin() / h as f64)
                .sum();
            (0.25 * envelope * voiced) as f32
        })
        .collect()
}

fn write_signal(dir: &Path, name: &str, samples: &[f32]) {
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    std::fs::write(dir.join(format!("{name}.f32")), bytes).expect("write signal");
}

/// Splits interleaved audio into chunks of `frames` frames.
fn chunked(samples: &[f32], rate: u32, channels: u16, frames: usize) -> Vec<RuntimeData> {
    samples
        .chunks(frames * usize::from(channels))
        .enumerate()
        .map(|(i, c)| RuntimeData::Audio {
            samples: c.to_vec().into(),
            sample_rate: rate,
            channels,
            stream_id: None,
            timestamp_us: (i * frames) as u64 * 1_000_000 / u64::from(rate),
        })
        .collect()
}

/// Best-of-`RUNS` seconds to push every chunk through a fresh node and flush it.
fn time_node<N: Node>(make: impl Fn() -> N, chunks: &[RuntimeData]) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut emitted = 0;
    for _ in 0..RUNS {
        let mut node = make();
        let mut outputs = Outputs::new();
        let inputs = chunks.to_vec();
        let started = Instant::now();
        for chunk in inputs {
            node.process(chunk, &mut outputs)
                .expect("node accepts the signal");
            emitted += outputs.len();
            outputs.clear();
        }
        node.flush(&mut outputs).expect("flush");
        best = best.min(started.elapsed().as_secs_f64());
    }
    (best, emitted / RUNS)
}

fn collect_audio<N: Node>(mut node: N, chunks: &[RuntimeData]) -> Vec<f32> {
    let mut outputs = Outputs::new();
    for chunk in chunks.iter().cloned() {
        node.process(chunk, &mut outputs)
            .expect("node accepts the signal");
    }
    node.flush(&mut outputs).expect("flush");
    let mut all = Vec::new();
    for o in outputs.into_vec() {
        if let RuntimeData::Audio { samples, .. } = o {
            all.extend_from_slice(&samples);
        }
    }
    all
}

fn main() {
    let dir: PathBuf = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("remotemedia-audio-bench"));
    std::fs::create_dir_all(&dir).expect("work dir");

    let mono48 = sine(1000.0, 0.5, 48_000);
    let tone441 = sine(1000.0, 0.5, 44_100);
    let speech16 = speech_like(16_000);
    let stereo48: Vec<f32> = mono48.iter().flat_map(|&s| [s, s * 0.5]).collect();
    write_signal(&dir, "mono48", &mono48);
    write_signal(&dir, "tone441", &tone441);
    write_signal(&dir, "speech16", &speech16);
    write_signal(&dir, "stereo48", &stereo48);

    let c_mono48 = chunked(&mono48, 48_000, 1, 960);
    let c_stereo48 = chunked(&stereo48, 48_000, 2, 960);
    let c_tone441 = chunked(&tone441, 44_100, 1, 882);
    let c_speech16 = chunked(&speech16, 16_000, 1, 320);
    let c_packets48 = chunked(&mono48, 48_000, 1, 1024);

    let mut results = Vec::new();
    let mut record = |name: &str, seconds: f64, extra: serde_json::Value| {
        let x_realtime = SECONDS / seconds;
        eprintln!("{name:<28} {x_realtime:>12.0}x realtime");
        let mut entry = json!({"case": name, "seconds": seconds, "x_realtime": x_realtime});
        if let (Some(e), Some(x)) = (entry.as_object_mut(), extra.as_object()) {
            e.extend(x.clone());
        }
        results.push(entry);
    };

    let (t, _) = time_node(AudioLevelNode::default, &c_mono48);
    record("level", t, json!({}));
    let (t, _) = time_node(|| AudioGainNode::new(6.0, true), &c_mono48);
    record("gain", t, json!({}));
    let (t, _) = time_node(|| AudioChunkerNode::new(320), &c_packets48);
    record("chunk", t, json!({}));
    let (t, _) = time_node(ClippingDetectorNode::default, &c_mono48);
    record("clipping", t, json!({}));
    let (t, _) = time_node(SilenceDetectorNode::default, &c_mono48);
    record("silence", t, json!({}));
    let (t, _) = time_node(|| AudioFormatConverterNode::new(Some(1)), &c_stereo48);
    record("downmix", t, json!({}));
    let (t, _) = time_node(VADNode::default, &c_speech16);
    record("vad", t, json!({}));

    for (quality, name) in [
        (ResampleQuality::Low, "resample_low"),
        (ResampleQuality::Medium, "resample_medium"),
        (ResampleQuality::High, "resample_high"),
    ] {
        let (t, _) = time_node(|| FastResampleNode::new(16_000, quality), &c_tone441);
        let out = collect_audio(FastResampleNode::new(16_000, quality), &c_tone441);
        let thd = support::thd_n_db(&out, 1000.0, 16_000, 0.1);
        record(
            name,
            t,
            json!({"thd_n_db": thd, "output_frames": out.len()}),
        );
    }

    let report = json!({"seconds_of_audio": SECONDS, "runs": RUNS, "results": results});
    std::fs::write(dir.join("rust.json"), report.to_string()).expect("write results");
    eprintln!("wrote {}", dir.join("rust.json").display());
}
