//! The frame codec: one `RuntimeData` as one self-describing byte frame.
//!
//! Used wherever data leaves the process as bytes (shared memory to Python children, the
//! Python SDK), and written once: the Python package exposes this same implementation.
//!
//! Layout (little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `RMF1` |
//! | 4 | 1 | kind: 1 audio, 2 video, 3 text, 4 json, 5 binary, 6 tensor |
//! | 5 | 3 | reserved, zero |
//! | 8 | 4 | header length H |
//! | 12 | 4 | reserved, zero |
//! | 16 | 8 | payload length P |
//! | 24 | H | header: a JSON object with the item's fields (rate, channels, shape, ...) |
//! | 24+H | pad | zeros up to the next multiple of 16 |
//! | payload offset | P | payload: f32 samples, pixels, UTF-8 text, JSON text, bytes, tensor elements |
//!
//! The payload starts 16-byte aligned, so a reader can view audio samples or tensor
//! elements in place. Decoding from [`Bytes`] shares the frame's memory.
//!
//! ```
//! use remotemedia_runtime_core::data::{codec, RuntimeData};
//!
//! let audio = RuntimeData::audio(vec![0.5f32, -0.5], 16_000, 1);
//! let frame = codec::encode(&audio);
//! assert_eq!(codec::decode(frame.into()).unwrap(), audio);
//! ```

use super::{AudioSamples, PixelFormat, RuntimeData, TensorDtype};
use crate::{Error, Result};
use bytes::Bytes;
use serde_json::{json, Value};
use std::sync::Arc;

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"RMF1";
/// Size of the fixed part before the JSON header.
pub const PREAMBLE_LEN: usize = 24;
/// Alignment of the payload.
pub const PAYLOAD_ALIGN: usize = 16;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// `RuntimeData::Audio`.
    Audio = 1,
    /// `RuntimeData::Video`.
    Video = 2,
    /// `RuntimeData::Text`.
    Text = 3,
    /// `RuntimeData::Json`.
    Json = 4,
    /// `RuntimeData::Binary`.
    Binary = 5,
    /// `RuntimeData::Tensor`.
    Tensor = 6,
}

impl FrameKind {
    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Audio,
            2 => Self::Video,
            3 => Self::Text,
            4 => Self::Json,
            5 => Self::Binary,
            6 => Self::Tensor,
            _ => return None,
        })
    }

    /// The kind's name: `audio`, `video`, `text`, `json`, `binary`, `tensor`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Text => "text",
            Self::Json => "json",
            Self::Binary => "binary",
            Self::Tensor => "tensor",
        }
    }
}

/// The parsed fixed part and header of a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameHeader {
    /// What the frame carries.
    pub kind: FrameKind,
    /// The item's fields (empty object for text, json and binary).
    pub fields: Value,
    /// Where the payload starts.
    pub payload_offset: usize,
    /// The payload's length.
    pub payload_len: usize,
}

fn header_of(data: &RuntimeData) -> (FrameKind, Value) {
    match data {
        RuntimeData::Audio {
            sample_rate,
            channels,
            stream_id,
            timestamp_us,
            ..
        } => (
            FrameKind::Audio,
            json!({"sample_rate": sample_rate, "channels": channels,
                   "stream_id": stream_id.as_deref(), "timestamp_us": timestamp_us}),
        ),
        RuntimeData::Video {
            width,
            height,
            format,
            codec,
            frame_number,
            timestamp_us,
            is_keyframe,
            stream_id,
            ..
        } => (
            FrameKind::Video,
            json!({"width": width, "height": height, "format": format.as_str(),
                   "codec": codec, "frame_number": frame_number, "timestamp_us": timestamp_us,
                   "is_keyframe": is_keyframe, "stream_id": stream_id.as_deref()}),
        ),
        RuntimeData::Text(_) => (FrameKind::Text, json!({})),
        RuntimeData::Json(_) => (FrameKind::Json, json!({})),
        RuntimeData::Binary(_) => (FrameKind::Binary, json!({})),
        RuntimeData::Tensor { shape, dtype, .. } => (
            FrameKind::Tensor,
            json!({"shape": shape, "dtype": dtype.as_str()}),
        ),
    }
}

fn payload_of(data: &RuntimeData) -> std::borrow::Cow<'_, [u8]> {
    use std::borrow::Cow;
    match data {
        RuntimeData::Audio { samples, .. } => {
            if cfg!(target_endian = "little") {
                Cow::Borrowed(samples.as_bytes().as_ref())
            } else {
                Cow::Owned(samples.iter().flat_map(|s| s.to_le_bytes()).collect())
            }
        }
        RuntimeData::Video { pixel_data, .. } => Cow::Borrowed(pixel_data.as_ref()),
        RuntimeData::Text(t) => Cow::Borrowed(t.as_bytes()),
        RuntimeData::Json(v) => Cow::Owned(v.to_string().into_bytes()),
        RuntimeData::Binary(b) => Cow::Borrowed(b.as_ref()),
        RuntimeData::Tensor { data, .. } => Cow::Borrowed(data.as_ref()),
    }
}

/// The payload of `data` as the shared buffer it already lives in: audio samples (in
/// little-endian, native order), video pixels, binary bytes, tensor elements. `None` for
/// text and JSON, whose payload is produced while encoding.
pub fn shared_payload(data: &RuntimeData) -> Option<Bytes> {
    match data {
        RuntimeData::Audio { samples, .. } if cfg!(target_endian = "little") => {
            Some(samples.as_bytes().clone())
        }
        RuntimeData::Video { pixel_data, .. } => Some(pixel_data.clone()),
        RuntimeData::Binary(b) => Some(b.clone()),
        RuntimeData::Tensor { data, .. } => Some(data.clone()),
        _ => None,
    }
}

fn padded(len: usize) -> usize {
    len.div_ceil(PAYLOAD_ALIGN) * PAYLOAD_ALIGN
}

/// Where [`FrameWriter`] puts a frame's bytes, in order. Writers of foreign memory (e.g.
/// loaned shared memory) implement it to track what has been written.
pub trait FrameSink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

/// Writes into a byte slice from its start; `written` says how far.
#[derive(Debug)]
pub struct SliceSink<'a> {
    out: &'a mut [u8],
    written: usize,
}

impl<'a> SliceSink<'a> {
    /// A sink writing `out` from its first byte.
    pub fn new(out: &'a mut [u8]) -> Self {
        Self { out, written: 0 }
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.written
    }
}

impl FrameSink for SliceSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        // Callers size the slice from FrameWriter::len; a short slice keeps what fits.
        let end = (self.written + bytes.len()).min(self.out.len());
        let n = end - self.written;
        self.out[self.written..end].copy_from_slice(&bytes[..n]);
        self.written = end;
    }
}

impl FrameSink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// One item's frame, ready to be written: the header is serialized once and the total
/// length is known before any byte is written (e.g. to loan shared memory of that size).
#[derive(Debug)]
pub struct FrameWriter<'a> {
    kind: FrameKind,
    header: Vec<u8>,
    payload: std::borrow::Cow<'a, [u8]>,
}

const ZEROS: [u8; PAYLOAD_ALIGN] = [0; PAYLOAD_ALIGN];

impl<'a> FrameWriter<'a> {
    /// Prepares the frame of `data`.
    pub fn new(data: &'a RuntimeData) -> Self {
        let (kind, fields) = header_of(data);
        Self {
            kind,
            header: fields.to_string().into_bytes(),
            payload: payload_of(data),
        }
    }

    /// Where the payload starts: the length of the preamble, header and padding.
    pub fn head_len(&self) -> usize {
        padded(PREAMBLE_LEN + self.header.len())
    }

    /// The whole frame's length.
    pub fn len(&self) -> usize {
        self.head_len() + self.payload.len()
    }

    /// Whether the frame is empty (never: a frame has at least its preamble).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Puts the preamble, header and padding ([`head_len`](Self::head_len) bytes; the
    /// payload length field announces the full payload). For readers that already hold
    /// the payload, see [`decode_parts`].
    pub fn write_head_to(&self, sink: &mut impl FrameSink) {
        let mut preamble = [0u8; PREAMBLE_LEN];
        preamble[0..4].copy_from_slice(&MAGIC);
        preamble[4] = self.kind as u8;
        preamble[8..12].copy_from_slice(&(self.header.len() as u32).to_le_bytes());
        preamble[16..24].copy_from_slice(&(self.payload.len() as u64).to_le_bytes());
        sink.put(&preamble);
        sink.put(&self.header);
        sink.put(&ZEROS[..self.head_len() - PREAMBLE_LEN - self.header.len()]);
    }

    /// Puts the whole frame ([`len`](Self::len) bytes).
    pub fn write_to(&self, sink: &mut impl FrameSink) {
        self.write_head_to(sink);
        sink.put(&self.payload);
    }

    /// Writes the frame head into `out`; returns [`head_len`](Self::head_len).
    pub fn write_head(&self, out: &mut [u8]) -> Result<usize> {
        let head = self.head_len();
        if out.len() < head {
            return Err(Error::InvalidData(format!(
                "frame head needs {head} bytes, the buffer has {}",
                out.len()
            )));
        }
        self.write_head_to(&mut SliceSink::new(out));
        Ok(head)
    }

    /// Writes the whole frame into `out`; returns its length. Every byte of `out[..len]`
    /// is written.
    pub fn write(&self, out: &mut [u8]) -> Result<usize> {
        let total = self.len();
        if out.len() < total {
            return Err(Error::InvalidData(format!(
                "frame needs {total} bytes, the buffer has {}",
                out.len()
            )));
        }
        self.write_to(&mut SliceSink::new(out));
        Ok(total)
    }
}

/// Encodes `data` into a new frame.
pub fn encode(data: &RuntimeData) -> Vec<u8> {
    let writer = FrameWriter::new(data);
    let mut frame = Vec::with_capacity(writer.len());
    writer.write_to(&mut frame);
    frame
}

/// Bytes [`encode_into`] needs for `data`.
pub fn encoded_len(data: &RuntimeData) -> usize {
    FrameWriter::new(data).len()
}

/// Encodes `data` into `out` (e.g. a loaned shared-memory slice); returns the frame length.
pub fn encode_into(data: &RuntimeData, out: &mut [u8]) -> Result<usize> {
    FrameWriter::new(data).write(out)
}

fn invalid(why: impl std::fmt::Display) -> Error {
    Error::InvalidData(format!("bad frame: {why}"))
}

/// Parses the fixed part and the JSON header, checking that the frame is complete.
pub fn parse_header(frame: &[u8]) -> Result<FrameHeader> {
    parse_header_prefix(frame, frame.len())
}

/// Length of the header (after the preamble) that `preamble` announces.
pub fn header_len(preamble: &[u8]) -> Result<usize> {
    if preamble.len() < PREAMBLE_LEN {
        return Err(invalid(format!(
            "{} bytes is shorter than the {PREAMBLE_LEN}-byte preamble",
            preamble.len()
        )));
    }
    Ok(u32::from_le_bytes([preamble[8], preamble[9], preamble[10], preamble[11]]) as usize)
}

/// [`parse_header`] for readers that hold only the start of a frame (preamble and
/// header) and know its total length, e.g. a view into shared memory.
pub fn parse_header_prefix(frame: &[u8], total_len: usize) -> Result<FrameHeader> {
    if frame.len() < PREAMBLE_LEN {
        return Err(invalid(format!(
            "{} bytes is shorter than the {PREAMBLE_LEN}-byte preamble",
            frame.len()
        )));
    }
    if frame[0..4] != MAGIC {
        return Err(invalid("it does not start with RMF1"));
    }
    let kind = FrameKind::from_byte(frame[4])
        .ok_or_else(|| invalid(format!("unknown kind {}", frame[4])))?;
    let header_len = u32::from_le_bytes([frame[8], frame[9], frame[10], frame[11]]) as usize;
    let mut len_bytes = [0u8; 8];
    len_bytes.copy_from_slice(&frame[16..24]);
    let payload_len = usize::try_from(u64::from_le_bytes(len_bytes))
        .map_err(|_| invalid("payload length does not fit in memory"))?;
    let header_end = PREAMBLE_LEN
        .checked_add(header_len)
        .ok_or_else(|| invalid("header length overflows"))?;
    let payload_offset = padded(header_end);
    let end = payload_offset
        .checked_add(payload_len)
        .ok_or_else(|| invalid("payload length overflows"))?;
    if total_len < end || frame.len() < header_end {
        return Err(invalid(format!(
            "truncated: {total_len} bytes, the frame announces {end}"
        )));
    }
    let fields: Value = serde_json::from_slice(&frame[PREAMBLE_LEN..header_end])
        .map_err(|e| invalid(format!("header is not JSON: {e}")))?;
    if !fields.is_object() {
        return Err(invalid("header is not a JSON object"));
    }
    Ok(FrameHeader {
        kind,
        fields,
        payload_offset,
        payload_len,
    })
}

fn field_u64(fields: &Value, name: &str) -> Result<u64> {
    fields
        .get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| invalid(format!("header field '{name}' is missing or not a number")))
}

fn field_str(fields: &Value, name: &str) -> Option<String> {
    fields.get(name).and_then(Value::as_str).map(str::to_owned)
}

/// Decodes a frame; payloads share `frame`'s memory.
pub fn decode(frame: Bytes) -> Result<RuntimeData> {
    let header = parse_header(&frame)?;
    let payload = frame.slice(header.payload_offset..header.payload_offset + header.payload_len);
    decode_parts(&header, payload)
}

/// Builds the item a parsed header describes around `payload`, which may live anywhere
/// (e.g. a buffer the reader already holds with the same bytes). The payload must have the
/// length the header announces.
pub fn decode_parts(header: &FrameHeader, payload: Bytes) -> Result<RuntimeData> {
    if payload.len() != header.payload_len {
        return Err(invalid(format!(
            "the header announces a {}-byte payload, {} bytes were given",
            header.payload_len,
            payload.len()
        )));
    }
    let f = &header.fields;
    let data = match header.kind {
        FrameKind::Audio => RuntimeData::Audio {
            samples: AudioSamples::from_bytes(payload)?,
            sample_rate: u32::try_from(field_u64(f, "sample_rate")?)
                .map_err(|_| invalid("sample rate too large"))?,
            channels: u16::try_from(field_u64(f, "channels")?)
                .map_err(|_| invalid("too many channels"))?,
            stream_id: field_str(f, "stream_id").map(Arc::from),
            timestamp_us: field_u64(f, "timestamp_us")?,
        },
        FrameKind::Video => RuntimeData::Video {
            pixel_data: payload,
            width: u32::try_from(field_u64(f, "width")?).map_err(|_| invalid("width too large"))?,
            height: u32::try_from(field_u64(f, "height")?)
                .map_err(|_| invalid("height too large"))?,
            format: PixelFormat::parse_named(
                &field_str(f, "format").ok_or_else(|| invalid("the pixel format is missing"))?,
            )?,
            codec: field_str(f, "codec"),
            frame_number: field_u64(f, "frame_number")?,
            timestamp_us: field_u64(f, "timestamp_us")?,
            is_keyframe: f
                .get("is_keyframe")
                .and_then(Value::as_bool)
                .ok_or_else(|| invalid("header field 'is_keyframe' is missing or not a boolean"))?,
            stream_id: field_str(f, "stream_id").map(Arc::from),
        },
        FrameKind::Text => RuntimeData::Text(
            String::from_utf8(payload.to_vec()).map_err(|_| invalid("text is not UTF-8"))?,
        ),
        FrameKind::Json => RuntimeData::Json(
            serde_json::from_slice(&payload).map_err(|e| invalid(format!("json payload: {e}")))?,
        ),
        FrameKind::Binary => RuntimeData::Binary(payload),
        FrameKind::Tensor => {
            let dtype = TensorDtype::parse_named(
                &field_str(f, "dtype").ok_or_else(|| invalid("the tensor dtype is missing"))?,
            )?;
            let shape: Vec<usize> = f
                .get("shape")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("tensor shape is missing"))?
                .iter()
                .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
                .collect::<Option<_>>()
                .ok_or_else(|| invalid("tensor shape is not a list of sizes"))?;
            RuntimeData::Tensor {
                data: payload,
                shape,
                dtype,
            }
        }
    };
    // Structure only: frames come from the runtime's own workers and readers, and a scan
    // of every sample on every hop would cost more than the hop (see RuntimeData::check).
    data.check()?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<RuntimeData> {
        vec![
            RuntimeData::Audio {
                samples: vec![0.25f32, -1.0, 0.5, 0.0].into(),
                sample_rate: 48_000,
                channels: 2,
                stream_id: Some("audio:3".into()),
                timestamp_us: 99,
            },
            RuntimeData::Video {
                pixel_data: Bytes::from_static(&[1, 2, 3]),
                width: 1,
                height: 1,
                format: PixelFormat::Rgb24,
                codec: Some("raw".into()),
                frame_number: 5,
                timestamp_us: 6,
                is_keyframe: true,
                stream_id: None,
            },
            RuntimeData::Text("héllo".into()),
            RuntimeData::Json(json!({"a": [1, 2.5, null]})),
            RuntimeData::Binary(Bytes::from_static(&[0, 255])),
            RuntimeData::Tensor {
                data: Bytes::from(vec![7u8; 8]),
                shape: vec![2, 2],
                dtype: TensorDtype::I16,
            },
        ]
    }

    #[test]
    fn every_kind_round_trips_with_an_aligned_payload() {
        for data in all_kinds() {
            let frame = encode(&data);
            assert_eq!(frame.len(), encoded_len(&data));
            assert_eq!(
                parse_header(&frame).expect("header").payload_offset % PAYLOAD_ALIGN,
                0
            );
            assert_eq!(decode(Bytes::from(frame)).expect("decode"), data);
        }
    }

    #[test]
    fn encode_into_matches_encode() {
        for data in all_kinds() {
            let mut buf = vec![0xAAu8; encoded_len(&data) + 7];
            let n = encode_into(&data, &mut buf).expect("fits");
            assert_eq!(&buf[..n], &encode(&data)[..]);
        }
    }

    #[test]
    fn truncated_and_foreign_frames_are_rejected() {
        let frame = encode(&RuntimeData::Text("abc".into()));
        let err = decode(Bytes::from(frame[..frame.len() - 1].to_vec())).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let err = decode(Bytes::from_static(b"RIFF0000000000000000000000")).unwrap_err();
        assert!(
            err.to_string().contains("does not start with RMF1"),
            "{err}"
        );
    }

    /// Found by `cargo xtask fuzz frame_codec`: a JSON number with more digits than an
    /// f64 holds parsed to a value one unit off the nearest, so its re-encoding decoded to
    /// yet another value.
    #[test]
    fn long_json_numbers_decode_to_the_nearest_value_and_stay_there() {
        let digits = "777777777777577777777777777777777777777677777";
        let value: serde_json::Value =
            serde_json::from_str(&format!("[{digits}, 0.30000000000000004441, 1e-320]"))
                .expect("json");
        assert_eq!(value[0].as_f64(), digits.parse::<f64>().ok());
        let original = RuntimeData::Json(value);
        let once = decode(Bytes::from(encode(&original))).expect("decodes");
        assert_eq!(encode(&once), encode(&original));
    }
}
