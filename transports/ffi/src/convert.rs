//! Python ↔ `RuntimeData`.
//!
//! | Python | RuntimeData |
//! |---|---|
//! | `Audio(samples: float32 ndarray, sample_rate, channels, ...)` | Audio (zero-copy both ways) |
//! | `Video(pixels: uint8 ndarray or bytes, width, height, format, ...)` | Video |
//! | `str` | Text |
//! | `dict`, `list`, numbers, bools, None | Json |
//! | `bytes`, `bytearray` | Binary |
//! | any other numpy array | Tensor |

use numpy::ndarray::ArrayView1;
use numpy::{PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{IntoPyDict, PyByteArray, PyBytes, PyDict, PyList};
use remotemedia_runtime_core::data::{AudioSamples, Bytes, PixelFormat, RuntimeData, TensorDtype};
use remotemedia_runtime_core::transport::TransportData;
use std::sync::Arc;

/// Keeps a numpy array alive while the runtime reads its memory.
struct NumpyMemory<T: 'static> {
    _array: Py<PyAny>,
    ptr: *const T,
    len: usize,
}

// SAFETY: the pointer targets the data of `_array`, which this value keeps alive; the
// runtime only reads it. Dropping the `Py` without the GIL defers the decref to pyo3's
// reference pool.
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
/// `samples` may be 1-D (interleaved) or 2-D `(frames, channels)`; it is shared with the
/// runtime, not copied — do not modify it while a pipeline uses it. Outputs give
/// read-only float32 views of the runtime's buffer.
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
        let array = samples.cast::<PyUntypedArray>().map_err(|_| {
            PyTypeError::new_err(format!(
                "Audio samples must be a float32 numpy array, not {}",
                samples
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
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
        if channels == 0 || sample_rate == 0 {
            return Err(PyValueError::new_err(
                "Audio needs channels >= 1 and sample_rate >= 1",
            ));
        }
        let len = array.len();
        if len % usize::from(channels) != 0 {
            return Err(PyValueError::new_err(format!(
                "Audio has {len} samples, not a whole number of {channels}-channel frames"
            )));
        }
        let typed = array.cast::<PyArrayDyn<f32>>()?;
        let memory = NumpyMemory {
            _array: typed.clone().into_any().unbind(),
            ptr: typed.data() as *const f32,
            len,
        };
        Ok(Self {
            samples: AudioSamples::from_owner(memory),
            sample_rate,
            channels,
            stream_id,
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

/// One video frame: pixel bytes plus geometry.
#[pyclass(module = "remotemedia", frozen)]
pub(crate) struct Video {
    pixels: Bytes,
    #[pyo3(get)]
    width: u32,
    #[pyo3(get)]
    height: u32,
    #[pyo3(get)]
    format: String,
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
        if PixelFormat::parse(format).is_none() {
            return Err(PyValueError::new_err(format!(
                "unknown pixel format '{format}' (yuv420p, nv12, rgb24, rgba32, gray8, encoded)"
            )));
        }
        let pixels = if let Ok(array) = pixels.cast::<PyUntypedArray>() {
            contiguous(array, "uint8", "Video pixels")?;
            let typed = array.cast::<PyArrayDyn<u8>>()?;
            Bytes::from_owner(NumpyMemory {
                _array: typed.clone().into_any().unbind(),
                ptr: typed.data() as *const u8,
                len: array.len(),
            })
        } else if let Ok(bytes) = pixels.cast::<PyBytes>() {
            Bytes::copy_from_slice(bytes.as_bytes())
        } else {
            return Err(PyTypeError::new_err(
                "Video pixels must be a uint8 numpy array or bytes",
            ));
        };
        Ok(Self {
            pixels,
            width,
            height,
            format: format.to_owned(),
            codec,
            frame_number,
            timestamp_us,
            is_keyframe,
            stream_id,
        })
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
            self.format,
            self.frame_number,
            self.pixels.len()
        )
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
    /// The value: str, dict/list, bytes, Audio, Video or a numpy array.
    #[pyo3(get)]
    data: Py<PyAny>,
}

#[pymethods]
impl Output {
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
        format!(
            "Output(node_id={:?}, sequence={:?}, data={data})",
            self.node_id.as_deref().unwrap_or(""),
            self.sequence
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
        let v = video.get();
        return Ok(RuntimeData::Video {
            pixel_data: v.pixels.clone(),
            width: v.width,
            height: v.height,
            format: PixelFormat::parse(&v.format).unwrap_or(PixelFormat::Rgb24),
            codec: v.codec.clone(),
            frame_number: v.frame_number,
            timestamp_us: v.timestamp_us,
            is_keyframe: v.is_keyframe,
            stream_id: v.stream_id.as_deref().map(Arc::from),
        });
    }
    if let Ok(text) = item.cast::<pyo3::types::PyString>() {
        return Ok(RuntimeData::Text(text.to_string()));
    }
    if let Ok(bytes) = item.cast::<PyBytes>() {
        return Ok(RuntimeData::Binary(Bytes::copy_from_slice(
            bytes.as_bytes(),
        )));
    }
    if let Ok(bytes) = item.cast::<PyByteArray>() {
        return Ok(RuntimeData::Binary(Bytes::from(bytes.to_vec())));
    }
    if let Ok(array) = item.cast::<PyUntypedArray>() {
        let dtype_name = array.dtype().str()?.to_string();
        let dtype = match dtype_name.as_str() {
            "float32" => TensorDtype::F32,
            "float64" => TensorDtype::F64,
            "float16" => TensorDtype::F16,
            "int8" => TensorDtype::I8,
            "int16" => TensorDtype::I16,
            "int32" => TensorDtype::I32,
            "int64" => TensorDtype::I64,
            "uint8" => TensorDtype::U8,
            "bool" => TensorDtype::Bool,
            other => {
                return Err(PyTypeError::new_err(format!(
                    "{what}: numpy dtype {other} is not supported (float16/32/64, int8/16/32/64, uint8, bool); for audio wrap a float32 array in remotemedia.Audio"
                )))
            }
        };
        let shape = array.shape().to_vec();
        let data = if array.is_c_contiguous() {
            // Shared, not copied: the array stays alive while the runtime holds the data.
            let nbytes: usize = array.getattr("nbytes")?.extract()?;
            let ptr: usize = array
                .getattr("__array_interface__")?
                .get_item("data")?
                .get_item(0)?
                .extract()?;
            Bytes::from_owner(NumpyMemory {
                _array: array.clone().into_any().unbind(),
                ptr: ptr as *const u8,
                len: nbytes,
            })
        } else {
            let raw = array.call_method0("tobytes")?.cast_into::<PyBytes>()?;
            Bytes::copy_from_slice(raw.as_bytes())
        };
        return Ok(RuntimeData::Tensor { data, shape, dtype });
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
        "{what}: cannot send a {} to a pipeline (use str, dict/list, bytes, remotemedia.Audio, remotemedia.Video or a numpy array)",
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
                format: format.as_str().to_owned(),
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
            .call_method1("view", (numpy_dtype(dtype),))?
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

fn numpy_dtype(dtype: &TensorDtype) -> &'static str {
    match dtype {
        TensorDtype::F32 => "float32",
        TensorDtype::F64 => "float64",
        TensorDtype::F16 => "float16",
        TensorDtype::I8 => "int8",
        TensorDtype::I16 => "int16",
        TensorDtype::I32 => "int32",
        TensorDtype::I64 => "int64",
        TensorDtype::U8 => "uint8",
        TensorDtype::Bool => "bool",
        _ => "uint8",
    }
}

/// A pipeline output → Python `Output`.
pub(crate) fn output_to_py(py: Python<'_>, output: &TransportData) -> PyResult<Output> {
    Ok(Output {
        node_id: output.node_id().map(str::to_owned),
        sequence: output.sequence,
        data: data_to_py(py, &output.data)?,
    })
}
