//! Command-line flags of the server, shared by `remotemedia-grpc-server` and
//! `remotemedia serve`. Every flag can also come from its environment variable.

use crate::{bind, serve, ServerConfig};
use remotemedia_runtime_core::policy::ExecutionPolicy;
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
    /// Let clients' manifests set an executor setting that is refused by default because
    /// it chooses a program, path, environment, mount or image: `multiprocess.env`, a
    /// whole block (`multiprocess.*`, `docker.*`) or everything (`*`). Repeatable.
    #[arg(
        long = "allow-client-setting",
        value_name = "BLOCK.KEY",
        env = "REMOTEMEDIA_ALLOW_CLIENT_SETTINGS",
        value_delimiter = ','
    )]
    pub allow_client_settings: Vec<String>,
    /// Let clients use only these node types (repeatable); without it, every registered type.
    #[arg(
        long = "allow-node-type",
        value_name = "TYPE",
        env = "REMOTEMEDIA_ALLOW_NODE_TYPES",
        value_delimiter = ','
    )]
    pub allow_node_types: Vec<String>,
    /// Largest manifest a client may send, in bytes.
    #[arg(long, env = "REMOTEMEDIA_MAX_MANIFEST_BYTES", default_value_t = 1024 * 1024)]
    pub max_manifest_bytes: usize,
    /// Most nodes in a client's manifest.
    #[arg(long, env = "REMOTEMEDIA_MAX_MANIFEST_NODES", default_value_t = 1024)]
    pub max_manifest_nodes: usize,
    /// Most values (numbers, strings, keys' values, list items; YAML aliases counted as the
    /// values they repeat) in a client's manifest.
    #[arg(
        long,
        env = "REMOTEMEDIA_MAX_MANIFEST_VALUES",
        default_value_t = 500_000
    )]
    pub max_manifest_values: usize,
    /// Most connections in a client's manifest.
    #[arg(
        long,
        env = "REMOTEMEDIA_MAX_MANIFEST_CONNECTIONS",
        default_value_t = 8192
    )]
    pub max_manifest_connections: usize,
    /// Most outputs one Execute call may return (streams have no such limit).
    #[arg(
        long,
        env = "REMOTEMEDIA_MAX_EXECUTE_OUTPUTS",
        default_value_t = 100_000
    )]
    pub max_execute_outputs: usize,
    /// Seconds a stream may take to send its `open` message.
    #[arg(long, env = "REMOTEMEDIA_OPEN_TIMEOUT_SECS", default_value_t = 10)]
    pub open_timeout_secs: u64,
    /// Connections open at once; at the cap the oldest one without a request makes room,
    /// else a new one is refused at once.
    #[arg(long, env = "REMOTEMEDIA_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,
    /// Seconds a new connection has to open its first request before it is closed.
    #[arg(long, env = "REMOTEMEDIA_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10)]
    pub handshake_timeout_secs: u64,
    /// HTTP/2 streams (calls) one connection may have open at once; clients queue more.
    #[arg(
        long,
        env = "REMOTEMEDIA_MAX_STREAMS_PER_CONNECTION",
        default_value_t = 100
    )]
    pub max_streams_per_connection: usize,
    /// Bytes of partly received messages the server holds at once, over all streams; a
    /// stream's next bytes wait while it is spent (at least one --max-message-bytes).
    #[arg(
        long,
        env = "REMOTEMEDIA_MAX_PENDING_MESSAGE_BYTES",
        default_value_t = 256 * 1024 * 1024
    )]
    pub max_pending_message_bytes: usize,
    /// Seconds one message may take to arrive in full, from its first byte.
    #[arg(long, env = "REMOTEMEDIA_MESSAGE_TIMEOUT_SECS", default_value_t = 60)]
    pub message_timeout_secs: u64,
    /// Python workers running at once (each holds 32 descriptors); default: what the
    /// descriptor limit backs after the connections' share.
    #[arg(long, env = "REMOTEMEDIA_MAX_PYTHON_WORKERS")]
    pub max_python_workers: Option<usize>,
    /// Serve TLS: the certificate chain (PEM file). Needs --tls-key.
    #[arg(long, env = "REMOTEMEDIA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Serve TLS: the private key (PEM file). Needs --tls-cert.
    #[arg(long, env = "REMOTEMEDIA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
}

/// Descriptors kept for everything the server opens besides connections.
const DESCRIPTOR_RESERVE: u64 = 256;

/// Raises the soft limit on open descriptors to the hard limit; returns the limit now in
/// force.
fn raise_descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid, writable rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    limit.rlim_cur
}

impl ServerArgs {
    /// The runner these flags describe: built-in nodes plus Python nodes in workers. With
    /// `config` (from [`load_config`](Self::load_config)), the Python workers are limited to
    /// the descriptors its connections leave.
    pub fn runner(&self, config: Option<&ServerConfig>) -> anyhow::Result<PipelineRunner> {
        let mut setup = remotemedia_executors::RuntimeSetup::default();
        setup.multiprocess.python_executable = self.python.clone();
        setup.multiprocess.warm_workers = self.warm_workers;
        setup.multiprocess.max_workers = self.max_python_workers.or_else(|| {
            config.map(|c| {
                remotemedia_executors::workers_for_descriptors(
                    DESCRIPTOR_RESERVE as usize + c.connections.max_connections,
                )
            })
        });
        Ok(setup.runner()?)
    }

    /// The server configuration these flags describe.
    pub fn config(&self) -> ServerConfig {
        let mut policy = ExecutionPolicy::default();
        for setting in self.allow_client_settings.iter().filter(|s| !s.is_empty()) {
            policy = policy.allow_setting(setting.trim());
        }
        for node_type in self.allow_node_types.iter().filter(|s| !s.is_empty()) {
            policy = policy.allow_node_type(node_type.trim());
        }
        let mut config = ServerConfig {
            listen: self.listen,
            max_message_bytes: self.max_message_bytes,
            max_sessions: self.max_sessions.max(1),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            auth_token: self.auth_token.clone().filter(|t| !t.is_empty()),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            policy,
            max_execute_outputs: self.max_execute_outputs.max(1),
            open_timeout: Duration::from_secs(self.open_timeout_secs.max(1)),
            max_pending_message_bytes: self.max_pending_message_bytes,
            message_timeout: Duration::from_secs(self.message_timeout_secs.max(1)),
            ..ServerConfig::default()
        };
        config.manifest_limits.max_bytes = self.max_manifest_bytes;
        config.manifest_limits.max_nodes = self.max_manifest_nodes;
        config.manifest_limits.max_values = self.max_manifest_values;
        config.manifest_limits.max_connections = self.max_manifest_connections;
        config.connections.max_connections = self.max_connections.max(1);
        config.connections.handshake_timeout =
            Duration::from_secs(self.handshake_timeout_secs.max(1));
        config.connections.max_streams_per_connection = self.max_streams_per_connection.max(1);
        config
    }

    /// [`config`](Self::config) with the TLS files read and the connection and session
    /// limits kept within the descriptors the process may open (the soft limit is raised to
    /// the hard one first): a limit the descriptors cannot back is lowered, with a log line.
    pub fn load_config(&self) -> anyhow::Result<ServerConfig> {
        let mut config = self.config();
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            let read = |path: &std::path::Path, what: &str| {
                std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!("cannot read the TLS {what} {}: {e}", path.display())
                })
            };
            let identity = crate::TlsIdentity {
                cert_pem: read(cert, "certificate")?,
                key_pem: read(key, "key")?,
            };
            // Checked now, so a bad pair is an error before the server listens.
            crate::tls_server(&identity).map_err(|e| {
                anyhow::anyhow!(
                    "cannot use the TLS certificate {} with the key {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?;
            config.tls = Some(identity);
        }
        let descriptors = raise_descriptor_limit();
        let usable = descriptors.saturating_sub(DESCRIPTOR_RESERVE).max(64);
        // Half the descriptors at most for connections; the Python workers' share (the
        // multiprocess backend derives its worker limit from the same limit) is the rest.
        let connections = (config.connections.max_connections as u64).min(usable / 2);
        if connections < config.connections.max_connections as u64 {
            tracing::info!(
                descriptors,
                requested = config.connections.max_connections,
                connections,
                "--max-connections lowered to what the descriptor limit can back"
            );
            config.connections.max_connections = connections.max(1) as usize;
        }
        Ok(config)
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
    let config = args.load_config()?;
    let runner = args.runner(Some(&config))?;
    let (listener, addr) = bind(&config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    // Scripts and tests read this line to find the port.
    eprintln!("{name} listening on {addr}");
    serve(runner, config, listener, shutdown_signal()).await
}
