//! The data that flows through pipelines.
//!
//! [`RuntimeData`] is the one data enum every node, executor and transport uses. Large
//! payloads (audio samples, pixels, binary blobs, tensors) live behind reference-counted
//! buffers ([`AudioSamples`], [`bytes::Bytes`]), so fan-out to several nodes and hand-off to
//! a transport clone a pointer, never the payload.

pub mod codec;
mod samples;

pub use bytes::Bytes;
pub use samples::AudioSamples;

use std::sync::Arc;

/// Pixel layout of a [`RuntimeData::Video`] frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PixelFormat {
    /// Planar Y, U, V with 4:2:0 chroma subsampling.
    Yuv420p,
    /// Y plane followed by interleaved UV, 4:2:0.
    Nv12,
    /// Packed 8-bit R, G, B.
    Rgb24,
    /// Packed 8-bit R, G, B, A.
    Rgba32,
    /// One 8-bit luma plane.
    Gray8,
    /// Compressed bitstream (see the frame's `codec`).
    Encoded,
}

impl PixelFormat {
    /// The format's name as used in manifests and wire formats.
    pub fn as_str(&self) -> &'static str {
        match self {
            PixelFormat::Yuv420p => "yuv420p",
            PixelFormat::Nv12 => "nv12",
            PixelFormat::Rgb24 => "rgb24",
            PixelFormat::Rgba32 => "rgba32",
            PixelFormat::Gray8 => "gray8",
            PixelFormat::Encoded => "encoded",
        }
    }

    /// Parses a name produced by [`PixelFormat::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "yuv420p" => PixelFormat::Yuv420p,
            "nv12" => PixelFormat::Nv12,
            "rgb24" => PixelFormat::Rgb24,
            "rgba32" => PixelFormat::Rgba32,
            "gray8" => PixelFormat::Gray8,
            "encoded" => PixelFormat::Encoded,
            _ => return None,
        })
    }
}

/// Element type of a [`RuntimeData::Tensor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TensorDtype {
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// 16-bit float (raw bits).
    F16,
    /// Signed 8-bit integer.
    I8,
    /// Signed 16-bit integer.
    I16,
    /// Signed 32-bit integer.
    I32,
    /// Signed 64-bit integer.
    I64,
    /// Unsigned 8-bit integer.
    U8,
    /// Boolean stored as one byte.
    Bool,
}

impl TensorDtype {
    /// Size of one element in bytes.
    pub fn size_bytes(&self) -> usize {
        match self {
            TensorDtype::F64 | TensorDtype::I64 => 8,
            TensorDtype::F32 | TensorDtype::I32 => 4,
            TensorDtype::F16 | TensorDtype::I16 => 2,
            TensorDtype::I8 | TensorDtype::U8 | TensorDtype::Bool => 1,
        }
    }

    /// The dtype's name (`"f32"`, `"i64"`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            TensorDtype::F32 => "f32",
            TensorDtype::F64 => "f64",
            TensorDtype::F16 => "f16",
            TensorDtype::I8 => "i8",
            TensorDtype::I16 => "i16",
            TensorDtype::I32 => "i32",
            TensorDtype::I64 => "i64",
            TensorDtype::U8 => "u8",
            TensorDtype::Bool => "bool",
        }
    }

    /// Parses a name produced by [`TensorDtype::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "f32" | "float32" => TensorDtype::F32,
            "f64" | "float64" => TensorDtype::F64,
            "f16" | "float16" => TensorDtype::F16,
            "i8" | "int8" => TensorDtype::I8,
            "i16" | "int16" => TensorDtype::I16,
            "i32" | "int32" => TensorDtype::I32,
            "i64" | "int64" => TensorDtype::I64,
            "u8" | "uint8" => TensorDtype::U8,
            "bool" => TensorDtype::Bool,
            _ => return None,
        })
    }
}

/// One item of pipeline data.
///
/// Construct audio with the struct literal or [`RuntimeData::audio`]:
///
/// ```
/// use remotemedia_runtime_core::data::RuntimeData;
///
/// let frame = RuntimeData::audio(vec![0.0f32; 320], 16_000, 1);
/// assert_eq!(frame.audio_frames(), Some(320));
/// let text = RuntimeData::Text("hello".into());
/// assert_eq!(text.type_name(), "text");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RuntimeData {
    /// PCM audio, interleaved f32 samples in [-1, 1].
    Audio {
        /// Interleaved samples: `frames * channels` values.
        samples: AudioSamples,
        /// Frames per second.
        sample_rate: u32,
        /// Channels per frame.
        channels: u16,
        /// Track tag such as `"audio:0"`, kept by every node.
        stream_id: Option<Arc<str>>,
        /// Media time of the first frame, in microseconds from the stream's start.
        timestamp_us: u64,
    },
    /// One video frame (raw pixels or an encoded bitstream).
    Video {
        /// The pixel (or bitstream) bytes.
        pixel_data: Bytes,
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Pixel layout.
        format: PixelFormat,
        /// Codec name for [`PixelFormat::Encoded`] frames (e.g. `"h264"`).
        codec: Option<String>,
        /// Frame index within the stream.
        frame_number: u64,
        /// Presentation time in microseconds.
        timestamp_us: u64,
        /// Whether the frame is a keyframe.
        is_keyframe: bool,
        /// Track tag such as `"video:0"`.
        stream_id: Option<Arc<str>>,
    },
    /// UTF-8 text.
    Text(String),
    /// Structured JSON.
    Json(serde_json::Value),
    /// Opaque bytes.
    Binary(Bytes),
    /// An n-dimensional array in row-major order.
    Tensor {
        /// Raw element bytes, native endian.
        data: Bytes,
        /// Dimensions.
        shape: Vec<usize>,
        /// Element type.
        dtype: TensorDtype,
    },
}

impl RuntimeData {
    /// Audio with no stream tag, starting at time 0.
    pub fn audio(samples: impl Into<AudioSamples>, sample_rate: u32, channels: u16) -> Self {
        RuntimeData::Audio {
            samples: samples.into(),
            sample_rate,
            channels,
            stream_id: None,
            timestamp_us: 0,
        }
    }

    /// The variant's name: `"audio"`, `"video"`, `"text"`, `"json"`, `"binary"` or `"tensor"`.
    pub fn type_name(&self) -> &'static str {
        match self {
            RuntimeData::Audio { .. } => "audio",
            RuntimeData::Video { .. } => "video",
            RuntimeData::Text(_) => "text",
            RuntimeData::Json(_) => "json",
            RuntimeData::Binary(_) => "binary",
            RuntimeData::Tensor { .. } => "tensor",
        }
    }

    /// Number of frames (samples per channel) of an audio item.
    pub fn audio_frames(&self) -> Option<usize> {
        match self {
            RuntimeData::Audio {
                samples, channels, ..
            } => Some(samples.len() / usize::from((*channels).max(1))),
            _ => None,
        }
    }

    /// Payload size in bytes (text length, sample bytes, pixel bytes, ...).
    pub fn size_bytes(&self) -> usize {
        match self {
            RuntimeData::Audio { samples, .. } => samples.len() * 4,
            RuntimeData::Video { pixel_data, .. } => pixel_data.len(),
            RuntimeData::Text(t) => t.len(),
            RuntimeData::Json(v) => v.to_string().len(),
            RuntimeData::Binary(b) => b.len(),
            RuntimeData::Tensor { data, .. } => data.len(),
        }
    }

    /// The text of a `Text` item.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            RuntimeData::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The value of a `Json` item.
    pub fn as_json(&self) -> Option<&serde_json::Value> {
        match self {
            RuntimeData::Json(v) => Some(v),
            _ => None,
        }
    }
}

impl From<String> for RuntimeData {
    fn from(text: String) -> Self {
        RuntimeData::Text(text)
    }
}

impl From<&str> for RuntimeData {
    fn from(text: &str) -> Self {
        RuntimeData::Text(text.to_owned())
    }
}

impl From<serde_json::Value> for RuntimeData {
    fn from(value: serde_json::Value) -> Self {
        RuntimeData::Json(value)
    }
}
