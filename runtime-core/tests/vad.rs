//! `VADNode` and `AudioBufferAccumulatorNode`: speech-like input starts speech, silence and
//! low-level noise never do, and utterances come out whole.

mod support;

use remotemedia_runtime_core::data::RuntimeData;
use serde_json::Value;
use support::*;

const RATE: u32 = 16_000;

const VAD_ONLY: &str = "nodes:\n  - {id: frames, node_type: AudioChunkerNode, params: {chunk_size: 320}}\n  - {id: vad, node_type: VADNode}\n";

fn segmentation_manifest() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/pipelines/vad-segmentation.yaml"
    ))
    .expect("example manifest")
}

async fn vad_events(signal: &[f32]) -> Vec<Value> {
    let wav = wav_round_trip(signal, RATE, 1);
    jsons(&run_stream(VAD_ONLY, chunks(&wav, RATE, 1, 1000)).await)
}

fn count(events: &[Value], key: &str) -> usize {
    events.iter().filter(|e| e[key] == true).count()
}

fn tone_bursts(bursts: usize) -> Vec<f32> {
    let mut signal = vec![0.0f32; (0.5 * f64::from(RATE)) as usize];
    for _ in 0..bursts {
        signal.extend(sine(300.0, 0.25, RATE, 0.6));
        signal.extend(vec![0.0f32; (0.7 * f64::from(RATE)) as usize]);
    }
    signal
}

#[tokio::test]
async fn tone_bursts_start_and_end_speech_once_each() {
    let events = vad_events(&tone_bursts(3)).await;
    assert_eq!(count(&events, "is_speech_start"), 3, "{events:?}");
    assert_eq!(count(&events, "is_speech_end"), 3);
    let first_start = events
        .iter()
        .find(|e| e["is_speech_start"] == true)
        .and_then(|e| e["timestamp_ms"].as_f64())
        .expect("a start");
    // Speech begins at 500 ms; the start is confirmed after min_speech_duration (250 ms).
    assert!((700.0..=800.0).contains(&first_start), "{first_start}");
}

#[tokio::test]
async fn speech_like_signal_starts_speech() {
    let mut signal = vec![0.0f32; RATE as usize / 2];
    signal.extend(speech_like(RATE, 1.5, 7));
    signal.extend(vec![0.0f32; RATE as usize]);
    let events = vad_events(&signal).await;
    assert_eq!(count(&events, "is_speech_start"), 1, "{events:?}");
    assert_eq!(count(&events, "is_speech_end"), 1);
    let max_p = events
        .iter()
        .filter_map(|e| e["speech_probability"].as_f64())
        .fold(0.0, f64::max);
    assert!(max_p > 0.9, "{max_p}");
}

#[tokio::test]
async fn digital_silence_never_starts_speech() {
    let events = vad_events(&vec![0.0f32; 3 * RATE as usize]).await;
    assert_eq!(events.len(), 150);
    assert_eq!(count(&events, "is_speech_start"), 0);
    assert_eq!(count(&events, "has_speech"), 0);
}

#[tokio::test]
async fn noise_at_minus_60_dbfs_never_starts_speech() {
    // White noise with an RMS of -60 dBFS (peak ~ -55 dBFS), after a stretch of silence.
    let mut signal = vec![0.0f32; RATE as usize];
    signal.extend(noise(0.001 * 3f64.sqrt(), 3 * RATE as usize, 5));
    let events = vad_events(&signal).await;
    assert_eq!(count(&events, "is_speech_start"), 0, "{events:?}");
}

#[tokio::test]
async fn vad_passes_the_audio_through_unchanged_after_each_event() {
    let signal = sine(300.0, 0.25, RATE, 0.1);
    let outputs = run_stream(VAD_ONLY, chunks(&signal, RATE, 1, 320)).await;
    assert_eq!(outputs.len(), 10);
    for pair in outputs.chunks(2) {
        assert!(pair[0].data.as_json().is_some());
        assert!(matches!(pair[1].data, RuntimeData::Audio { .. }));
    }
    assert_eq!(concat_audio(&outputs), signal);
}

#[tokio::test]
async fn segmentation_emits_one_utterance_per_burst_with_pre_roll() {
    let wav = wav_round_trip(&tone_bursts(3), RATE, 1);
    let outputs = run_stream(&segmentation_manifest(), chunks(&wav, RATE, 1, 777)).await;
    let utterances: Vec<(u64, usize)> = outputs
        .iter()
        .filter_map(|o| match &o.data {
            RuntimeData::Audio {
                timestamp_us,
                samples,
                ..
            } => Some((*timestamp_us, samples.len())),
            _ => None,
        })
        .collect();
    assert_eq!(utterances.len(), 3, "{utterances:?}");
    for (i, (ts, len)) in utterances.iter().enumerate() {
        let burst_start_us = 500_000 + i as u64 * 1_300_000;
        // The utterance starts with up to 300 ms of pre-roll before the burst.
        assert!(
            *ts <= burst_start_us && burst_start_us - ts <= 320_000,
            "utterance {i} at {ts}"
        );
        let ms = *len as u64 * 1000 / u64::from(RATE);
        assert!((600..=1400).contains(&ms), "utterance {i} lasts {ms} ms");
    }
}

#[tokio::test]
async fn segmentation_of_silence_and_quiet_noise_emits_nothing() {
    let mut signal = vec![0.0f32; 2 * RATE as usize];
    signal.extend(noise(0.001, 2 * RATE as usize, 3));
    let outputs = run_stream(&segmentation_manifest(), chunks(&signal, RATE, 1, 320)).await;
    assert!(outputs.is_empty(), "{} outputs", outputs.len());
}

#[tokio::test]
async fn an_utterance_still_open_at_end_of_stream_is_flushed() {
    let mut signal = vec![0.0f32; RATE as usize / 2];
    signal.extend(speech_like(RATE, 1.0, 3));
    let outputs = run_stream(&segmentation_manifest(), chunks(&signal, RATE, 1, 320)).await;
    assert_eq!(outputs.len(), 1);
}

#[tokio::test]
async fn short_blips_are_not_utterances() {
    let mut signal = vec![0.0f32; RATE as usize / 2];
    for _ in 0..3 {
        signal.extend(sine(300.0, 0.25, RATE, 0.1));
        signal.extend(vec![0.0f32; RATE as usize / 2]);
    }
    let outputs = run_stream(&segmentation_manifest(), chunks(&signal, RATE, 1, 320)).await;
    assert!(outputs.is_empty());
}

#[tokio::test]
async fn long_speech_is_split_at_the_maximum_duration() {
    let yaml = segmentation_manifest().replace(
        "max_utterance_duration_ms: 30000",
        "max_utterance_duration_ms: 1000",
    );
    let mut signal = vec![0.0f32; RATE as usize / 2];
    signal.extend(sine(300.0, 0.25, RATE, 2.6));
    signal.extend(vec![0.0f32; RATE as usize]);
    let outputs = run_stream(&yaml, chunks(&signal, RATE, 1, 320)).await;
    let lengths: Vec<u64> = outputs
        .iter()
        .filter_map(|o| o.data.audio_frames())
        .map(|f| f as u64 * 1000 / u64::from(RATE))
        .collect();
    assert!(lengths.len() >= 3, "{lengths:?}");
    assert!(lengths.iter().all(|&ms| ms <= 1020), "{lengths:?}");
}
