//! The `remotemedia.v1.PipelineService` implementation.

use crate::convert::{input_from_proto, output_to_proto};
use crate::proto::pipeline_service_server::PipelineService;
use crate::proto::{self, stream_request, stream_response};
use crate::status::status_from_error;
use crate::ServerConfig;
use futures::Stream;
use prost::Message;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::transport::{
    run_to_end, PipelineRunner, PipelineTransport, StreamSession, ValidatedPipeline,
};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status, Streaming};

/// Server state shared by every call.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct PipelineServiceImpl {
    runner: PipelineRunner,
    config: Arc<ServerConfig>,
    sessions: Arc<Semaphore>,
    /// Manifests being parsed and validated (on blocking threads), at most `parse_slots`.
    parsing: Arc<Semaphore>,
    shutdown: watch::Receiver<ShutdownPhase>,
}

/// Where the server is in its shutdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownPhase {
    /// Serving.
    Running,
    /// No new sessions; open ones may finish.
    Draining,
    /// Open sessions are being closed.
    Closing,
}

type OutputStream = Pin<Box<dyn Stream<Item = Result<proto::StreamResponse, Status>> + Send>>;

pub(crate) fn too_large(what: &str, len: usize, limit: usize) -> Status {
    Status::resource_exhausted(format!(
        "{what} is {len} bytes, over the server's limit of {limit} bytes (--max-message-bytes)"
    ))
}

/// tonic reports an over-limit message as OUT_OF_RANGE; the service reports RESOURCE_EXHAUSTED.
pub(crate) fn map_transport_status(status: Status) -> Status {
    if status.code() == tonic::Code::OutOfRange && status.message().contains("length too large") {
        Status::resource_exhausted(status.message().to_owned())
    } else {
        status
    }
}

impl PipelineServiceImpl {
    /// A service over `runner`; `sessions` holds one permit per allowed concurrent session.
    pub fn new(
        runner: PipelineRunner,
        config: Arc<ServerConfig>,
        sessions: Arc<Semaphore>,
        shutdown: watch::Receiver<ShutdownPhase>,
    ) -> Self {
        Self {
            runner,
            sessions,
            parsing: Arc::new(Semaphore::new(config.parse_slots.max(1))),
            config,
            shutdown,
        }
    }

    fn admit(&self) -> Result<OwnedSemaphorePermit, Status> {
        if *self.shutdown.borrow() != ShutdownPhase::Running {
            return Err(Status::unavailable(
                "server is shutting down and accepts no new sessions",
            ));
        }
        Arc::clone(&self.sessions).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "server is at its limit of {} concurrent sessions (--max-sessions)",
                self.config.max_sessions
            ))
        })
    }

    /// Parses and validates a client's manifest, once: within the manifest limits, under
    /// the execution policy, on a blocking thread (never on the async workers that serve
    /// other clients), at most `parse_slots` at once and within `parse_timeout`.
    async fn validate_manifest(&self, text: String) -> Result<Arc<ValidatedPipeline>, Status> {
        let started = std::time::Instant::now();
        let budget = self.config.parse_timeout;
        let slot = tokio::time::timeout(budget, Arc::clone(&self.parsing).acquire_owned())
            .await
            .map_err(|_| {
                Status::resource_exhausted(format!(
                    "the server is busy parsing other manifests; none could start within {budget:?}"
                ))
            })?
            .map_err(|_| Status::unavailable("server is shutting down"))?;
        let runner = self.runner.clone();
        let config = Arc::clone(&self.config);
        let job = tokio::task::spawn_blocking(move || {
            // The slot is released when the work is, even if the caller stopped waiting.
            let _slot = slot;
            let manifest = Manifest::parse_with_limits(&text, &config.manifest_limits)?;
            runner.validate_client(Arc::new(manifest), &config.policy)
        });
        let left = budget.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, job).await {
            Err(_) => Err(Status::resource_exhausted(format!(
                "parsing and validating the manifest took longer than {budget:?}"
            ))),
            Ok(Err(_)) => Err(Status::internal(
                "validating the manifest failed unexpectedly",
            )),
            Ok(Ok(validated)) => validated.map(Arc::new).map_err(|e| status_from_error(&e)),
        }
    }

    /// Starts a session on a validated pipeline, through the transport traits.
    async fn open_session(
        &self,
        pipeline: Arc<ValidatedPipeline>,
    ) -> Result<Arc<dyn StreamSession>, Status> {
        self.runner
            .stream_pipeline(pipeline)
            .await
            .map(Arc::from)
            .map_err(|e| status_from_error(&e))
    }
}

#[tonic::async_trait]
impl PipelineService for PipelineServiceImpl {
    async fn execute(
        &self,
        request: Request<proto::ExecuteRequest>,
    ) -> Result<Response<proto::ExecuteResponse>, Status> {
        let _permit = self.admit()?;
        let request = request.into_inner();
        let len = request.encoded_len();
        if len > self.config.max_message_bytes {
            return Err(too_large("the request", len, self.config.max_message_bytes));
        }
        let pipeline = self.validate_manifest(request.manifest).await?;
        let inputs = request
            .inputs
            .into_iter()
            .enumerate()
            .map(|(i, item)| input_from_proto(item, &format!("inputs[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let session = self.open_session(pipeline).await?;
        let mut outputs: Vec<proto::Output> = Vec::new();
        // Outputs and their bytes are counted as they arrive: a pipeline that multiplies
        // its input stops at the limit instead of filling memory first.
        let mut bytes = 0usize;
        let mut over: Option<Status> = None;
        let max_bytes = self.config.max_message_bytes;
        let max_outputs = self.config.max_execute_outputs;
        let ran = run_to_end(&*session, inputs, |output| {
            let output = output_to_proto(&output, outputs.len() as u64);
            bytes += output.encoded_len();
            if outputs.len() >= max_outputs {
                over = Some(Status::resource_exhausted(format!(
                    "the pipeline produced more than {max_outputs} outputs for one Execute call (--max-execute-outputs); use StreamPipeline for long results"
                )));
            } else if bytes > max_bytes {
                over = Some(too_large("the response", bytes, max_bytes));
            }
            if over.is_some() {
                return Err(remotemedia_runtime_core::Error::Other(
                    "the response limit was reached".to_owned(),
                ));
            }
            outputs.push(output);
            Ok(())
        })
        .await;
        if let Some(status) = over {
            return Err(status);
        }
        ran.map_err(|e| status_from_error(&e))?;
        let response = proto::ExecuteResponse { outputs };
        let len = response.encoded_len();
        if len > self.config.max_message_bytes {
            return Err(too_large(
                "the response",
                len,
                self.config.max_message_bytes,
            ));
        }
        Ok(Response::new(response))
    }

    type StreamPipelineStream = OutputStream;

    async fn stream_pipeline(
        &self,
        request: Request<Streaming<proto::StreamRequest>>,
    ) -> Result<Response<Self::StreamPipelineStream>, Status> {
        let permit = self.admit()?;
        let mut inbound = request.into_inner();
        let open_timeout = self.config.open_timeout;
        let first = match tokio::time::timeout(open_timeout, inbound.message()).await {
            Err(_) => {
                return Err(Status::resource_exhausted(format!(
                    "no open message within {} s (--open-timeout-secs)",
                    open_timeout.as_secs()
                )))
            }
            Ok(Err(status)) => return Err(map_transport_status(status)),
            Ok(Ok(None)) => {
                return Err(Status::invalid_argument(
                    "the stream ended before an open message",
                ))
            }
            Ok(Ok(Some(message))) => message,
        };
        let Some(stream_request::Kind::Open(open)) = first.kind else {
            return Err(Status::invalid_argument(
                "the first message of a stream must be `open` with a manifest",
            ));
        };
        let pipeline = self.validate_manifest(open.manifest).await?;
        let session = self.open_session(pipeline).await?;
        let session_id = session.session_id().to_owned();
        tracing::info!(%session_id, "stream session opened");

        let (tx, rx) = mpsc::channel::<Result<proto::StreamResponse, Status>>(64);
        let _ = tx
            .send(Ok(proto::StreamResponse {
                kind: Some(stream_response::Kind::Opened(proto::SessionOpened {
                    session_id: session_id.clone(),
                })),
            }))
            .await;

        let (abort_tx, abort_rx) = watch::channel::<Option<Status>>(None);
        let (gone_tx, gone_rx) = watch::channel(false);
        tokio::spawn(forward_outputs(
            Arc::clone(&session),
            tx.clone(),
            abort_rx,
            gone_tx,
            permit,
        ));
        tokio::spawn(forward_inputs(
            session,
            inbound,
            abort_tx,
            gone_rx,
            self.shutdown.clone(),
            Arc::clone(&self.config),
        ));
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_nodes(
        &self,
        _request: Request<proto::ListNodesRequest>,
    ) -> Result<Response<proto::ListNodesResponse>, Status> {
        let nodes = self
            .runner
            .registry()
            .node_types()
            .into_iter()
            .map(|info| proto::NodeType {
                kind: match info.kind {
                    remotemedia_runtime_core::nodes::registry::NodeKind::Rust => "rust",
                    remotemedia_runtime_core::nodes::registry::NodeKind::Python => "python",
                }
                .to_owned(),
                params_schema: info
                    .schema
                    .as_ref()
                    .map(|s| s.to_json_schema().to_string())
                    .unwrap_or_default(),
                node_type: info.node_type,
                aliases: info.aliases,
                description: info.description,
            })
            .collect();
        Ok(Response::new(proto::ListNodesResponse { nodes }))
    }
}

/// Sends the session's outputs to the client until it ends, then `closed` (or the error).
/// Holds the session slot until the stream is over. When the client goes away — even
/// while no output is coming, a node busy on a long call — it says so on `gone` and
/// returns: the session is dropped, which cancels its in-flight work.
async fn forward_outputs(
    session: Arc<dyn StreamSession>,
    tx: mpsc::Sender<Result<proto::StreamResponse, Status>>,
    mut abort: watch::Receiver<Option<Status>>,
    gone: watch::Sender<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let mut sent = 0u64;
    // Made once and polled on every turn: registering new waiters per output costs more
    // than the output itself.
    let aborted = aborted(&mut abort);
    tokio::pin!(aborted);
    let client_gone = tx.closed();
    tokio::pin!(client_gone);
    loop {
        let next = tokio::select! {
            output = session.next_output() => output,
            status = &mut aborted => {
                let _ = tx.send(Err(status)).await;
                return;
            }
            () = &mut client_gone => {
                tracing::info!(session_id = %session.session_id(), "client went away: cancelling the session");
                let _ = gone.send(true);
                return;
            }
        };
        match next {
            Ok(Some(output)) => {
                let message = proto::StreamResponse {
                    kind: Some(stream_response::Kind::Output(output_to_proto(
                        &output, sent,
                    ))),
                };
                sent += 1;
                if tx.send(Ok(message)).await.is_err() {
                    // The client went away: dropping the session cancels its tasks.
                    return;
                }
            }
            Ok(None) => {
                let _ = tx
                    .send(Ok(proto::StreamResponse {
                        kind: Some(stream_response::Kind::Closed(proto::SessionClosed {
                            session_id: session.session_id().to_owned(),
                            outputs: sent,
                        })),
                    }))
                    .await;
                tracing::info!(session_id = %session.session_id(), outputs = sent, "stream session closed");
                return;
            }
            Err(error) => {
                tracing::warn!(session_id = %session.session_id(), %error, "stream session failed");
                let _ = tx.send(Err(status_from_error(&error))).await;
                return;
            }
        }
    }
}

/// Resolves with the status the input side ended the session with; never resolves when
/// the input side finished normally (close or half-close).
async fn aborted(abort: &mut watch::Receiver<Option<Status>>) -> Status {
    let ended = abort.wait_for(Option::is_some).await.map(|s| s.clone());
    match ended {
        Ok(status) => status.unwrap_or_else(|| Status::cancelled("session cancelled")),
        Err(_) => std::future::pending().await,
    }
}

/// Feeds client frames into the session; handles close, cancel, idle timeout, shutdown.
async fn forward_inputs(
    session: Arc<dyn StreamSession>,
    mut inbound: Streaming<proto::StreamRequest>,
    abort: watch::Sender<Option<Status>>,
    mut gone: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<ShutdownPhase>,
    config: Arc<ServerConfig>,
) {
    let mut frames = 0usize;
    let end = |status: Status| {
        let _ = abort.send(Some(status));
    };
    // Made once and polled on every turn (each returns at once when it fires): waiters
    // and timers registered anew per frame would cost more than the frame.
    let closing = async {
        let _ = shutdown.wait_for(|p| *p == ShutdownPhase::Closing).await;
    };
    tokio::pin!(closing);
    let client_gone = async {
        let _ = gone.wait_for(|gone| *gone).await;
    };
    tokio::pin!(client_gone);
    let idle = tokio::time::sleep(config.idle_timeout);
    tokio::pin!(idle);
    loop {
        idle.as_mut()
            .reset(tokio::time::Instant::now() + config.idle_timeout);
        let message = tokio::select! {
            message = inbound.message() => message,
            () = &mut idle => {
                end(Status::resource_exhausted(format!(
                    "session idle for {} s (--idle-timeout-secs)",
                    config.idle_timeout.as_secs()
                )));
                return;
            }
            () = &mut closing => {
                end(Status::unavailable("server shutting down: the session was closed before it finished"));
                return;
            }
            () = &mut client_gone => return,
        };
        let message = match message {
            Err(status) => {
                end(map_transport_status(status));
                return;
            }
            // The client half-closed its side: same as `close`.
            Ok(None) => {
                let _ = session.close().await;
                return;
            }
            Ok(Some(message)) => message,
        };
        match message.kind {
            Some(stream_request::Kind::Data(item)) => {
                let len = item.encoded_len();
                if len > config.max_message_bytes {
                    end(too_large(
                        &format!("data frame {frames}"),
                        len,
                        config.max_message_bytes,
                    ));
                    return;
                }
                let input = match input_from_proto(item, &format!("data frame {frames}")) {
                    Ok(input) => input,
                    Err(status) => {
                        end(status);
                        return;
                    }
                };
                frames += 1;
                let sent = tokio::select! {
                    sent = session.send_input(input) => sent,
                    // Waiting under backpressure for a client that is gone: stop.
                    () = &mut client_gone => return,
                };
                if sent.is_err() {
                    // The session failed; forward_outputs reports the error.
                    return;
                }
            }
            Some(stream_request::Kind::Close(_)) => {
                let _ = session.close().await;
                return;
            }
            Some(stream_request::Kind::Cancel(_)) => {
                end(Status::cancelled("session cancelled by the client"));
                return;
            }
            Some(stream_request::Kind::Open(_)) => {
                end(Status::invalid_argument("the session is already open"));
                return;
            }
            None => {
                end(Status::invalid_argument("empty stream message"));
                return;
            }
        }
    }
}
