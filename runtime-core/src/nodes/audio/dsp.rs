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

/// The larger of two magnitudes (neither NaN). Written as a comparison rather than
/// `f32::max`, whose NaN rule WebAssembly has no instruction for: there `max` is a call
/// per sample, this a vectorizable select.
#[inline]
fn larger(a: f32, b: f32) -> f32 {
    if b > a {
        b
    } else {
        a
    }
}

/// Sum of squares, peak magnitude and count of samples at or above `clip_level`, in one
/// pass. Eight f32 lanes let the compiler vectorize; blocks are summed in f64 so long
/// buffers keep their precision.
pub(crate) fn stats(samples: &[f32], clip_level: f32) -> (f64, f32, usize) {
    const LANES: usize = 8;
    const BLOCK: usize = 4096;
    let mut sum_sq = 0.0f64;
    let mut peak = [0.0f32; LANES];
    let mut clipped = [0u32; LANES];
    for block in samples.chunks(BLOCK) {
        let mut acc = [0.0f32; LANES];
        let mut lanes = block.chunks_exact(LANES);
        for group in lanes.by_ref() {
            for i in 0..LANES {
                let v = group[i];
                acc[i] += v * v;
                peak[i] = larger(peak[i], v.abs());
                clipped[i] += u32::from(v.abs() >= clip_level);
            }
        }
        let mut block_sum: f64 = acc.iter().map(|&a| f64::from(a)).sum();
        for &v in lanes.remainder() {
            block_sum += f64::from(v) * f64::from(v);
            peak[0] = larger(peak[0], v.abs());
            clipped[0] += u32::from(v.abs() >= clip_level);
        }
        sum_sq += block_sum;
    }
    let peak = peak.iter().fold(0.0f32, |m, &p| larger(m, p));
    let clipped = clipped.iter().map(|&c| c as usize).sum();
    (sum_sq, peak, clipped)
}

/// Number of samples with `|x| >= level` (eight lanes, vectorizable).
pub(crate) fn count_at_least(samples: &[f32], level: f32) -> usize {
    let mut counts = [0u32; 8];
    let mut lanes = samples.chunks_exact(8);
    for group in lanes.by_ref() {
        for i in 0..8 {
            counts[i] += u32::from(group[i].abs() >= level);
        }
    }
    let tail = lanes
        .remainder()
        .iter()
        .filter(|v| v.abs() >= level)
        .count();
    counts.iter().map(|&c| c as usize).sum::<usize>() + tail
}

/// Root mean square of samples (0 for none).
pub(crate) fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let (sum_sq, _, _) = stats(samples, f32::INFINITY);
    (sum_sq / samples.len() as f64).sqrt()
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
    if channels == 2 {
        return samples
            .chunks_exact(2)
            .map(|f| (f[0] + f[1]) * 0.5)
            .collect();
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
        assert!(to_db(f64::from(stats(&sine, 1.0).1)).abs() < 0.01);
    }

    #[test]
    fn silence_is_the_floor() {
        assert_eq!(to_db(rms(&[0.0; 100])), DB_FLOOR);
    }
}
