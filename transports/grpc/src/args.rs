//! Command-line flags of the server, shared by `remotemedia-grpc-server` and
//! `remotemedia serve`. Every flag can also come from its environment variable.

use crate::{bind, serve, ServerConfig};
use remotemedia_runtime_core::transport::PipelineRunner;
use std::net::SocketAddr;
use std::time::Duration;

/// Server flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Address to listen on; use 0.0.0.0 to accept remote clients, port 0 for any port.
    #[arg(long, env = "REMOTEMEDIA_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Largest message accepted or sent, in bytes.
    #[arg(long, env = "REMOTEMEDIA_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_message_bytes: usize,
    /// Concurrent sessions (open streams plus running unary calls).
    #[arg(long, env = "REMOTEMEDIA_MAX_SESSIONS", default_value_t = 1024)]
    pub max_sessions: usize,
    /// Close a stream after this many seconds without a client message.
    #[arg(long, env = "REMOTEMEDIA_IDLE_TIMEOUT_SECS", default_value_t = 300)]
    pub idle_timeout_secs: u64,
    /// Require `authorization: Bearer <token>` on pipeline calls.
    #[arg(long, env = "REMOTEMEDIA_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// On SIGTERM/SIGINT, seconds open sessions may run before they are closed.
    #[arg(long, env = "REMOTEMEDIA_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,
    /// Python interpreter for Python nodes (needs the remotemedia package); default python3.
    #[arg(long, env = "REMOTEMEDIA_PYTHON")]
    pub python: Option<std::path::PathBuf>,
    /// Python workers kept started and waiting, so sessions with Python nodes start fast.
    #[arg(long, env = "REMOTEMEDIA_WARM_WORKERS", default_value_t = 0)]
    pub warm_workers: usize,
}

impl ServerArgs {
    /// The runner these flags describe: built-in nodes plus Python nodes in workers.
    pub fn runner(&self) -> anyhow::Result<PipelineRunner> {
        let mut setup = remotemedia_executors::RuntimeSetup::default();
        setup.multiprocess.python_executable = self.python.clone();
        setup.multiprocess.warm_workers = self.warm_workers;
        Ok(setup.runner()?)
    }

    /// The server configuration these flags describe.
    pub fn config(&self) -> ServerConfig {
        ServerConfig {
            listen: self.listen,
            max_message_bytes: self.max_message_bytes,
            max_sessions: self.max_sessions.max(1),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            auth_token: self.auth_token.clone().filter(|t| !t.is_empty()),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// Installs a `tracing` subscriber writing to stderr (level from `RUST_LOG`, default info).
pub fn init_logging() {
    init_logging_with("info");
}

/// Installs a `tracing` subscriber writing to stderr; `RUST_LOG` overrides `default`.
pub fn init_logging_with(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Binds, announces `<name> listening on <addr>` on stderr, and serves until SIGINT/SIGTERM.
pub async fn run_server(name: &str, args: &ServerArgs) -> anyhow::Result<()> {
    let config = args.config();
    let runner = args.runner()?;
    let (listener, addr) = bind(&config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    // Scripts and tests read this line to find the port.
    eprintln!("{name} listening on {addr}");
    serve(runner, config, listener, shutdown_signal()).await
}
