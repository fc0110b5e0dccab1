//! `VideoFreezeDetectorNode`: the picture stopped changing.

use super::{frame_view, luma, Episode};
use crate::data::RuntimeData;
use crate::nodes::audio::streams::PerStream;
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::Result;
use std::sync::Arc;

/// Params of [`VideoFreezeDetectorNode`].
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoFreezeDetectorParams {
    /// The picture must stay still this long before a freeze is reported.
    pub freeze_ms: u64,
    /// Consecutive frames whose mean absolute luma difference is below this are still.
    pub threshold: f64,
}

impl Default for VideoFreezeDetectorParams {
    fn default() -> Self {
        Self {
            freeze_ms: 500,
            threshold: 0.002,
        }
    }
}

impl NodeParams for VideoFreezeDetectorParams {
    fn schema() -> ParamsSchema {
        let d = Self::default();
        ParamsSchema::new()
            .integer(
                "freeze_ms",
                Some(d.freeze_ms as i64),
                1,
                3_600_000,
                "the picture must stay still this long before a freeze is reported",
            )
            .number(
                "threshold",
                Some(d.threshold),
                0.0,
                1.0,
                "frames whose mean absolute luma difference (0..1) is below this are still",
            )
    }
}

#[derive(Debug, Default)]
struct Track {
    previous: Option<(usize, usize, Vec<u8>)>,
    previous_ms: f64,
    /// The current still run, from its first frame.
    still: Episode,
}

/// Emits `{"alert": "freeze", "state": "start", "start_ms", "stream_id"}` once the
/// mean absolute luma difference between consecutive frames has stayed below `threshold`
/// for `freeze_ms`, and `{"alert": "freeze", "state": "end", "start_ms", "duration_ms",
/// "stream_id"}` when the picture moves again, changes size, or the stream ends. Frames
/// are consumed; other data passes through. Each video track is watched on its own.
#[derive(Debug)]
pub struct VideoFreezeDetectorNode {
    freeze_ms: f64,
    threshold: f64,
    tracks: PerStream<Track>,
}

impl ConfigurableNode for VideoFreezeDetectorNode {
    type Params = VideoFreezeDetectorParams;
    fn from_params(params: VideoFreezeDetectorParams) -> Result<Self> {
        Ok(Self {
            freeze_ms: params.freeze_ms as f64,
            threshold: params.threshold,
            tracks: PerStream::default(),
        })
    }
}

impl Default for VideoFreezeDetectorNode {
    fn default() -> Self {
        Self {
            freeze_ms: 500.0,
            threshold: 0.002,
            tracks: PerStream::default(),
        }
    }
}

impl Node for VideoFreezeDetectorNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let Some(frame) = frame_view(&input)? else {
            outputs.push(input);
            return Ok(());
        };
        let now = frame.time_ms();
        let stream: Option<Arc<str>> = frame.stream_id.cloned();
        let luma = luma(&frame);
        let track = self
            .tracks
            .get_or_insert_with(&stream, || Ok(Track::default()))?;
        let still = match &track.previous {
            Some((w, h, previous))
                if *w == frame.width && *h == frame.height && !luma.is_empty() =>
            {
                let total: u64 = previous
                    .iter()
                    .zip(luma.iter())
                    .map(|(a, b)| u64::from(a.abs_diff(*b)))
                    .sum();
                (total as f64 / luma.len() as f64 / 255.0) < self.threshold
            }
            _ => false,
        };
        let event = if still {
            track.still.holds(
                "freeze",
                track.previous_ms,
                now,
                self.freeze_ms,
                stream.as_ref(),
            )
        } else {
            track.still.ends("freeze", now, stream.as_ref())
        };
        if let Some(event) = event {
            outputs.push(event);
        }
        track.previous = Some((frame.width, frame.height, luma.into_owned()));
        track.previous_ms = now;
        Ok(())
    }

    fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        for (stream, mut track) in self.tracks.take_all() {
            if let Some(event) = track
                .still
                .ends("freeze", track.previous_ms, stream.as_ref())
            {
                outputs.push(event);
            }
        }
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(VideoFreezeDetectorParams::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<VideoFreezeDetectorNode>(
        "VideoFreezeDetectorNode",
        &[],
        "alerts when the picture stops changing for a while (start and end events)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::video::testing::{flat, json_outputs, pattern, FrameExt};

    fn run(node: &mut VideoFreezeDetectorNode, frames: Vec<RuntimeData>) -> Vec<serde_json::Value> {
        json_outputs(node, frames)
    }

    #[test]
    fn a_still_picture_is_reported_with_its_real_length() {
        let mut node = VideoFreezeDetectorNode::default();
        // 25 fps: moving for 1 s, frozen from 1000 ms to 2000 ms, moving again to 3000 ms.
        let frames = (0..75u64)
            .map(|i| {
                let ms = i * 40;
                if (1000..2000).contains(&ms) {
                    pattern(64, 48, 1000).with_time(ms)
                } else {
                    pattern(64, 48, ms)
                }
            })
            .collect();
        let events = run(&mut node, frames);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0]["state"], "start");
        assert_eq!(events[0]["start_ms"], 1000.0);
        assert_eq!(events[1]["state"], "end");
        assert_eq!(events[1]["start_ms"], 1000.0);
        assert_eq!(
            events[1]["duration_ms"], 1000.0,
            "until the first moving frame"
        );
    }

    #[test]
    fn a_short_pause_is_not_a_freeze_and_a_freeze_at_the_end_is_closed() {
        let mut node = VideoFreezeDetectorNode::default();
        let mut frames: Vec<RuntimeData> = (0..10u64).map(|i| pattern(32, 32, i * 40)).collect();
        // 200 ms still: below freeze_ms.
        frames.extend((10..15u64).map(|i| pattern(32, 32, 360).with_time(i * 40)));
        frames.extend((15..20u64).map(|i| pattern(32, 32, i * 40)));
        // Still until the end: 800 ms.
        frames.extend((20..40u64).map(|i| flat(32, 32, i * 40, [9, 9, 9])));
        let events = run(&mut node, frames);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0]["start_ms"], 800.0);
        assert_eq!(events[1]["duration_ms"], 760.0, "until the last frame");
    }

    #[test]
    fn tracks_are_watched_apart_and_other_data_passes() {
        let mut node = VideoFreezeDetectorNode::default();
        let mut outputs = Outputs::new();
        node.process(RuntimeData::Text("x".into()), &mut outputs)
            .expect("text");
        assert_eq!(outputs.drain().count(), 1);
        for i in 0..30u64 {
            let still = flat(16, 16, i * 40, [50, 50, 50]).with_stream("video:0");
            let moving = pattern(16, 16, i * 40).with_stream("video:1");
            node.process(still, &mut outputs).expect("still");
            node.process(moving, &mut outputs).expect("moving");
        }
        let events: Vec<_> = outputs
            .drain()
            .map(|o| o.as_json().expect("json").clone())
            .collect();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["stream_id"], "video:0");
    }
}
