//! The worker side of the out-of-process executors: Python node instances served over
//! shared memory.
//!
//! `python -m remotemedia.worker` (see `python/remotemedia/worker.py`) finds the node
//! class, then hands its instance table to [`WorkerChannel::serve`], which runs the loop
//! here: receive what the runtime sent (opening an instance, an item for one, a flush, a
//! shutdown), give the node a Python object that views the shared memory, encode each item
//! it yields straight into shared memory as soon as it is yielded, wake the runtime. Items
//! for several instances waiting at once go to the class's `process_batch` in one call
//! when it has one. The protocol is the runtime's own ([`remotemedia_ipc`]), so both ends
//! are the same code.

use crate::convert::{data_from_py, data_to_py};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use remotemedia_ipc::{
    envelope, payload_identity, ChannelSpec, Endpoint, ErrorReport, IpcError, MessageKind,
    PayloadIdentity, Received, SampleHolder, Spin, PROCESS,
};
use remotemedia_runtime_core::data::RuntimeData;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Outputs sent between wake-ups of the runtime, well under the subscriber's buffer.
const NOTIFY_EVERY: usize = 8;
/// Messages taken off the channel at once (items of several instances, batched).
const DRAIN: usize = 32;

/// One message from the runtime, taken off the channel.
enum Incoming {
    Data {
        instance: u32,
        seq: u64,
        data: RuntimeData,
        identity: Option<PayloadIdentity>,
    },
    Flush {
        instance: u32,
        seq: u64,
    },
    Open {
        instance: u32,
        payload: String,
    },
    Shutdown {
        instance: u32,
        seq: u64,
    },
    Bad {
        instance: u32,
        seq: u64,
        problem: String,
    },
}

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
    fn send_error(&self, instance: u32, seq: u64, report: &ErrorReport) -> PyResult<()> {
        self.endpoint
            .send_bytes(MessageKind::Error, instance, seq, &report.to_bytes())
            .and_then(|_| self.endpoint.notify())
            .map_err(ipc_error)
    }

    /// Sends every item `outputs` yields for `seq`, each as soon as it is yielded; then
    /// `Done`. An exception while iterating ends the call (items sent so far stand).
    fn send_outputs(
        &self,
        py: Python<'_>,
        instance: u32,
        seq: u64,
        outputs: &Bound<'_, PyAny>,
        input: Option<PayloadIdentity>,
    ) -> PyResult<()> {
        for (index, item) in outputs.try_iter()?.enumerate() {
            let data = data_from_py(py, &item?, &format!("output {index}"))?;
            self.endpoint
                .send_frame(MessageKind::Output, instance, seq, &data, input)
                .map_err(ipc_error)?;
            if (index + 1) % NOTIFY_EVERY == 0 {
                self.endpoint.notify().map_err(ipc_error)?;
            }
        }
        self.endpoint
            .send_control(MessageKind::Done, instance, seq)
            .and_then(|_| self.endpoint.notify())
            .map_err(ipc_error)
    }

    fn send_done(&self, instance: u32, seq: u64) -> PyResult<()> {
        self.endpoint
            .send_control(MessageKind::Done, instance, seq)
            .and_then(|_| self.endpoint.notify())
            .map_err(ipc_error)
    }

    /// Runs one call of the node (`process` on an item, or `flush`) and reports its
    /// outputs or its exception.
    fn run_call<'py>(
        &self,
        py: Python<'py>,
        instance: u32,
        seq: u64,
        phase: &str,
        call: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
        input: Option<PayloadIdentity>,
    ) -> PyResult<()> {
        let outcome =
            call().and_then(|outputs| self.send_outputs(py, instance, seq, &outputs, input));
        if let Err(err) = outcome {
            self.send_error(instance, seq, &report_exception(py, &err, phase))?;
        }
        Ok(())
    }

    /// What a received sample is.
    fn incoming(&self, sample: Received) -> Incoming {
        let (kind, envelope) = envelope(&sample);
        let (instance, seq) = (envelope.instance, envelope.seq);
        match kind {
            Some(MessageKind::Data) => match self.inputs.decode(sample, envelope.flags, None) {
                Ok(data) => Incoming::Data {
                    instance,
                    seq,
                    identity: payload_identity(&data),
                    data,
                },
                Err(e) => Incoming::Bad {
                    instance,
                    seq,
                    problem: format!("bad frame from the runtime: {e}"),
                },
            },
            Some(MessageKind::Flush) => Incoming::Flush { instance, seq },
            Some(MessageKind::Shutdown) => Incoming::Shutdown { instance, seq },
            Some(MessageKind::Open) => Incoming::Open {
                instance,
                payload: String::from_utf8_lossy(&sample).into_owned(),
            },
            _ => Incoming::Bad {
                instance,
                seq,
                problem: format!("unexpected message kind {} from the runtime", envelope.kind),
            },
        }
    }

    /// Runs the items of several instances through `host.batch` in one call.
    fn run_batch(
        &self,
        py: Python<'_>,
        host: &Bound<'_, PyAny>,
        items: Vec<(u32, u64, RuntimeData, Option<PayloadIdentity>)>,
    ) -> PyResult<()> {
        let mut calls = Vec::with_capacity(items.len());
        for (instance, _, data, _) in &items {
            calls.push((*instance, data_to_py(py, data)?));
        }
        let results = host
            .call_method1("batch", (calls,))
            .and_then(|r| r.extract::<Vec<Bound<'_, PyAny>>>());
        match results {
            Ok(results) if results.len() == items.len() => {
                for ((instance, seq, _, identity), result) in items.into_iter().zip(results) {
                    if result.is_instance_of::<pyo3::exceptions::PyBaseException>() {
                        let err = PyErr::from_value(result);
                        self.send_error(instance, seq, &report_exception(py, &err, "process"))?;
                        continue;
                    }
                    self.run_call(py, instance, seq, "process", || Ok(result), identity)?;
                }
            }
            Ok(results) => {
                let text = format!(
                    "process_batch returned {} results for {} items",
                    results.len(),
                    items.len()
                );
                for (instance, seq, _, _) in items {
                    let report = ErrorReport::new("process", format!("ValueError: {text}"), "");
                    self.send_error(instance, seq, &report)?;
                }
            }
            Err(err) => {
                let report = report_exception(py, &err, "process");
                for (instance, seq, _, _) in items {
                    self.send_error(instance, seq, &report)?;
                }
            }
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

    /// Tells the runtime the node class was found; `info` is a JSON text about the worker
    /// (with `share`: the instances the class lets one process host).
    fn ready(&self, info: &str) -> PyResult<()> {
        self.endpoint
            .send_bytes(MessageKind::Ready, PROCESS, 0, info.as_bytes())
            .and_then(|_| self.endpoint.notify())
            .map_err(ipc_error)
    }

    /// Reports a failure outside `serve` (import, class lookup).
    #[pyo3(signature = (message, traceback="", phase="import"))]
    fn fail(&self, message: &str, traceback: &str, phase: &str) -> PyResult<()> {
        self.send_error(PROCESS, 0, &ErrorReport::new(phase, message, traceback))
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

    /// Serves the node's instances until the runtime says shut down (to the process).
    /// `host` is the instance table: `open(instance, payload)` creates and initializes
    /// one (returns a JSON text about it), `process(instance, item)` and
    /// `flush(instance)` return iterables of output items (the SDK's normalizer makes
    /// them), `close(instance)` cleans one up, `batch([(instance, item), ...])` returns
    /// one such iterable (or exception) per item when `host.batchable`. Each item is sent
    /// as soon as it is produced. An exception a node raises is reported with its
    /// traceback and serving goes on (the runtime decides what happens next).
    fn serve(&self, py: Python<'_>, host: Bound<'_, PyAny>) -> PyResult<()> {
        let batchable: bool = host.getattr("batchable")?.extract()?;
        loop {
            let first = self.next_message(py)?;
            let mut messages = vec![self.incoming(first)];
            while messages.len() < DRAIN {
                match self.endpoint.receive() {
                    Ok(Some(sample)) => messages.push(self.incoming(sample)),
                    _ => break,
                }
            }
            let items = messages
                .iter()
                .filter(|m| matches!(m, Incoming::Data { .. }))
                .count();
            let mut batch = (batchable && items > 1).then(Vec::new);
            let mut rest = Vec::with_capacity(messages.len());
            for message in messages {
                match (message, &mut batch) {
                    (
                        Incoming::Data {
                            instance,
                            seq,
                            data,
                            identity,
                        },
                        Some(batch),
                    ) => batch.push((instance, seq, data, identity)),
                    (message, _) => rest.push(message),
                }
            }
            // The batch goes first: a message after an item in the queue is never about
            // the same instance's earlier state (one call per instance at a time).
            if let Some(batch) = batch {
                self.run_batch(py, &host, batch)?;
            }
            for message in rest {
                match message {
                    Incoming::Data {
                        instance,
                        seq,
                        data,
                        identity,
                    } => {
                        let item = data_to_py(py, &data)?;
                        drop(data);
                        self.run_call(
                            py,
                            instance,
                            seq,
                            "process",
                            || host.call_method1("process", (instance, item)),
                            identity,
                        )?;
                    }
                    Incoming::Flush { instance, seq } => {
                        self.run_call(
                            py,
                            instance,
                            seq,
                            "flush",
                            || host.call_method1("flush", (instance,)),
                            None,
                        )?;
                    }
                    Incoming::Open { instance, payload } => {
                        match host
                            .call_method1("open", (instance, payload))
                            .and_then(|info| info.extract::<String>())
                        {
                            Ok(info) => self
                                .endpoint
                                .send_bytes(MessageKind::Ready, instance, 0, info.as_bytes())
                                .and_then(|_| self.endpoint.notify())
                                .map_err(ipc_error)?,
                            Err(err) => self.send_error(
                                instance,
                                0,
                                &report_exception(py, &err, "initialize"),
                            )?,
                        }
                    }
                    Incoming::Shutdown { instance, .. } if instance == PROCESS => return Ok(()),
                    Incoming::Shutdown { instance, seq } => {
                        if let Err(err) = host.call_method1("close", (instance,)) {
                            self.send_error(instance, seq, &report_exception(py, &err, "cleanup"))?;
                        }
                        self.send_done(instance, seq)?;
                    }
                    Incoming::Bad {
                        instance,
                        seq,
                        problem,
                    } => {
                        self.send_error(instance, seq, &ErrorReport::new("process", problem, ""))?;
                    }
                }
            }
        }
    }
}
