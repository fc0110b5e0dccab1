//! # remotemedia-grpc
//!
//! The gRPC transport of RemoteMedia: the `remotemedia.v1.PipelineService` (unary
//! `Execute`, bidirectional `StreamPipeline`, `ListNodes`), the standard
//! `grpc.health.v1` health service and server reflection, served by [`serve`] and the
//! `remotemedia-grpc-server` binary. The `.proto` files live in `proto/` in this crate.
//!
//! - Limits: maximum message size, maximum concurrent sessions (streams and unary calls),
//!   per-session idle timeout — see [`ServerConfig`].
//! - Optional bearer-token auth (`authorization: Bearer <token>`), compared in constant
//!   time; health and reflection stay open.
//! - Graceful shutdown: stop accepting new sessions, let open ones finish up to a grace
//!   period, then close them with UNAVAILABLE.
//! - Errors map to status codes as documented in [`status`], with the failing node's id in
//!   the `x-remotemedia-node-id` metadata entry.
//!
//! The service validates each manifest once with the runner and drives every session
//! through the core's transport traits ([`PipelineTransport`](remotemedia_runtime_core::transport::PipelineTransport),
//! [`StreamSession`](remotemedia_runtime_core::transport::StreamSession)).

pub mod args;
mod connections;
pub mod convert;
mod message_budget;
mod service;
pub mod status;

pub use connections::{AcceptStats, ConnInfo, ConnectionLimits};

/// Generated protobuf types and gRPC stubs of `remotemedia.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod proto {
    tonic::include_proto!("remotemedia.v1");

    /// The encoded descriptor set of the `.proto` files (for reflection).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/remotemedia_descriptor.bin"));
}

pub use service::{PipelineServiceImpl, ShutdownPhase};

use proto::pipeline_service_server::PipelineServiceServer;
use remotemedia_runtime_core::manifest::ManifestLimits;
use remotemedia_runtime_core::policy::ExecutionPolicy;
use remotemedia_runtime_core::transport::PipelineRunner;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::{Request, Status};

/// Server settings, with the defaults of the `remotemedia-grpc-server` flags.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (default `127.0.0.1:50051`).
    pub listen: SocketAddr,
    /// Largest accepted or sent message, in bytes (default 16 MiB).
    pub max_message_bytes: usize,
    /// Concurrent sessions: open streams plus running unary calls (default 1024).
    pub max_sessions: usize,
    /// A stream with no client message for this long is closed (default 300 s).
    pub idle_timeout: Duration,
    /// When set, every PipelineService call needs `authorization: Bearer <token>`.
    pub auth_token: Option<String>,
    /// On shutdown, how long open sessions may run before they are closed (default 10 s).
    pub shutdown_grace: Duration,
    /// What clients' manifests may ask for (default: every node type, no executor
    /// setting that chooses programs, paths, environment, mounts or images).
    pub policy: ExecutionPolicy,
    /// Bounds on clients' manifests (size, depth, values, nodes, connections).
    pub manifest_limits: ManifestLimits,
    /// Manifests parsed and validated at once, off the async workers (default 2).
    pub parse_slots: usize,
    /// How long parsing and validating one manifest may take (default 5 s).
    pub parse_timeout: Duration,
    /// Most outputs one Execute call may return (default 100 000).
    pub max_execute_outputs: usize,
    /// How long a stream may take to send its `open` message (default 10 s).
    pub open_timeout: Duration,
    /// Connections open at once, how soon each must open a request, streams per
    /// connection.
    pub connections: ConnectionLimits,
    /// Bytes of partly received messages held at once, over all streams (default 256 MiB;
    /// never less than one message of `max_message_bytes`).
    pub max_pending_message_bytes: usize,
    /// How long one message may take to arrive in full, from its first byte (default 60 s).
    pub message_timeout: Duration,
    /// Serve TLS with this certificate chain and key (PEM) instead of plaintext.
    pub tls: Option<TlsIdentity>,
}

/// A server certificate chain and its private key, PEM-encoded.
#[derive(Clone)]
pub struct TlsIdentity {
    /// The certificate chain (PEM).
    pub cert_pem: Vec<u8>,
    /// The private key (PEM).
    pub key_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("cert_pem", &format!("{} bytes", self.cert_pem.len()))
            .finish_non_exhaustive()
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            max_message_bytes: 16 * 1024 * 1024,
            max_sessions: 1024,
            idle_timeout: Duration::from_secs(300),
            auth_token: None,
            shutdown_grace: Duration::from_secs(10),
            policy: ExecutionPolicy::default(),
            manifest_limits: ManifestLimits::default(),
            parse_slots: 2,
            parse_timeout: Duration::from_secs(5),
            max_execute_outputs: 100_000,
            open_timeout: Duration::from_secs(10),
            connections: ConnectionLimits {
                max_connections: 4096,
                handshake_timeout: Duration::from_secs(10),
                max_streams_per_connection: 100,
            },
            max_pending_message_bytes: 256 * 1024 * 1024,
            message_timeout: Duration::from_secs(60),
            tls: None,
        }
    }
}

/// Checks `authorization: Bearer <token>` in constant time.
#[derive(Clone)]
struct BearerAuth {
    token: Option<Arc<[u8]>>,
}

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.token else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("missing bearer token (authorization: Bearer <token>)")
            })?;
        if bool::from(given.as_bytes().ct_eq(expected)) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("invalid bearer token"))
        }
    }
}

/// Rewrites tonic's OUT_OF_RANGE for over-limit request messages (decoded before any
/// handler runs) to RESOURCE_EXHAUSTED, the code the service uses for every limit.
fn map_limit_status<B>(mut response: http::Response<B>) -> http::Response<B> {
    let out_of_range = response
        .headers()
        .get("grpc-status")
        .is_some_and(|v| v == "11");
    let too_large = response
        .headers()
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m.contains("length%20too%20large") || m.contains("length too large"));
    if out_of_range && too_large {
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}

/// Binds `config.listen`; returns the listener and the address it got (port 0 picks one).
pub async fn bind(config: &ServerConfig) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// A server builder serving TLS with `tls`; the error says what is wrong with the pair
/// (unreadable PEM, no key, a key that does not match the certificate).
pub(crate) fn tls_server(tls: &TlsIdentity) -> anyhow::Result<tonic::transport::Server> {
    if !String::from_utf8_lossy(&tls.cert_pem).contains("-----BEGIN CERTIFICATE-----") {
        anyhow::bail!(
            "the certificate file holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        );
    }
    let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
    tonic::transport::Server::builder()
        .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
        .map_err(|e| {
            let mut reason = String::new();
            let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
            while let Some(cause) = source {
                reason = cause.to_string();
                source = cause.source();
            }
            if reason.is_empty() {
                reason = e.to_string();
            }
            if reason.contains("KeyMismatch") {
                reason = "the private key does not belong to the certificate".into();
            }
            anyhow::anyhow!("{reason}")
        })
}

/// How long connections may stay open once shutdown has closed every session (a health
/// `Watch`, say) before the server stops anyway.
const CLOSE_CONNECTIONS_AFTER: Duration = Duration::from_secs(2);

/// How often an HTTP/2 ping checks that a connection's peer is still there.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long the ping's answer may take before the connection is closed.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves the pipeline, health and reflection services on `listener` until `shutdown`
/// resolves; then stops taking new sessions, reports NOT_SERVING, gives open sessions
/// `config.shutdown_grace` to finish, closes the rest with UNAVAILABLE, and returns —
/// within a moment, whatever connections remain open.
pub async fn serve(
    runner: PipelineRunner,
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with_stats(runner, config, listener, shutdown, Arc::default()).await
}

/// [`serve`], counting what the accept loop does in `stats`.
pub async fn serve_with_stats(
    runner: PipelineRunner,
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    stats: Arc<AcceptStats>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let (phase_tx, phase_rx) = watch::channel(ShutdownPhase::Running);
    let sessions = Arc::new(tokio::sync::Semaphore::new(config.max_sessions));
    let router_runner = runner.clone();
    let service = PipelineServiceImpl::new(
        runner,
        Arc::clone(&config),
        Arc::clone(&sessions),
        phase_rx.clone(),
    );
    let auth = BearerAuth {
        token: config.auth_token.as_ref().map(|t| Arc::from(t.as_bytes())),
    };
    // tonic enforces the decoding limit; a little headroom lets the service itself report
    // a precise RESOURCE_EXHAUSTED for messages just over the limit.
    let pipeline = PipelineServiceServer::new(service)
        .max_decoding_message_size(config.max_message_bytes.saturating_add(64 * 1024))
        .max_encoding_message_size(config.max_message_bytes.saturating_add(64 * 1024));
    let pipeline = tonic::service::interceptor::InterceptedService::new(pipeline, auth);

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<PipelineServiceServer<PipelineServiceImpl>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let grace = config.shutdown_grace;
    let max_sessions = u32::try_from(config.max_sessions).unwrap_or(u32::MAX);
    let all_sessions_ended = {
        let sessions = Arc::clone(&sessions);
        move || {
            let sessions = Arc::clone(&sessions);
            async move {
                // Every permit back means no session is open.
                let _ = sessions.acquire_many(max_sessions).await;
            }
        }
    };
    let (stopped_tx, mut stopped_rx) = watch::channel(false);
    // The listener keeps accepting connections until the sessions are over, so late
    // clients get a clear UNAVAILABLE from the service instead of a refused stream.
    let drained = async move {
        shutdown.await;
        tracing::info!("shutdown requested: no new sessions; open ones have {grace:?} to finish");
        let _ = phase_tx.send(ShutdownPhase::Draining);
        // Probes ask for "" by default: it flips with the service.
        health_reporter
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
        health_reporter
            .set_not_serving::<PipelineServiceServer<PipelineServiceImpl>>()
            .await;
        if tokio::time::timeout(grace, all_sessions_ended())
            .await
            .is_err()
        {
            tracing::info!("grace period over: closing the remaining sessions");
            let _ = phase_tx.send(ShutdownPhase::Closing);
            // Give the closed sessions a moment to send their final status.
            let _ = tokio::time::timeout(Duration::from_secs(5), all_sessions_ended()).await;
        }
        // The sessions have ended; let their nodes finish their cleanup (worker processes,
        // shared memory) before the runtime stops.
        if !router_runner
            .sessions()
            .wait_idle(Duration::from_secs(10))
            .await
        {
            tracing::warn!("some sessions did not release their nodes in time");
        }
        let _ = stopped_tx.send(true);
    };

    let addr = listener.local_addr()?;
    let incoming = connections::incoming(listener, config.connections.clone(), stats);
    let budget = message_budget::MessageBudget::new(
        config
            .max_pending_message_bytes
            .max(config.max_message_bytes.saturating_add(64 * 1024)),
        config.message_timeout,
        config.max_message_bytes,
    );
    let builder = match &config.tls {
        Some(tls) => tls_server(tls)?,
        None => tonic::transport::Server::builder(),
    }
    .max_concurrent_streams(
        u32::try_from(config.connections.max_streams_per_connection.max(1)).unwrap_or(u32::MAX),
    )
    // A peer that vanished without closing (a dropped network) is noticed within a
    // minute, and its sessions end as if it had gone.
    .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
    .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT));
    tracing::info!(%addr, tls = config.tls.is_some(), "serving remotemedia.v1.PipelineService");
    let server = builder
        .layer(tower::util::MapRequestLayer::new(connections::mark_request))
        .layer(tower::util::MapRequestLayer::new(
            move |request: http::Request<tonic::body::Body>| request.map(|body| budget.wrap(body)),
        ))
        .layer(tower::util::MapResponseLayer::new(map_limit_status))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(pipeline)
        .serve_with_incoming_shutdown(incoming, drained);
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => served?,
        _ = async {
            let _ = stopped_rx.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(CLOSE_CONNECTIONS_AFTER).await;
        } => {
            tracing::info!("connections still open after shutdown (a health watch?): closing them");
        }
    }
    tracing::info!("server stopped");
    Ok(())
}
