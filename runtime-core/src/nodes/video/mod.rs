//! Native video nodes: stream monitoring (freeze, black frames, A/V skew) and pixel
//! format conversion with scaling, on raw [`RuntimeData::Video`] frames.
//!
//! Luma is the BT.601 Y of each pixel in [0, 1] (the Y plane of YUV frames, 0.299 R +
//! 0.587 G + 0.114 B of RGB frames). Times are media time from the frames' `timestamp_us`.

mod avsync;
mod black;
mod convert;
mod freeze;

pub use avsync::{AVSyncMethod, AVSyncNode, AVSyncParams};
pub use black::{BlackFrameDetectorNode, BlackFrameDetectorParams};
pub use convert::{VideoFormatConverterNode, VideoFormatConverterParams};
pub use freeze::{VideoFreezeDetectorNode, VideoFreezeDetectorParams};

use crate::data::{PixelFormat, RuntimeData};
use crate::{Error, Result};
use std::sync::Arc;

pub(crate) fn factories() -> Vec<crate::nodes::builtin::BuiltinFactory> {
    vec![
        freeze::factory(),
        black::factory(),
        convert::factory(),
        avsync::factory(),
    ]
}

/// A raw frame's fields, borrowed.
pub(crate) struct FrameView<'a> {
    pub(crate) pixels: &'a [u8],
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) format: PixelFormat,
    pub(crate) timestamp_us: u64,
    pub(crate) stream_id: Option<&'a Arc<str>>,
}

impl FrameView<'_> {
    /// Media time in milliseconds.
    pub(crate) fn time_ms(&self) -> f64 {
        self.timestamp_us as f64 / 1000.0
    }
}

/// The frame in `input`, if it is video; an error for an encoded or malformed frame.
pub(crate) fn frame_view(input: &RuntimeData) -> Result<Option<FrameView<'_>>> {
    let RuntimeData::Video {
        pixel_data,
        width,
        height,
        format,
        codec,
        timestamp_us,
        stream_id,
        ..
    } = input
    else {
        return Ok(None);
    };
    if *format == PixelFormat::Encoded {
        return Err(Error::node(format!(
            "got an encoded {} frame: video nodes take decoded frames (the ingest adapter decodes)",
            codec.as_deref().unwrap_or("video")
        )));
    }
    let expected = format.frame_len(*width, *height);
    if expected != Some(pixel_data.len()) {
        return Err(Error::node(format!(
            "a {}x{} {} frame has {} bytes, expected {}",
            width,
            height,
            format.as_str(),
            pixel_data.len(),
            expected
                .map(|n| n.to_string())
                .unwrap_or_else(|| "a size that fits in memory".into())
        )));
    }
    Ok(Some(FrameView {
        pixels: pixel_data,
        width: *width as usize,
        height: *height as usize,
        format: *format,
        timestamp_us: *timestamp_us,
        stream_id: stream_id.as_ref(),
    }))
}

/// The 8-bit luma of every pixel, row by row.
pub(crate) fn luma<'a>(frame: &FrameView<'a>) -> std::borrow::Cow<'a, [u8]> {
    let pixels = frame.width * frame.height;
    let rgb = |stride: usize| -> Vec<u8> {
        frame
            .pixels
            .chunks_exact(stride)
            .take(pixels)
            .map(|p| luma_of(p[0], p[1], p[2]))
            .collect()
    };
    match frame.format {
        PixelFormat::Gray8 | PixelFormat::Yuv420p | PixelFormat::Nv12 => {
            std::borrow::Cow::Borrowed(&frame.pixels[..pixels])
        }
        PixelFormat::Rgb24 => std::borrow::Cow::Owned(rgb(3)),
        PixelFormat::Rgba32 => std::borrow::Cow::Owned(rgb(4)),
        // frame_view refuses encoded frames.
        PixelFormat::Encoded => std::borrow::Cow::Owned(Vec::new()),
    }
}

/// BT.601 luma of one RGB pixel, 8-bit, rounded (integer weights 77/150/29 of 256).
pub(crate) fn luma_of(r: u8, g: u8, b: u8) -> u8 {
    ((77 * r as u32 + 150 * g as u32 + 29 * b as u32 + 128) >> 8) as u8
}

/// A condition that lasts (a freeze, a black stretch) on one track: reported with a start
/// event once it has lasted long enough, and an end event with its real length.
#[derive(Debug, Default)]
pub(crate) struct Episode {
    since_ms: Option<f64>,
    alerted: bool,
}

impl Episode {
    /// The condition holds at `now`; if it is new, it began at `began`. Returns the start
    /// event `{"alert", "state": "start", "start_ms", "stream_id"}` once it has lasted
    /// `min_ms`.
    pub(crate) fn holds(
        &mut self,
        alert: &str,
        began: f64,
        now: f64,
        min_ms: f64,
        stream: Option<&Arc<str>>,
    ) -> Option<RuntimeData> {
        let since = *self.since_ms.get_or_insert(began);
        if self.alerted || now - since < min_ms {
            return None;
        }
        self.alerted = true;
        Some(RuntimeData::Json(serde_json::json!({
            "alert": alert,
            "state": "start",
            "start_ms": round2(since),
            "stream_id": stream_json(stream),
        })))
    }

    /// The condition stopped at `now`: the end event `{"alert", "state": "end",
    /// "start_ms", "duration_ms", "stream_id"}` if a start was reported.
    pub(crate) fn ends(
        &mut self,
        alert: &str,
        now: f64,
        stream: Option<&Arc<str>>,
    ) -> Option<RuntimeData> {
        let since = self.since_ms.take();
        let alerted = std::mem::take(&mut self.alerted);
        let since = since.filter(|_| alerted)?;
        Some(RuntimeData::Json(serde_json::json!({
            "alert": alert,
            "state": "end",
            "start_ms": round2(since),
            "duration_ms": round2((now - since).max(0.0)),
            "stream_id": stream_json(stream),
        })))
    }
}

/// Rounded to two decimals, for JSON.
pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The track tag as JSON (null when untagged).
pub(crate) fn stream_json(stream_id: Option<&Arc<str>>) -> serde_json::Value {
    stream_id
        .map(|s| serde_json::Value::from(s.as_ref()))
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Generated frames for the video nodes' tests.
    use crate::data::{PixelFormat, RuntimeData};
    use crate::nodes::{Node, Outputs};

    /// Feeds `items` to `node`, flushes it, and returns its outputs as Json values.
    pub(crate) fn json_outputs(
        node: &mut impl Node,
        items: Vec<RuntimeData>,
    ) -> Vec<serde_json::Value> {
        let mut outputs = Outputs::new();
        for item in items {
            node.process(item, &mut outputs).expect("process");
        }
        node.flush(&mut outputs).expect("flush");
        outputs
            .drain()
            .map(|o| o.as_json().expect("json").clone())
            .collect()
    }

    /// A `width` x `height` RGB24 frame at `ms` whose pixel (x, y) is `f(x, y)`.
    pub(crate) fn rgb(
        width: u32,
        height: u32,
        ms: u64,
        f: impl Fn(u32, u32) -> [u8; 3],
    ) -> RuntimeData {
        let mut pixels = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height {
            for x in 0..width {
                pixels.extend_from_slice(&f(x, y));
            }
        }
        RuntimeData::Video {
            pixel_data: pixels.into(),
            width,
            height,
            format: PixelFormat::Rgb24,
            codec: None,
            frame_number: ms / 40,
            timestamp_us: ms * 1000,
            is_keyframe: false,
            stream_id: None,
        }
    }

    /// A moving test pattern: a bar whose position depends on `ms`.
    pub(crate) fn pattern(width: u32, height: u32, ms: u64) -> RuntimeData {
        let offset = (ms / 40) as u32 * 7;
        rgb(width, height, ms, move |x, y| {
            let v = (((x + offset) % width) * 255 / width.max(1)) as u8;
            [v, (y * 255 / height.max(1)) as u8, 255 - v]
        })
    }

    /// Builder-style changes of a generated frame.
    pub(crate) trait FrameExt {
        /// The same pixels at another media time.
        fn with_time(self, ms: u64) -> Self;
        /// The same frame tagged as track `stream`.
        fn with_stream(self, stream: &str) -> Self;
    }

    impl FrameExt for RuntimeData {
        fn with_time(mut self, ms: u64) -> Self {
            if let RuntimeData::Video { timestamp_us, .. } = &mut self {
                *timestamp_us = ms * 1000;
            }
            self
        }
        fn with_stream(mut self, stream: &str) -> Self {
            if let RuntimeData::Video { stream_id, .. } = &mut self {
                *stream_id = Some(stream.into());
            }
            self
        }
    }

    /// One flat colour.
    pub(crate) fn flat(width: u32, height: u32, ms: u64, rgb_value: [u8; 3]) -> RuntimeData {
        rgb(width, height, ms, move |_, _| rgb_value)
    }
}
