//! Python ↔ `RuntimeData`.
//!
//! | Python | RuntimeData |
//! |---|---|
//! | `Audio(samples: float32 ndarray or float32 buffer, sample_rate, channels, ...)` | Audio |
//! | `Video(pixels: uint8 ndarray or bytes, width, height, format, ...)` | Video |
//! | `str` | Text |
//! | `dict`, `list`, numbers, bools, None | Json |
//! | `bytes`, `bytearray` | Binary |
//! | any other numpy array | Tensor |
//!
//! # Sharing memory with Python, soundly
//!
//! The runtime reads payloads as plain Rust slices, possibly from other threads, for as
//! long as the pipeline holds them. Memory Python code can still write to must not be
//! read that way, so a numpy array is shared without a copy only when its memory is
//! immutable: its ultimate owner is a `bytes` object or a buffer of the runtime itself
//! (every array the package hands out — output samples, pixels, tensors — is one).
//! Writable arrays, and read-only arrays over writable memory (numpy lets an array's
//! owner be made writable again), are copied when the item is built. Outputs are always
//! read-only views of the runtime's memory, without a copy.

use numpy::ndarray::ArrayView1;
use numpy::{PyArray1, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyByteArray, PyBytes, PyDict, PyList};
use remotemedia_runtime_core::data::{AudioSamples, Bytes, PixelFormat, RuntimeData, TensorDtype};
use remotemedia_runtime_core::transport::TransportData;
use std::sync::Arc;

/// Keeps a Python object with immutable memory (a `bytes` object, a numpy array over one)
/// alive while the runtime reads that memory (see the module docs: only memory nobody can
/// write is wrapped).
struct NumpyMemory<T: 'static> {
    _array: Py<PyAny>,
    ptr: *const T,
    len: usize,
}

// SAFETY: the pointer targets the data of `_array`, which this value keeps alive, and that
// memory is immutable (`is_immutable` held when the value was built): no thread, Python or
// Rust, writes it while it is shared. Dropping the `Py` without the GIL defers the decref
// to pyo3's reference pool.
unsafe impl<T> Send for NumpyMemory<T> {}
unsafe impl<T> Sync for NumpyMemory<T> {}

impl<T> AsRef<[T]> for NumpyMemory<T> {
    fn as_ref(&self) -> &[T] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: ptr/len describe the live, C-contiguous buffer of `_array`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

/// Holds runtime memory that numpy arrays handed to Python view.
#[pyclass(module = "remotemedia", frozen)]
struct SharedSamples {
    samples: AudioSamples,
}

#[pyclass(module = "remotemedia", frozen)]
struct SharedBytes {
    bytes: Bytes,
}

/// A float32 numpy view of `samples`, without copying, read-only.
fn samples_to_numpy<'py>(py: Python<'py>, samples: &AudioSamples) -> PyResult<Bound<'py, PyAny>> {
    let owner = Bound::new(
        py,
        SharedSamples {
            samples: samples.clone(),
        },
    )?;
    let slice: &[f32] = &owner.get().samples;
    let view = ArrayView1::from(slice);
    // SAFETY: the array's base object is `owner`, which keeps the buffer alive and never
    // reallocates it.
    let array = unsafe { PyArray1::borrow_from_array(&view, owner.clone().into_any()) };
    array.call_method("setflags", (), Some(&[("write", false)].into_py_dict(py)?))?;
    Ok(array.into_any())
}

fn bytes_to_numpy<'py>(py: Python<'py>, bytes: &Bytes) -> PyResult<Bound<'py, PyAny>> {
    let owner = Bound::new(
        py,
        SharedBytes {
            bytes: bytes.clone(),
        },
    )?;
    let slice: &[u8] = &owner.get().bytes;
    let view = ArrayView1::from(slice);
    // SAFETY: as in `samples_to_numpy`.
    let array = unsafe { PyArray1::borrow_from_array(&view, owner.clone().into_any()) };
    array.call_method("setflags", (), Some(&[("write", false)].into_py_dict(py)?))?;
    Ok(array.into_any())
}

/// Whether nobody can write `array`'s memory: its ultimate owner (the end of the `.base`
/// chain) is a `bytes` object or memory of the runtime. An array that owns its memory is
/// never immutable: numpy lets its owner set it writable again.
fn is_immutable(array: &Bound<'_, PyAny>) -> PyResult<bool> {
    let mut owner = array.clone();
    loop {
        if owner.is_instance_of::<SharedSamples>()
            || owner.is_instance_of::<SharedBytes>()
            || owner.is_instance_of::<PyBytes>()
        {
            return Ok(true);
        }
        if owner.cast::<PyUntypedArray>().is_err() {
            return Ok(false);
        }
        let base = owner.getattr("base")?;
        if base.is_none() {
            return Ok(false);
        }
        owner = base;
    }
}

/// The array's elements as a shared buffer: in place when its memory is immutable,
/// copied otherwise (see the module docs). The array must be C-contiguous.
fn array_bytes(array: &Bound<'_, PyUntypedArray>) -> PyResult<Bytes> {
    let nbytes: usize = array.getattr("nbytes")?.extract()?;
    if nbytes == 0 {
        return Ok(Bytes::new());
    }
    if is_immutable(array.as_any())? {
        let ptr: usize = array
            .getattr("__array_interface__")?
            .get_item("data")?
            .get_item(0)?
            .extract()?;
        return Ok(Bytes::from_owner(NumpyMemory {
            _array: array.clone().into_any().unbind(),
            ptr: ptr as *const u8,
            len: nbytes,
        }));
    }
    // One copy, into an immutable `bytes` object the buffer then keeps alive.
    let raw = array.call_method0("tobytes")?.cast_into::<PyBytes>()?;
    Ok(bytes_object(raw))
}

/// The memory of a `bytes` object (immutable), shared without a copy.
fn bytes_object(raw: Bound<'_, PyBytes>) -> Bytes {
    let slice = raw.as_bytes();
    let (ptr, len) = (slice.as_ptr(), slice.len());
    Bytes::from_owner(NumpyMemory {
        _array: raw.into_any().unbind(),
        ptr,
        len,
    })
}

/// A frame of the runtime's codec from a Python buffer, decoded. A `bytes` frame is
/// decoded in place (it is immutable); any other buffer is copied first.
pub(crate) fn frame_from_py(py: Python<'_>, frame: &Bound<'_, PyAny>) -> PyResult<RuntimeData> {
    let bytes = match frame.cast::<PyBytes>() {
        Ok(bytes) => bytes_object(bytes.clone()),
        Err(_) => bytes_object(
            py.import("builtins")?
                .getattr("bytes")?
                .call1((frame,))?
                .cast_into::<PyBytes>()?,
        ),
    };
    remotemedia_runtime_core::data::codec::decode(bytes)
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// A runtime error about data as a Python `ValueError`.
fn data_error(what: &str, error: remotemedia_runtime_core::Error) -> PyErr {
    let message = match error {
        remotemedia_runtime_core::Error::InvalidData(why) => why,
        other => other.to_string(),
    };
    PyValueError::new_err(format!("{what}: {message}"))
}

/// Checks an array argument: dtype (`float32`, `uint8`, ...), C-contiguity.
fn contiguous(array: &Bound<'_, PyUntypedArray>, dtype: &str, what: &str) -> PyResult<()> {
    let actual = array.dtype().str()?.to_string();
    if actual != dtype {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a {dtype} numpy array, got dtype {actual}"
        )));
    }
    if !array.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{what} must be C-contiguous; pass numpy.ascontiguousarray(...)"
        )));
    }
    Ok(())
}

/// Audio: interleaved float32 samples plus rate and channels.
///
/// `samples` may be 1-D (interleaved) or 2-D `(frames, channels)`. A writable array is
/// copied here, so writing to it afterwards never changes what the pipeline sees; arrays
/// over immutable memory (outputs of the runtime, `numpy.frombuffer` of `bytes`) are
/// shared without a copy. `samples` gives a read-only float32 view of the item's buffer.
#[pyclass(module = "remotemedia", frozen)]
pub(crate) struct Audio {
    samples: AudioSamples,
    #[pyo3(get)]
    sample_rate: u32,
    #[pyo3(get)]
    channels: u16,
    #[pyo3(get)]
    stream_id: Option<String>,
    #[pyo3(get)]
    timestamp_us: u64,
}

#[pymethods]
impl Audio {
    #[new]
    #[pyo3(signature = (samples, sample_rate, channels=None, stream_id=None, timestamp_us=0))]
    fn new(
        samples: &Bound<'_, PyAny>,
        sample_rate: u32,
        channels: Option<u16>,
        stream_id: Option<String>,
        timestamp_us: u64,
    ) -> PyResult<Self> {
        let converted;
        let array = match samples.cast::<PyUntypedArray>() {
            Ok(array) => array,
            Err(_) => {
                converted = float32_buffer_as_array(samples)?;
                &converted
            }
        };
        contiguous(array, "float32", "Audio samples")?;
        let shape = array.shape().to_vec();
        let channels = match (shape.as_slice(), channels) {
            ([_], c) => c.unwrap_or(1),
            ([_, c2], None) => u16::try_from(*c2).map_err(|_| PyValueError::new_err("too many channels"))?,
            ([_, c2], Some(c)) if usize::from(c) == *c2 => c,
            ([_, c2], Some(c)) => {
                return Err(PyValueError::new_err(format!(
                    "Audio samples have {c2} columns but channels={c}"
                )))
            }
            _ => {
                return Err(PyValueError::new_err(format!(
                    "Audio samples must be 1-D (interleaved) or 2-D (frames, channels), got shape {shape:?}"
                )))
            }
        };
        let samples = AudioSamples::from_bytes(array_bytes(array)?)
            .map_err(|e| data_error("Audio samples", e))?;
        let stream_id: Option<Arc<str>> = stream_id.map(Arc::from);
        let audio = RuntimeData::Audio {
            samples: samples.clone(),
            sample_rate,
            channels,
            stream_id: stream_id.clone(),
            timestamp_us,
        };
        audio
            .check()
            .and_then(|_| audio.check_samples())
            .map_err(|e| data_error("Audio", e))?;
        Ok(Self {
            samples,
            sample_rate,
            channels,
            stream_id: stream_id.as_deref().map(str::to_owned),
            timestamp_us,
        })
    }

    /// The interleaved samples as a read-only float32 numpy array (no copy).
    #[getter]
    fn samples<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        samples_to_numpy(py, &self.samples)
    }

    /// Frames (samples per channel).
    #[getter]
    fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    fn __repr__(&self) -> String {
        format!(
            "Audio({} frames, {} Hz, {} channel(s), timestamp_us={})",
            self.frames(),
            self.sample_rate,
            self.channels,
            self.timestamp_us
        )
    }
}

/// A float32 buffer of the standard library (`array.array("f")`, a memoryview of format
/// `f`) as a numpy array over it: what a node written for both the server and the browser
/// (where there is no numpy) builds audio from. (The buffer is copied when the item is
/// built, like every writable array.)
fn float32_buffer_as_array<'py>(
    samples: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let py = samples.py();
    let refused = || {
        PyTypeError::new_err(format!(
            "Audio samples must be a float32 numpy array or a float32 buffer (array.array('f')), not {}",
            samples
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    };
    let view = py
        .import("builtins")?
        .getattr("memoryview")?
        .call1((samples,))
        .map_err(|_| refused())?;
    if view.getattr("format")?.extract::<String>()? != "f" {
        return Err(refused());
    }
    if view.getattr("ndim")?.extract::<usize>()? != 1 {
        return Err(PyValueError::new_err(
            "Audio samples given as a buffer must be 1-D (interleaved)",
        ));
    }
    Ok(py
        .import("numpy")?
        .call_method1("frombuffer", (view, "float32"))?
        .cast_into::<PyUntypedArray>()?)
}

/// One video frame: pixel bytes plus geometry.
#[pyclass(module = "remotemedia", frozen)]
pub(crate) struct Video {
    pixels: Bytes,
    #[pyo3(get)]
    width: u32,
    #[pyo3(get)]
    height: u32,
    format: PixelFormat,
    #[pyo3(get)]
    codec: Option<String>,
    #[pyo3(get)]
    frame_number: u64,
    #[pyo3(get)]
    timestamp_us: u64,
    #[pyo3(get)]
    is_keyframe: bool,
    #[pyo3(get)]
    stream_id: Option<String>,
}

#[pymethods]
impl Video {
    #[new]
    #[pyo3(signature = (pixels, width, height, format="rgb24", codec=None, frame_number=0, timestamp_us=0, is_keyframe=false, stream_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        pixels: &Bound<'_, PyAny>,
        width: u32,
        height: u32,
        format: &str,
        codec: Option<String>,
        frame_number: u64,
        timestamp_us: u64,
        is_keyframe: bool,
        stream_id: Option<String>,
    ) -> PyResult<Self> {
        let format = PixelFormat::parse_named(format).map_err(|e| data_error("Video", e))?;
        let pixels = if let Ok(array) = pixels.cast::<PyUntypedArray>() {
            contiguous(array, "uint8", "Video pixels")?;
            array_bytes(array)?
        } else if let Ok(bytes) = pixels.cast::<PyBytes>() {
            bytes_object(bytes.clone())
        } else {
            return Err(PyTypeError::new_err(
                "Video pixels must be a uint8 numpy array or bytes",
            ));
        };
        let video = Self {
            pixels,
            width,
            height,
            format,
            codec,
            frame_number,
            timestamp_us,
            is_keyframe,
            stream_id,
        };
        video
            .to_data()
            .check()
            .map_err(|e| data_error("Video", e))?;
        Ok(video)
    }

    /// The pixel layout: `yuv420p`, `nv12`, `rgb24`, `rgba32`, `gray8` or `encoded`.
    #[getter]
    fn format(&self) -> &'static str {
        self.format.as_str()
    }

    /// The pixel bytes as a read-only uint8 numpy array (no copy).
    #[getter]
    fn pixels<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        bytes_to_numpy(py, &self.pixels)
    }

    fn __repr__(&self) -> String {
        format!(
            "Video({}x{} {}, frame {}, {} bytes)",
            self.width,
            self.height,
            self.format.as_str(),
            self.frame_number,
            self.pixels.len()
        )
    }
}

impl Video {
    fn to_data(&self) -> RuntimeData {
        RuntimeData::Video {
            pixel_data: self.pixels.clone(),
            width: self.width,
            height: self.height,
            format: self.format,
            codec: self.codec.clone(),
            frame_number: self.frame_number,
            timestamp_us: self.timestamp_us,
            is_keyframe: self.is_keyframe,
            stream_id: self.stream_id.as_deref().map(Arc::from),
        }
    }
}

/// One pipeline output.
#[pyclass(module = "remotemedia", frozen)]
pub(crate) struct Output {
    /// The node that produced it.
    #[pyo3(get)]
    node_id: Option<String>,
    /// Emission order within the call or session.
    #[pyo3(get)]
    sequence: Option<u64>,
    /// The sequence number of the input it came from (`send(item, sequence=...)`).
    #[pyo3(get)]
    input_sequence: Option<u64>,
    /// The metadata of the input it came from.
    metadata: std::collections::HashMap<String, String>,
    /// The value: str, dict/list, bytes, Audio, Video or a numpy array.
    #[pyo3(get)]
    data: Py<PyAny>,
}

#[pymethods]
impl Output {
    /// The metadata of the input it came from, as a new dict.
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.metadata.clone().into_py_dict(py)
    }

    /// Two outputs are equal when node, sequence and data are; an output also compares
    /// equal to a plain value equal to its data (`execute(...) == ["hello"]`).
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if let Ok(other) = other.cast::<Output>() {
            let o = other.get();
            let same = self.node_id == o.node_id
                && self.sequence == o.sequence
                && self.data.bind(py).eq(o.data.bind(py))?;
            return Ok(pyo3::types::PyBool::new(py, same)
                .to_owned()
                .into_any()
                .unbind());
        }
        Ok(self
            .data
            .bind(py)
            .rich_compare(other, pyo3::basic::CompareOp::Eq)?
            .unbind())
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let data = self
            .data
            .bind(py)
            .repr()
            .map(|r| r.to_string())
            .unwrap_or_default();
        let optional = |n: Option<u64>| n.map_or_else(|| "None".to_owned(), |n| n.to_string());
        format!(
            "Output(node_id={:?}, sequence={}, data={data})",
            self.node_id.as_deref().unwrap_or(""),
            optional(self.sequence)
        )
    }
}

/// Python value → RuntimeData; `what` names it in errors.
pub(crate) fn data_from_py(
    py: Python<'_>,
    item: &Bound<'_, PyAny>,
    what: &str,
) -> PyResult<RuntimeData> {
    if let Ok(audio) = item.cast::<Audio>() {
        let a = audio.get();
        return Ok(RuntimeData::Audio {
            samples: a.samples.clone(),
            sample_rate: a.sample_rate,
            channels: a.channels,
            stream_id: a.stream_id.as_deref().map(Arc::from),
            timestamp_us: a.timestamp_us,
        });
    }
    if let Ok(video) = item.cast::<Video>() {
        return Ok(video.get().to_data());
    }
    if let Ok(text) = item.cast::<pyo3::types::PyString>() {
        return Ok(RuntimeData::Text(text.to_string()));
    }
    if let Ok(bytes) = item.cast::<PyBytes>() {
        return Ok(RuntimeData::Binary(bytes_object(bytes.clone())));
    }
    if let Ok(bytes) = item.cast::<PyByteArray>() {
        return Ok(RuntimeData::Binary(Bytes::from(bytes.to_vec())));
    }
    if let Ok(array) = item.cast::<PyUntypedArray>() {
        let dtype_name = array.dtype().str()?.to_string();
        let dtype = TensorDtype::parse(&dtype_name).ok_or_else(|| {
            PyTypeError::new_err(format!(
                "{what}: numpy dtype {dtype_name} is not supported (supported: {}); for audio wrap a float32 array in remotemedia.Audio",
                TensorDtype::ALL.iter().map(TensorDtype::numpy_name).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let shape = array.shape().to_vec();
        let data = if array.is_c_contiguous() {
            array_bytes(array)?
        } else {
            bytes_object(array.call_method0("tobytes")?.cast_into::<PyBytes>()?)
        };
        return RuntimeData::Tensor { data, shape, dtype }
            .checked()
            .map_err(|e| data_error(what, e));
    }
    let json_like = item.is_none()
        || item.is_instance_of::<PyDict>()
        || item.is_instance_of::<PyList>()
        || item.is_instance_of::<pyo3::types::PyBool>()
        || item.is_instance_of::<pyo3::types::PyInt>()
        || item.is_instance_of::<pyo3::types::PyFloat>();
    if json_like {
        let text: String = py
            .import("json")?
            .call_method1("dumps", (item,))
            .map_err(|e| PyTypeError::new_err(format!("{what}: not JSON-serializable: {e}")))?
            .extract()?;
        let value = serde_json::from_str(&text)
            .map_err(|e| PyValueError::new_err(format!("{what}: {e}")))?;
        return Ok(RuntimeData::Json(value));
    }
    Err(PyTypeError::new_err(format!(
        "{what}: cannot send a value of type {} to a pipeline (use str, dict/list, bytes, remotemedia.Audio, remotemedia.Video or a numpy array)",
        item.get_type().name()?
    )))
}

pub(crate) fn data_to_py(py: Python<'_>, data: &RuntimeData) -> PyResult<Py<PyAny>> {
    Ok(match data {
        RuntimeData::Audio {
            samples,
            sample_rate,
            channels,
            stream_id,
            timestamp_us,
        } => Py::new(
            py,
            Audio {
                samples: samples.clone(),
                sample_rate: *sample_rate,
                channels: *channels,
                stream_id: stream_id.as_deref().map(str::to_owned),
                timestamp_us: *timestamp_us,
            },
        )?
        .into_any(),
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
        } => Py::new(
            py,
            Video {
                pixels: pixel_data.clone(),
                width: *width,
                height: *height,
                format: *format,
                codec: codec.clone(),
                frame_number: *frame_number,
                timestamp_us: *timestamp_us,
                is_keyframe: *is_keyframe,
                stream_id: stream_id.as_deref().map(str::to_owned),
            },
        )?
        .into_any(),
        RuntimeData::Text(t) => t.into_pyobject(py)?.into_any().unbind(),
        RuntimeData::Json(v) => py
            .import("json")?
            .call_method1("loads", (v.to_string(),))?
            .unbind(),
        RuntimeData::Binary(b) => PyBytes::new(py, b).into_any().unbind(),
        RuntimeData::Tensor { data, shape, dtype } => bytes_to_numpy(py, data)?
            .call_method1("view", (dtype.numpy_name(),))?
            .call_method1("reshape", (shape.clone(),))?
            .unbind(),
        other => {
            return Err(PyTypeError::new_err(format!(
                "the pipeline produced {} data this version of the package cannot convert",
                other.type_name()
            )))
        }
    })
}

/// A pipeline output → Python `Output`.
pub(crate) fn output_to_py(py: Python<'_>, output: &TransportData) -> PyResult<Output> {
    Ok(Output {
        node_id: output.node_id().map(str::to_owned),
        sequence: output.sequence,
        input_sequence: output.input_sequence,
        metadata: output.metadata.clone(),
        data: data_to_py(py, &output.data)?,
    })
}
