//! `remotemedia._remotemedia`: the native part of the `remotemedia` Python package.
//!
//! Runs pipelines on the runtime core from Python: `execute`, streaming sessions, node
//! listing. Audio crosses as numpy float32 arrays without copying in either direction;
//! the GIL is released while the runtime works.

mod convert;
mod worker;

use convert::{data_from_py, output_to_py, Output};
use pyo3::exceptions::{PyException, PyTimeoutError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::transport::{
    run_to_end, PipelineRunner, PipelineTransport, StreamSession as CoreSession, TransportData,
};
use remotemedia_runtime_core::Error;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pyo3::create_exception!(
    remotemedia,
    RemoteMediaError,
    PyException,
    "Any RemoteMedia failure; `node_id` names the node involved, if any."
);
pyo3::create_exception!(
    remotemedia,
    ManifestError,
    RemoteMediaError,
    "The manifest is invalid (syntax, node types, params, edges)."
);
pyo3::create_exception!(
    remotemedia,
    NodeError,
    RemoteMediaError,
    "A node failed or panicked while running."
);

/// A single-threaded runtime. Pipelines driven from Python run their node tasks on the
/// calling thread while it waits (GIL released): no hand-off to worker threads on every
/// call, which is what a per-frame `send`/`recv` loop pays most for.
fn new_runtime() -> PyResult<Arc<tokio::runtime::Runtime>> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(Arc::new)
        .map_err(|e| RemoteMediaError::new_err(format!("cannot start the runtime: {e}")))
}

thread_local! {
    /// Each Python thread runs its `execute` calls on its own runtime.
    static THREAD_RUNTIME: std::cell::OnceCell<Arc<tokio::runtime::Runtime>> = const { std::cell::OnceCell::new() };
}

fn thread_runtime() -> PyResult<Arc<tokio::runtime::Runtime>> {
    THREAD_RUNTIME.with(|cell| {
        if let Some(rt) = cell.get() {
            return Ok(Arc::clone(rt));
        }
        let rt = new_runtime()?;
        Ok(Arc::clone(cell.get_or_init(|| rt)))
    })
}

/// The runner every call uses: the built-in nodes, plus Python nodes in worker processes
/// running this interpreter (or `$REMOTEMEDIA_PYTHON`).
fn runner() -> PyResult<&'static PipelineRunner> {
    static RUNNER: OnceLock<PipelineRunner> = OnceLock::new();
    if let Some(r) = RUNNER.get() {
        return Ok(r);
    }
    let python = Python::attach(|py| -> PyResult<Option<String>> {
        py.import("sys")?.getattr("executable")?.extract()
    })?;
    let mut setup = remotemedia_executors::RuntimeSetup::default();
    let from_env = std::env::var_os(remotemedia_executors::PYTHON_ENV).filter(|v| !v.is_empty());
    setup.multiprocess.python_executable = from_env.map(std::path::PathBuf::from).or_else(|| {
        python
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from)
    });
    let runner = setup
        .runner()
        .map_err(|e| RemoteMediaError::new_err(e.to_string()))?;
    Ok(RUNNER.get_or_init(|| runner))
}

/// A runtime error as a Python exception with `node_id` set.
fn to_py_err(py: Python<'_>, error: &Error) -> PyErr {
    let err = if error.is_manifest_error() {
        ManifestError::new_err(error.to_string())
    } else if matches!(error, Error::NodeFailed { .. } | Error::NodeInit { .. }) {
        NodeError::new_err(error.to_string())
    } else {
        RemoteMediaError::new_err(error.to_string())
    };
    let _ = err.value(py).setattr("node_id", error.node_id());
    err
}

/// A manifest from a dict, a JSON/YAML string, or a path to a manifest file, validated
/// against the runner's registry (once; the session starts from the result).
fn pipeline_from_py(
    py: Python<'_>,
    manifest: &Bound<'_, PyAny>,
) -> PyResult<Arc<remotemedia_runtime_core::transport::ValidatedPipeline>> {
    let manifest = manifest_from_py(py, manifest)?;
    runner()?
        .registry()
        .validate_arc(manifest)
        .map(Arc::new)
        .map_err(|e| to_py_err(py, &e))
}

/// A manifest from a dict, a JSON/YAML string, or a path to a manifest file.
fn manifest_from_py(py: Python<'_>, manifest: &Bound<'_, PyAny>) -> PyResult<Arc<Manifest>> {
    let os_path = py.import("os")?.getattr("PathLike")?;
    let parsed = if manifest.is_instance(&os_path)? {
        let path: std::path::PathBuf = manifest.extract()?;
        if !path.is_file() {
            return Err(no_manifest_file(&path.display().to_string()));
        }
        Manifest::from_file(&path)
    } else if let Ok(text) = manifest.extract::<String>() {
        let one_line = !text.trim().contains('\n');
        if one_line && std::path::Path::new(text.trim()).is_file() {
            Manifest::from_file(text.trim())
        } else {
            let parsed = Manifest::parse(&text);
            // One line that is no manifest and reads like a path: a file that is not there.
            if parsed.is_err() && one_line && looks_like_a_path(text.trim()) {
                return Err(no_manifest_file(text.trim()));
            }
            parsed
        }
    } else if manifest.is_instance_of::<PyDict>() {
        let json = py.import("json")?.call_method1("dumps", (manifest,))?;
        Manifest::from_json(&json.extract::<String>()?)
    } else {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "manifest must be a dict, a JSON/YAML string or a path, not {}",
            manifest.get_type().name()?
        )));
    };
    parsed.map(Arc::new).map_err(|e| to_py_err(py, &e))
}

/// Whether one line of text reads as a file path rather than as a manifest: it has no
/// mapping or list syntax (a one-line manifest always has some).
fn looks_like_a_path(text: &str) -> bool {
    let manifest_syntax =
        text.starts_with(['{', '[']) || text.contains(": ") || text.ends_with(':');
    !manifest_syntax
}

fn no_manifest_file(path: &str) -> PyErr {
    pyo3::exceptions::PyFileNotFoundError::new_err(format!(
        "no such manifest file: '{path}' (a manifest is a dict, JSON/YAML text, or the path of a manifest file)"
    ))
}

/// Runs `manifest` once on `inputs` (one item or a list), ends the input so buffering
/// nodes flush, and returns every output, in order.
#[pyfunction]
fn execute(
    py: Python<'_>,
    manifest: &Bound<'_, PyAny>,
    inputs: &Bound<'_, PyAny>,
) -> PyResult<Vec<Output>> {
    let pipeline = pipeline_from_py(py, manifest)?;
    let items: Vec<Bound<'_, PyAny>> = if inputs.is_instance_of::<PyList>() {
        inputs.cast::<PyList>()?.iter().collect()
    } else {
        vec![inputs.clone()]
    };
    let mut data = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        data.push(TransportData::new(data_from_py(
            py,
            item,
            &format!("inputs[{i}]"),
        )?));
    }
    let runner = runner()?;
    let rt = thread_runtime()?;
    let outputs = py.detach(|| {
        rt.block_on(async {
            let session = runner.stream_pipeline(pipeline).await?;
            let mut outputs = Vec::new();
            run_to_end(&*session, data, |output| {
                outputs.push(output);
                Ok(())
            })
            .await?;
            Ok::<_, Error>(outputs)
        })
    });
    let outputs = outputs.map_err(|e| to_py_err(py, &e))?;
    outputs.iter().map(|o| output_to_py(py, o)).collect()
}

/// A streaming session (see `open_session`).
#[pyclass(module = "remotemedia", frozen)]
struct StreamSession {
    session: Arc<dyn CoreSession>,
    /// The session's own runtime: whichever thread calls drives its node tasks.
    rt: Arc<tokio::runtime::Runtime>,
}

#[pymethods]
impl StreamSession {
    /// Opens a session on `manifest` (dict, JSON/YAML string or path).
    #[new]
    fn new(py: Python<'_>, manifest: &Bound<'_, PyAny>) -> PyResult<Self> {
        let pipeline = pipeline_from_py(py, manifest)?;
        let runner = runner()?;
        let rt = new_runtime()?;
        let session = py
            .detach(|| rt.block_on(runner.stream_pipeline(pipeline)))
            .map_err(|e| to_py_err(py, &e))?;
        Ok(Self {
            session: Arc::from(session),
            rt,
        })
    }

    /// The session's id.
    #[getter]
    fn session_id(&self) -> String {
        self.session.session_id().to_owned()
    }

    /// False once the session is closed or has failed.
    #[getter]
    fn is_active(&self) -> bool {
        self.session.is_active()
    }

    /// Sends one item (waits while the pipeline is backpressured). `sequence` and
    /// `metadata` (str → str) travel with it: every output it leads to carries them as
    /// `input_sequence` and `metadata`.
    #[pyo3(signature = (item, sequence=None, metadata=None))]
    fn send(
        &self,
        py: Python<'_>,
        item: &Bound<'_, PyAny>,
        sequence: Option<u64>,
        metadata: Option<std::collections::HashMap<String, String>>,
    ) -> PyResult<()> {
        let mut input = TransportData::new(data_from_py(py, item, "item")?)
            .with_metadata_map(metadata.unwrap_or_default());
        input.sequence = sequence;
        let session = Arc::clone(&self.session);
        let rt = Arc::clone(&self.rt);
        py.detach(|| rt.block_on(session.send_input(input)))
            .map_err(|e| to_py_err(py, &e))
    }

    /// The next output; None once everything sent so far has been processed and taken
    /// (or, after close(), once the session has finished). `timeout` in seconds raises
    /// TimeoutError when it passes first.
    #[pyo3(signature = (timeout=None))]
    fn recv(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Output>> {
        let session = Arc::clone(&self.session);
        let rt = Arc::clone(&self.rt);
        let result = py.detach(|| {
            rt.block_on(async {
                match timeout {
                    Some(t) => tokio::time::timeout(
                        Duration::from_secs_f64(t.max(0.0)),
                        session.recv_output(),
                    )
                    .await
                    .ok(),
                    None => Some(session.recv_output().await),
                }
            })
        });
        match result {
            None => Err(PyTimeoutError::new_err(format!(
                "no output within {} s",
                timeout.unwrap_or_default()
            ))),
            Some(Ok(Some(output))) => Ok(Some(output_to_py(py, &output)?)),
            Some(Ok(None)) => Ok(None),
            Some(Err(e)) => Err(to_py_err(py, &e)),
        }
    }

    /// Ends the input: nodes flush; remaining outputs stay receivable. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let session = Arc::clone(&self.session);
        let rt = Arc::clone(&self.rt);
        py.detach(|| rt.block_on(session.close()))
            .map_err(|e| to_py_err(py, &e))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Iteration waits for each output until the session has ended (close() first).
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Output>> {
        let session = Arc::clone(&self.session);
        let rt = Arc::clone(&self.rt);
        match py.detach(|| rt.block_on(session.next_output())) {
            Ok(Some(output)) => Ok(Some(output_to_py(py, &output)?)),
            Ok(None) => Ok(None),
            Err(e) => Err(to_py_err(py, &e)),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "StreamSession(session_id={:?}, active={})",
            self.session.session_id(),
            self.session.is_active()
        )
    }
}

/// Opens a streaming session on `manifest`.
#[pyfunction]
fn open_session(py: Python<'_>, manifest: &Bound<'_, PyAny>) -> PyResult<StreamSession> {
    StreamSession::new(py, manifest)
}

/// Every registered node type: `{node_type, aliases, kind, description, params}` with
/// `params` a JSON Schema dict (or None).
#[pyfunction]
fn nodes(py: Python<'_>) -> PyResult<Py<PyAny>> {
    let list: Vec<serde_json::Value> = runner()?
        .registry()
        .node_types()
        .iter()
        .map(|t| t.to_json())
        .collect();
    let text = serde_json::Value::Array(list).to_string();
    Ok(py.import("json")?.call_method1("loads", (text,))?.unbind())
}

/// `params` of a node of `node_type` as the runtime validates and normalizes them:
/// snake_case keys, defaults filled in, errors naming the param. Types the runtime does not
/// know (a node class defined only in Python) get their params back unchanged.
#[pyfunction]
#[pyo3(signature = (node_type, params=None))]
fn normalize_params(
    py: Python<'_>,
    node_type: &str,
    params: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let json = py.import("json")?;
    let given: serde_json::Value = match params {
        None => serde_json::Value::Null,
        Some(p) if p.is_none() => serde_json::Value::Null,
        Some(p) => serde_json::from_str(&json.call_method1("dumps", (p,))?.extract::<String>()?)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?,
    };
    let registry = runner()?.registry();
    let schema = registry
        .python_type(node_type)
        .and_then(|t| t.schema.clone())
        .or_else(|| {
            registry
                .rust_factory(node_type)
                .and_then(|f| f.params_schema())
        });
    let normalized = match schema {
        Some(schema) => schema
            .validate("", node_type, &given)
            .map_err(|e| to_py_err(py, &e))?,
        None => match given {
            serde_json::Value::Null => serde_json::json!({}),
            other => other,
        },
    };
    Ok(json
        .call_method1("loads", (normalized.to_string(),))?
        .unbind())
}

/// Encodes one item as a frame (the runtime's frame codec, see `decode_frame`).
#[pyfunction]
fn encode_frame<'py>(
    py: Python<'py>,
    item: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, pyo3::types::PyBytes>> {
    let data = data_from_py(py, item, "item")?;
    let frame = remotemedia_runtime_core::data::codec::encode(&data);
    Ok(pyo3::types::PyBytes::new(py, &frame))
}

/// Decodes one frame of the runtime's frame codec (bytes, bytearray, memoryview, any
/// buffer). Audio samples, video pixels and tensor elements view the buffer in place when
/// it is immutable (`bytes`, a read-only view) and are copied from writable buffers.
#[pyfunction]
fn decode_frame(py: Python<'_>, frame: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let data = convert::frame_from_py(py, frame)?;
    convert::data_to_py(py, &data)
}

/// Parses a frame's header: `(kind, fields, payload_offset, payload_len)`.
#[pyfunction]
fn frame_header(
    py: Python<'_>,
    frame: &Bound<'_, PyAny>,
) -> PyResult<(String, Py<PyAny>, usize, usize)> {
    use remotemedia_runtime_core::data::codec;
    let bad =
        |e: remotemedia_runtime_core::Error| pyo3::exceptions::PyValueError::new_err(e.to_string());
    // Copy only the preamble and header out of the buffer; the payload stays in place.
    let view = py
        .import("builtins")?
        .getattr("memoryview")?
        .call1((frame,))?;
    let total: usize = view.len()?;
    let prefix = |n: usize| -> PyResult<Vec<u8>> {
        let end = n.min(total);
        view.get_item(pyo3::types::PySlice::new(py, 0, end as isize, 1))?
            .call_method0("tobytes")?
            .extract::<Vec<u8>>()
    };
    let preamble = prefix(codec::PREAMBLE_LEN)?;
    let header_len = codec::header_len(&preamble).map_err(bad)?;
    let head = prefix(codec::PREAMBLE_LEN.saturating_add(header_len))?;
    let header = codec::parse_header_prefix(&head, total).map_err(bad)?;
    let fields = py
        .import("json")?
        .call_method1("loads", (header.fields.to_string(),))?
        .unbind();
    Ok((
        header.kind.as_str().to_owned(),
        fields,
        header.payload_offset,
        header.payload_len,
    ))
}

#[pymodule]
fn _remotemedia(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(execute, m)?)?;
    m.add_function(wrap_pyfunction!(open_session, m)?)?;
    m.add_function(wrap_pyfunction!(nodes, m)?)?;
    m.add_function(wrap_pyfunction!(encode_frame, m)?)?;
    m.add_function(wrap_pyfunction!(frame_header, m)?)?;
    m.add_function(wrap_pyfunction!(decode_frame, m)?)?;
    m.add_function(wrap_pyfunction!(normalize_params, m)?)?;
    m.add_class::<StreamSession>()?;
    m.add_class::<worker::WorkerChannel>()?;
    m.add_class::<Output>()?;
    m.add_class::<convert::Audio>()?;
    m.add_class::<convert::Video>()?;
    m.add("RemoteMediaError", py.get_type::<RemoteMediaError>())?;
    m.add("ManifestError", py.get_type::<ManifestError>())?;
    m.add("NodeError", py.get_type::<NodeError>())?;
    Ok(())
}
