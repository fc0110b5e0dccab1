//! `AudioChunkerNode`: re-frames audio into fixed-size chunks.

use super::dsp::frames_to_us;
use super::streams::PerStream;
use crate::data::{AudioSamples, RuntimeData};
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::{Error, Result};
use std::sync::Arc;

/// Params of [`AudioChunkerNode`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioChunkerParams {
    /// Frames (samples per channel) per output chunk.
    pub chunk_size: usize,
}

impl Default for AudioChunkerParams {
    fn default() -> Self {
        Self { chunk_size: 512 }
    }
}

impl NodeParams for AudioChunkerParams {
    fn schema() -> ParamsSchema {
        let d = Self::default();
        ParamsSchema::new().integer(
            "chunk_size",
            Some(d.chunk_size as i64),
            1,
            1_048_576,
            "frames (samples per channel) per output chunk",
        )
    }
}

/// Re-frames audio into chunks of exactly `chunk_size` frames.
///
/// Multichannel audio stays frame-aligned; the concatenation of all outputs equals the
/// concatenation of all inputs bit for bit; each chunk's `timestamp_us` is the media time
/// of its first frame. Streams with different `stream_id`s are chunked independently. At
/// end of stream (or when a stream changes sample rate or channel count) the remainder is
/// emitted as a shorter chunk. Whole chunks inside one input are emitted as views of the
/// input buffer, without copying. Other data types pass through.
#[derive(Debug, Clone)]
pub struct AudioChunkerNode {
    chunk_size: usize,
    streams: PerStream<StreamBuffer>,
}

#[derive(Debug, Clone)]
struct StreamBuffer {
    stream_id: Option<Arc<str>>,
    sample_rate: u32,
    channels: u16,
    /// Interleaved samples not yet emitted (always whole frames, fewer than a chunk).
    pending: Vec<f32>,
    /// Media time the frame counts below are measured from.
    origin_us: u64,
    /// Frames received since `origin_us`.
    frames_in: u64,
    /// Frames emitted since `origin_us`.
    frames_out: u64,
}

impl StreamBuffer {
    /// Media time of the next frame to emit. Computed from the origin, so rounding never
    /// accumulates over a long stream.
    fn next_timestamp_us(&self) -> u64 {
        self.origin_us + frames_to_us(self.frames_out, self.sample_rate)
    }
}

/// An input timestamp this far ahead of where the stream should be is a gap.
const MAX_DRIFT_US: u64 = 1000;

impl AudioChunkerNode {
    /// A chunker emitting `chunk_size` frames per chunk (at least 1).
    pub fn new(chunk_size: usize) -> Self {
        Self {
            chunk_size: chunk_size.max(1),
            streams: PerStream::default(),
        }
    }

    /// Frames per emitted chunk.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    fn emit_pending(buffer: &mut StreamBuffer, outputs: &mut Outputs) {
        if buffer.pending.is_empty() {
            return;
        }
        let frames = buffer.pending.len() / usize::from(buffer.channels);
        outputs.push(RuntimeData::Audio {
            samples: AudioSamples::from(std::mem::take(&mut buffer.pending)),
            sample_rate: buffer.sample_rate,
            channels: buffer.channels,
            stream_id: buffer.stream_id.clone(),
            timestamp_us: buffer.next_timestamp_us(),
        });
        buffer.frames_out += frames as u64;
    }
}

impl Default for AudioChunkerNode {
    fn default() -> Self {
        Self::new(AudioChunkerParams::default().chunk_size)
    }
}

impl ConfigurableNode for AudioChunkerNode {
    type Params = AudioChunkerParams;
    fn from_params(params: AudioChunkerParams) -> Result<Self> {
        Ok(Self::new(params.chunk_size))
    }
}

impl Node for AudioChunkerNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let RuntimeData::Audio {
            samples,
            sample_rate,
            channels,
            stream_id,
            timestamp_us,
        } = input
        else {
            outputs.push(input);
            return Ok(());
        };
        if channels == 0 || sample_rate == 0 {
            return Err(Error::node(format!(
                "audio with {channels} channels at {sample_rate} Hz cannot be chunked"
            )));
        }
        let ch = usize::from(channels);
        if samples.len() % ch != 0 {
            return Err(Error::node(format!(
                "audio has {} samples, not a whole number of {channels}-channel frames",
                samples.len()
            )));
        }

        let chunk_samples = self.chunk_size * ch;
        let buffer = self.streams.get_or_insert_with(&stream_id, || {
            Ok(StreamBuffer {
                stream_id: stream_id.clone(),
                sample_rate,
                channels,
                pending: Vec::new(),
                origin_us: timestamp_us,
                frames_in: 0,
                frames_out: 0,
            })
        })?;
        let expected_us = buffer.origin_us + frames_to_us(buffer.frames_in, buffer.sample_rate);
        // Only a jump forward (lost audio) restarts the clock; inputs that carry no real
        // timestamps (all 0) or jitter backwards are treated as continuous.
        let discontinuous = timestamp_us > expected_us + MAX_DRIFT_US;
        if buffer.sample_rate != sample_rate || buffer.channels != channels || discontinuous {
            // A new segment: emit what belongs to the old one, restart the clock.
            Self::emit_pending(buffer, outputs);
            buffer.sample_rate = sample_rate;
            buffer.channels = channels;
            buffer.origin_us = timestamp_us;
            buffer.frames_in = 0;
            buffer.frames_out = 0;
        }
        buffer.frames_in += (samples.len() / ch) as u64;

        let mut offset = 0;
        // Complete the partial chunk first.
        if !buffer.pending.is_empty() {
            let take = (chunk_samples - buffer.pending.len()).min(samples.len());
            buffer.pending.extend_from_slice(&samples[..take]);
            offset = take;
            if buffer.pending.len() == chunk_samples {
                Self::emit_pending(buffer, outputs);
            }
        }
        // Whole chunks straight out of the input buffer.
        while samples.len() - offset >= chunk_samples {
            outputs.push(RuntimeData::Audio {
                samples: samples.slice(offset..offset + chunk_samples),
                sample_rate,
                channels,
                stream_id: stream_id.clone(),
                timestamp_us: buffer.next_timestamp_us(),
            });
            buffer.frames_out += self.chunk_size as u64;
            offset += chunk_samples;
        }
        if offset < samples.len() {
            buffer.pending.extend_from_slice(&samples[offset..]);
        }
        Ok(())
    }

    fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        for (_, mut buffer) in self.streams.take_all() {
            Self::emit_pending(&mut buffer, outputs);
        }
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(AudioChunkerParams::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<AudioChunkerNode>(
        "AudioChunkerNode",
        &[],
        "re-frames audio into chunks of exactly chunk_size frames",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audio(samples: Vec<f32>, channels: u16, ts: u64) -> RuntimeData {
        RuntimeData::Audio {
            samples: samples.into(),
            sample_rate: 1000,
            channels,
            stream_id: Some("audio:0".into()),
            timestamp_us: ts,
        }
    }

    #[test]
    fn concatenation_is_bit_exact_and_stereo_stays_aligned() {
        let mut node = AudioChunkerNode::new(3);
        let mut out = Outputs::new();
        let input: Vec<f32> = (0..26).map(|i| i as f32 * 0.01).collect();
        node.process(audio(input[..10].to_vec(), 2, 0), &mut out)
            .expect("ok");
        node.process(audio(input[10..26].to_vec(), 2, 5000), &mut out)
            .expect("ok");
        node.flush(&mut out).expect("ok");
        let chunks = out.into_vec();
        let mut joined = Vec::new();
        let mut timestamps = Vec::new();
        for c in &chunks {
            let RuntimeData::Audio {
                samples,
                timestamp_us,
                ..
            } = c
            else {
                panic!("audio")
            };
            joined.extend_from_slice(samples);
            timestamps.push(*timestamp_us);
        }
        assert_eq!(joined, input);
        let sizes: Vec<usize> = chunks
            .iter()
            .filter_map(RuntimeData::audio_frames)
            .collect();
        assert_eq!(sizes, [3, 3, 3, 3, 1]);
        assert_eq!(timestamps, [0, 3000, 6000, 9000, 12000]);
    }

    #[test]
    fn ragged_stereo_input_is_an_error() {
        let mut node = AudioChunkerNode::new(3);
        let err = node
            .process(audio(vec![0.0; 5], 2, 0), &mut Outputs::new())
            .unwrap_err();
        assert!(err.to_string().contains("5 samples"), "{err}");
    }

    #[test]
    fn inputs_without_timestamps_are_chunked_as_one_stream() {
        let mut node = AudioChunkerNode::new(4);
        let mut out = Outputs::new();
        for _ in 0..3 {
            node.process(audio(vec![0.5; 6], 1, 0), &mut out)
                .expect("ok");
        }
        node.flush(&mut out).expect("ok");
        let chunks = out.into_vec();
        let sizes: Vec<usize> = chunks
            .iter()
            .filter_map(RuntimeData::audio_frames)
            .collect();
        assert_eq!(sizes, [4, 4, 4, 4, 2]);
        let RuntimeData::Audio { timestamp_us, .. } = &chunks[1] else {
            panic!("audio")
        };
        assert_eq!(
            *timestamp_us, 4000,
            "timestamps count frames from the start"
        );
    }

    #[test]
    fn a_gap_in_timestamps_emits_the_partial_chunk_and_restarts_the_clock() {
        let mut node = AudioChunkerNode::new(4);
        let mut out = Outputs::new();
        node.process(audio(vec![0.5; 6], 1, 0), &mut out)
            .expect("ok");
        node.process(audio(vec![0.5; 4], 1, 100_000), &mut out)
            .expect("ok");
        let stamps: Vec<(usize, u64)> = out
            .into_vec()
            .iter()
            .map(|c| match c {
                RuntimeData::Audio {
                    samples,
                    timestamp_us,
                    ..
                } => (samples.len(), *timestamp_us),
                _ => (0, 0),
            })
            .collect();
        assert_eq!(stamps, [(4, 0), (2, 4000), (4, 100_000)]);
    }
}
