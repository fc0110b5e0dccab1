//! `FastResampleNode` (alias `AudioResampleNode`): sample rate conversion with rubato.

use super::dsp::{audio, audio_view, frames_to_us, AudioView};
use super::streams::PerStream;
use crate::data::RuntimeData;
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::{Error, Result};
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, Fft, FixedAsync, FixedSync, Indexing, PolynomialDegree, Resampler,
    SincInterpolationParameters, SincInterpolationType, WindowFunction,
};
use serde_json::Value;
use std::sync::Arc;

/// An input this far (µs) ahead of where its stream should be starts a new segment.
const MAX_GAP_US: u64 = 1000;

/// The FFT resampler works on blocks of `source / gcd` and `target / gcd` frames, and its
/// memory grows with them (767 999 Hz → 16 kHz, gcd 1, took 74 MB). Ratios whose reduced
/// terms add up to more than this use the sinc resampler, whose cost does not depend on
/// the ratio; every ratio between the common rates (44.1/48/96 kHz families, 8–32 kHz)
/// stays on the FFT path.
const MAX_FFT_RATIO_TERMS: u64 = 4096;

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Resampler quality. Higher quality costs more CPU and latency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum ResampleQuality {
    /// Cubic polynomial interpolation, no anti-aliasing filter: the cheapest conversion.
    Low,
    /// FFT resampler with blocks of up to 20 ms (at most 512 frames per transform): full
    /// anti-aliasing at low latency.
    Medium,
    /// FFT resampler with long blocks: the sharpest filter.
    High,
}

impl ResampleQuality {
    /// Parses `Low`, `Medium` or `High` (any case).
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "low" => Some(Self::Low),
            "medium" => Some(Self::Medium),
            "high" => Some(Self::High),
            _ => None,
        }
    }

    /// The quality's name as params write it: `Low`, `Medium` or `High`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "Low",
            Self::Medium => "Medium",
            Self::High => "High",
        }
    }

    /// Input frames per resampler call at `rate` (the interpolating resamplers).
    fn chunk_frames(self, rate: u32) -> usize {
        let ms = match self {
            Self::Low | Self::Medium => 20,
            Self::High => 40,
        };
        (rate as usize * ms / 1000).max(64)
    }

    /// The FFT resampler's geometry from `from` to `to` Hz (`g` their gcd): input frames
    /// per call and the sub-blocks each call is transformed in. A sub-block holds `k`
    /// units of `from / g` frames and its transforms have `2k·from/g` and `2k·to/g`
    /// points; `k` is the largest power of two whose sub-block fits the quality's target
    /// (Medium: 20 ms, at most 512 frames; High: 40 ms), so the transforms are powers of
    /// two times the rates' small odd factors — the FFT's fastest plans, natively and in
    /// WebAssembly. (Blocks of exactly 20 ms gave lengths like 960 = 15·64 at 16 → 48 kHz,
    /// or a prime factor of 107 at 48 → 16 kHz.) A call is a whole number of sub-blocks,
    /// at most the interpolating resamplers' block (20 ms, 40 ms for High), unless the
    /// rates' unit alone is longer.
    fn fft_geometry(self, from: u32, g: u64) -> (usize, usize) {
        let call = self.chunk_frames(from);
        let target = match self {
            Self::High => call,
            Self::Low | Self::Medium => call.min(512),
        };
        let unit = (u64::from(from) / g).max(1) as usize;
        let units = (target / unit).max(1);
        let sub = (1usize << units.ilog2()) * unit;
        let sub_chunks = (call / sub).max(1);
        (sub * sub_chunks, sub_chunks)
    }

    fn build(self, from: u32, to: u32, channels: usize) -> Result<Box<dyn Resampler<f32>>> {
        let chunk = self.chunk_frames(from);
        let g = gcd(u64::from(from), u64::from(to)).max(1);
        let awkward = (u64::from(from) + u64::from(to)) / g > MAX_FFT_RATIO_TERMS;
        let built: std::result::Result<
            Box<dyn Resampler<f32>>,
            rubato::ResamplerConstructionError,
        > = match self {
            Self::Medium | Self::High if awkward => {
                let parameters = SincInterpolationParameters {
                    sinc_len: if self == Self::High { 256 } else { 128 },
                    f_cutoff: None,
                    interpolation: SincInterpolationType::Cubic,
                    oversampling_factor: 256,
                    window: WindowFunction::BlackmanHarris2,
                };
                Async::<f32>::new_sinc(
                    f64::from(to) / f64::from(from),
                    1.0,
                    &parameters,
                    chunk,
                    channels,
                    FixedAsync::Input,
                )
                .map(|r| Box::new(r) as Box<dyn Resampler<f32>>)
            }
            Self::Low => Async::<f32>::new_poly(
                f64::from(to) / f64::from(from),
                1.0,
                PolynomialDegree::Cubic,
                chunk,
                channels,
                FixedAsync::Input,
            )
            .map(|r| Box::new(r) as Box<dyn Resampler<f32>>),
            Self::Medium | Self::High => {
                let (chunk, sub_chunks) = self.fft_geometry(from, g);
                Fft::<f32>::new_custom(
                    from as usize,
                    to as usize,
                    chunk,
                    sub_chunks,
                    channels,
                    WindowFunction::BlackmanHarris2,
                    FixedSync::Input,
                )
                .map(|r| Box::new(r) as Box<dyn Resampler<f32>>)
            }
        };
        built.map_err(|e| Error::node(format!("cannot resample {from} Hz -> {to} Hz: {e}")))
    }
}

/// A declared sample rate, or `"auto"`: take it from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(untagged)]
pub enum RateSetting {
    /// Take the rate from each input.
    #[default]
    #[serde(deserialize_with = "auto_keyword")]
    Auto,
    /// This rate, in Hz.
    Hz(u32),
}

fn auto_keyword<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<(), D::Error> {
    let word = <String as serde::Deserialize>::deserialize(deserializer)?;
    if word.eq_ignore_ascii_case("auto") {
        Ok(())
    } else {
        Err(serde::de::Error::custom(format!(
            "expected \"auto\", found \"{word}\""
        )))
    }
}

/// Params of [`FastResampleNode`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FastResampleParams {
    /// Input sample rate, or `auto` to take it from the input.
    pub source_rate: RateSetting,
    /// Output sample rate.
    pub target_rate: u32,
    /// Resampler quality.
    pub quality: ResampleQuality,
    /// Expected channel count (default: from the input).
    pub channels: Option<u16>,
}

impl Default for FastResampleParams {
    fn default() -> Self {
        Self {
            source_rate: RateSetting::Auto,
            target_rate: 16_000,
            quality: ResampleQuality::Medium,
            channels: None,
        }
    }
}

impl NodeParams for FastResampleParams {
    fn schema() -> ParamsSchema {
        let d = Self::default();
        let source_rate = match d.source_rate {
            RateSetting::Auto => Value::from("auto"),
            RateSetting::Hz(hz) => Value::from(hz),
        };
        ParamsSchema::new()
            .integer_or_choice(
                "source_rate",
                Some(source_rate),
                1000,
                768_000,
                &["auto"],
                "input sample rate, or \"auto\" to take it from the input",
            )
            .integer(
                "target_rate",
                Some(i64::from(d.target_rate)),
                1000,
                768_000,
                "output sample rate",
            )
            .choice(
                "quality",
                Some(d.quality.as_str()),
                &["Low", "Medium", "High"],
                "Low: cubic interpolation; Medium: FFT, low latency; High: FFT, sharpest filter",
            )
            .integer(
                "channels",
                d.channels.map(i64::from),
                1,
                64,
                "expected channel count (default: from input)",
            )
    }
}

/// Converts the sample rate of audio to `target_rate`, each channel separately.
///
/// - `source_rate: "auto"` (default) takes the rate from each input; a number declares it,
///   and input at another rate is a node error. `channels`, when set, declares the channel
///   count the same way.
/// - Output is emitted as soon as the resampler has it (latency: one block of at most
///   20 ms, or 40 ms for `High` — for the FFT qualities a power-of-two number of the
///   rates' reduced units, e.g. 16 ms at 16 → 48 kHz — plus the filter delay, which is
///   trimmed). `timestamp_us` is the media time of each output's first frame.
/// - At end of stream the tail is flushed: the total output length is
///   `round(input_frames * target / source)` frames exactly.
/// - Input already at the target rate passes through without a copy. Each `stream_id` is
///   resampled independently; a change of rate or channel count, or a jump forward in
///   `timestamp_us` (lost audio), flushes the previous segment first and restarts the
///   clock at the new timestamp. Inputs without real timestamps (all 0) count as one
///   continuous stream. Other data types pass through.
pub struct FastResampleNode {
    source_rate: Option<u32>,
    target_rate: u32,
    quality: ResampleQuality,
    channels: Option<u16>,
    streams: PerStream<ResampleStream>,
}

struct ResampleStream {
    stream_id: Option<Arc<str>>,
    source_rate: u32,
    target_rate: u32,
    channels: u16,
    resampler: Box<dyn Resampler<f32>>,
    /// Interleaved input frames not yet consumed by the resampler.
    pending: Vec<f32>,
    /// Scratch output of one resampler call.
    scratch: Vec<f32>,
    /// Output frames still to discard (the resampler's start-up delay).
    delay_left: usize,
    frames_in: u64,
    frames_out: u64,
    start_timestamp_us: u64,
}

impl std::fmt::Debug for FastResampleNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastResampleNode")
            .field("source_rate", &self.source_rate)
            .field("target_rate", &self.target_rate)
            .field("quality", &self.quality)
            .finish_non_exhaustive()
    }
}

impl ResampleStream {
    fn run(&mut self, flushing: bool, out: &mut Vec<f32>) -> Result<()> {
        let ch = usize::from(self.channels);
        let expected_total = if flushing {
            Some(
                ((u128::from(self.frames_in) * 2 * u128::from(self.target_rate)
                    + u128::from(self.source_rate))
                    / (2 * u128::from(self.source_rate))) as u64,
            )
        } else {
            None
        };
        let mut consumed_frames = 0usize;
        // Guard against a resampler that stops producing: at most this many flush calls.
        let mut flush_calls_left = 64usize;
        loop {
            let available = self.pending.len() / ch - consumed_frames;
            let need = self.resampler.input_frames_next();
            let produced_enough = expected_total.is_some_and(|total| self.frames_out >= total);
            if produced_enough || (available < need && !flushing) {
                break;
            }
            if flushing {
                if flush_calls_left == 0 {
                    break;
                }
                flush_calls_left -= 1;
            }
            let take = available.min(need);
            let out_frames = self.resampler.output_frames_max();
            if self.scratch.len() < out_frames * ch {
                self.scratch.resize(out_frames * ch, 0.0);
            }
            let start = consumed_frames * ch;
            let mut padded;
            let input_samples: &[f32] = if take == need {
                &self.pending[start..start + need * ch]
            } else {
                padded = vec![0.0f32; need * ch];
                padded[..take * ch].copy_from_slice(&self.pending[start..start + take * ch]);
                &padded
            };
            let input = InterleavedSlice::new(input_samples, ch, need)
                .map_err(|e| Error::node(format!("resampler input: {e}")))?;
            let mut output =
                InterleavedSlice::new_mut(&mut self.scratch[..out_frames * ch], ch, out_frames)
                    .map_err(|e| Error::node(format!("resampler output: {e}")))?;
            let indexing = Indexing::new().partial_len(take);
            let (_, produced) = self
                .resampler
                .process_into_buffer(&input, &mut output, (take < need).then_some(&indexing))
                .map_err(|e| Error::node(format!("resampler: {e}")))?;
            consumed_frames += take;
            let skip = self.delay_left.min(produced);
            self.delay_left -= skip;
            let mut keep = produced - skip;
            if let Some(total) = expected_total {
                keep = keep.min((total - self.frames_out) as usize);
            }
            out.extend_from_slice(&self.scratch[skip * ch..(skip + keep) * ch]);
            self.frames_out += keep as u64;
        }
        self.pending.drain(..consumed_frames * ch);
        Ok(())
    }
}

impl FastResampleNode {
    /// Resamples to `target_rate` at `quality`, taking the source rate from the input.
    pub fn new(target_rate: u32, quality: ResampleQuality) -> Self {
        Self {
            source_rate: None,
            target_rate: target_rate.max(1),
            quality,
            channels: None,
            streams: PerStream::default(),
        }
    }

    /// Declares the source rate; input at another rate is then an error (builder style).
    pub fn with_source_rate(mut self, source_rate: u32) -> Self {
        self.source_rate = Some(source_rate);
        self
    }

    fn check_input(&self, view: &AudioView<'_>) -> Result<()> {
        if let Some(declared) = self.source_rate {
            if declared != view.sample_rate {
                return Err(Error::node(format!(
                    "input audio is {} Hz but source_rate is {declared}",
                    view.sample_rate
                )));
            }
        }
        if let Some(declared) = self.channels {
            if declared != view.channels {
                return Err(Error::node(format!(
                    "input audio has {} channel(s) but channels is {declared}",
                    view.channels
                )));
            }
        }
        // The filters would spread one NaN or infinity over everything that follows.
        if let Some(index) = crate::data::first_non_finite(view.samples) {
            return Err(Error::node(format!(
                "input audio sample {index} is {}; samples must be finite numbers",
                view.samples[index]
            )));
        }
        Ok(())
    }

    fn emit(stream: &ResampleStream, samples: Vec<f32>, first_frame: u64, outputs: &mut Outputs) {
        if samples.is_empty() {
            return;
        }
        outputs.push(audio(
            samples,
            stream.target_rate,
            stream.channels,
            stream.stream_id.clone(),
            stream.start_timestamp_us + frames_to_us(first_frame, stream.target_rate),
        ));
    }

    fn flush_stream(&self, mut stream: ResampleStream, outputs: &mut Outputs) -> Result<()> {
        let first = stream.frames_out;
        let mut out = Vec::new();
        stream.run(true, &mut out)?;
        Self::emit(&stream, out, first, outputs);
        Ok(())
    }
}

impl Node for FastResampleNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let Some(view) = audio_view(&input)? else {
            outputs.push(input);
            return Ok(());
        };
        self.check_input(&view)?;
        let track = view.stream_id.as_deref();
        if let Some(s) = self.streams.get_mut(track) {
            let expected_us = s.start_timestamp_us + frames_to_us(s.frames_in, s.source_rate);
            // A new segment: other format, or a jump forward in time (lost audio).
            let gap = view.timestamp_us > expected_us + MAX_GAP_US;
            if s.source_rate != view.sample_rate || s.channels != view.channels || gap {
                if let Some(stale) = self.streams.remove(track) {
                    self.flush_stream(stale, outputs)?;
                }
            }
        }
        if view.sample_rate == self.target_rate {
            outputs.push(input);
            return Ok(());
        }
        let (quality, target_rate) = (self.quality, self.target_rate);
        let stream = self.streams.get_or_insert_with(view.stream_id, || {
            let resampler =
                quality.build(view.sample_rate, target_rate, usize::from(view.channels))?;
            let delay = resampler.output_delay();
            Ok(ResampleStream {
                stream_id: view.stream_id.clone(),
                source_rate: view.sample_rate,
                channels: view.channels,
                target_rate,
                resampler,
                pending: Vec::new(),
                scratch: Vec::new(),
                delay_left: delay,
                frames_in: 0,
                frames_out: 0,
                start_timestamp_us: view.timestamp_us,
            })
        })?;
        stream.pending.extend_from_slice(view.samples);
        stream.frames_in += view.frames() as u64;
        let first = stream.frames_out;
        let mut out = Vec::new();
        stream.run(false, &mut out)?;
        if let Some(stream) = self.streams.get_mut(track) {
            Self::emit(stream, out, first, outputs);
        }
        Ok(())
    }

    fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        for (_, stream) in self.streams.take_all() {
            self.flush_stream(stream, outputs)?;
        }
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(FastResampleParams::schema())
    }
}

impl ConfigurableNode for FastResampleNode {
    type Params = FastResampleParams;
    fn from_params(params: FastResampleParams) -> Result<Self> {
        let mut node = Self::new(params.target_rate, params.quality);
        if let RateSetting::Hz(hz) = params.source_rate {
            node.source_rate = Some(hz);
        }
        node.channels = params.channels;
        Ok(node)
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<FastResampleNode>(
        "FastResampleNode",
        &["AudioResampleNode"],
        "converts the sample rate (rubato), flushing the tail at end of stream",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_blocks_are_power_of_two_units_within_the_latency() {
        let rates = [
            8_000u32, 16_000, 22_050, 24_000, 32_000, 44_100, 48_000, 96_000,
        ];
        for &from in &rates {
            for &to in &rates {
                if from == to {
                    continue;
                }
                let g = gcd(u64::from(from), u64::from(to));
                assert!((u64::from(from) + u64::from(to)) / g <= MAX_FFT_RATIO_TERMS);
                for quality in [ResampleQuality::Medium, ResampleQuality::High] {
                    let (chunk, sub_chunks) = quality.fft_geometry(from, g);
                    let unit = (u64::from(from) / g) as usize;
                    let sub = chunk / sub_chunks;
                    let case = format!("{from} -> {to} {quality:?}: {chunk} in {sub_chunks}");
                    assert_eq!(chunk % sub_chunks, 0, "{case}");
                    assert_eq!(sub % unit, 0, "{case}");
                    assert!((sub / unit).is_power_of_two(), "{case}");
                    // Never longer than the quality's block, unless one unit is.
                    assert!(chunk <= quality.chunk_frames(from) || sub == unit, "{case}");
                    quality.build(from, to, 2).expect(&case);
                }
            }
        }
        // The live case: 16 → 48 kHz takes 256-frame blocks (transforms of 512 and 1536).
        assert_eq!(
            ResampleQuality::Medium.fft_geometry(16_000, 16_000),
            (256, 1)
        );
        assert_eq!(ResampleQuality::High.fft_geometry(16_000, 8_000), (512, 1));
    }
}
