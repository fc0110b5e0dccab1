//! A real WebRTC client for the tests: a webrtc-rs peer that sends Opus audio on a track
//! and JSON on a data channel, signals over HTTP like a browser, and keeps what comes back
//! (decoded audio with arrival times, data-channel messages).

#![allow(dead_code)]

use audiopus::coder::{Decoder, Encoder};
use audiopus::{Application, Channels, MutSignals, SampleRate};
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::transport::PipelineRunner;
use remotemedia_webrtc::{Limits, Pipelines, WebRtcConfig, WebRtcServer};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::MediaStreamTrack;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
};

/// A server on an ephemeral loopback port, serving `pipelines` (name, YAML).
pub struct TestServer {
    pub server: WebRtcServer,
    pub addr: SocketAddr,
    pub runner: PipelineRunner,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    pub async fn start(pipelines: &[(&str, &str)], token: Option<&str>, limits: Limits) -> Self {
        let runner = PipelineRunner::new().expect("runner");
        let mut offered = Pipelines::default();
        for (name, yaml) in pipelines {
            offered
                .add(&runner, name, &Manifest::from_yaml(yaml).expect("manifest"))
                .expect("pipeline");
        }
        let config = WebRtcConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            auth_token: token.map(str::to_owned),
            limits,
            ..WebRtcConfig::default()
        };
        let server = WebRtcServer::new(runner.clone(), offered, config);
        let listener = server.bind().await.expect("bind");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = server.clone();
        let task = tokio::spawn(async move {
            serving
                .serve(listener, async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Self {
            server,
            addr,
            runner,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Waits until the server holds no peer and the runner no session.
    pub async fn wait_empty(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.server.peers() == 0 && self.runner.sessions().is_empty() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// What the client received.
#[derive(Default)]
pub struct Received {
    pub messages: Vec<Value>,
    /// Decoded audio from the server: (arrival, RTP timestamp, samples at 48 kHz mono).
    pub audio: Vec<(Instant, u32, Vec<f32>)>,
    pub state: Option<RTCPeerConnectionState>,
}

/// Whether clients decode the audio they receive (benchmarks with many peers only count
/// and time the packets).
pub static DECODE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

#[derive(Default)]
struct ClientHandler {
    received: Arc<Mutex<Received>>,
    changed: Arc<Notify>,
    gathered: Arc<Notify>,
    gathered_flag: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ClientHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered_flag
                .store(true, std::sync::atomic::Ordering::SeqCst);
            self.gathered.notify_waiters();
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        self.received.lock().unwrap().state = Some(state);
        self.changed.notify_waiters();
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let received = Arc::clone(&self.received);
        let changed = Arc::clone(&self.changed);
        tokio::spawn(async move {
            let mut decoder = Decoder::new(SampleRate::Hz48000, Channels::Mono).unwrap();
            let mut pcm = vec![0f32; 5760];
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    if !DECODE.load(std::sync::atomic::Ordering::Relaxed) {
                        received.lock().unwrap().audio.push((
                            Instant::now(),
                            packet.header.timestamp,
                            Vec::new(),
                        ));
                        changed.notify_waiters();
                        continue;
                    }
                    let Ok(p) = audiopus::packet::Packet::try_from(&packet.payload[..]) else {
                        continue;
                    };
                    let n = decoder
                        .decode_float(Some(p), MutSignals::try_from(&mut pcm[..]).unwrap(), false)
                        .unwrap_or(0);
                    received.lock().unwrap().audio.push((
                        Instant::now(),
                        packet.header.timestamp,
                        pcm[..n].to_vec(),
                    ));
                    changed.notify_waiters();
                }
            }
        });
    }
}

/// One client peer connected to the server.
pub struct Client {
    pub pc: Arc<dyn PeerConnection>,
    pub channel: Arc<dyn DataChannel>,
    pub track: Arc<TrackLocalStaticRTP>,
    pub payload_type: u8,
    pub ssrc: u32,
    pub resource: String,
    pub received: Arc<Mutex<Received>>,
    changed: Arc<Notify>,
    sequence: Mutex<u16>,
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

fn opus() -> rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters {
    use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters};
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: "audio/opus".to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: 111,
    }
}

/// A peer connection of the client's own, with an audio track (sendrecv) and a data
/// channel; its offer after gathering.
pub async fn client_offer() -> (Arc<dyn PeerConnection>, Arc<ClientParts>, String) {
    client_offer_with(true).await
}

/// [`client_offer`], with or without the audio track.
pub async fn client_offer_with(audio: bool) -> (Arc<dyn PeerConnection>, Arc<ClientParts>, String) {
    use rtc::rtp_transceiver::rtp_sender::{
        RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
    };
    let handler = Arc::new(ClientHandler::default());
    let mut media = MediaEngine::default();
    media.register_codec(opus(), RtpCodecKind::Audio).unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
    let settings = SettingEngineBuilder::new()
        .with_include_loopback_candidate(true)
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(Arc::clone(&handler) as Arc<dyn PeerConnectionEventHandler>)
        .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await
        .expect("client peer connection");
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    let ssrc = 0x1234_5678;
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "client".to_owned(),
        "client-audio".to_owned(),
        "client".to_owned(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: opus().rtp_codec,
            ..Default::default()
        }],
    )));
    let sender = if audio {
        Some(
            pc.add_track(Arc::clone(&track) as Arc<dyn TrackLocal>)
                .await
                .expect("track"),
        )
    } else {
        None
    };
    let channel = pc
        .create_data_channel("remotemedia", None)
        .await
        .expect("data channel");
    let offer = pc.create_offer(None).await.expect("offer");
    pc.set_local_description(offer).await.expect("local");
    let gathered = async {
        loop {
            let n = handler.gathered.notified();
            if handler
                .gathered_flag
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return;
            }
            n.await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gathered)
        .await
        .expect("gathering");
    let sdp = pc.local_description().await.expect("offer").sdp;
    let parts = Arc::new(ClientParts {
        handler,
        track,
        sender_ssrc: ssrc,
        channel,
        sender,
    });
    (pc, parts, sdp)
}

pub struct ClientParts {
    handler: Arc<ClientHandler>,
    track: Arc<TrackLocalStaticRTP>,
    sender_ssrc: u32,
    channel: Arc<dyn DataChannel>,
    sender: Option<Arc<dyn webrtc::rtp_transceiver::RtpSender>>,
}

/// POSTs `sdp` to `/whip/{pipeline}`: the status, the Location header, the body.
pub async fn post_offer(
    http: &reqwest::Client,
    base: &str,
    pipeline: &str,
    token: Option<&str>,
    sdp: &str,
) -> (u16, Option<String>, String) {
    let mut request = http
        .post(format!("{base}/whip/{pipeline}"))
        .header("Content-Type", "application/sdp")
        .body(sdp.to_owned());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("POST");
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, location, response.text().await.unwrap())
}

impl Client {
    /// Connects to `pipeline` and waits for the data channel's `ready` message.
    pub async fn connect(server: &TestServer, pipeline: &str, token: Option<&str>) -> Client {
        Self::connect_with(server, pipeline, token, None).await
    }

    /// [`connect`](Self::connect) with every packet going through `relay`: the offer
    /// carries no candidate (the server learns the client's address from the relay's
    /// packets) and the answer's candidate is rewritten to the relay's.
    pub async fn connect_through(server: &TestServer, pipeline: &str, relay: &Relay) -> Client {
        Self::connect_with(server, pipeline, None, Some(relay)).await
    }

    async fn connect_with(
        server: &TestServer,
        pipeline: &str,
        token: Option<&str>,
        relay: Option<&Relay>,
    ) -> Client {
        Self::connect_url(&format!("http://{}", server.addr), pipeline, token, relay).await
    }

    /// Connects to the server at `base` (`http://host:port`).
    pub async fn connect_url(
        base: &str,
        pipeline: &str,
        token: Option<&str>,
        relay: Option<&Relay>,
    ) -> Client {
        Self::connect_full(base, pipeline, token, relay, true).await
    }

    /// A peer with a data channel and no audio track.
    pub async fn connect_data_only(server: &TestServer, pipeline: &str) -> Client {
        Self::connect_full(&server.url(""), pipeline, None, None, false).await
    }

    async fn connect_full(
        base: &str,
        pipeline: &str,
        token: Option<&str>,
        relay: Option<&Relay>,
        audio: bool,
    ) -> Client {
        let (pc, parts, mut sdp) = client_offer_with(audio).await;
        if relay.is_some() {
            sdp = sdp
                .split("\r\n")
                .filter(|l| !l.starts_with("a=candidate:"))
                .collect::<Vec<_>>()
                .join("\r\n");
        }
        let http = reqwest::Client::new();
        let base = base.to_owned();
        let (status, location, mut body) = post_offer(&http, &base, pipeline, token, &sdp).await;
        assert_eq!(status, 201, "{body}");
        if let Some(relay) = relay {
            body = relay.route(&body);
        }
        let answer = RTCSessionDescription::answer(body).expect("answer");
        pc.set_remote_description(answer).await.expect("remote");
        let payload_type = match &parts.sender {
            Some(sender) => sender
                .get_parameters()
                .await
                .ok()
                .and_then(|p| p.rtp_parameters.codecs.first().map(|c| c.payload_type))
                .unwrap_or(111),
            None => 111,
        };
        let received = Arc::clone(&parts.handler.received);
        let changed = Arc::clone(&parts.handler.changed);
        // The data channel's messages.
        {
            let channel = Arc::clone(&parts.channel);
            let received = Arc::clone(&received);
            let changed = Arc::clone(&changed);
            tokio::spawn(async move {
                while let Some(event) = channel.poll().await {
                    match event {
                        DataChannelEvent::OnMessage(m) => {
                            let v: Value = serde_json::from_slice(&m.data).expect("JSON message");
                            received.lock().unwrap().messages.push(v);
                            changed.notify_waiters();
                        }
                        DataChannelEvent::OnClose => break,
                        _ => {}
                    }
                }
            });
        }
        let client = Client {
            pc,
            channel: Arc::clone(&parts.channel),
            track: Arc::clone(&parts.track),
            payload_type,
            ssrc: parts.sender_ssrc,
            resource: location.expect("Location"),
            received,
            changed,
            sequence: Mutex::new(1),
            http,
            base,
            token: token.map(str::to_owned),
        };
        client
            .wait_for(Duration::from_secs(10), |r| {
                r.messages.iter().any(|m| m["type"] == "ready")
            })
            .await
            .expect("ready message");
        client
    }

    /// Waits until `check` holds for what was received; false on timeout.
    pub async fn wait_for(
        &self,
        within: Duration,
        check: impl Fn(&Received) -> bool,
    ) -> Option<()> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.changed.notified();
            if check(&self.received.lock().unwrap()) {
                return Some(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return check(&self.received.lock().unwrap()).then_some(());
            }
        }
    }

    pub async fn send_json(&self, value: Value) {
        self.channel
            .send_text(&value.to_string())
            .await
            .expect("send");
    }

    /// Sends one Opus packet with RTP timestamp `timestamp`.
    pub async fn send_packet(&self, payload: bytes::Bytes, timestamp: u32, marker: bool) {
        let sequence = {
            let mut s = self.sequence.lock().unwrap();
            *s = s.wrapping_add(1);
            *s
        };
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::Header {
                version: 2,
                marker,
                payload_type: self.payload_type,
                sequence_number: sequence,
                timestamp,
                ssrc: self.ssrc,
                ..Default::default()
            },
            payload,
        };
        self.track.write_rtp(packet).await.expect("write RTP");
    }

    /// Messages of type `kind` received so far.
    pub fn messages(&self, kind: &str) -> Vec<Value> {
        self.received
            .lock()
            .unwrap()
            .messages
            .iter()
            .filter(|m| m["type"] == kind)
            .cloned()
            .collect()
    }

    /// `DELETE` on the session's resource: the status.
    pub async fn hang_up(&self) -> u16 {
        let mut request = self.http.delete(format!("{}{}", self.base, self.resource));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("DELETE").status().as_u16()
    }
}

/// 16 kHz mono audio as 20 ms Opus packets (320 samples each), and the encoder's
/// lookahead in 48 kHz frames.
pub fn encode_16k(samples: &[f32]) -> Vec<bytes::Bytes> {
    let mut encoder = Encoder::new(SampleRate::Hz16000, Channels::Mono, Application::Voip).unwrap();
    encoder
        .set_bitrate(audiopus::Bitrate::BitsPerSecond(32_000))
        .unwrap();
    let mut out = Vec::new();
    for chunk in samples.chunks(320) {
        let mut frame = chunk.to_vec();
        frame.resize(320, 0.0);
        let mut buf = vec![0u8; 1500];
        let n = encoder.encode_float(&frame, &mut buf).unwrap();
        buf.truncate(n);
        out.push(bytes::Bytes::from(buf));
    }
    out
}

/// 48 kHz mono audio as 20 ms Opus packets.
pub fn encode_48k(samples: &[f32]) -> Vec<bytes::Bytes> {
    let mut encoder =
        Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Audio).unwrap();
    encoder
        .set_bitrate(audiopus::Bitrate::BitsPerSecond(64_000))
        .unwrap();
    let mut out = Vec::new();
    for chunk in samples.chunks(960) {
        let mut frame = chunk.to_vec();
        frame.resize(960, 0.0);
        let mut buf = vec![0u8; 1500];
        let n = encoder.encode_float(&frame, &mut buf).unwrap();
        buf.truncate(n);
        out.push(bytes::Bytes::from(buf));
    }
    out
}

/// The bundled speech clip (16 kHz mono).
pub fn speech_16k() -> Vec<f32> {
    let mut reader = hound::WavReader::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/media/speech.wav"
    ))
    .expect("speech.wav");
    assert_eq!(reader.spec().sample_rate, 16_000);
    reader
        .samples::<i16>()
        .map(|s| f32::from(s.unwrap()) / 32768.0)
        .collect()
}

/// A sine of `hz` at `amplitude`, `seconds` long, at 48 kHz.
pub fn tone_48k(hz: f32, amplitude: f32, seconds: f32) -> Vec<f32> {
    let n = (48_000.0 * seconds) as usize;
    (0..n)
        .map(|i| amplitude * (2.0 * std::f32::consts::PI * hz * i as f32 / 48_000.0).sin())
        .collect()
}

pub fn rms(samples: &[f32]) -> f32 {
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32).sqrt()
}

/// The dominant frequency by counting rising zero crossings.
pub fn frequency(samples: &[f32], rate: f32) -> f32 {
    let crossings = samples
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count();
    crossings as f32 * rate / samples.len() as f32
}

/// A UDP relay between the client and the server that can be cut, so a peer can vanish
/// without closing anything.
pub struct Relay {
    client_side: Arc<tokio::net::UdpSocket>,
    server_side: Arc<tokio::net::UdpSocket>,
    target: Arc<Mutex<Option<SocketAddr>>>,
    cut: Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    pub async fn start() -> Relay {
        let client_side = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let server_side = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let target = Arc::new(Mutex::new(None::<SocketAddr>));
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client_addr = Arc::new(Mutex::new(None::<SocketAddr>));
        {
            let (from, to, target, cut, client_addr) = (
                Arc::clone(&client_side),
                Arc::clone(&server_side),
                Arc::clone(&target),
                Arc::clone(&cut),
                Arc::clone(&client_addr),
            );
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok((n, peer)) = from.recv_from(&mut buf).await {
                    *client_addr.lock().unwrap() = Some(peer);
                    let dest = *target.lock().unwrap();
                    if let (Some(dest), false) =
                        (dest, cut.load(std::sync::atomic::Ordering::SeqCst))
                    {
                        let _ = to.send_to(&buf[..n], dest).await;
                    }
                }
            });
        }
        {
            let (from, to, cut) = (
                Arc::clone(&server_side),
                Arc::clone(&client_side),
                Arc::clone(&cut),
            );
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok((n, _)) = from.recv_from(&mut buf).await {
                    let dest = *client_addr.lock().unwrap();
                    if let (Some(dest), false) =
                        (dest, cut.load(std::sync::atomic::Ordering::SeqCst))
                    {
                        let _ = to.send_to(&buf[..n], dest).await;
                    }
                }
            });
        }
        Relay {
            client_side,
            server_side,
            target,
            cut,
        }
    }

    /// Points the relay at the answer's (first) UDP candidate and rewrites the answer's
    /// candidates to the relay's address.
    pub fn route(&self, answer: &str) -> String {
        let relay_port = self.client_side.local_addr().unwrap().port();
        let mut lines = Vec::new();
        for line in answer.split("\r\n") {
            if let Some(rest) = line.strip_prefix("a=candidate:") {
                let mut fields: Vec<String> = rest.split(' ').map(str::to_owned).collect();
                if fields.len() > 5 && fields[2].eq_ignore_ascii_case("udp") {
                    let addr: SocketAddr = format!("{}:{}", fields[4], fields[5]).parse().unwrap();
                    self.target.lock().unwrap().get_or_insert(addr);
                    fields[4] = "127.0.0.1".to_owned();
                    fields[5] = relay_port.to_string();
                    lines.push(format!("a=candidate:{}", fields.join(" ")));
                    continue;
                }
            }
            lines.push(line.to_owned());
        }
        assert!(
            self.target.lock().unwrap().is_some(),
            "no UDP candidate in {answer}"
        );
        lines.join("\r\n")
    }

    /// Drops every packet from now on.
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
