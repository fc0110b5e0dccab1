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
    /// Every format, in the order error messages list them.
    pub const ALL: [PixelFormat; 6] = [
        PixelFormat::Yuv420p,
        PixelFormat::Nv12,
        PixelFormat::Rgb24,
        PixelFormat::Rgba32,
        PixelFormat::Gray8,
        PixelFormat::Encoded,
    ];

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
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// Parses a name, or fails naming the unknown format and the known ones.
    pub fn parse_named(name: &str) -> crate::Result<Self> {
        Self::parse(name).ok_or_else(|| {
            crate::Error::InvalidData(format!(
                "unknown pixel format '{name}' (known: {})",
                Self::names()
            ))
        })
    }

    /// Every format's name, comma-separated, for messages.
    pub fn names() -> String {
        join_names(Self::ALL.iter().map(PixelFormat::as_str))
    }

    /// Bytes of one `width` x `height` frame in this format; `None` for
    /// [`PixelFormat::Encoded`] (any length) or when the size does not fit in memory.
    /// 4:2:0 formats round odd dimensions of the chroma planes up.
    pub fn frame_len(&self, width: u32, height: u32) -> Option<usize> {
        let (w, h) = (width as usize, height as usize);
        let luma = w.checked_mul(h)?;
        match self {
            PixelFormat::Gray8 => Some(luma),
            PixelFormat::Rgb24 => luma.checked_mul(3),
            PixelFormat::Rgba32 => luma.checked_mul(4),
            PixelFormat::Yuv420p | PixelFormat::Nv12 => {
                let chroma = w.div_ceil(2).checked_mul(h.div_ceil(2))?.checked_mul(2)?;
                luma.checked_add(chroma)
            }
            PixelFormat::Encoded => None,
        }
    }
}

/// Index of the first sample that is NaN or infinite. Blocks are tested without early exit
/// (an exponent of all ones marks both), so the compiler vectorizes the scan.
pub(crate) fn first_non_finite(samples: &[f32]) -> Option<usize> {
    const BLOCK: usize = 256;
    const EXPONENT: u32 = 0x7f80_0000;
    for (block_index, block) in samples.chunks(BLOCK).enumerate() {
        let any = block
            .iter()
            .fold(false, |any, s| any | (s.to_bits() & EXPONENT == EXPONENT));
        if any {
            let offset = block.iter().position(|s| !s.is_finite()).unwrap_or(0);
            return Some(block_index * BLOCK + offset);
        }
    }
    None
}

fn join_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
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
    /// Every dtype, in the order error messages list them.
    pub const ALL: [TensorDtype; 9] = [
        TensorDtype::F32,
        TensorDtype::F64,
        TensorDtype::F16,
        TensorDtype::I8,
        TensorDtype::I16,
        TensorDtype::I32,
        TensorDtype::I64,
        TensorDtype::U8,
        TensorDtype::Bool,
    ];

    /// Size of one element in bytes.
    pub fn size_bytes(&self) -> usize {
        match self {
            TensorDtype::F64 | TensorDtype::I64 => 8,
            TensorDtype::F32 | TensorDtype::I32 => 4,
            TensorDtype::F16 | TensorDtype::I16 => 2,
            TensorDtype::I8 | TensorDtype::U8 | TensorDtype::Bool => 1,
        }
    }

    /// The dtype's name (`"f32"`, `"i64"`, ...), as wire formats carry it.
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

    /// The numpy name of the dtype (`"float32"`, `"int64"`, `"bool"`, ...).
    pub fn numpy_name(&self) -> &'static str {
        match self {
            TensorDtype::F32 => "float32",
            TensorDtype::F64 => "float64",
            TensorDtype::F16 => "float16",
            TensorDtype::I8 => "int8",
            TensorDtype::I16 => "int16",
            TensorDtype::I32 => "int32",
            TensorDtype::I64 => "int64",
            TensorDtype::U8 => "uint8",
            TensorDtype::Bool => "bool",
        }
    }

    /// Parses a name produced by [`TensorDtype::as_str`] or [`TensorDtype::numpy_name`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == name || d.numpy_name() == name)
    }

    /// Parses a name, or fails naming the unknown dtype and the known ones.
    pub fn parse_named(name: &str) -> crate::Result<Self> {
        Self::parse(name).ok_or_else(|| {
            crate::Error::InvalidData(format!(
                "unknown tensor dtype '{name}' (known: {})",
                Self::names()
            ))
        })
    }

    /// Every dtype's name, comma-separated, for messages.
    pub fn names() -> String {
        join_names(Self::ALL.iter().map(TensorDtype::as_str))
    }
}

/// Highest audio sample rate accepted from outside the runtime (Hz).
pub const MAX_SAMPLE_RATE: u32 = 768_000;
/// Most audio channels accepted from outside the runtime.
pub const MAX_CHANNELS: u16 = 64;
/// Most tensor dimensions accepted from outside the runtime.
pub const MAX_TENSOR_DIMS: usize = 32;

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

    /// The item as one JSON object, as the command line's `--format json` and the WebRTC
    /// data channel give it: `{"type": "text", "text"}`, `{"type": "json", "data"}`,
    /// `{"type": "audio", "frames", "sample_rate", "channels", "stream_id",
    /// "timestamp_us"}` (no samples), other types as `{"type", "bytes"}`.
    ///
    /// ```
    /// use remotemedia_runtime_core::data::RuntimeData;
    /// let v = RuntimeData::audio(vec![0.0; 320], 16_000, 1).summary_json();
    /// assert_eq!(v["frames"], 320);
    /// assert_eq!(RuntimeData::Text("hi".into()).summary_json()["text"], "hi");
    /// ```
    pub fn summary_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            RuntimeData::Text(text) => json!({"type": "text", "text": text}),
            RuntimeData::Json(value) => json!({"type": "json", "data": value}),
            RuntimeData::Audio {
                sample_rate,
                channels,
                stream_id,
                timestamp_us,
                ..
            } => json!({
                "type": "audio",
                "frames": self.audio_frames(),
                "sample_rate": sample_rate,
                "channels": channels,
                "stream_id": stream_id.as_deref(),
                "timestamp_us": timestamp_us,
            }),
            other => json!({"type": other.type_name(), "bytes": other.size_bytes()}),
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

    /// Checks the structure a well-formed item of its variant must hold, in constant time:
    /// every transport, the frame codec and the Python package build items from outside
    /// data through this one check, so a malformed item gets the same error whichever way
    /// it arrived:
    ///
    /// - audio: 1..=[`MAX_SAMPLE_RATE`] Hz, 1..=[`MAX_CHANNELS`] channels, whole frames;
    /// - video: a raw frame's bytes match width x height in its pixel format
    ///   ([`PixelFormat::frame_len`]); encoded frames may have any length;
    /// - tensor: the bytes match the shape and dtype, at most [`MAX_TENSOR_DIMS`] dimensions.
    ///
    /// Where data comes from a client, [`checked`](Self::checked) adds
    /// [`check_samples`](Self::check_samples) (finite audio samples), which reads every
    /// sample and is therefore not repeated on every hop between the runtime and its own
    /// workers.
    ///
    /// ```
    /// use remotemedia_runtime_core::data::RuntimeData;
    ///
    /// let ragged = RuntimeData::audio(vec![0.0f32; 3], 16_000, 2);
    /// assert_eq!(
    ///     ragged.check().unwrap_err().to_string(),
    ///     "invalid data: audio has 3 samples, not a whole number of 2-channel frames"
    /// );
    /// ```
    pub fn check(&self) -> crate::Result<()> {
        let invalid = |why: String| Err(crate::Error::InvalidData(why));
        match self {
            RuntimeData::Audio {
                samples,
                sample_rate,
                channels,
                ..
            } => {
                if *sample_rate == 0 || *sample_rate > MAX_SAMPLE_RATE {
                    return invalid(format!(
                        "audio sample rate {sample_rate} Hz is outside 1..={MAX_SAMPLE_RATE} Hz"
                    ));
                }
                if *channels == 0 || *channels > MAX_CHANNELS {
                    return invalid(format!(
                        "audio has {channels} channels, outside 1..={MAX_CHANNELS}"
                    ));
                }
                if samples.len() % usize::from(*channels) != 0 {
                    return invalid(format!(
                        "audio has {} samples, not a whole number of {channels}-channel frames",
                        samples.len()
                    ));
                }
                Ok(())
            }
            RuntimeData::Video {
                pixel_data,
                width,
                height,
                format,
                ..
            } => {
                if *format == PixelFormat::Encoded {
                    return Ok(());
                }
                if *width == 0 || *height == 0 {
                    return invalid(format!(
                        "a {width}x{height} {} video frame has no pixels",
                        format.as_str()
                    ));
                }
                match format.frame_len(*width, *height) {
                    Some(len) if len == pixel_data.len() => Ok(()),
                    Some(len) => invalid(format!(
                        "a {width}x{height} {} video frame has {len} bytes, got {}",
                        format.as_str(),
                        pixel_data.len()
                    )),
                    None => invalid(format!(
                        "a {width}x{height} {} video frame is too large",
                        format.as_str()
                    )),
                }
            }
            RuntimeData::Tensor { data, shape, dtype } => {
                if shape.len() > MAX_TENSOR_DIMS {
                    return invalid(format!(
                        "tensor has {} dimensions, more than {MAX_TENSOR_DIMS}",
                        shape.len()
                    ));
                }
                let expected = shape
                    .iter()
                    .try_fold(dtype.size_bytes(), |acc, &d| acc.checked_mul(d));
                match expected {
                    Some(len) if len == data.len() => Ok(()),
                    Some(len) => invalid(format!(
                        "tensor of shape {shape:?} and dtype {} has {len} bytes, got {}",
                        dtype.as_str(),
                        data.len()
                    )),
                    None => invalid(format!(
                        "tensor of shape {shape:?} and dtype {} is too large",
                        dtype.as_str()
                    )),
                }
            }
            RuntimeData::Text(_) | RuntimeData::Json(_) | RuntimeData::Binary(_) => Ok(()),
        }
    }

    /// Checks that every audio sample is a finite number (NaN and infinities are
    /// rejected, naming the first); other variants pass. Reads every sample, at memory
    /// speed.
    pub fn check_samples(&self) -> crate::Result<()> {
        let RuntimeData::Audio { samples, .. } = self else {
            return Ok(());
        };
        match first_non_finite(samples) {
            None => Ok(()),
            Some(index) => Err(crate::Error::InvalidData(format!(
                "audio sample {index} is {} (samples must be finite numbers)",
                samples[index]
            ))),
        }
    }

    /// The item as it may enter the runtime from a client: [`check`](Self::check) and
    /// [`check_samples`](Self::check_samples), then the item itself.
    pub fn checked(self) -> crate::Result<Self> {
        self.check()?;
        self.check_samples()?;
        Ok(self)
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
