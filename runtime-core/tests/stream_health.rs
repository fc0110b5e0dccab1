//! Stream-health scenarios through `examples/pipelines/stream-health.yaml`, each on a WAV
//! file the test generates and reads back.

mod support;

use serde_json::Value;
use support::*;

const RATE: u32 = 16_000;

async fn analyse(samples: &[f32], channels: u16) -> Vec<Value> {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/pipelines/stream-health.yaml"
    ))
    .expect("example manifest");
    let wav = wav_round_trip(samples, RATE, channels);
    // Feed it as a decoder would: uneven packets.
    jsons(&run_stream(&yaml, chunks(&wav, RATE, channels, 1152)).await)
}

fn alerts<'a>(reports: &'a [Value], kind: &str) -> Vec<&'a Value> {
    reports.iter().filter(|r| r["alert"] == kind).collect()
}

fn all_alerts(reports: &[Value]) -> Vec<&Value> {
    reports
        .iter()
        .filter(|r| r.get("alert").is_some())
        .collect()
}

fn levels(reports: &[Value]) -> Vec<&Value> {
    reports
        .iter()
        .filter(|r| r.get("rms_db").is_some())
        .collect()
}

#[tokio::test]
async fn clean_tone_raises_no_alert() {
    let reports = analyse(&sine(440.0, 0.5, RATE, 3.0), 1).await;
    assert!(
        all_alerts(&reports).is_empty(),
        "{:?}",
        all_alerts(&reports)
    );
    let levels = levels(&reports);
    assert_eq!(levels.len(), 150, "one level report per 20 ms frame");
    for l in levels {
        assert_eq!(l["is_silence"], false);
        assert_eq!(l["is_low_volume"], false);
        let rms = l["rms_db"].as_f64().expect("rms");
        assert!(
            (rms - -9.03).abs() < 0.1,
            "0.5 sine is -9.03 dBFS rms, got {rms}"
        );
        assert_eq!(l["health"], 1.0);
    }
}

#[tokio::test]
async fn two_seconds_of_silence_inside_speech_raise_a_silence_alert() {
    let mut signal = speech_like(RATE, 2.0, 1);
    signal.extend(vec![0.0f32; 2 * RATE as usize]);
    signal.extend(speech_like(RATE, 2.0, 2));
    let reports = analyse(&signal, 1).await;
    let silence = alerts(&reports, "silence");
    assert_eq!(silence.len(), 2, "{reports:?}");
    // An alert when the silence has lasted 500 ms, then its real start and length when
    // sound returns.
    assert_eq!(silence[0]["state"], "start");
    let start = silence[0]["start_ms"].as_f64().expect("start_ms");
    assert!((start - 2000.0).abs() <= 20.0, "silence starts at {start}");
    assert!(silence[0].get("duration_ms").is_none());
    assert_eq!(silence[1]["state"], "end");
    assert_eq!(silence[1]["start_ms"], silence[0]["start_ms"]);
    let duration = silence[1]["duration_ms"].as_f64().expect("duration");
    assert!(
        (duration - 2000.0).abs() <= 30.0,
        "silence lasted {duration} ms"
    );
    let end = silence[1]["end_ms"].as_f64().expect("end_ms");
    assert!((end - start - duration).abs() < 0.01);
    assert!(alerts(&reports, "clipping").is_empty());
    let silent_frames = levels(&reports)
        .iter()
        .filter(|l| l["is_silence"] == true)
        .count();
    assert!(
        (98..=101).contains(&silent_frames),
        "{silent_frames} silent 20 ms frames"
    );
}

#[tokio::test]
async fn clipped_signal_raises_clipping_and_not_low_volume() {
    let clipped: Vec<f32> = sine(440.0, 0.6, RATE, 2.0)
        .into_iter()
        .map(|s| (s * 3.0).clamp(-1.0, 1.0))
        .collect();
    let reports = analyse(&clipped, 1).await;
    let clipping = alerts(&reports, "clipping");
    assert!(clipping.len() >= 90, "{} clipping alerts", clipping.len());
    assert!(clipping[0]["saturated_ratio"].as_f64().expect("ratio") > 10.0);
    assert!(levels(&reports).iter().all(|l| l["is_low_volume"] == false));
    assert!(levels(&reports)
        .iter()
        .all(|l| l["health"].as_f64().expect("health") < 0.5));
}

#[tokio::test]
async fn muted_channel_is_reported_dead() {
    let left = sine(440.0, 0.5, RATE, 2.0);
    let right = vec![0.0f32; left.len()];
    let reports = analyse(&interleave(&[left, right]), 2).await;
    let dead = alerts(&reports, "dead_channel");
    assert_eq!(dead.len(), 100, "every 20 ms stereo frame");
    assert!(dead.iter().all(|a| a["channel"] == 1));
    assert!(
        alerts(&reports, "silence").is_empty(),
        "mixed level is not silent"
    );
}

#[tokio::test]
async fn quieter_channel_is_reported_as_imbalance() {
    let left = sine(440.0, 0.5, RATE, 1.0);
    let right = sine(440.0, 0.05, RATE, 1.0);
    let reports = analyse(&interleave(&[left, right]), 2).await;
    let imbalance = alerts(&reports, "channel_imbalance");
    assert_eq!(imbalance.len(), 50);
    let diff = imbalance[0]["difference_db"].as_f64().expect("difference");
    assert!((diff - 20.0).abs() < 0.1, "{diff}");
}

#[tokio::test]
async fn five_short_dropouts_raise_a_dropouts_alert() {
    let mut signal = Vec::new();
    for i in 0..5 {
        signal.extend(speech_like(RATE, 0.5, 10 + i));
        signal.extend(vec![0.0f32; (0.3 * f64::from(RATE)) as usize]);
    }
    signal.extend(speech_like(RATE, 0.5, 99));
    let reports = analyse(&signal, 1).await;
    let dropouts = alerts(&reports, "dropouts");
    assert!(!dropouts.is_empty(), "{reports:?}");
    assert_eq!(dropouts[0]["count"], 3);
    assert!(
        alerts(&reports, "silence").is_empty(),
        "300 ms is not sustained silence"
    );
}

#[tokio::test]
async fn sessions_do_not_share_detector_state() {
    // One session sees silence, one sees a tone, at the same time.
    let silence = vec![0.0f32; 2 * RATE as usize];
    let tone = sine(440.0, 0.5, RATE, 2.0);
    let (silent, tone) = tokio::join!(analyse(&silence, 1), analyse(&tone, 1));
    // A silence still running at the end of the stream is closed there.
    let silence = alerts(&silent, "silence");
    assert_eq!(silence.len(), 2, "{silence:?}");
    assert_eq!(silence[1]["state"], "end");
    assert_eq!(silence[1]["duration_ms"], 2000.0);
    assert!(all_alerts(&tone).is_empty());
}
