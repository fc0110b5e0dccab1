//! The worker side of the multiprocess executor: a Python node served over shared memory.
//!
//! `python -m remotemedia.worker` (see `python/remotemedia/worker.py`) finds and initializes
//! the node, then hands it to [`WorkerChannel::serve`], which runs the loop here: receive a
//! frame, give the node a Python object that views the shared memory, encode what it
//! returns straight into shared memory, wake the runtime. The protocol is the executor's
//! own ([`remotemedia_multiprocess::ipc`]), so both ends are the same code.

use crate::convert::{data_from_py, data_to_py};
use bytes::Bytes;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;
use remotemedia_multiprocess::ipc::{
    self, ChannelSpec, Endpoint, IpcError, MessageKind, Received, FLAG_PAYLOAD_IS_INPUT,
};
use remotemedia_runtime_core::data::{codec, RuntimeData};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After a message, poll this long before sleeping: when the runtime pushes a backlog, the
/// next message arrives sooner than a sleep/wake cycle.
const SPIN: Duration = Duration::from_micros(50);
/// After polling missed (the next message came later, as in a stream paced in real time),
/// messages received without polling before it is tried again.
const SPIN_RETRY: u32 = 16;
/// Outputs sent between wake-ups of the runtime, well under the subscriber's buffer.
const NOTIFY_EVERY: usize = 8;
/// Input samples kept mapped at most while Python holds views of them; beyond this the
/// payload is copied, so a node that keeps its inputs cannot exhaust the shared memory.
const MAX_VIEWED: usize = ipc::MAX_BORROWED - 4;

fn ipc_error(e: IpcError) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// Keeps an input sample mapped while Python views it.
struct ViewedSample {
    sample: Received,
    viewed: Arc<AtomicUsize>,
}

impl AsRef<[u8]> for ViewedSample {
    fn as_ref(&self) -> &[u8] {
        &self.sample
    }
}

impl Drop for ViewedSample {
    fn drop(&mut self) {
        self.viewed.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The worker's end of its shared-memory channel.
#[pyclass(module = "remotemedia", frozen)]
pub(crate) struct WorkerChannel {
    endpoint: Endpoint,
    viewed: Arc<AtomicUsize>,
    /// Messages left before polling is tried again, after the next message last arrived
    /// too late for it (a live stream paced in real time).
    spin_skip: AtomicU32,
}

/// The payload buffer an item lives in, as (address, length), for identity checks.
fn payload_identity(data: &RuntimeData) -> Option<(usize, usize)> {
    codec::shared_payload(data)
        .filter(|b| !b.is_empty())
        .map(|b| (b.as_ptr() as usize, b.len()))
}

/// The exception's traceback without the worker's own leading frames (the calls into the
/// node), so a report starts at the node's code.
fn user_frames<'py>(py: Python<'py>, err: &PyErr) -> Option<Bound<'py, PyAny>> {
    let mut tb = err.traceback(py)?.into_any();
    loop {
        let file: String = tb
            .getattr("tb_frame")
            .and_then(|f| f.getattr("f_code"))
            .and_then(|c| c.getattr("co_filename"))
            .and_then(|n| n.extract())
            .unwrap_or_default();
        let ours = file.ends_with("remotemedia/worker.py") || file.ends_with("remotemedia/sdk.py");
        let next = tb.getattr("tb_next").ok().filter(|n| !n.is_none());
        match next {
            Some(next) if ours => tb = next,
            _ => return Some(tb),
        }
    }
}

/// `TypeName: message` and the formatted traceback of a Python exception.
fn describe_exception(py: Python<'_>, err: &PyErr) -> (String, String) {
    let name = err
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".to_owned());
    let message = format!("{name}: {}", err.value(py));
    let traceback = py
        .import("traceback")
        .and_then(|tb| {
            tb.call_method1(
                "format_exception",
                (err.get_type(py), err.value(py), user_frames(py, err)),
            )
        })
        .and_then(|lines| lines.extract::<Vec<String>>())
        .map(|lines| lines.concat())
        .unwrap_or_default();
    (message, traceback)
}

impl WorkerChannel {
    fn send_error(&self, seq: u64, phase: &str, message: &str, traceback: &str) -> PyResult<()> {
        let report =
            serde_json::json!({"message": message, "traceback": traceback, "phase": phase});
        self.endpoint
            .send_bytes(MessageKind::Error, seq, report.to_string().as_bytes())
            .and_then(|_| self.endpoint.notify())
            .map_err(ipc_error)
    }

    /// Wraps a received frame: in place while few views are alive, copied otherwise.
    fn frame_bytes(&self, sample: Received) -> Bytes {
        if self.viewed.fetch_add(1, Ordering::AcqRel) < MAX_VIEWED {
            Bytes::from_owner(ViewedSample {
                sample,
                viewed: Arc::clone(&self.viewed),
            })
        } else {
            self.viewed.fetch_sub(1, Ordering::AcqRel);
            Bytes::copy_from_slice(&sample)
        }
    }

    /// Sends every item of `outputs` for `seq`, then `Done`.
    fn send_outputs(
        &self,
        py: Python<'_>,
        seq: u64,
        outputs: &Bound<'_, PyAny>,
        input: Option<(usize, usize)>,
    ) -> PyResult<()> {
        let list = outputs.cast::<PyList>().map_err(|_| {
            PyValueError::new_err("the node's outputs must be collected into a list")
        })?;
        for (index, item) in list.iter().enumerate() {
            let data = data_from_py(py, &item, &format!("output {index}"))?;
            let writer = codec::FrameWriter::new(&data);
            let same_payload = input.is_some() && payload_identity(&data) == input;
            let sent = if same_payload {
                self.endpoint.send_with(
                    MessageKind::Output,
                    FLAG_PAYLOAD_IS_INPUT,
                    seq,
                    writer.head_len(),
                    |out| {
                        writer
                            .write_head(out)
                            .map(|_| ())
                            .map_err(|e| IpcError(e.to_string()))
                    },
                )
            } else {
                self.endpoint
                    .send_with(MessageKind::Output, 0, seq, writer.len(), |out| {
                        writer
                            .write(out)
                            .map(|_| ())
                            .map_err(|e| IpcError(e.to_string()))
                    })
            };
            sent.map_err(ipc_error)?;
            if (index + 1) % NOTIFY_EVERY == 0 {
                self.endpoint.notify().map_err(ipc_error)?;
            }
        }
        self.endpoint
            .send_with(MessageKind::Done, 0, seq, 0, |_| Ok(()))
            .and_then(|_| self.endpoint.notify())
            .map_err(ipc_error)
    }

    /// Runs one call of the node (`process` on an item, or `flush`) and reports its
    /// outputs or its exception.
    fn run_call<'py>(
        &self,
        py: Python<'py>,
        seq: u64,
        phase: &str,
        call: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
        input: Option<(usize, usize)>,
    ) -> PyResult<()> {
        let outcome = call().and_then(|outputs| self.send_outputs(py, seq, &outputs, input));
        if let Err(err) = outcome {
            let (message, traceback) = describe_exception(py, &err);
            self.send_error(seq, phase, &message, &traceback)?;
        }
        Ok(())
    }

    /// The next message: polls briefly (unless polling missed recently), then sleeps until
    /// woken (GIL released throughout).
    fn next_message(&self, py: Python<'_>) -> PyResult<Received> {
        let spinning = self.spin_skip.load(Ordering::Relaxed) == 0;
        if !spinning {
            self.spin_skip.fetch_sub(1, Ordering::Relaxed);
        }
        let mut missed = false;
        loop {
            let received = py.detach(|| -> Result<(Option<Received>, bool), IpcError> {
                let spin_until = Instant::now() + if spinning { SPIN } else { Duration::ZERO };
                loop {
                    if let Some(sample) = self.endpoint.receive()? {
                        return Ok((Some(sample), false));
                    }
                    if Instant::now() >= spin_until {
                        break;
                    }
                    // Yield rather than spin: when the kernel has put the runtime on this
                    // CPU, it runs now instead of after our time slice.
                    std::thread::yield_now();
                }
                self.endpoint.wait(Duration::from_secs(1))?;
                Ok((self.endpoint.receive()?, true))
            });
            let (sample, slept) = received.map_err(ipc_error)?;
            missed |= slept;
            if let Some(sample) = sample {
                if spinning && missed {
                    self.spin_skip.store(SPIN_RETRY, Ordering::Relaxed);
                }
                return Ok(sample);
            }
            // Woken by a timeout: let Python handle signals, then sleep again.
            py.check_signals()?;
        }
    }
}

#[pymethods]
impl WorkerChannel {
    /// Opens the channel the runtime created (`channel`: its JSON description).
    #[new]
    fn new(py: Python<'_>, channel: &str) -> PyResult<Self> {
        let spec: ChannelSpec = serde_json::from_str(channel)
            .map_err(|e| PyValueError::new_err(format!("bad channel description: {e}")))?;
        let endpoint = py.detach(|| Endpoint::worker(&spec)).map_err(ipc_error)?;
        Ok(Self {
            endpoint,
            viewed: Arc::new(AtomicUsize::new(0)),
            spin_skip: AtomicU32::new(0),
        })
    }

    /// Tells the runtime the node is initialized; `info` is a JSON text about the worker.
    fn ready(&self, info: &str) -> PyResult<()> {
        self.endpoint
            .send_bytes(MessageKind::Ready, 0, info.as_bytes())
            .and_then(|_| self.endpoint.notify())
            .map_err(ipc_error)
    }

    /// Reports a failure outside `serve` (import, lookup, `initialize`).
    #[pyo3(signature = (message, traceback="", phase="initialize"))]
    fn fail(&self, message: &str, traceback: &str, phase: &str) -> PyResult<()> {
        self.send_error(0, phase, message, traceback)
    }

    /// After [`fail`](Self::fail): waits (up to `timeout` seconds) until the runtime has read
    /// the report and says shut down, so the report is not lost with the process.
    fn await_shutdown(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let deadline = Instant::now() + Duration::from_secs_f64(timeout.max(0.0));
        while Instant::now() < deadline {
            let received = py
                .detach(|| -> Result<Option<Received>, IpcError> {
                    if let Some(sample) = self.endpoint.receive()? {
                        return Ok(Some(sample));
                    }
                    self.endpoint.wait(Duration::from_millis(100))?;
                    self.endpoint.receive()
                })
                .map_err(ipc_error)?;
            if let Some(sample) = received {
                if ipc::envelope(&sample).0 == Some(MessageKind::Shutdown) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Serves the node until the runtime says shut down. `process(item)` and `flush()`
    /// return lists of output items; an exception they raise is reported with its
    /// traceback and serving goes on (the runtime decides what happens next).
    fn serve(
        &self,
        py: Python<'_>,
        process: Bound<'_, PyAny>,
        flush: Bound<'_, PyAny>,
    ) -> PyResult<()> {
        loop {
            let sample = self.next_message(py)?;
            let (kind, envelope) = ipc::envelope(&sample);
            match kind {
                Some(MessageKind::Data) => {
                    let data = match codec::decode(self.frame_bytes(sample)) {
                        Ok(data) => data,
                        Err(e) => {
                            self.send_error(
                                envelope.seq,
                                "process",
                                &format!("bad frame from the runtime: {e}"),
                                "",
                            )?;
                            continue;
                        }
                    };
                    let identity = payload_identity(&data);
                    let item = data_to_py(py, &data)?;
                    drop(data);
                    self.run_call(
                        py,
                        envelope.seq,
                        "process",
                        || process.call1((item,)),
                        identity,
                    )?;
                }
                Some(MessageKind::Flush) => {
                    drop(sample);
                    self.run_call(py, envelope.seq, "flush", || flush.call0(), None)?;
                }
                Some(MessageKind::Shutdown) => return Ok(()),
                _ => {
                    let text =
                        format!("unexpected message kind {} from the runtime", envelope.kind);
                    self.send_error(envelope.seq, "process", &text, "")?;
                }
            }
        }
    }
}
