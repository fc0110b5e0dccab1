//! The worker side of the out-of-process executors: a Python node served over shared
//! memory.
//!
//! `python -m remotemedia.worker` (see `python/remotemedia/worker.py`) finds and initializes
//! the node, then hands it to [`WorkerChannel::serve`], which runs the loop here: receive a
//! frame, give the node a Python object that views the shared memory, encode each item it
//! yields straight into shared memory as soon as it is yielded, wake the runtime. The
//! protocol is the runtime's own ([`remotemedia_ipc`]), so both ends are the same code.

use crate::convert::{data_from_py, data_to_py};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use remotemedia_ipc::{
    envelope, payload_identity, ChannelSpec, Endpoint, ErrorReport, IpcError, MessageKind,
    PayloadIdentity, Received, SampleHolder, Spin,
};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Outputs sent between wake-ups of the runtime, well under the subscriber's buffer.
const NOTIFY_EVERY: usize = 8;

fn ipc_error(e: IpcError) -> PyErr {
    PyRuntimeError::new_err(e.to_string())
}

/// The worker's end of its shared-memory channel.
#[pyclass(module = "remotemedia", frozen)]
pub(crate) struct WorkerChannel {
    endpoint: Endpoint,
    inputs: SampleHolder,
    spin: Mutex<Spin>,
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

/// The report of a Python exception raised in `phase`.
fn report_exception(py: Python<'_>, err: &PyErr, phase: &str) -> ErrorReport {
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
    ErrorReport::new(phase, message, traceback)
}

impl WorkerChannel {
    fn send_error(&self, seq: u64, report: &ErrorReport) -> PyResult<()> {
        self.endpoint
            .send_bytes(MessageKind::Error, seq, &report.to_bytes())
            .and_then(|_| self.endpoint.notify())
            .map_err(ipc_error)
    }

    /// Sends every item `outputs` yields for `seq`, each as soon as it is yielded; then
    /// `Done`. An exception while iterating ends the call (items sent so far stand).
    fn send_outputs(
        &self,
        py: Python<'_>,
        seq: u64,
        outputs: &Bound<'_, PyAny>,
        input: Option<PayloadIdentity>,
    ) -> PyResult<()> {
        for (index, item) in outputs.try_iter()?.enumerate() {
            let data = data_from_py(py, &item?, &format!("output {index}"))?;
            self.endpoint
                .send_frame(MessageKind::Output, seq, &data, input)
                .map_err(ipc_error)?;
            if (index + 1) % NOTIFY_EVERY == 0 {
                self.endpoint.notify().map_err(ipc_error)?;
            }
        }
        self.endpoint
            .send_control(MessageKind::Done, seq)
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
        input: Option<PayloadIdentity>,
    ) -> PyResult<()> {
        let outcome = call().and_then(|outputs| self.send_outputs(py, seq, &outputs, input));
        if let Err(err) = outcome {
            self.send_error(seq, &report_exception(py, &err, phase))?;
        }
        Ok(())
    }

    /// The next message: polls briefly (unless polling missed recently), then sleeps until
    /// woken (GIL released throughout).
    fn next_message(&self, py: Python<'_>) -> PyResult<Received> {
        let wait = self
            .spin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .begin(Instant::now());
        let mut slept = false;
        loop {
            let received = py.detach(|| -> Result<(Option<Received>, bool), IpcError> {
                let mut found = None;
                wait.poll(|| match self.endpoint.receive() {
                    Ok(Some(sample)) => {
                        found = Some(Ok(sample));
                        true
                    }
                    Ok(None) => false,
                    Err(e) => {
                        found = Some(Err(e));
                        true
                    }
                });
                if let Some(found) = found {
                    return found.map(|sample| (Some(sample), false));
                }
                self.endpoint.wait(Duration::from_secs(1))?;
                Ok((self.endpoint.receive()?, true))
            });
            let (sample, waited) = received.map_err(ipc_error)?;
            slept |= waited;
            if let Some(sample) = sample {
                self.spin
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .end(&wait, slept);
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
            inputs: SampleHolder::for_worker(),
            spin: Mutex::new(Spin::new(Spin::WORKER_WINDOW)),
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
        self.send_error(0, &ErrorReport::new(phase, message, traceback))
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
                if envelope(&sample).0 == Some(MessageKind::Shutdown) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Serves the node until the runtime says shut down. `process(item)` and `flush()`
    /// return iterables of output items (the SDK's normalizer makes them); each item is
    /// sent as soon as it is produced. An exception they raise is reported with its
    /// traceback and serving goes on (the runtime decides what happens next).
    fn serve(
        &self,
        py: Python<'_>,
        process: Bound<'_, PyAny>,
        flush: Bound<'_, PyAny>,
    ) -> PyResult<()> {
        loop {
            let sample = self.next_message(py)?;
            let (kind, envelope) = envelope(&sample);
            match kind {
                Some(MessageKind::Data) => {
                    let data = match self.inputs.decode(sample, envelope.flags, None) {
                        Ok(data) => data,
                        Err(e) => {
                            let report = ErrorReport::new(
                                "process",
                                format!("bad frame from the runtime: {e}"),
                                "",
                            );
                            self.send_error(envelope.seq, &report)?;
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
                    self.send_error(envelope.seq, &ErrorReport::new("process", text, ""))?;
                }
            }
        }
    }
}
