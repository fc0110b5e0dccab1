//! `AudioFormatConverterNode`: channel count and PCM format conversion.

use super::dsp::{audio, audio_view};
use crate::data::{AudioSamples, RuntimeData};
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::{Error, Result};

/// PCM encoding of `Binary` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PcmFormat {
    /// 32-bit float, little-endian.
    F32,
    /// 16-bit signed integer, little-endian.
    S16,
}

impl PcmFormat {
    /// The format's name as params write it: `s16` or `f32`.
    pub fn as_str(self) -> &'static str {
        match self {
            PcmFormat::F32 => "f32",
            PcmFormat::S16 => "s16",
        }
    }
}

/// Params of [`AudioFormatConverterNode`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioFormatConverterParams {
    /// Output channel count (default: unchanged).
    pub channels: Option<u16>,
    /// PCM encoding of Binary input.
    pub input_format: PcmFormat,
    /// Channel count of Binary input (default: `channels`, else 1).
    pub input_channels: Option<u16>,
    /// Sample rate of Binary input.
    pub sample_rate: Option<u32>,
}

impl Default for AudioFormatConverterParams {
    fn default() -> Self {
        Self {
            channels: None,
            input_format: PcmFormat::S16,
            input_channels: None,
            sample_rate: None,
        }
    }
}

impl NodeParams for AudioFormatConverterParams {
    fn schema() -> ParamsSchema {
        let d = Self::default();
        ParamsSchema::new()
            .integer(
                "channels",
                d.channels.map(i64::from),
                1,
                64,
                "output channel count (default: unchanged)",
            )
            .choice(
                "input_format",
                Some(d.input_format.as_str()),
                &["s16", "f32"],
                "PCM encoding of Binary input",
            )
            .integer(
                "input_channels",
                d.input_channels.map(i64::from),
                1,
                64,
                "channel count of Binary input (default: channels, else 1)",
            )
            .integer(
                "sample_rate",
                d.sample_rate.map(i64::from),
                1,
                768_000,
                "sample rate of Binary input",
            )
    }
}

/// Converts audio between channel counts and turns raw PCM into `Audio`.
///
/// - `Audio` input: converted to `channels` when set. Down-mix: output channel `c` is the
///   mean of the input channels `i` with `i % channels == c` (so any count → mono is the
///   mean of all channels). Up-mix: output channel `c` copies input channel
///   `c % input_channels` (mono is copied to every channel). Already matching audio passes
///   through without a copy.
/// - `Binary` input: little-endian PCM in `input_format` (`s16` or `f32`) with
///   `input_channels` (default: `channels`, else 1) at `sample_rate` (required for binary
///   input) becomes `Audio`, then converted to `channels`. s16 maps to [-1, 1) by / 32768.
///   A payload that is not a whole number of frames is a node error.
///
/// Other data types pass through.
#[derive(Debug, Clone)]
pub struct AudioFormatConverterNode {
    channels: Option<u16>,
    input_channels: Option<u16>,
    input_format: PcmFormat,
    sample_rate: Option<u32>,
    /// Media time of the next Binary input (raw PCM carries no timestamps).
    next_binary_timestamp_us: u64,
}

impl AudioFormatConverterNode {
    /// A converter to `channels` (None keeps the input's channel count).
    pub fn new(channels: Option<u16>) -> Self {
        Self {
            channels,
            input_channels: None,
            input_format: PcmFormat::S16,
            sample_rate: None,
            next_binary_timestamp_us: 0,
        }
    }

    /// Declares the format of `Binary` input (builder style).
    pub fn with_pcm_input(
        mut self,
        format: PcmFormat,
        sample_rate: u32,
        input_channels: Option<u16>,
    ) -> Self {
        self.input_format = format;
        self.sample_rate = Some(sample_rate);
        self.input_channels = input_channels;
        self
    }

    fn decode_pcm(&mut self, bytes: &[u8], outputs: &mut Outputs) -> Result<()> {
        let sample_rate = self.sample_rate.ok_or_else(|| {
            Error::node("Binary PCM input needs the sample_rate param to become audio")
        })?;
        let channels = self.input_channels.or(self.channels).unwrap_or(1);
        let width = match self.input_format {
            PcmFormat::S16 => 2,
            PcmFormat::F32 => 4,
        };
        let frame_bytes = width * usize::from(channels);
        if bytes.len() % frame_bytes != 0 {
            return Err(Error::node(format!(
                "Binary PCM input of {} bytes is not a whole number of {channels}-channel {} frames ({frame_bytes} bytes each)",
                bytes.len(),
                self.input_format.as_str()
            )));
        }
        let samples: Vec<f32> = match self.input_format {
            PcmFormat::S16 => bytes
                .chunks_exact(2)
                .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
                .collect(),
            PcmFormat::F32 => bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        };
        let frames = (samples.len() / usize::from(channels)) as u64;
        let timestamp_us = self.next_binary_timestamp_us;
        self.next_binary_timestamp_us += super::dsp::frames_to_us(frames, sample_rate);
        let data = audio(samples, sample_rate, channels, None, timestamp_us);
        self.convert_audio(data, outputs)
    }

    fn convert_audio(&self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let Some(view) = audio_view(&input)? else {
            return Ok(());
        };
        let target = match self.channels {
            Some(c) if c != view.channels => c,
            _ => {
                outputs.push(input);
                return Ok(());
            }
        };
        let converted = convert_channels(
            view.samples,
            usize::from(view.channels),
            usize::from(target),
        );
        outputs.push(audio(
            converted,
            view.sample_rate,
            target,
            view.stream_id.clone(),
            view.timestamp_us,
        ));
        Ok(())
    }
}

/// Converts interleaved samples from `from` to `to` channels (see the node docs).
pub(crate) fn convert_channels(samples: &AudioSamples, from: usize, to: usize) -> Vec<f32> {
    if to == 1 {
        return super::dsp::downmix_to_mono(samples, from).into_owned();
    }
    let frames = samples.len() / from;
    let mut out = vec![0.0f32; frames * to];
    if to < from {
        // Down-mix: mean of the input channels folded onto each output channel.
        let mut counts = vec![0u32; to];
        for i in 0..from {
            counts[i % to] += 1;
        }
        for (frame_in, frame_out) in samples.chunks_exact(from).zip(out.chunks_exact_mut(to)) {
            for (i, &s) in frame_in.iter().enumerate() {
                frame_out[i % to] += s;
            }
            for (o, &n) in frame_out.iter_mut().zip(&counts) {
                *o /= n as f32;
            }
        }
    } else {
        for (frame_in, frame_out) in samples.chunks_exact(from).zip(out.chunks_exact_mut(to)) {
            for (c, o) in frame_out.iter_mut().enumerate() {
                *o = frame_in[c % from];
            }
        }
    }
    out
}

impl Default for AudioFormatConverterNode {
    fn default() -> Self {
        Self::new(AudioFormatConverterParams::default().channels)
    }
}

impl Node for AudioFormatConverterNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        match input {
            RuntimeData::Binary(bytes) => self.decode_pcm(&bytes, outputs),
            input @ RuntimeData::Audio { .. } => self.convert_audio(input, outputs),
            other => {
                outputs.push(other);
                Ok(())
            }
        }
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(AudioFormatConverterParams::schema())
    }
}

impl ConfigurableNode for AudioFormatConverterNode {
    type Params = AudioFormatConverterParams;
    fn from_params(params: AudioFormatConverterParams) -> Result<Self> {
        let mut node = Self::new(params.channels);
        node.input_format = params.input_format;
        node.input_channels = params.input_channels;
        node.sample_rate = params.sample_rate;
        Ok(node)
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<AudioFormatConverterNode>(
        "AudioFormatConverterNode",
        &[],
        "converts channel count; turns s16/f32 PCM Binary into Audio",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stereo_downmix_is_the_mean() {
        let s = AudioSamples::from(vec![1.0f32, 0.0, 0.5, -0.5]);
        assert_eq!(convert_channels(&s, 2, 1), vec![0.5, 0.0]);
    }

    #[test]
    fn mono_upmix_copies() {
        let s = AudioSamples::from(vec![0.25f32, -1.0]);
        assert_eq!(convert_channels(&s, 1, 2), vec![0.25, 0.25, -1.0, -1.0]);
    }

    #[test]
    fn s16_pcm_becomes_audio() {
        let mut node =
            AudioFormatConverterNode::new(None).with_pcm_input(PcmFormat::S16, 16_000, Some(1));
        let mut out = Outputs::new();
        let pcm: Vec<u8> = [16384i16, -32768]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        node.process(RuntimeData::Binary(pcm.into()), &mut out)
            .expect("valid pcm");
        let out = out.into_vec();
        let RuntimeData::Audio {
            samples,
            sample_rate,
            ..
        } = &out[0]
        else {
            panic!("audio expected")
        };
        assert_eq!(&**samples, &[0.5, -1.0]);
        assert_eq!(*sample_rate, 16_000);
    }

    #[test]
    fn binary_without_sample_rate_is_a_clear_error() {
        let mut node = AudioFormatConverterNode::new(Some(1));
        let err = node
            .process(
                RuntimeData::Binary(vec![0u8; 4].into()),
                &mut Outputs::new(),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("needs the sample_rate param"),
            "{err}"
        );
    }
}
