//! Command-line flags of the WebRTC server (used by `remotemedia serve --webrtc`).
//! Every flag can also come from its environment variable.

use crate::{Limits, Pipelines, WebRtcConfig};
use remotemedia_runtime_core::transport::PipelineRunner;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// WebRTC server flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WebRtcArgs {
    /// Serve WebRTC peers (WHIP-style HTTP signaling and the demo page) on this address.
    #[arg(long, env = "REMOTEMEDIA_WEBRTC_LISTEN", value_name = "ADDR")]
    pub webrtc: Option<SocketAddr>,
    /// A pipeline peers may run, chosen by name: NAME=path.yaml (repeatable). Peers never
    /// send manifests.
    #[arg(
        long = "pipeline",
        value_name = "NAME=PATH",
        env = "REMOTEMEDIA_WEBRTC_PIPELINES",
        value_delimiter = ','
    )]
    pub pipelines: Vec<String>,
    /// The IP address media (ICE over UDP) binds to; default: the --webrtc address's IP
    /// (every interface if that is 0.0.0.0).
    #[arg(long, env = "REMOTEMEDIA_WEBRTC_MEDIA_IP", value_name = "IP")]
    pub webrtc_media_ip: Option<IpAddr>,
    /// WebRTC peers connected at once.
    #[arg(long, env = "REMOTEMEDIA_WEBRTC_MAX_PEERS", default_value_t = 64)]
    pub webrtc_max_peers: usize,
    /// End a peer after this many seconds without media or a message from it.
    #[arg(
        long,
        env = "REMOTEMEDIA_WEBRTC_IDLE_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub webrtc_idle_timeout_secs: u64,
    /// Seconds a peer has to connect after its answer.
    #[arg(
        long,
        env = "REMOTEMEDIA_WEBRTC_CONNECT_TIMEOUT_SECS",
        default_value_t = 15
    )]
    pub webrtc_connect_timeout_secs: u64,
    /// Seconds after which a peer that stopped answering (vanished) is ended.
    #[arg(
        long,
        env = "REMOTEMEDIA_WEBRTC_VANISH_TIMEOUT_SECS",
        default_value_t = 4
    )]
    pub webrtc_vanish_timeout_secs: u64,
    /// Largest data-channel message, either way, in bytes.
    #[arg(
        long,
        env = "REMOTEMEDIA_WEBRTC_MAX_MESSAGE_BYTES",
        default_value_t = 64 * 1024
    )]
    pub webrtc_max_message_bytes: usize,
}

impl WebRtcArgs {
    /// The server configuration, if `--webrtc` was given; `auth_token` is the server's
    /// bearer token (the same as the gRPC server's).
    pub fn config(&self, auth_token: Option<String>) -> Option<WebRtcConfig> {
        let listen = self.webrtc?;
        Some(WebRtcConfig {
            listen,
            media_ip: self.webrtc_media_ip,
            auth_token: auth_token.filter(|t| !t.is_empty()),
            limits: Limits {
                max_peers: self.webrtc_max_peers.max(1),
                idle_timeout: Duration::from_secs(self.webrtc_idle_timeout_secs.max(1)),
                connect_timeout: Duration::from_secs(self.webrtc_connect_timeout_secs.max(1)),
                vanish_timeout: Duration::from_secs(self.webrtc_vanish_timeout_secs.max(1)),
                max_message_bytes: self.webrtc_max_message_bytes.max(256),
                ..Limits::default()
            },
        })
    }

    /// The `--pipeline` manifests, read and validated with `runner`.
    pub fn pipelines(&self, runner: &PipelineRunner) -> anyhow::Result<Pipelines> {
        let mut pipelines = Pipelines::default();
        for spec in self.pipelines.iter().filter(|s| !s.is_empty()) {
            let (name, path) = spec.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("--pipeline {spec:?}: write NAME=PATH (e.g. echo=echo.yaml)")
            })?;
            pipelines.add_file(runner, name.trim(), &PathBuf::from(path.trim()))?;
        }
        if self.webrtc.is_some() && pipelines.is_empty() {
            anyhow::bail!("--webrtc needs at least one --pipeline NAME=PATH for peers to run");
        }
        Ok(pipelines)
    }
}
