//! `BlackFrameDetectorNode`: the picture went black.

use super::{frame_view, luma, Episode};
use crate::data::RuntimeData;
use crate::nodes::audio::streams::PerStream;
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::Result;
use std::sync::Arc;

/// Params of [`BlackFrameDetectorNode`].
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlackFrameDetectorParams {
    /// A pixel whose luma (0..1) is below this is black.
    pub luma_threshold: f64,
    /// A frame with at least this share of black pixels is black.
    pub pixel_ratio: f64,
    /// Black frames must last this long before they are reported.
    pub min_duration_ms: u64,
}

impl Default for BlackFrameDetectorParams {
    fn default() -> Self {
        Self {
            luma_threshold: 0.1,
            pixel_ratio: 0.98,
            min_duration_ms: 200,
        }
    }
}

impl NodeParams for BlackFrameDetectorParams {
    fn schema() -> ParamsSchema {
        let d = Self::default();
        ParamsSchema::new()
            .number(
                "luma_threshold",
                Some(d.luma_threshold),
                0.0,
                1.0,
                "a pixel whose luma (0..1) is below this is black",
            )
            .number(
                "pixel_ratio",
                Some(d.pixel_ratio),
                0.0,
                1.0,
                "a frame with at least this share of black pixels is black",
            )
            .integer(
                "min_duration_ms",
                Some(d.min_duration_ms as i64),
                0,
                3_600_000,
                "black frames must last this long before they are reported",
            )
    }
}

#[derive(Debug, Default)]
struct Track {
    black: Episode,
    last_ms: f64,
}

/// Emits `{"alert": "black", "state": "start", "start_ms", "stream_id"}` once frames
/// with at least `pixel_ratio` of their pixels below `luma_threshold` have lasted
/// `min_duration_ms`, and `{"alert": "black", "state": "end", "start_ms", "duration_ms",
/// "stream_id"}` at the first frame that is not black, or at the end of the stream.
/// Frames are consumed; other data passes through. Each video track is watched on its own.
#[derive(Debug)]
pub struct BlackFrameDetectorNode {
    luma_threshold: u8,
    pixel_ratio: f64,
    min_duration_ms: f64,
    tracks: PerStream<Track>,
}

impl ConfigurableNode for BlackFrameDetectorNode {
    type Params = BlackFrameDetectorParams;
    fn from_params(params: BlackFrameDetectorParams) -> Result<Self> {
        Ok(Self {
            // Luma below threshold * 255, on the 8-bit scale.
            luma_threshold: (params.luma_threshold * 255.0).ceil().min(255.0) as u8,
            pixel_ratio: params.pixel_ratio,
            min_duration_ms: params.min_duration_ms as f64,
            tracks: PerStream::default(),
        })
    }
}

impl Default for BlackFrameDetectorNode {
    fn default() -> Self {
        Self::from_params(BlackFrameDetectorParams::default()).unwrap_or(Self {
            luma_threshold: 26,
            pixel_ratio: 0.98,
            min_duration_ms: 200.0,
            tracks: PerStream::default(),
        })
    }
}

impl Node for BlackFrameDetectorNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let Some(frame) = frame_view(&input)? else {
            outputs.push(input);
            return Ok(());
        };
        let now = frame.time_ms();
        let stream: Option<Arc<str>> = frame.stream_id.cloned();
        let luma = luma(&frame);
        let dark = luma.iter().filter(|&&y| y < self.luma_threshold).count();
        let black = !luma.is_empty() && dark as f64 >= self.pixel_ratio * luma.len() as f64;
        let track = self
            .tracks
            .get_or_insert_with(&stream, || Ok(Track::default()))?;
        let event = if black {
            track
                .black
                .holds("black", now, now, self.min_duration_ms, stream.as_ref())
        } else {
            track.black.ends("black", now, stream.as_ref())
        };
        if let Some(event) = event {
            outputs.push(event);
        }
        track.last_ms = now;
        Ok(())
    }

    fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        for (stream, mut track) in self.tracks.take_all() {
            if let Some(event) = track.black.ends("black", track.last_ms, stream.as_ref()) {
                outputs.push(event);
            }
        }
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(BlackFrameDetectorParams::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<BlackFrameDetectorNode>(
        "BlackFrameDetectorNode",
        &[],
        "alerts when frames are (almost) all black for a while (start and end events)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::video::testing::{flat, json_outputs, pattern, rgb};

    fn run(node: &mut BlackFrameDetectorNode, frames: Vec<RuntimeData>) -> Vec<serde_json::Value> {
        json_outputs(node, frames)
    }

    #[test]
    fn black_frames_are_reported_with_their_real_length() {
        let mut node = BlackFrameDetectorNode::default();
        let frames = (0..50u64)
            .map(|i| {
                let ms = i * 40;
                if (800..1400).contains(&ms) {
                    flat(32, 24, ms, [4, 4, 4])
                } else {
                    pattern(32, 24, ms)
                }
            })
            .collect();
        let events = run(&mut node, frames);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(
            (events[0]["state"].as_str(), events[0]["start_ms"].as_f64()),
            (Some("start"), Some(800.0))
        );
        assert_eq!(events[1]["duration_ms"], 600.0);
    }

    #[test]
    fn a_bright_corner_or_a_short_blackout_is_not_black() {
        let mut node = BlackFrameDetectorNode::default();
        // 10 % of the pixels bright: below pixel_ratio 0.98 of black.
        let mostly = |ms| {
            rgb(
                40,
                10,
                ms,
                |x, _| if x < 4 { [255, 255, 255] } else { [0, 0, 0] },
            )
        };
        let mut frames: Vec<RuntimeData> = (0..20u64).map(|i| mostly(i * 40)).collect();
        // 120 ms of black: shorter than min_duration_ms.
        frames.extend((20..23u64).map(|i| flat(40, 10, i * 40, [0, 0, 0])));
        frames.push(pattern(40, 10, 23 * 40));
        assert!(run(&mut node, frames).is_empty());
        // Encoded frames are refused with a reason.
        let mut encoded = pattern(4, 4, 0);
        if let RuntimeData::Video { format, codec, .. } = &mut encoded {
            *format = crate::data::PixelFormat::Encoded;
            *codec = Some("h264".into());
        }
        let err = node
            .process(encoded, &mut Outputs::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("encoded h264 frame"), "{err}");
    }
}
