//! WebRTC transport for RemoteMedia pipelines.
//!
//! A browser (or any standard WebRTC peer) opens a pipeline session with one HTTP request
//! in the WHIP style (RFC 9725): `POST /whip/{pipeline}` with an SDP offer, answered with
//! `201 Created`, the SDP answer and the session's resource URL; `PATCH` on that URL
//! trickles ICE candidates, `DELETE` hangs up. Each peer connection is one session of a
//! pipeline the server was configured with ([`Pipelines`]); a peer never sends a
//! manifest.
//!
//! - Audio in: the peer's Opus track, decoded to `RuntimeData::Audio` (48 kHz, the
//!   peer's channels, `stream_id` `audio:0`, `timestamp_us` from RTP), reordered, losses
//!   concealed (in-band FEC, else packet-loss concealment), longer gaps visible in the
//!   timestamps.
//! - Audio out: every audio output, resampled to 48 kHz if needed, encoded to Opus and sent
//!   at real-time pace on the server's track.
//! - Data channel (the peer opens it; any label): JSON messages both ways — text and JSON
//!   inputs, outputs with their node id, errors, barge-in, ping; see docs/WEBRTC.md.
//!
//! ```no_run
//! use remotemedia_runtime_core::manifest::Manifest;
//! use remotemedia_runtime_core::transport::PipelineRunner;
//! use remotemedia_webrtc::{Pipelines, WebRtcConfig, WebRtcServer};
//!
//! # async fn run() -> anyhow::Result<()> {
//! let runner = PipelineRunner::new()?;
//! let mut pipelines = Pipelines::default();
//! pipelines.add(&runner, "echo", &Manifest::from_yaml("nodes: [{id: echo, node_type: PassThrough}]")?)?;
//! let config = WebRtcConfig { listen: "127.0.0.1:8080".parse()?, ..WebRtcConfig::default() };
//! let server = WebRtcServer::new(runner, pipelines, config);
//! let listener = server.bind().await?;
//! server.serve(listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod args;
mod audio_in;
mod audio_out;
mod listener;
mod messages;
mod peer;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Router;
use peer::{EndReason, Handler, Peer};
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::transport::{PipelineRunner, PipelineTransport, ValidatedPipeline};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCSessionDescription, Registry,
    SettingEngineBuilder,
};

/// The limits every peer is held to.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Peers connected at once; the next offer gets `503`.
    pub max_peers: usize,
    /// A peer that sends no media and no message this long is ended.
    pub idle_timeout: Duration,
    /// A peer must be connected this long after its answer.
    pub connect_timeout: Duration,
    /// A peer that stops answering ICE consent checks (it vanished without closing) is
    /// ended after this long.
    pub vanish_timeout: Duration,
    /// Largest data-channel message, either way, in bytes.
    pub max_message_bytes: usize,
    /// Largest signaling request body (an SDP offer or a candidate fragment), in bytes.
    pub max_sdp_bytes: usize,
    /// Signaling (HTTP) connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// A signaling connection is closed this long after it was accepted (a browser opens
    /// a new one for its next request), so idle or trickling connections cannot pile up.
    pub connection_lifetime: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_peers: 64,
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(15),
            vanish_timeout: Duration::from_secs(4),
            max_message_bytes: 64 * 1024,
            max_sdp_bytes: 64 * 1024,
            max_connections: 256,
            connection_lifetime: Duration::from_secs(30),
        }
    }
}

/// How the server listens and whom it lets in.
#[derive(Debug, Clone)]
pub struct WebRtcConfig {
    /// The HTTP signaling address (and the demo page's).
    pub listen: SocketAddr,
    /// The address media (ICE/UDP) binds to; default: the listen address's IP, or every
    /// interface when that is unspecified (`0.0.0.0`).
    pub media_ip: Option<IpAddr>,
    /// Require `Authorization: Bearer <token>` on the signaling requests.
    pub auth_token: Option<String>,
    /// Peer limits.
    pub limits: Limits,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            media_ip: None,
            auth_token: None,
            limits: Limits::default(),
        }
    }
}

/// The pipelines a server offers, by name: the operator's own manifests, validated once.
#[derive(Debug, Default, Clone)]
pub struct Pipelines {
    by_name: BTreeMap<String, Arc<ValidatedPipeline>>,
}

impl Pipelines {
    /// Validates `manifest` with `runner` and offers it as `name` (letters, digits, `-`,
    /// `_`, `.`; at most 64).
    pub fn add(
        &mut self,
        runner: &PipelineRunner,
        name: &str,
        manifest: &Manifest,
    ) -> anyhow::Result<()> {
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            anyhow::bail!("pipeline name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.'");
        }
        if self.by_name.contains_key(name) {
            anyhow::bail!("pipeline name {name:?} is given twice");
        }
        let validated = runner
            .validate(manifest)
            .map_err(|e| anyhow::anyhow!("pipeline {name:?}: {e}"))?;
        self.by_name.insert(name.to_owned(), Arc::new(validated));
        Ok(())
    }

    /// Reads `path` (JSON or YAML) and offers it as `name`.
    pub fn add_file(
        &mut self,
        runner: &PipelineRunner,
        name: &str,
        path: &std::path::Path,
    ) -> anyhow::Result<()> {
        let manifest = Manifest::from_file(path)
            .map_err(|e| anyhow::anyhow!("pipeline {name:?} ({}): {e}", path.display()))?;
        self.add(runner, name, &manifest)
    }

    /// The names offered.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Whether no pipeline is offered.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

struct ServerState {
    runner: PipelineRunner,
    pipelines: Pipelines,
    config: WebRtcConfig,
    slots: Arc<Semaphore>,
    peers: Mutex<HashMap<String, Arc<Peer>>>,
}

/// The WebRTC server: signaling routes, the demo page, and the peers.
#[derive(Clone)]
pub struct WebRtcServer {
    state: Arc<ServerState>,
}

impl std::fmt::Debug for WebRtcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcServer")
            .field("listen", &self.state.config.listen)
            .field(
                "pipelines",
                &self.state.pipelines.names().collect::<Vec<_>>(),
            )
            .field("peers", &self.peers())
            .finish()
    }
}

/// A signaling error: its HTTP status and a JSON body `{"error": {"code", "message"}}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    node_id: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            node_id: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(node) = self.node_id {
            error["node_id"] = json!(node);
        }
        let mut response = (self.status, axum::Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"remotemedia\""),
            );
        }
        response
    }
}

const DEMO_HTML: &str = include_str!("../static/index.html");
const DEMO_JS: &str = include_str!("../static/demo.js");
/// Longest wait for ICE gathering before answering (host candidates take milliseconds).
const GATHER_TIMEOUT: Duration = Duration::from_secs(2);

impl WebRtcServer {
    /// A server running `pipelines` with `runner`.
    pub fn new(runner: PipelineRunner, pipelines: Pipelines, config: WebRtcConfig) -> Self {
        let slots = Arc::new(Semaphore::new(config.limits.max_peers.max(1)));
        Self {
            state: Arc::new(ServerState {
                runner,
                pipelines,
                config,
                slots,
                peers: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Peers connected (or connecting) now.
    pub fn peers(&self) -> usize {
        self.state.peers.lock().expect("peers lock").len()
    }

    /// The HTTP routes (signaling and the demo page), to serve or to nest in an
    /// application's own axum router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/", get(demo_page))
            .route("/demo.js", get(demo_script))
            .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
            .route("/pipelines", get(list_pipelines))
            .route("/whip/{pipeline}", post(offer))
            .route("/whip/sessions/{id}", patch(trickle).delete(hang_up))
            .fallback(|| async {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
            })
            .with_state(Arc::clone(&self.state))
    }

    /// Binds the signaling address.
    pub async fn bind(&self) -> std::io::Result<tokio::net::TcpListener> {
        tokio::net::TcpListener::bind(self.state.config.listen).await
    }

    /// Serves on `listener` until `shutdown` resolves; then every peer is ended (told
    /// why on its data channel) and its session released.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let limits = &self.state.config.limits;
        let listener = listener::BoundedListener::new(
            listener,
            limits.max_connections,
            limits.connection_lifetime,
        );
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        self.shutdown().await;
        served
    }

    /// Ends every peer and waits (up to 10 s) until their sessions are released.
    pub async fn shutdown(&self) {
        let peers: Vec<Arc<Peer>> = self
            .state
            .peers
            .lock()
            .expect("peers lock")
            .values()
            .cloned()
            .collect();
        for peer in &peers {
            peer.end(EndReason::new(
                "server_shutdown",
                "the server is shutting down",
            ));
        }
        let max = self.state.config.limits.max_peers.max(1) as u32;
        let _ =
            tokio::time::timeout(Duration::from_secs(10), self.state.slots.acquire_many(max)).await;
    }
}

fn authorize(state: &ServerState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = &state.config.auth_token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        ))
    }
}

fn require_content_type(headers: &HeaderMap, expected: &str) -> Result<(), ApiError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let base = given.split(';').next().unwrap_or("").trim();
    if base.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("the body must be {expected} (Content-Type was {given:?})"),
        ))
    }
}

async fn read_body(
    state: &ServerState,
    body: axum::body::Body,
    what: &str,
) -> Result<String, ApiError> {
    let limit = state.config.limits.max_sdp_bytes;
    let bytes: Bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the {what} exceeds {limit} bytes"),
        )
    })?;
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_sdp",
            format!("the {what} is not UTF-8 text"),
        )
    })
}

async fn demo_page() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        DEMO_HTML,
    )
}

async fn demo_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        DEMO_JS,
    )
}

async fn list_pipelines(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers)?;
    let pipelines: Vec<_> = state
        .pipelines
        .by_name
        .iter()
        .map(|(name, p)| {
            let nodes: Vec<_> = p
                .manifest()
                .nodes
                .iter()
                .map(|n| json!({"id": n.id, "node_type": n.node_type}))
                .collect();
            json!({"name": name, "nodes": nodes})
        })
        .collect();
    Ok(axum::Json(json!({ "pipelines": pipelines })))
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the system's random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The Opus codec the server offers: 48 kHz, in-band FEC.
fn opus_codec() -> rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters {
    use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters};
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS.to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 111,
    }
}

async fn build_connection(
    state: &ServerState,
    handler: Arc<Handler>,
) -> Result<Arc<dyn PeerConnection>, ApiError> {
    use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
    let internal = |e: &dyn std::fmt::Display| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("cannot set up the peer connection: {e}"),
        )
    };
    let mut media = MediaEngine::default();
    media
        .register_codec(opus_codec(), RtpCodecKind::Audio)
        .map_err(|e| internal(&e))?;
    let registry =
        register_default_interceptors(Registry::new(), &mut media).map_err(|e| internal(&e))?;
    let ip = state.config.media_ip.unwrap_or(state.config.listen.ip());
    let vanish = state.config.limits.vanish_timeout;
    let settings = SettingEngineBuilder::new()
        .with_ice_timeouts(
            Some(vanish / 2),
            Some(vanish),
            Some(Duration::from_millis(500)),
        )
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .with_include_loopback_candidate(ip.is_loopback())
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(handler)
        .with_udp_addrs(vec![SocketAddr::new(ip, 0)])
        .build()
        .await
        .map_err(|e| internal(&e))?;
    Ok(Arc::new(pc))
}

/// The outgoing audio track, its negotiated payload type and SSRC.
async fn add_outgoing_track(
    pc: &Arc<dyn PeerConnection>,
) -> Result<(Arc<TrackLocalStaticRTP>, u8, u32), String> {
    use rtc::rtp_transceiver::rtp_sender::{
        RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
    };
    let mut ssrc_bytes = [0u8; 4];
    getrandom::fill(&mut ssrc_bytes).map_err(|e| e.to_string())?;
    let ssrc = u32::from_be_bytes(ssrc_bytes);
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "remotemedia".to_owned(),
        "remotemedia-audio".to_owned(),
        "remotemedia".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: opus_codec().rtp_codec,
            ..Default::default()
        }],
    )));
    let sender = pc
        .add_track(Arc::clone(&track) as Arc<dyn webrtc::media_stream::track_local::TrackLocal>)
        .await
        .map_err(|e| e.to_string())?;
    let payload_type = sender
        .get_parameters()
        .await
        .ok()
        .and_then(|p| p.rtp_parameters.codecs.first().map(|c| c.payload_type))
        .unwrap_or(111);
    Ok((track, payload_type, ssrc))
}

async fn offer(
    State(state): State<Arc<ServerState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    require_content_type(&headers, "application/sdp")?;
    let sdp = read_body(&state, body, "SDP offer").await?;
    // In a task of its own: a client that goes away mid-request must not cancel a
    // negotiation half done (a session started, a connection bound). A peer that never
    // connects is freed by the connect timeout.
    tokio::spawn(negotiate(state, name, sdp))
        .await
        .unwrap_or_else(|e| {
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the negotiation failed: {e}"),
            ))
        })
}

async fn negotiate(
    state: Arc<ServerState>,
    name: String,
    sdp: String,
) -> Result<Response, ApiError> {
    let pipeline = state.pipelines.by_name.get(&name).cloned().ok_or_else(|| {
        let known: Vec<&str> = state.pipelines.names().collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_pipeline",
            format!(
                "no pipeline named {name:?} (this server offers: {})",
                known.join(", ")
            ),
        )
    })?;
    let bad_sdp = |message: String| ApiError::new(StatusCode::BAD_REQUEST, "bad_sdp", message);
    let has_audio = sdp.lines().any(|l| l.starts_with("m=audio"));
    let has_data = sdp.lines().any(|l| l.starts_with("m=application"));
    if !has_audio && !has_data {
        return Err(bad_sdp(
            "the offer has neither an audio section nor a data channel (m=audio / m=application)"
                .to_owned(),
        ));
    }
    let offer = RTCSessionDescription::offer(sdp)
        .map_err(|e| bad_sdp(format!("the offer is not valid SDP: {e}")))?;
    let permit: OwnedSemaphorePermit =
        Arc::clone(&state.slots).try_acquire_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "peer_limit",
                format!(
                    "the server has its maximum of {} peers; try again later",
                    state.config.limits.max_peers
                ),
            )
        })?;
    let handler = Arc::new(Handler::default());
    let pc = build_connection(&state, Arc::clone(&handler)).await?;
    let negotiated = async {
        pc.set_remote_description(offer)
            .await
            .map_err(|e| bad_sdp(format!("the offer cannot be used: {e}")))?;
        let outgoing = if has_audio {
            Some(add_outgoing_track(&pc).await.map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("cannot add the outgoing audio track: {e}"),
                )
            })?)
        } else {
            None
        };
        let answer = pc
            .create_answer(None)
            .await
            .map_err(|e| bad_sdp(format!("no answer to this offer: {e}")))?;
        pc.set_local_description(answer)
            .await
            .map_err(|e| bad_sdp(format!("no answer to this offer: {e}")))?;
        Ok::<_, ApiError>(outgoing)
    }
    .await;
    let outgoing = match negotiated {
        Ok(outgoing) => outgoing,
        Err(e) => {
            let _ = pc.close().await;
            return Err(e);
        }
    };
    let session = match state.runner.stream_pipeline(pipeline).await {
        Ok(session) => Arc::from(session),
        Err(e) => {
            let _ = pc.close().await;
            return Err(ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "session_failed",
                message: format!("pipeline {name:?} could not start: {e}"),
                node_id: e.node_id().map(str::to_owned),
            });
        }
    };
    let id = random_id();
    let weak_state = Arc::downgrade(&state);
    let peer = Peer::new(
        id.clone(),
        name.clone(),
        Arc::clone(&pc),
        session,
        state.config.limits.clone(),
        &handler,
        Box::new(move |peer: &Peer, _reason: &EndReason| {
            if let Some(state) = weak_state.upgrade() {
                state.peers.lock().expect("peers lock").remove(&peer.id);
            }
            drop(permit);
        }),
    );
    peer.gathering_complete(GATHER_TIMEOUT).await;
    let Some(answer) = pc.local_description().await else {
        peer.end(EndReason::new("internal", "no local description"));
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the answer was lost",
        ));
    };
    state
        .peers
        .lock()
        .expect("peers lock")
        .insert(id.clone(), Arc::clone(&peer));
    peer.start(outgoing);
    let location = format!("/whip/sessions/{id}");
    Ok((
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "application/sdp".to_owned()),
            (header::LOCATION, location),
            (header::ETAG, format!("\"{id}\"")),
        ],
        answer.sdp,
    )
        .into_response())
}

fn find_peer(state: &ServerState, id: &str) -> Result<Arc<Peer>, ApiError> {
    state
        .peers
        .lock()
        .expect("peers lock")
        .get(id)
        .cloned()
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_session",
                format!("no session {id:?} (it ended, or never existed)"),
            )
        })
}

/// `PATCH` with an `application/trickle-ice-sdpfrag` body (RFC 8840): its candidates are
/// added; an ICE restart (a new ufrag) is refused.
async fn trickle(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let peer = find_peer(&state, &id)?;
    require_content_type(&headers, "application/trickle-ice-sdpfrag")?;
    let fragment = read_body(&state, body, "candidate fragment").await?;
    let remote_ufrag = peer
        .pc
        .remote_description()
        .await
        .and_then(|d| {
            d.sdp
                .lines()
                .find_map(|l| l.strip_prefix("a=ice-ufrag:").map(|u| u.trim().to_owned()))
        })
        .unwrap_or_default();
    let mut mid: Option<String> = None;
    let mut ufrag: Option<String> = None;
    let mut added = 0usize;
    for line in fragment.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("a=mid:") {
            mid = Some(value.to_owned());
        } else if let Some(value) = line.strip_prefix("a=ice-ufrag:") {
            if value != remote_ufrag {
                return Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "ice_restart_unsupported",
                    "a new ICE ufrag (ICE restart) is not supported; start a new session",
                ));
            }
            ufrag = Some(value.to_owned());
        } else if let Some(candidate) = line.strip_prefix("a=candidate:") {
            if added >= 64 {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "too_many_candidates",
                    "at most 64 candidates per request",
                ));
            }
            peer.pc
                .add_ice_candidate(RTCIceCandidateInit {
                    candidate: format!("candidate:{candidate}"),
                    sdp_mid: mid.clone(),
                    sdp_mline_index: None,
                    username_fragment: ufrag.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_candidate",
                        format!("candidate {candidate:?}: {e}"),
                    )
                })?;
            added += 1;
        }
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn hang_up(
    State(state): State<Arc<ServerState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers)?;
    let peer = find_peer(&state, &id)?;
    state.peers.lock().expect("peers lock").remove(&id);
    peer.end(EndReason::new("hung_up", "the peer hung up (DELETE)"));
    Ok(StatusCode::OK.into_response())
}
