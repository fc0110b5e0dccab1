//! Small DSP helpers shared by the audio nodes.

use crate::data::{AudioSamples, RuntimeData};
use crate::{Error, Result};
use std::sync::Arc;

/// Level floor in dBFS: anything quieter (including digital silence) reads as this.
pub(crate) const DB_FLOOR: f64 = -120.0;

/// Amplitude (RMS or peak, full scale = 1.0) to dBFS, floored at [`DB_FLOOR`].
pub(crate) fn to_db(amplitude: f64) -> f64 {
    if amplitude <= 1e-6 {
        DB_FLOOR
    } else {
        (20.0 * amplitude.log10()).max(DB_FLOOR)
    }
}

/// Rounds to two decimals for readable Json.
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Root mean square of samples (0 for none).
pub(crate) fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// Largest absolute sample (0 for none).
pub(crate) fn peak(samples: &[f32]) -> f64 {
    samples.iter().fold(0.0f32, |m, &s| m.max(s.abs())).into()
}

/// RMS of each channel of interleaved samples.
pub(crate) fn channel_rms(samples: &[f32], channels: usize) -> Vec<f64> {
    let channels = channels.max(1);
    let mut sums = vec![0.0f64; channels];
    for frame in samples.chunks_exact(channels) {
        for (sum, &s) in sums.iter_mut().zip(frame) {
            *sum += f64::from(s) * f64::from(s);
        }
    }
    let frames = (samples.len() / channels).max(1) as f64;
    sums.into_iter().map(|s| (s / frames).sqrt()).collect()
}

/// Microseconds spanned by `frames` at `sample_rate`.
pub(crate) fn frames_to_us(frames: u64, sample_rate: u32) -> u64 {
    (u128::from(frames) * 1_000_000 / u128::from(sample_rate.max(1))) as u64
}

/// A borrowed view of an Audio item's fields.
pub(crate) struct AudioView<'a> {
    pub(crate) samples: &'a AudioSamples,
    pub(crate) sample_rate: u32,
    pub(crate) channels: u16,
    pub(crate) stream_id: &'a Option<Arc<str>>,
    pub(crate) timestamp_us: u64,
}

impl AudioView<'_> {
    /// Frames (samples per channel).
    pub(crate) fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// Media time of the first frame, in milliseconds.
    pub(crate) fn timestamp_ms(&self) -> f64 {
        self.timestamp_us as f64 / 1000.0
    }
}

/// Views `data` as audio, checking that it is well-formed: a positive rate, at least one
/// channel and whole frames. `None` for other data types.
pub(crate) fn audio_view(data: &RuntimeData) -> Result<Option<AudioView<'_>>> {
    let RuntimeData::Audio {
        samples,
        sample_rate,
        channels,
        stream_id,
        timestamp_us,
    } = data
    else {
        return Ok(None);
    };
    if *sample_rate == 0 || *channels == 0 {
        return Err(Error::node(format!(
            "invalid audio: {channels} channel(s) at {sample_rate} Hz"
        )));
    }
    if samples.len() % usize::from(*channels) != 0 {
        return Err(Error::node(format!(
            "invalid audio: {} samples is not a whole number of {channels}-channel frames",
            samples.len()
        )));
    }
    Ok(Some(AudioView {
        samples,
        sample_rate: *sample_rate,
        channels: *channels,
        stream_id,
        timestamp_us: *timestamp_us,
    }))
}

/// Builds an Audio item.
pub(crate) fn audio(
    samples: impl Into<AudioSamples>,
    sample_rate: u32,
    channels: u16,
    stream_id: Option<Arc<str>>,
    timestamp_us: u64,
) -> RuntimeData {
    RuntimeData::Audio {
        samples: samples.into(),
        sample_rate,
        channels,
        stream_id,
        timestamp_us,
    }
}

/// Mixes interleaved audio to mono (mean of channels).
pub(crate) fn downmix_to_mono(samples: &[f32], channels: usize) -> Vec<f32> {
    if channels <= 1 {
        return samples.to_vec();
    }
    let scale = 1.0 / channels as f32;
    samples
        .chunks_exact(channels)
        .map(|f| f.iter().sum::<f32>() * scale)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_scale_sine_is_minus_3_db_rms_and_0_db_peak() {
        let sine: Vec<f32> = (0..48_000)
            .map(|i| (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 48_000.0).sin() as f32)
            .collect();
        assert!((to_db(rms(&sine)) + 3.0103).abs() < 0.01);
        assert!(to_db(peak(&sine)).abs() < 0.01);
    }

    #[test]
    fn silence_is_the_floor() {
        assert_eq!(to_db(rms(&[0.0; 100])), DB_FLOOR);
    }
}
