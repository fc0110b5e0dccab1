//! Stateful audio nodes keep one state per track (`stream_id`): two tracks interleaved in
//! one session give each track exactly the outputs it gets when it runs alone.

mod support;

use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::transport::TransportData;
use serde_json::{json, Value};
use support::*;

const RATE: u32 = 16_000;

/// `samples` as `frames`-frame mono items of track `tag`, with advancing timestamps.
fn track(samples: &[f32], frames: usize, tag: &str) -> Vec<RuntimeData> {
    samples
        .chunks(frames)
        .enumerate()
        .map(|(i, c)| RuntimeData::Audio {
            samples: c.to_vec().into(),
            sample_rate: RATE,
            channels: 1,
            stream_id: Some(tag.into()),
            timestamp_us: (i * frames) as u64 * 1_000_000 / u64::from(RATE),
        })
        .collect()
}

/// Alternates the items of two tracks (the longer one's tail at the end).
fn interleave_items(a: Vec<RuntimeData>, b: Vec<RuntimeData>) -> Vec<RuntimeData> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter(), b.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => return out,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
}

/// What a track got: its audio (samples and timestamp per item) and its Json events.
#[derive(Debug, PartialEq)]
struct TrackOutputs {
    audio: Vec<(Vec<f32>, u64)>,
    events: Vec<Value>,
}

fn outputs_of(outputs: &[TransportData], tag: &str) -> TrackOutputs {
    let mut audio = Vec::new();
    let mut events = Vec::new();
    for output in outputs {
        match &output.data {
            RuntimeData::Audio {
                samples,
                stream_id,
                timestamp_us,
                ..
            } if stream_id.as_deref() == Some(tag) => audio.push((samples.to_vec(), *timestamp_us)),
            RuntimeData::Json(event) if event["stream_id"] == tag => events.push(event.clone()),
            _ => {}
        }
    }
    TrackOutputs { audio, events }
}

/// Runs `yaml` on each track alone and on both interleaved; asserts each track's outputs
/// are the same both ways, and returns them.
async fn assert_tracks_independent(
    yaml: &str,
    a: &[f32],
    b: &[f32],
    frames: usize,
) -> (TrackOutputs, TrackOutputs) {
    let alone_a = outputs_of(
        &run_stream(yaml, track(a, frames, "audio:0")).await,
        "audio:0",
    );
    let alone_b = outputs_of(
        &run_stream(yaml, track(b, frames, "audio:1")).await,
        "audio:1",
    );
    let mixed = run_stream(
        yaml,
        interleave_items(track(a, frames, "audio:0"), track(b, frames, "audio:1")),
    )
    .await;
    assert_eq!(outputs_of(&mixed, "audio:0"), alone_a, "track audio:0");
    assert_eq!(outputs_of(&mixed, "audio:1"), alone_b, "track audio:1");
    (alone_a, alone_b)
}

fn silence(seconds: f64) -> Vec<f32> {
    vec![0.0; (f64::from(RATE) * seconds) as usize]
}

/// Tone bursts of 0.6 s separated by 0.7 s of silence, after 0.5 s of silence.
fn bursts(count: usize, freq: f64) -> Vec<f32> {
    let mut signal = silence(0.5);
    for _ in 0..count {
        signal.extend(sine(freq, 0.25, RATE, 0.6));
        signal.extend(silence(0.7));
    }
    signal
}

#[tokio::test]
async fn chunker_keeps_each_track_apart() {
    let yaml = "nodes: [{id: c, node_type: AudioChunkerNode, params: {chunk_size: 320}}]";
    let (a, b) = assert_tracks_independent(
        yaml,
        &sine(440.0, 0.5, RATE, 1.03),
        &sine(1000.0, 0.5, RATE, 0.71),
        250,
    )
    .await;
    assert_eq!(
        a.audio.len(),
        52,
        "16480 frames in 320-frame chunks plus the tail"
    );
    assert_eq!(b.audio.len(), 36);
    assert_eq!(a.audio[1].1, 20_000, "each track's clock runs on its own");
}

#[tokio::test]
async fn resampler_keeps_each_track_apart() {
    let yaml = "nodes: [{id: r, node_type: FastResampleNode, params: {target_rate: 8000}}]";
    let (a, b) = assert_tracks_independent(
        yaml,
        &sine(440.0, 0.5, RATE, 1.0),
        &sine(1000.0, 0.5, RATE, 0.5),
        320,
    )
    .await;
    let frames = |t: &TrackOutputs| t.audio.iter().map(|(s, _)| s.len()).sum::<usize>();
    assert_eq!(frames(&a), 8000, "exact length per track");
    assert_eq!(frames(&b), 4000);
    let joined: Vec<f32> = b.audio.iter().flat_map(|(s, _)| s.clone()).collect();
    assert!((zero_crossing_frequency(&joined, 8000) - 1000.0).abs() < 10.0);
}

#[tokio::test]
async fn vad_keeps_each_track_apart() {
    let yaml = "nodes:\n  - {id: frames, node_type: AudioChunkerNode, params: {chunk_size: 320}}\n  - {id: vad, node_type: VADNode}\n";
    let (a, b) = assert_tracks_independent(yaml, &bursts(3, 300.0), &silence(4.4), 1000).await;
    let starts = |t: &TrackOutputs| {
        t.events
            .iter()
            .filter(|e| e["is_speech_start"] == true)
            .count()
    };
    assert_eq!(starts(&a), 3, "{:?}", a.events);
    assert_eq!(
        starts(&b),
        0,
        "the silent track never hears the other's speech"
    );
    assert!(a.events.iter().all(|e| e["stream_id"] == "audio:0"));
}

#[tokio::test]
async fn silence_detector_keeps_each_track_apart() {
    let yaml = "nodes: [{id: s, node_type: SilenceDetectorNode}]";
    let mut gap = sine(300.0, 0.3, RATE, 1.0);
    gap.extend(silence(1.0));
    gap.extend(sine(300.0, 0.3, RATE, 1.0));
    let (a, b) = assert_tracks_independent(yaml, &sine(300.0, 0.3, RATE, 3.0), &gap, 320).await;
    assert!(a.events.is_empty(), "{:?}", a.events);
    assert_eq!(b.events.len(), 2, "{:?}", b.events);
    assert_eq!(b.events[0]["alert"], "silence");
    assert_eq!(b.events[0]["start_ms"], 1000.0);
    assert_eq!(b.events[1]["state"], "end");
    assert_eq!(b.events[1]["duration_ms"], 1000.0);
}

#[tokio::test]
async fn accumulator_keeps_each_track_apart() {
    let yaml = "nodes:\n  - {id: frames, node_type: AudioChunkerNode, params: {chunk_size: 320}}\n  - {id: vad, node_type: VADNode}\n  - {id: utterances, node_type: AudioBufferAccumulatorNode}\n";
    let mut late = silence(1.4);
    late.extend(bursts(1, 200.0));
    late.extend(silence(1.0));
    let (a, b) = assert_tracks_independent(yaml, &bursts(2, 300.0), &late, 1000).await;
    assert_eq!(a.audio.len(), 2, "two utterances on track 0");
    assert_eq!(b.audio.len(), 1, "one utterance on track 1");
    // Pre-roll (300 ms) before the burst at 1.9 s.
    assert!(
        (1_500_000..=1_700_000).contains(&b.audio[0].1),
        "{}",
        b.audio[0].1
    );
}

#[tokio::test]
async fn a_vad_event_without_a_stream_id_applies_to_the_next_audio() {
    let yaml = "nodes: [{id: utterances, node_type: AudioBufferAccumulatorNode, params: {pre_roll_ms: 0, min_utterance_duration_ms: 0}}]";
    let audio = |tag: &str, ts: u64| RuntimeData::Audio {
        samples: vec![0.1f32; 1600].into(),
        sample_rate: RATE,
        channels: 1,
        stream_id: Some(tag.into()),
        timestamp_us: ts,
    };
    let inputs = vec![
        audio("audio:0", 0),
        RuntimeData::Json(json!({"is_speech_start": true, "is_speech_end": false})),
        audio("audio:1", 0),
        RuntimeData::Json(json!({"is_speech_start": false, "is_speech_end": true})),
        audio("audio:1", 100_000),
        audio("audio:0", 100_000),
    ];
    let outputs = run_stream(yaml, inputs).await;
    let one = outputs_of(&outputs, "audio:1");
    assert_eq!(one.audio.len(), 1, "{outputs:?}");
    assert_eq!(one.audio[0].0.len(), 3200, "both items of track 1");
    assert!(outputs_of(&outputs, "audio:0").audio.is_empty());
}
