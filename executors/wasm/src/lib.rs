//! The RemoteMedia pipeline engine for JavaScript: runtime-core compiled to
//! `wasm32-unknown-unknown` with wasm-bindgen, so a manifest that runs on the server runs
//! unchanged in a browser tab or in Node.js (built-in native nodes; Python nodes are not in
//! this build yet).
//!
//! The JavaScript side (`js/index.js`, packaged by `cargo xtask wasm`) wraps these exports:
//! `init()`, `executeUnary(manifest, input)`, `createSession(manifest)` → a session with
//! `send(data)`, `recv()` (`null` when quiescent, like the Rust `recv_output`), an async
//! iterator of outputs, `close()`; `nodes()`; `validate(manifest)`.
//!
//! Data: a `string` is `Text`; a `Uint8Array` is `Binary`; an object with a `samples`
//! `Float32Array` is `Audio` (`sampleRate` required, `channels` default 1, optional
//! `timestampUs` and `streamId`); any other value is `Json`. Outputs are
//! `{nodeId, sequence, inputSequence, data}` with `data` in the same forms (audio with a
//! `Float32Array` of its own). Errors are JavaScript `Error`s with the native runtime's
//! message and, when a node is to blame, a `nodeId` property.

use futures::future::BoxFuture;
use js_sys::{Float32Array, Object, Promise, Reflect, Uint8Array};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::runtime::{set_clock, Spawner};
use remotemedia_runtime_core::transport::{PipelineRunner, PipelineSession, TransportData};
use std::rc::Rc;
use std::sync::Arc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// Runs the executor's tasks on the JavaScript event loop.
#[derive(Debug)]
struct EventLoop;

impl Spawner for EventLoop {
    fn spawn(&self, task: BoxFuture<'static, ()>) -> remotemedia_runtime_core::Result<()> {
        wasm_bindgen_futures::spawn_local(task);
        Ok(())
    }
}

fn clock_nanos() -> u64 {
    (js_sys::Date::now() * 1e6) as u64
}

thread_local! {
    static RUNNER: PipelineRunner = {
        set_clock(clock_nanos);
        PipelineRunner::new()
            .expect("the built-in node catalog")
            .with_spawner(Arc::new(EventLoop))
    };
}

fn runner() -> PipelineRunner {
    RUNNER.with(Clone::clone)
}

/// A JavaScript `Error` with the runtime's message and the failing node's id.
fn js_error(error: &remotemedia_runtime_core::Error) -> JsValue {
    let js = js_sys::Error::new(&error.to_string());
    if let Some(node) = error.node_id() {
        let _ = Reflect::set(&js, &"nodeId".into(), &node.into());
    }
    js.into()
}

fn type_error(message: &str) -> JsValue {
    js_sys::TypeError::new(message).into()
}

fn get(object: &JsValue, key: &str) -> JsValue {
    Reflect::get(object, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

/// A JavaScript value as a pipeline input.
fn to_data(value: &JsValue) -> Result<RuntimeData, JsValue> {
    if let Some(text) = value.as_string() {
        return Ok(RuntimeData::Text(text));
    }
    if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        return Ok(RuntimeData::Binary(bytes.to_vec().into()));
    }
    if value.is_object() {
        let samples = get(value, "samples");
        if let Some(samples) = samples.dyn_ref::<Float32Array>() {
            let rate = get(value, "sampleRate").as_f64().ok_or_else(|| {
                type_error("audio needs sampleRate (a number of frames per second)")
            })?;
            let channels = get(value, "channels").as_f64().unwrap_or(1.0);
            if !(1.0..=1_000_000.0).contains(&rate) || rate.fract() != 0.0 {
                return Err(type_error(&format!(
                    "audio sampleRate must be a whole number of Hz from 1 to 1000000, not {rate}"
                )));
            }
            if !(1.0..=64.0).contains(&channels) || channels.fract() != 0.0 {
                return Err(type_error(&format!(
                    "audio channels must be a whole number from 1 to 64, not {channels}"
                )));
            }
            let timestamp_us = get(value, "timestampUs").as_f64().unwrap_or(0.0).max(0.0) as u64;
            let stream_id = get(value, "streamId").as_string().map(Arc::from);
            return Ok(RuntimeData::Audio {
                samples: samples.to_vec().into(),
                sample_rate: rate as u32,
                channels: channels as u16,
                stream_id,
                timestamp_us,
            });
        }
    }
    let text = js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .ok_or_else(|| type_error("the input is not text, audio, bytes or JSON"))?;
    let json = serde_json::from_str(&text)
        .map_err(|e| type_error(&format!("the input is not JSON: {e}")))?;
    Ok(RuntimeData::Json(json))
}

fn set(object: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(object, &key.into(), &value.into());
}

/// A pipeline output's data as a JavaScript value.
fn from_data(data: &RuntimeData) -> JsValue {
    match data {
        RuntimeData::Text(text) => text.into(),
        RuntimeData::Json(value) => {
            js_sys::JSON::parse(&value.to_string()).unwrap_or(JsValue::NULL)
        }
        RuntimeData::Binary(bytes) => Uint8Array::from(&bytes[..]).into(),
        RuntimeData::Audio {
            samples,
            sample_rate,
            channels,
            stream_id,
            timestamp_us,
        } => {
            let audio = Object::new();
            set(&audio, "samples", Float32Array::from(&samples[..]));
            set(&audio, "sampleRate", *sample_rate);
            set(&audio, "channels", *channels);
            set(&audio, "timestampUs", *timestamp_us as f64);
            if let Some(stream) = stream_id {
                set(&audio, "streamId", stream.to_string());
            }
            audio.into()
        }
        other => {
            let summary = Object::new();
            set(&summary, "type", other.type_name());
            set(&summary, "bytes", other.size_bytes() as f64);
            summary.into()
        }
    }
}

fn from_output(output: &TransportData) -> JsValue {
    let out = Object::new();
    let or_null = |v: Option<JsValue>| v.unwrap_or(JsValue::NULL);
    set(&out, "nodeId", or_null(output.node_id().map(JsValue::from)));
    set(
        &out,
        "sequence",
        or_null(output.sequence.map(|s| JsValue::from(s as f64))),
    );
    set(
        &out,
        "inputSequence",
        or_null(output.input_sequence.map(|s| JsValue::from(s as f64))),
    );
    set(&out, "data", from_data(&output.data));
    out.into()
}

fn parse_manifest(text: &str) -> Result<Manifest, JsValue> {
    Manifest::parse(text).map_err(|e| js_error(&e))
}

/// Every node type this build runs, with its params as JSON Schema.
#[wasm_bindgen]
pub fn nodes() -> JsValue {
    let list: Vec<serde_json::Value> = runner()
        .registry()
        .node_types()
        .iter()
        .map(|t| t.to_json())
        .collect();
    js_sys::JSON::parse(&serde_json::Value::from(list).to_string()).unwrap_or(JsValue::NULL)
}

/// Checks a manifest (JSON or YAML text) exactly as the native runtime does; returns
/// `{name, nodes, inputs, outputs}` or throws the same error.
#[wasm_bindgen]
pub fn validate(manifest: &str) -> Result<JsValue, JsValue> {
    let manifest = parse_manifest(manifest)?;
    let pipeline = runner().validate(&manifest).map_err(|e| js_error(&e))?;
    let summary = Object::new();
    let m = pipeline.manifest();
    set(&summary, "name", m.metadata.name.clone());
    let ids = js_sys::Array::new();
    for node in &m.nodes {
        ids.push(&node.id.as_str().into());
    }
    set(&summary, "nodes", ids);
    Ok(summary.into())
}

/// Runs the pipeline once on `input` and resolves to its single output.
#[wasm_bindgen(js_name = executeUnary)]
pub fn execute_unary(manifest: &str, input: JsValue) -> Promise {
    let parsed = parse_manifest(manifest);
    future_to_promise(async move {
        let manifest = Arc::new(parsed?);
        let data = to_data(&input)?;
        let output = runner()
            .execute_unary(manifest, TransportData::new(data))
            .await
            .map_err(|e| js_error(&e))?;
        Ok(from_output(&output))
    })
}

/// Starts a streaming session; resolves to a [`Session`] once every node is initialized.
#[wasm_bindgen(js_name = createSession)]
pub fn create_session(manifest: &str) -> Promise {
    let parsed = parse_manifest(manifest);
    future_to_promise(async move {
        let manifest = parsed?;
        let session = runner()
            .create_stream_session(manifest)
            .await
            .map_err(|e| js_error(&e))?;
        Ok(Session {
            inner: Rc::new(session),
        }
        .into())
    })
}

/// One streaming session.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Session {
    inner: Rc<PipelineSession>,
}

#[wasm_bindgen]
impl Session {
    /// The session's id.
    #[wasm_bindgen(getter, js_name = sessionId)]
    pub fn session_id(&self) -> String {
        self.inner.session_id().to_owned()
    }

    /// Sends one input; resolves once the pipeline took it (waits under backpressure).
    pub fn send(&self, data: JsValue) -> Promise {
        let session = Rc::clone(&self.inner);
        future_to_promise(async move {
            let input = TransportData::new(to_data(&data)?);
            session.send_input(input).await.map_err(|e| js_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The next output, or `null` once everything sent so far is processed and taken.
    pub fn recv(&self) -> Promise {
        let session = Rc::clone(&self.inner);
        future_to_promise(async move {
            match session.recv_output().await.map_err(|e| js_error(&e))? {
                Some(output) => Ok(from_output(&output)),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// The next output however long it takes; `null` once the session ended and every
    /// output was taken (what the async iterator uses).
    pub fn next(&self) -> Promise {
        let session = Rc::clone(&self.inner);
        future_to_promise(async move {
            match session.next_output().await.map_err(|e| js_error(&e))? {
                Some(output) => Ok(from_output(&output)),
                None => Ok(JsValue::NULL),
            }
        })
    }

    /// Ends the input: nodes flush; the remaining outputs can still be received.
    pub fn close(&self) -> Promise {
        let session = Rc::clone(&self.inner);
        future_to_promise(async move {
            session.close().await.map_err(|e| js_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }
}
