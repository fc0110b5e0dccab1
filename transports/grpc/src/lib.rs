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
pub mod convert;
mod service;
pub mod status;

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

/// Serves the pipeline, health and reflection services on `listener` until `shutdown`
/// resolves; then stops taking new sessions, gives open ones `config.shutdown_grace` to
/// finish, closes the rest with UNAVAILABLE, and returns.
pub async fn serve(
    runner: PipelineRunner,
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let (phase_tx, phase_rx) = watch::channel(ShutdownPhase::Running);
    let sessions = Arc::new(tokio::sync::Semaphore::new(config.max_sessions));
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
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

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
    // The listener keeps accepting connections until the sessions are over, so late
    // clients get a clear UNAVAILABLE from the service instead of a refused stream.
    let drained = async move {
        shutdown.await;
        tracing::info!("shutdown requested: no new sessions; open ones have {grace:?} to finish");
        let _ = phase_tx.send(ShutdownPhase::Draining);
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
    };

    let addr = listener.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tracing::info!(%addr, "serving remotemedia.v1.PipelineService");
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(map_limit_status))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(pipeline)
        .serve_with_incoming_shutdown(incoming, drained)
        .await?;
    tracing::info!("server stopped");
    Ok(())
}
