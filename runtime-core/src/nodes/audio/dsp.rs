//! Small DSP helpers shared by the audio nodes.

use crate::data::{AudioSamples, RuntimeData};
use crate::{Error, Result};
use std::borrow::Cow;
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

/// Samples per f64 partial sum in [`stats`] and [`sum_squares`].
const BLOCK: usize = 4096;

/// The per-sample loops of the level statistics, on groups of eight samples: lane `i`
/// takes samples `i, i + 8, i + 16, ...` in order, so every build computes the same sums
/// to the last bit. The eight lanes are two explicit vectors of four (`wide`: SSE
/// natively, SIMD128 in WebAssembly, NEON on ARM): left to the compiler, the same loops
/// vectorized fully, by half or not at all depending on where they were inlined (the
/// level statistics ran 2.5x slower in wasm, and natively took the scalar `maxss` path).
mod lanes {
    use wide::{f32x4, i32x4};

    /// The larger of two magnitudes (neither NaN). Written as a comparison rather than
    /// `f32::max`, whose NaN rule WebAssembly has no instruction for.
    #[inline]
    pub(super) fn larger(a: f32, b: f32) -> f32 {
        if b > a {
            b
        } else {
            a
        }
    }

    /// Eight values as two vectors of four.
    #[inline(always)]
    fn quads(g: &[f32]) -> (f32x4, f32x4) {
        (
            f32x4::new([g[0], g[1], g[2], g[3]]),
            f32x4::new([g[4], g[5], g[6], g[7]]),
        )
    }

    #[inline(always)]
    fn join(lo: f32x4, hi: f32x4) -> [f32; 8] {
        let (lo, hi) = (lo.to_array(), hi.to_array());
        [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1], hi[2], hi[3]]
    }

    /// Counts as two vectors of four.
    #[inline(always)]
    fn count_quads(c: &[u32; 8]) -> (i32x4, i32x4) {
        let lane = |i: usize| c[i] as i32;
        (
            i32x4::new([lane(0), lane(1), lane(2), lane(3)]),
            i32x4::new([lane(4), lane(5), lane(6), lane(7)]),
        )
    }

    #[inline(always)]
    fn join_counts(lo: i32x4, hi: i32x4) -> [u32; 8] {
        let (lo, hi) = (lo.to_array(), hi.to_array());
        let lane = |c: i32| c as u32;
        [
            lane(lo[0]),
            lane(lo[1]),
            lane(lo[2]),
            lane(lo[3]),
            lane(hi[0]),
            lane(hi[1]),
            lane(hi[2]),
            lane(hi[3]),
        ]
    }

    /// One for each lane where `mask` is set: a set lane is all ones (-1), so
    /// subtracting it counts one.
    #[inline(always)]
    fn minus_mask(counts: i32x4, mask: f32x4) -> i32x4 {
        counts - wide::bytemuck::cast::<f32x4, i32x4>(mask)
    }

    /// [`larger`], lane by lane, for magnitudes: the vector maximum without a NaN rule
    /// (`maxps`, `f32x4.pmax`), which picks the same value when neither is NaN (two
    /// equal magnitudes are the same number: no -0 among them). A select would be a
    /// call per group on SSE2, which has no blend instruction.
    #[inline(always)]
    fn larger4(a: f32x4, b: f32x4) -> f32x4 {
        a.fast_max(b)
    }

    /// Adds each lane's squares over `samples` (whole groups of eight) to `acc`.
    #[inline]
    pub(super) fn squares(samples: &[f32], acc: &mut [f32; 8]) {
        let (mut lo, mut hi) = quads(acc);
        for group in samples.chunks_exact(8) {
            let (a, b) = quads(group);
            lo += a * a;
            hi += b * b;
        }
        *acc = join(lo, hi);
    }

    /// [`squares`], and each lane's peak magnitude and count at or above `clip_level`.
    #[inline]
    pub(super) fn stats(
        samples: &[f32],
        clip_level: f32,
        acc: &mut [f32; 8],
        peak: &mut [f32; 8],
        clipped: &mut [u32; 8],
    ) {
        let clip = f32x4::splat(clip_level);
        let (mut acc_lo, mut acc_hi) = quads(acc);
        let (mut peak_lo, mut peak_hi) = quads(peak);
        let (mut clip_lo, mut clip_hi) = count_quads(clipped);
        for group in samples.chunks_exact(8) {
            let (a, b) = quads(group);
            acc_lo += a * a;
            acc_hi += b * b;
            let (a, b) = (a.abs(), b.abs());
            peak_lo = larger4(peak_lo, a);
            peak_hi = larger4(peak_hi, b);
            clip_lo = minus_mask(clip_lo, a.simd_ge(clip));
            clip_hi = minus_mask(clip_hi, b.simd_ge(clip));
        }
        *acc = join(acc_lo, acc_hi);
        *peak = join(peak_lo, peak_hi);
        *clipped = join_counts(clip_lo, clip_hi);
    }

    /// Each lane's count of samples at or above `level` in magnitude.
    #[inline]
    pub(super) fn count_at_least(samples: &[f32], level: f32, counts: &mut [u32; 8]) {
        let level = f32x4::splat(level);
        let (mut lo, mut hi) = count_quads(counts);
        for group in samples.chunks_exact(8) {
            let (a, b) = quads(group);
            lo = minus_mask(lo, a.abs().simd_ge(level));
            hi = minus_mask(hi, b.abs().simd_ge(level));
        }
        *counts = join_counts(lo, hi);
    }
}

use lanes::larger;

/// Sum of squares, peak magnitude and count of samples at or above `clip_level`, in one
/// pass over eight lanes ([`lanes`]); blocks are summed in f64 so long buffers keep their
/// precision.
pub(crate) fn stats(samples: &[f32], clip_level: f32) -> (f64, f32, usize) {
    let mut sum_sq = 0.0f64;
    let mut peak = [0.0f32; 8];
    let mut clipped = [0u32; 8];
    for block in samples.chunks(BLOCK) {
        let mut acc = [0.0f32; 8];
        let whole = block.len() / 8 * 8;
        let (groups, remainder) = block.split_at(whole);
        lanes::stats(groups, clip_level, &mut acc, &mut peak, &mut clipped);
        let mut block_sum: f64 = acc.iter().map(|&a| f64::from(a)).sum();
        for &v in remainder {
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

/// The sum of squares of [`stats`], alone: the same lanes and blocks, so the same value
/// to the last bit, without the peak and clip counts a caller would throw away.
pub(crate) fn sum_squares(samples: &[f32]) -> f64 {
    let mut sum_sq = 0.0f64;
    for block in samples.chunks(BLOCK) {
        let mut acc = [0.0f32; 8];
        let whole = block.len() / 8 * 8;
        let (groups, remainder) = block.split_at(whole);
        lanes::squares(groups, &mut acc);
        let mut block_sum: f64 = acc.iter().map(|&a| f64::from(a)).sum();
        for &v in remainder {
            block_sum += f64::from(v) * f64::from(v);
        }
        sum_sq += block_sum;
    }
    sum_sq
}

/// Number of samples with `|x| >= level` (eight lanes, [`lanes`]).
pub(crate) fn count_at_least(samples: &[f32], level: f32) -> usize {
    let mut counts = [0u32; 8];
    let (groups, remainder) = samples.split_at(samples.len() / 8 * 8);
    let tail = remainder.iter().filter(|v| v.abs() >= level).count();
    lanes::count_at_least(groups, level, &mut counts);
    counts.iter().map(|&c| c as usize).sum::<usize>() + tail
}

/// Root mean square of samples (0 for none).
pub(crate) fn rms(samples: &[f32]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    (sum_squares(samples) / samples.len() as f64).sqrt()
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

/// Mixes interleaved audio to mono (mean of channels); mono audio is returned as it is.
pub(crate) fn downmix_to_mono(samples: &[f32], channels: usize) -> Cow<'_, [f32]> {
    if channels <= 1 {
        return Cow::Borrowed(samples);
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
        // The same sum, bit for bit, as the one-pass statistics (lengths around a block).
        for len in [0, 7, 8, 4095, 4096, 4103, 16_000] {
            let part = &sine[..len.min(sine.len())];
            assert_eq!(
                sum_squares(part).to_bits(),
                stats(part, 1.0).0.to_bits(),
                "{len}"
            );
        }
    }

    #[test]
    fn silence_is_the_floor() {
        assert_eq!(to_db(rms(&[0.0; 100])), DB_FLOOR);
    }
}
