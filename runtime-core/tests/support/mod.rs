//! Signal generators and measurements shared by the audio tests.
#![allow(dead_code)]

use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::transport::{PipelineRunner, TransportData};
use std::f64::consts::PI;
use std::sync::Arc;

/// A sine of `freq` Hz, `amplitude`, `seconds` long, mono.
pub fn sine(freq: f64, amplitude: f64, rate: u32, seconds: f64) -> Vec<f32> {
    let n = (f64::from(rate) * seconds).round() as usize;
    (0..n)
        .map(|i| (amplitude * (2.0 * PI * freq * i as f64 / f64::from(rate)).sin()) as f32)
        .collect()
}

/// Deterministic white noise in [-amplitude, amplitude].
pub fn noise(amplitude: f64, samples: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..samples)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let unit = ((state >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0;
            (unit * amplitude) as f32
        })
        .collect()
}

/// A speech-like signal: a 120 Hz harmonic series (voiced) shaped by a 4 Hz syllable
/// envelope, plus a little noise.
pub fn speech_like(rate: u32, seconds: f64, seed: u64) -> Vec<f32> {
    let n = (f64::from(rate) * seconds) as usize;
    let hiss = noise(0.02, n, seed);
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let envelope = 0.55 + 0.45 * (2.0 * PI * 4.0 * t).sin();
            let voiced: f64 = (1..=12)
                .map(|h| (2.0 * PI * 120.0 * h as f64 * t).sin() / h as f64)
                .sum();
            (0.25 * envelope * voiced) as f32 + hiss[i]
        })
        .collect()
}

/// Interleaves per-channel signals.
pub fn interleave(channels: &[Vec<f32>]) -> Vec<f32> {
    let frames = channels.iter().map(Vec::len).min().unwrap_or(0);
    let mut out = Vec::with_capacity(frames * channels.len());
    for i in 0..frames {
        for c in channels {
            out.push(c[i]);
        }
    }
    out
}

/// Takes channel `c` of interleaved samples.
pub fn channel(samples: &[f32], channels: usize, c: usize) -> Vec<f32> {
    samples.iter().skip(c).step_by(channels).copied().collect()
}

/// THD+N of a sine of known frequency, in dB (lower is better): power of everything that
/// is not the fitted sine over the power of the sine. The first and last `edge` fraction
/// of the signal is ignored.
pub fn thd_n_db(signal: &[f32], freq: f64, rate: u32, edge: f64) -> f64 {
    let start = (signal.len() as f64 * edge) as usize;
    let end = signal.len() - start;
    let x = &signal[start..end];
    let w = 2.0 * PI * freq / f64::from(rate);
    // Least-squares fit of a*sin + b*cos + c.
    let (mut ss, mut cc, mut sc, mut xs, mut xc) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let (s, c) = (
            (w * (i + start) as f64).sin(),
            (w * (i + start) as f64).cos(),
        );
        ss += s * s;
        cc += c * c;
        sc += s * c;
        xs += f64::from(v) * s;
        xc += f64::from(v) * c;
    }
    let det = ss * cc - sc * sc;
    let a = (xs * cc - xc * sc) / det;
    let b = (xc * ss - xs * sc) / det;
    let (mut fit_power, mut residual_power) = (0.0, 0.0);
    for (i, &v) in x.iter().enumerate() {
        let t = w * (i + start) as f64;
        let fit = a * t.sin() + b * t.cos();
        fit_power += fit * fit;
        residual_power += (f64::from(v) - fit).powi(2);
    }
    10.0 * (residual_power / fit_power).log10()
}

/// Dominant frequency by counting rising zero crossings.
pub fn zero_crossing_frequency(signal: &[f32], rate: u32) -> f64 {
    let crossings = signal
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count();
    crossings as f64 * f64::from(rate) / signal.len() as f64
}

/// Runs `yaml` on `inputs` (each sent, then drained), closes, and returns every output.
pub async fn run_stream(yaml: &str, inputs: Vec<RuntimeData>) -> Vec<TransportData> {
    let runner = PipelineRunner::new().expect("runner");
    let manifest = Arc::new(Manifest::from_yaml(yaml).expect("valid manifest"));
    runner
        .execute_collect(
            manifest,
            inputs.into_iter().map(TransportData::new).collect(),
        )
        .await
        .expect("pipeline runs")
}

/// Splits interleaved audio into `frames_per_chunk` chunks with advancing timestamps.
pub fn chunks(
    samples: &[f32],
    rate: u32,
    channels: u16,
    frames_per_chunk: usize,
) -> Vec<RuntimeData> {
    let step = frames_per_chunk * usize::from(channels);
    samples
        .chunks(step)
        .enumerate()
        .map(|(i, c)| RuntimeData::Audio {
            samples: c.to_vec().into(),
            sample_rate: rate,
            channels,
            stream_id: Some("audio:0".into()),
            timestamp_us: (i * frames_per_chunk) as u64 * 1_000_000 / u64::from(rate),
        })
        .collect()
}

/// All audio samples of the outputs, concatenated.
pub fn concat_audio(outputs: &[TransportData]) -> Vec<f32> {
    let mut all = Vec::new();
    for o in outputs {
        if let RuntimeData::Audio { samples, .. } = &o.data {
            all.extend_from_slice(samples);
        }
    }
    all
}

/// The Json outputs.
pub fn jsons(outputs: &[TransportData]) -> Vec<serde_json::Value> {
    outputs
        .iter()
        .filter_map(|o| o.data.as_json().cloned())
        .collect()
}

/// Writes mono or interleaved f32 audio as a 16-bit WAV and reads it back as f32, the way
/// a user's recording reaches the pipeline.
pub fn wav_round_trip(samples: &[f32], rate: u32, channels: u16) -> Vec<f32> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "remotemedia-audio-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("signal.wav");
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).expect("create wav");
    for &s in samples {
        writer
            .write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
            .expect("write sample");
    }
    writer.finalize().expect("finalize wav");
    let reader = hound::WavReader::open(&path).expect("open wav");
    let back: Vec<f32> = reader
        .into_samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    back
}
