//! The RemoteMedia pipeline engine for JavaScript: runtime-core compiled to
//! `wasm32-unknown-unknown` with wasm-bindgen, so a manifest that runs on the server runs
//! unchanged in a browser tab or in Node.js — the built-in native nodes in wasm, Python
//! nodes in Pyodide ([`python`]).
//!
//! The JavaScript side (`js/index.js`, packaged by `cargo xtask wasm`) wraps these exports:
//! `init()`, `executeUnary(manifest, input)`, `createSession(manifest)` → a session with
//! `send(data)`, `recv()` (`null` when quiescent, like the Rust `recv_output`), an async
//! iterator of outputs, `close()`; `runAudio(manifest, audio)` (a recording through a
//! session inside the engine; with `measure`, timed with the outputs counted instead);
//! `nodes()`; `validate(manifest)`. Manifests may take a
//! base URL, against which Python nodes' `python_path` entries resolve.
//!
//! Data: see [`data`] — text, bytes, audio (`Float32Array` samples), video (`Uint8Array`
//! pixels) and JSON, each way. Outputs are `{nodeId, sequence, inputSequence, data}`.
//! Errors are JavaScript `Error`s with the native runtime's message and, when a node is to
//! blame, a `nodeId` property.

mod data;
pub mod python;

use data::{checked_audio_input, from_output, set, to_data};
use futures::future::BoxFuture;
use js_sys::{Object, Promise, Reflect};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::nodes::registry::{NodeRegistry, ResolvedNode};
use remotemedia_runtime_core::pipeline::ValidatedPipeline;
use remotemedia_runtime_core::policy::ExecutionPolicy;
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
        let mut registry = NodeRegistry::with_builtins();
        registry.register_backend(Arc::new(python::PythonBackend));
        PipelineRunner::with_registry(registry)
            .expect("the built-in node catalog")
            .with_spawner(Arc::new(EventLoop))
    };
}

fn runner() -> PipelineRunner {
    RUNNER.with(Clone::clone)
}

/// A JavaScript `Error` with the runtime's message and the failing node's id.
pub(crate) fn js_error(error: &remotemedia_runtime_core::Error) -> JsValue {
    let js = js_sys::Error::new(&error.to_string());
    if let Some(node) = error.node_id() {
        let _ = Reflect::set(&js, &"nodeId".into(), &node.into());
    }
    js.into()
}

/// Parses and validates a manifest (JSON or YAML text); `base_url` is where its relative
/// paths point (Python nodes' `python_path`), kept as each node's base. An `untrusted`
/// manifest (one the page got from someone it does not trust) is held to the rules the
/// native servers apply to their clients' manifests ([`ExecutionPolicy::default`]): no
/// executor-block settings, so no Python code of its own choosing.
fn parse_manifest(
    text: &str,
    base_url: Option<String>,
    untrusted: bool,
) -> Result<ValidatedPipeline, JsValue> {
    let mut manifest = Manifest::parse(text).map_err(|e| js_error(&e))?;
    if let Some(base) = base_url.filter(|b| !b.is_empty()) {
        for node in &mut manifest.nodes {
            node.base_dir = Some(base.clone().into());
        }
    }
    let manifest = Arc::new(manifest);
    let validated = if untrusted {
        runner().validate_client(manifest, &ExecutionPolicy::default())
    } else {
        runner().registry().validate_arc(manifest)
    };
    validated.map_err(|e| js_error(&e))
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
/// `{name, nodes, python}` (`python`: the ids of the nodes that run in Pyodide) or throws
/// the same error.
#[wasm_bindgen]
pub fn validate(manifest: &str, untrusted: Option<bool>) -> Result<JsValue, JsValue> {
    let pipeline = parse_manifest(manifest, None, untrusted.unwrap_or(false))?;
    let summary = Object::new();
    let m = pipeline.manifest();
    set(&summary, "name", m.metadata.name.clone());
    let ids = js_sys::Array::new();
    for node in &m.nodes {
        ids.push(&node.id.as_str().into());
    }
    set(&summary, "nodes", ids);
    let python = js_sys::Array::new();
    for (node, resolved) in m.nodes.iter().zip(pipeline.nodes()) {
        if let ResolvedNode::Backend { .. } = resolved {
            python.push(&node.id.as_str().into());
        }
    }
    set(&summary, "python", python);
    Ok(summary.into())
}

/// Runs the pipeline once on `input` and resolves to its single output.
#[wasm_bindgen(js_name = executeUnary)]
pub fn execute_unary(
    manifest: &str,
    input: JsValue,
    base_url: Option<String>,
    untrusted: Option<bool>,
) -> Promise {
    let parsed = parse_manifest(manifest, base_url, untrusted.unwrap_or(false));
    future_to_promise(async move {
        let manifest = parsed?;
        let data = to_data(&input)?;
        let output = runner()
            .execute_unary(manifest, TransportData::new(data))
            .await
            .map_err(|e| js_error(&e))?;
        Ok(from_output(&output))
    })
}

/// A recording handed to [`run_audio`], checked, with its block size.
struct Recording {
    samples: remotemedia_runtime_core::data::AudioSamples,
    sample_rate: u32,
    channels: u16,
    stream_id: Option<Arc<str>>,
    timestamp_us: u64,
    /// Samples (not frames) per block.
    per_block: usize,
}

impl Recording {
    fn new(
        samples: Vec<f32>,
        sample_rate: &JsValue,
        channels: &JsValue,
        timestamp_us: &JsValue,
        stream_id: &JsValue,
        block_frames: &JsValue,
        what: &str,
    ) -> Result<Self, JsValue> {
        let audio = checked_audio_input(samples, sample_rate, channels, timestamp_us, stream_id)?;
        let block = data::whole_number(block_frames, "blockFrames", u32::MAX as f64)?;
        let RuntimeData::Audio {
            samples,
            sample_rate,
            channels,
            stream_id,
            timestamp_us,
        } = audio
        else {
            return Err(js_sys::TypeError::new(&format!("{what} takes audio")).into());
        };
        let per_block = match block {
            Some(frames) if frames >= 1.0 => frames as usize,
            Some(_) => return Err(js_sys::TypeError::new("blockFrames must be at least 1").into()),
            None => (sample_rate as usize / 50).max(1),
        } * usize::from(channels);
        Ok(Self {
            samples,
            sample_rate,
            channels,
            stream_id,
            timestamp_us,
            per_block,
        })
    }

    /// The number of blocks [`feed`](Self::feed) sends.
    fn blocks(&self) -> usize {
        self.samples.as_slice().len().div_ceil(self.per_block)
    }

    /// Sends the recording block by block, each block's outputs taken (handed to `sink`)
    /// before the next, then ends the input and hands over what the flush produces.
    async fn feed(
        &self,
        session: &PipelineSession,
        mut sink: impl FnMut(&TransportData),
    ) -> Result<(), JsValue> {
        let len = self.samples.as_slice().len();
        let channels = usize::from(self.channels);
        let mut start = 0;
        while start < len {
            let end = (start + self.per_block).min(len);
            let frames_before = (start / channels) as u64;
            let block = RuntimeData::Audio {
                samples: self.samples.slice(start..end),
                sample_rate: self.sample_rate,
                channels: self.channels,
                stream_id: self.stream_id.clone(),
                timestamp_us: self.timestamp_us
                    + frames_before * 1_000_000 / u64::from(self.sample_rate),
            };
            session
                .send_input(TransportData::new(block))
                .await
                .map_err(|e| js_error(&e))?;
            while let Some(output) = session.recv_output().await.map_err(|e| js_error(&e))? {
                sink(&output);
            }
            start = end;
        }
        session.close().await.map_err(|e| js_error(&e))?;
        while let Some(output) = session.next_output().await.map_err(|e| js_error(&e))? {
            sink(&output);
        }
        Ok(())
    }
}

#[wasm_bindgen]
extern "C" {
    /// `performance.now()`: milliseconds, sub-millisecond resolution (pages and Node.js).
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// Runs a whole recording through a session inside the engine, in blocks of
/// `block_frames` frames (default 20 ms) timed as a live source would deliver them: each
/// block is sent and its outputs taken before the next, then the input ends and the nodes
/// flush. Resolves to every output, in order. One call for the whole buffer: the samples
/// cross into the module once, and no promise is made per block.
///
/// With `measure` (JavaScript's `measureAudio`), how fast that runs here instead: the
/// outputs are counted inside the engine rather than handed to JavaScript, and the call
/// resolves to `{blocks, outputs, startMs, ms, realTime}` — `startMs` the session's start
/// (nodes initialized), `ms` the loop from the first block to the last output,
/// `realTime` how many times faster than real time that is.
#[wasm_bindgen(js_name = runAudio)]
#[allow(clippy::too_many_arguments)]
pub fn run_audio(
    manifest: &str,
    samples: Vec<f32>,
    sample_rate: JsValue,
    channels: JsValue,
    timestamp_us: JsValue,
    stream_id: JsValue,
    block_frames: JsValue,
    base_url: Option<String>,
    untrusted: Option<bool>,
    measure: Option<bool>,
) -> Promise {
    let measure = measure.unwrap_or(false);
    let parsed = parse_manifest(manifest, base_url, untrusted.unwrap_or(false));
    let recording = Recording::new(
        samples,
        &sample_rate,
        &channels,
        &timestamp_us,
        &stream_id,
        &block_frames,
        if measure { "measureAudio" } else { "runAudio" },
    );
    future_to_promise(async move {
        let manifest = parsed?;
        let recording = recording?;
        let created = performance_now();
        let session = runner()
            .create_stream_session(manifest)
            .await
            .map_err(|e| js_error(&e))?;
        if !measure {
            let outputs = js_sys::Array::new();
            recording
                .feed(&session, |output| {
                    outputs.push(&from_output(output));
                })
                .await?;
            return Ok(outputs.into());
        }
        let started = performance_now();
        let mut outputs = 0u64;
        recording.feed(&session, |_| outputs += 1).await?;
        let ms = performance_now() - started;
        let frames = recording.samples.as_slice().len() / usize::from(recording.channels);
        let seconds = frames as f64 / f64::from(recording.sample_rate);
        let report = Object::new();
        set(&report, "blocks", recording.blocks() as f64);
        set(&report, "outputs", outputs as f64);
        set(&report, "startMs", started - created);
        set(&report, "ms", ms);
        set(
            &report,
            "realTime",
            if ms > 0.0 {
                seconds * 1000.0 / ms
            } else {
                f64::INFINITY
            },
        );
        Ok(report.into())
    })
}

/// Starts a streaming session; resolves to a [`Session`] once every node is initialized.
#[wasm_bindgen(js_name = createSession)]
pub fn create_session(
    manifest: &str,
    base_url: Option<String>,
    untrusted: Option<bool>,
) -> Promise {
    let parsed = parse_manifest(manifest, base_url, untrusted.unwrap_or(false));
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

    /// [`send`](Self::send) for audio, from its parts (what `index.js` calls for an audio
    /// input: no property lookups, the samples moved into the module's memory once).
    #[wasm_bindgen(js_name = sendAudio)]
    pub fn send_audio(
        &self,
        samples: Vec<f32>,
        sample_rate: JsValue,
        channels: JsValue,
        timestamp_us: JsValue,
        stream_id: JsValue,
    ) -> Promise {
        let input =
            checked_audio_input(samples, &sample_rate, &channels, &timestamp_us, &stream_id);
        let session = Rc::clone(&self.inner);
        future_to_promise(async move {
            session
                .send_input(TransportData::new(input?))
                .await
                .map_err(|e| js_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// [`process`](Self::process) for audio, from its parts.
    #[wasm_bindgen(js_name = processAudio)]
    pub fn process_audio(
        &self,
        samples: Vec<f32>,
        sample_rate: JsValue,
        channels: JsValue,
        timestamp_us: JsValue,
        stream_id: JsValue,
    ) -> Promise {
        let input =
            checked_audio_input(samples, &sample_rate, &channels, &timestamp_us, &stream_id);
        self.process_input(input)
    }

    /// Sends one input and resolves to every output the pipeline has once it is quiescent
    /// again (an array) — `send` then `recv` until `null`, in one call: what a live source
    /// does per frame, at the cost of one promise instead of one per output.
    pub fn process(&self, data: JsValue) -> Promise {
        self.process_input(to_data(&data))
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

impl Session {
    fn process_input(&self, input: Result<RuntimeData, JsValue>) -> Promise {
        let session = Rc::clone(&self.inner);
        future_to_promise(async move {
            let input = TransportData::new(input?);
            session.send_input(input).await.map_err(|e| js_error(&e))?;
            let outputs = js_sys::Array::new();
            while let Some(output) = session.recv_output().await.map_err(|e| js_error(&e))? {
                outputs.push(&from_output(&output));
            }
            Ok(outputs.into())
        })
    }
}
