//! Pipeline data as JavaScript values, both ways.
//!
//! The public forms (what `send` takes and outputs carry):
//! - a `string` is text; a `Uint8Array` is bytes;
//! - `{samples: Float32Array, sampleRate, channels?, timestampUs?, streamId?}` is audio
//!   (interleaved; `channels` defaults to 1);
//! - `{pixels: Uint8Array, width, height, format?, frameNumber?, timestampUs?,
//!   isKeyframe?, codec?, streamId?}` is a video frame (`format` defaults to `rgb24`);
//! - anything else is JSON.
//!
//! Outputs use the same forms; a tensor comes out as `{dtype, shape, data: Uint8Array}`.
//! Every input goes through the core's checked constructor ([`RuntimeData::checked`]), so
//! a malformed item gets the native runtime's error.
//!
//! The tagged forms (`{kind: "text" | "json" | "binary" | "audio" | "video", ...}`) are
//! what the engine and its Python host exchange: exact about types (a JSON string is not
//! text), with JSON as text.

use js_sys::{Array, Float32Array, Object, Reflect, Uint8Array};
use remotemedia_runtime_core::data::{PixelFormat, RuntimeData};
use remotemedia_runtime_core::Error;
use std::sync::Arc;
use wasm_bindgen::prelude::*;

// Output objects are built by JavaScript with their keys written out, in one call each:
// setting keys one by one from Rust costs a call and a string conversion per key.
#[wasm_bindgen(inline_js = r#"
export function make_output(nodeId, sequence, inputSequence, data) {
  return { nodeId: nodeId ?? null, sequence: sequence ?? null, inputSequence: inputSequence ?? null, data };
}
export function make_audio(samples, sampleRate, channels, timestampUs, streamId) {
  const audio = { samples: samples.slice(), sampleRate, channels, timestampUs };
  if (streamId !== undefined) audio.streamId = streamId;
  return audio;
}
"#)]
extern "C" {
    fn make_output(
        node_id: &JsValue,
        sequence: Option<f64>,
        input_sequence: Option<f64>,
        data: JsValue,
    ) -> JsValue;
    // `samples` arrives as a view of the module's memory; the helper copies it out.
    fn make_audio(
        samples: &[f32],
        sample_rate: u32,
        channels: u16,
        timestamp_us: f64,
        stream_id: Option<&str>,
    ) -> Object;
}

pub(crate) fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

pub(crate) fn set(object: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(object, &key.into(), &value.into());
}

fn type_error(message: String) -> JsValue {
    js_sys::TypeError::new(&message).into()
}

/// An optional whole number in `0..=max`, named `what` in the error.
pub(crate) fn whole_number(value: &JsValue, what: &str, max: f64) -> Result<Option<f64>, JsValue> {
    whole(value, what, max)
}

fn whole(value: &JsValue, what: &str, max: f64) -> Result<Option<f64>, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    match value.as_f64() {
        Some(n) if n.fract() == 0.0 && (0.0..=max).contains(&n) => Ok(Some(n)),
        _ => Err(type_error(format!(
            "{what} must be a whole number from 0 to {max}, not {}",
            describe(value)
        ))),
    }
}

fn optional_string(value: &JsValue, what: &str) -> Result<Option<String>, JsValue> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    value
        .as_string()
        .map(Some)
        .ok_or_else(|| type_error(format!("{what} must be a string, not {}", describe(value))))
}

fn describe(value: &JsValue) -> String {
    match value.as_string() {
        Some(s) => format!("{s:?}"),
        None => js_sys::JSON::stringify(value)
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_else(|| format!("{value:?}")),
    }
}

/// Audio from its parts as JavaScript gave them (`sampleRate` required, the rest optional).
pub(crate) fn audio_input(
    samples: Vec<f32>,
    sample_rate: &JsValue,
    channels: &JsValue,
    timestamp_us: &JsValue,
    stream_id: &JsValue,
) -> Result<RuntimeData, JsValue> {
    let rate = whole(sample_rate, "audio sampleRate", u32::MAX as f64)?
        .ok_or_else(|| type_error("audio needs sampleRate (frames per second)".to_owned()))?;
    let channels = whole(channels, "audio channels", u16::MAX as f64)?.unwrap_or(1.0);
    let timestamp_us = whole(timestamp_us, "audio timestampUs", 2f64.powi(53))?;
    Ok(RuntimeData::Audio {
        samples: samples.into(),
        sample_rate: rate as u32,
        channels: channels as u16,
        stream_id: optional_string(stream_id, "audio streamId")?.map(Arc::from),
        timestamp_us: timestamp_us.unwrap_or(0.0) as u64,
    })
}

/// [`audio_input`] as it enters the engine from the caller: checked as the core checks a
/// client's item (finite samples, whole frames).
pub(crate) fn checked_audio_input(
    samples: Vec<f32>,
    sample_rate: &JsValue,
    channels: &JsValue,
    timestamp_us: &JsValue,
    stream_id: &JsValue,
) -> Result<RuntimeData, JsValue> {
    audio_input(samples, sample_rate, channels, timestamp_us, stream_id)?
        .checked()
        .map_err(|e| crate::js_error(&e))
}

fn audio_from(value: &JsValue, samples: &Float32Array) -> Result<RuntimeData, JsValue> {
    audio_input(
        samples.to_vec(),
        &get(value, "sampleRate"),
        &get(value, "channels"),
        &get(value, "timestampUs"),
        &get(value, "streamId"),
    )
}

fn video_from(value: &JsValue, pixels: &Uint8Array) -> Result<RuntimeData, JsValue> {
    let dimension = |key: &str| {
        whole(&get(value, key), &format!("video {key}"), u32::MAX as f64)?
            .ok_or_else(|| type_error(format!("video needs {key} (pixels)")))
    };
    let (width, height) = (dimension("width")?, dimension("height")?);
    let format = match optional_string(&get(value, "format"), "video format")? {
        Some(name) => PixelFormat::parse_named(&name).map_err(|e| crate::js_error(&e))?,
        None => PixelFormat::Rgb24,
    };
    let number = |key: &str| whole(&get(value, key), &format!("video {key}"), 2f64.powi(53));
    Ok(RuntimeData::Video {
        pixel_data: pixels.to_vec().into(),
        width: width as u32,
        height: height as u32,
        format,
        codec: optional_string(&get(value, "codec"), "video codec")?,
        frame_number: number("frameNumber")?.unwrap_or(0.0) as u64,
        timestamp_us: number("timestampUs")?.unwrap_or(0.0) as u64,
        is_keyframe: get(value, "isKeyframe").is_truthy(),
        stream_id: optional_string(&get(value, "streamId"), "video streamId")?.map(Arc::from),
    })
}

fn json_from(value: &JsValue) -> Result<RuntimeData, JsValue> {
    let text = js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| {
            type_error("the input is not text, audio, video, bytes or JSON".to_owned())
        })?;
    let json = serde_json::from_str(&text)
        .map_err(|e| type_error(format!("the input is not JSON: {e}")))?;
    Ok(RuntimeData::Json(json))
}

/// A JavaScript value (the public forms) as a checked pipeline input.
pub(crate) fn to_data(value: &JsValue) -> Result<RuntimeData, JsValue> {
    let data = if let Some(text) = value.as_string() {
        RuntimeData::Text(text)
    } else if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        RuntimeData::Binary(bytes.to_vec().into())
    } else if let Some(samples) = value
        .is_object()
        .then(|| get(value, "samples"))
        .and_then(|s| s.dyn_into::<Float32Array>().ok())
    {
        audio_from(value, &samples)?
    } else if let Some(pixels) = value
        .is_object()
        .then(|| get(value, "pixels"))
        .and_then(|p| p.dyn_into::<Uint8Array>().ok())
    {
        video_from(value, &pixels)?
    } else {
        json_from(value)?
    };
    data.checked().map_err(|e| crate::js_error(&e))
}

fn audio_object(data: &RuntimeData) -> Option<Object> {
    let RuntimeData::Audio {
        samples,
        sample_rate,
        channels,
        stream_id,
        timestamp_us,
    } = data
    else {
        return None;
    };
    Some(make_audio(
        samples,
        *sample_rate,
        *channels,
        *timestamp_us as f64,
        stream_id.as_deref(),
    ))
}

fn video_object(data: &RuntimeData) -> Option<Object> {
    let RuntimeData::Video {
        pixel_data,
        width,
        height,
        format,
        codec,
        frame_number,
        timestamp_us,
        is_keyframe,
        stream_id,
    } = data
    else {
        return None;
    };
    let video = Object::new();
    set(&video, "pixels", Uint8Array::from(&pixel_data[..]));
    set(&video, "width", *width);
    set(&video, "height", *height);
    set(&video, "format", format.as_str());
    set(&video, "frameNumber", *frame_number as f64);
    set(&video, "timestampUs", *timestamp_us as f64);
    set(&video, "isKeyframe", *is_keyframe);
    if let Some(codec) = codec {
        set(&video, "codec", codec.as_str());
    }
    if let Some(stream) = stream_id {
        set(&video, "streamId", stream.to_string());
    }
    Some(video)
}

thread_local! {
    /// Node ids as JavaScript strings, made once each: every output carries one, and
    /// decoding it from the module's memory per output cost more than the lookup.
    static NODE_IDS: std::cell::RefCell<std::collections::HashMap<Box<str>, JsValue>> =
        std::cell::RefCell::default();
}

/// Ids kept at most; past it the cache starts over (ids come from manifests, so a page
/// running many different ones does not grow it without end).
const NODE_IDS_KEPT: usize = 1024;

fn node_id_value(id: Option<&str>) -> JsValue {
    let Some(id) = id else {
        return JsValue::NULL;
    };
    NODE_IDS.with(|ids| {
        let mut ids = ids.borrow_mut();
        if let Some(value) = ids.get(id) {
            return value.clone();
        }
        if ids.len() >= NODE_IDS_KEPT {
            ids.clear();
        }
        let value = JsValue::from_str(id);
        ids.insert(id.into(), value.clone());
        value
    })
}

/// An output in the public form: `{nodeId, sequence, inputSequence, data}`.
pub(crate) fn from_output(output: &remotemedia_runtime_core::transport::TransportData) -> JsValue {
    make_output(
        &node_id_value(output.node_id()),
        output.sequence.map(|s| s as f64),
        output.input_sequence.map(|s| s as f64),
        from_data(&output.data),
    )
}

/// A pipeline output's data in the public forms.
pub(crate) fn from_data(data: &RuntimeData) -> JsValue {
    if let Some(object) = audio_object(data).or_else(|| video_object(data)) {
        return object.into();
    }
    match data {
        RuntimeData::Text(text) => text.into(),
        RuntimeData::Json(value) => {
            js_sys::JSON::parse(&value.to_string()).unwrap_or(JsValue::NULL)
        }
        RuntimeData::Binary(bytes) => Uint8Array::from(&bytes[..]).into(),
        RuntimeData::Tensor { data, shape, dtype } => {
            let tensor = Object::new();
            set(&tensor, "dtype", dtype.as_str());
            let dims = Array::new();
            for d in shape {
                dims.push(&JsValue::from(*d as f64));
            }
            set(&tensor, "shape", dims);
            set(&tensor, "data", Uint8Array::from(&data[..]));
            tensor.into()
        }
        other => {
            let summary = Object::new();
            set(&summary, "type", other.type_name());
            set(&summary, "bytes", other.size_bytes() as f64);
            summary.into()
        }
    }
}

/// An item as the Python host takes it: `[kind, ...fields]` (see
/// `remotemedia._browser.to_item`) — positional, so Python reads no JavaScript properties.
pub(crate) fn to_tagged(data: &RuntimeData) -> Result<Array, Error> {
    let item = Array::new();
    let push = |v: JsValue| {
        item.push(&v);
    };
    let optional = |v: Option<&str>| v.map_or(JsValue::UNDEFINED, JsValue::from);
    match data {
        RuntimeData::Text(text) => {
            push("text".into());
            push(text.as_str().into());
        }
        RuntimeData::Json(value) => {
            push("json".into());
            push(value.to_string().into());
        }
        RuntimeData::Binary(bytes) => {
            push("binary".into());
            push(Uint8Array::from(&bytes[..]).into());
        }
        RuntimeData::Audio {
            samples,
            sample_rate,
            channels,
            stream_id,
            timestamp_us,
        } => {
            push("audio".into());
            push(Float32Array::from(&samples[..]).into());
            push((*sample_rate).into());
            push((*channels).into());
            push((*timestamp_us as f64).into());
            push(optional(stream_id.as_deref()));
        }
        RuntimeData::Video {
            pixel_data,
            width,
            height,
            format,
            codec,
            frame_number,
            timestamp_us,
            is_keyframe,
            stream_id,
        } => {
            push("video".into());
            push(Uint8Array::from(&pixel_data[..]).into());
            push((*width).into());
            push((*height).into());
            push(format.as_str().into());
            push(optional(codec.as_deref()));
            push((*frame_number as f64).into());
            push((*timestamp_us as f64).into());
            push((*is_keyframe).into());
            push(optional(stream_id.as_deref()));
        }
        other => {
            return Err(Error::InvalidData(format!(
                "{} items cannot reach a Python node in the browser (Pyodide has no numpy here)",
                other.type_name()
            )))
        }
    }
    Ok(item)
}

/// An item the Python host emitted (`[kind, ...fields]`, as `to_tagged` makes them) as a
/// checked pipeline item.
pub(crate) fn from_tagged(item: &JsValue) -> Result<RuntimeData, Error> {
    let bad = |why: String| Error::InvalidData(format!("the Python node emitted {why}"));
    let item: &Array = item
        .dyn_ref()
        .ok_or_else(|| bad("something that is not an item".to_owned()))?;
    let field = |i: u32| item.get(i);
    let kind = field(0).as_string().unwrap_or_default();
    let data = match kind.as_str() {
        "text" => RuntimeData::Text(field(1).as_string().unwrap_or_default()),
        "json" => {
            let text = field(1).as_string().unwrap_or_default();
            RuntimeData::Json(
                serde_json::from_str(&text).map_err(|e| bad(format!("bad JSON: {e}")))?,
            )
        }
        "binary" => {
            let bytes = field(1)
                .dyn_into::<Uint8Array>()
                .map_err(|_| bad("bytes that are not a Uint8Array".to_owned()))?;
            RuntimeData::Binary(bytes.to_vec().into())
        }
        "audio" => {
            let samples = field(1)
                .dyn_into::<Float32Array>()
                .map_err(|_| bad("audio without float32 samples".to_owned()))?;
            audio_input(samples.to_vec(), &field(2), &field(3), &field(4), &field(5))
                .map_err(|e| bad(format!("bad audio: {}", message_of(&e))))?
        }
        "video" => {
            let pixels = field(1)
                .dyn_into::<Uint8Array>()
                .map_err(|_| bad("video without pixel bytes".to_owned()))?;
            let number = |i: u32, what: &str| {
                whole(&field(i), what, 2f64.powi(53))
                    .map_err(|e| bad(format!("bad video: {}", message_of(&e))))
            };
            let format = field(4).as_string().unwrap_or_default();
            RuntimeData::Video {
                pixel_data: pixels.to_vec().into(),
                width: number(2, "width")?.unwrap_or(0.0) as u32,
                height: number(3, "height")?.unwrap_or(0.0) as u32,
                format: PixelFormat::parse_named(&format)?,
                codec: field(5).as_string(),
                frame_number: number(6, "frame_number")?.unwrap_or(0.0) as u64,
                timestamp_us: number(7, "timestamp_us")?.unwrap_or(0.0) as u64,
                is_keyframe: field(8).is_truthy(),
                stream_id: field(9).as_string().map(Arc::from),
            }
        }
        other => return Err(bad(format!("an item of unknown kind {other:?}"))),
    };
    data.checked()
}

/// The message of a JavaScript error value.
pub(crate) fn message_of(error: &JsValue) -> String {
    error
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| error.as_string())
        .unwrap_or_else(|| format!("{error:?}"))
}
