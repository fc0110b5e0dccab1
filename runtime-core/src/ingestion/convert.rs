//! [`AudioConversion`]: the rate and channel conversion an [`IngestConfig`] asks for, built
//! from the core's audio nodes, so every ingest plugin converts audio the same way.

use super::IngestConfig;
use crate::data::RuntimeData;
use crate::nodes::audio::{AudioFormatConverterNode, FastResampleNode, ResampleQuality};
use crate::nodes::{Node, Outputs};
use crate::{Error, Result};
use std::sync::Arc;

/// Converts one decoded audio track to the rate and channel count of an [`IngestConfig`]
/// (`audio_channels`: the `AudioFormatConverterNode` mix; `audio_sample_rate`: the
/// `FastResampleNode` at Medium quality) and tags it with its `stream_id`.
///
/// Feed it interleaved f32 blocks with the media time of their first frame; a jump forward
/// in time (lost input) restarts the resampler's clock there, so timestamps stay true.
/// A sample that is not a finite number is an [`Error::InvalidData`] naming the track and
/// the media time.
///
/// ```
/// use remotemedia_runtime_core::ingestion::{AudioConversion, IngestConfig};
///
/// let config = IngestConfig { audio_channels: Some(1), ..IngestConfig::from_url("x") };
/// let mut conversion = AudioConversion::new(&config, "audio:0", 48_000, 2);
/// let items = conversion.convert(vec![0.5f32, -0.5, 0.25, 0.25], 0).unwrap();
/// assert_eq!(items[0].audio_frames(), Some(2));
/// ```
#[derive(Debug)]
pub struct AudioConversion {
    stream_id: Arc<str>,
    channels: Option<AudioFormatConverterNode>,
    resample: Option<FastResampleNode>,
    source_rate: u32,
    source_channels: u16,
    samples_in: u64,
    outputs: Outputs,
}

impl AudioConversion {
    /// A conversion of the track `stream_id`, decoded at `source_rate` Hz with
    /// `source_channels` channels, to what `config` asks for.
    pub fn new(
        config: &IngestConfig,
        stream_id: &str,
        source_rate: u32,
        source_channels: u16,
    ) -> Self {
        Self {
            stream_id: Arc::from(stream_id),
            channels: config
                .audio_channels
                .filter(|&c| c != source_channels)
                .map(|c| AudioFormatConverterNode::new(Some(c))),
            resample: config
                .audio_sample_rate
                .filter(|&r| r != source_rate)
                .map(|r| FastResampleNode::new(r, ResampleQuality::Medium)),
            source_rate,
            source_channels,
            samples_in: 0,
            outputs: Outputs::new(),
        }
    }

    /// The decoded rate and channel count this conversion was built for.
    pub fn source_format(&self) -> (u32, u16) {
        (self.source_rate, self.source_channels)
    }

    /// Converts one block of interleaved samples whose first frame is at `timestamp_us`;
    /// returns the converted items ready so far (the resampler holds back up to one block).
    pub fn convert(&mut self, samples: Vec<f32>, timestamp_us: u64) -> Result<Vec<RuntimeData>> {
        let channels = u64::from(self.source_channels.max(1));
        if let Some(index) = crate::data::first_non_finite(&samples) {
            let frame = index as u64 / channels;
            return Err(Error::InvalidData(format!(
                "sample {} of {} (at {:.3} s) is {}: samples must be finite numbers",
                self.samples_in + index as u64,
                self.stream_id,
                (timestamp_us as f64 / 1e6) + frame as f64 / f64::from(self.source_rate.max(1)),
                samples[index]
            )));
        }
        self.samples_in += samples.len() as u64;
        let item = RuntimeData::Audio {
            samples: samples.into(),
            sample_rate: self.source_rate,
            channels: self.source_channels,
            stream_id: Some(Arc::clone(&self.stream_id)),
            timestamp_us,
        };
        self.run(Some(item))
    }

    /// The audio still held back, at the end of the track.
    pub fn finish(&mut self) -> Result<Vec<RuntimeData>> {
        self.run(None)
    }

    fn run(&mut self, item: Option<RuntimeData>) -> Result<Vec<RuntimeData>> {
        let mut stage: Vec<RuntimeData> = item.into_iter().collect();
        let flushing = stage.is_empty();
        for node in [
            self.channels.as_mut().map(|n| n as &mut dyn Node),
            self.resample.as_mut().map(|n| n as &mut dyn Node),
        ]
        .into_iter()
        .flatten()
        {
            for data in stage.drain(..) {
                node.process(data, &mut self.outputs)?;
            }
            if flushing {
                node.flush(&mut self.outputs)?;
            }
            stage.extend(self.outputs.drain());
        }
        Ok(stage)
    }
}
