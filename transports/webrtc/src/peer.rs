//! One peer connection = one pipeline session.
//!
//! Tasks per peer, all ended by [`Peer::end`]:
//! - **inbound audio** (per remote track): RTP → [`Reorder`] → [`OpusIn`] → a bounded queue
//!   → the session's input;
//! - **data channel**: the peer's messages → session inputs, barge-in, ping, end;
//! - **outputs**: the session's outputs → the outgoing audio queue or data-channel messages;
//! - **pacer**: one 20 ms Opus packet at a time on the outgoing track, at real-time pace;
//! - **watchdog**: the connect deadline and the idle timeout.

use crate::audio_in::{OpusIn, Reorder};
use crate::audio_out::{OpusOut, FRAME, RATE};
use crate::messages::{self, PeerMessage};
use crate::Limits;
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::transport::{StreamSession, TransportData};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Notify};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
};

/// Decoded input frames waiting for the session (1 s of 20 ms frames): when the pipeline
/// falls further behind, frames are dropped, counted and reported to the peer.
const INPUT_QUEUE: usize = 50;
/// How far ahead of its slot an outgoing packet may leave (see `pacer_task`).
const EARLY: Duration = Duration::from_millis(10);
/// How long a packet after a hole waits for the missing one.
const REORDER_HOLD: Duration = Duration::from_millis(60);

/// Why a peer ended, as the `end` message and the log say it.
#[derive(Debug, Clone)]
pub(crate) struct EndReason {
    pub code: &'static str,
    pub message: String,
}

impl EndReason {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Called once when a peer has ended and released its session.
pub(crate) type OnEnd = Box<dyn FnOnce(&Peer, &EndReason) + Send>;

/// What the server sees of a peer.
pub(crate) struct Peer {
    pub id: String,
    pub pipeline: String,
    pub pc: Arc<dyn PeerConnection>,
    pub session: Arc<dyn StreamSession>,
    limits: Limits,
    started: Instant,
    /// Milliseconds since `started` of the peer's last packet or message.
    last_activity_ms: AtomicU64,
    connected: AtomicBool,
    ended: AtomicBool,
    pub end_notify: Notify,
    channel: Mutex<Option<Arc<dyn DataChannel>>>,
    audio: Mutex<OpusOut>,
    audio_ready: Notify,
    outgoing: Mutex<Option<(Arc<TrackLocalStaticRTP>, u8, u32)>>,
    gathered: Notify,
    gathering_done: AtomicBool,
    on_end: Mutex<Option<OnEnd>>,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("id", &self.id)
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

/// The event handler webrtc-rs calls; it only holds the peer once it exists.
#[derive(Default)]
pub(crate) struct Handler {
    pub peer: std::sync::OnceLock<std::sync::Weak<Peer>>,
    /// Set before the peer exists: gathering can finish during negotiation.
    gathered_early: AtomicBool,
}

impl Handler {
    fn peer(&self) -> Option<Arc<Peer>> {
        self.peer.get().and_then(std::sync::Weak::upgrade)
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered_early.store(true, Ordering::SeqCst);
            if let Some(peer) = self.peer() {
                peer.gathering_done.store(true, Ordering::SeqCst);
                peer.gathered.notify_waiters();
            }
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let Some(peer) = self.peer() else { return };
        match state {
            RTCPeerConnectionState::Connected => {
                peer.connected.store(true, Ordering::SeqCst);
                peer.touch();
            }
            RTCPeerConnectionState::Failed => peer.end(EndReason::new(
                "peer_gone",
                "the peer stopped answering (no ICE consent): connection failed",
            )),
            RTCPeerConnectionState::Closed => peer.end(EndReason::new(
                "peer_closed",
                "the peer closed the connection",
            )),
            _ => {}
        }
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        let Some(peer) = self.peer() else { return };
        let first = {
            let mut slot = peer.channel.lock().expect("channel lock");
            let first = slot.is_none();
            if first {
                *slot = Some(Arc::clone(&channel));
            }
            first
        };
        if !first {
            // One channel per peer: others are closed.
            let _ = channel.close().await;
            return;
        }
        tokio::spawn(data_channel_task(peer, channel));
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let Some(peer) = self.peer() else { return };
        tokio::spawn(inbound_audio_task(peer, track));
    }
}

impl Peer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: String,
        pipeline: String,
        pc: Arc<dyn PeerConnection>,
        session: Arc<dyn StreamSession>,
        limits: Limits,
        handler: &Handler,
        on_end: OnEnd,
    ) -> Arc<Self> {
        let peer = Arc::new(Self {
            id,
            pipeline,
            pc,
            session,
            limits,
            started: Instant::now(),
            last_activity_ms: AtomicU64::new(0),
            connected: AtomicBool::new(false),
            ended: AtomicBool::new(false),
            end_notify: Notify::new(),
            channel: Mutex::new(None),
            audio: Mutex::new(OpusOut::new()),
            audio_ready: Notify::new(),
            outgoing: Mutex::new(None),
            gathered: Notify::new(),
            gathering_done: AtomicBool::new(handler.gathered_early.load(Ordering::SeqCst)),
            on_end: Mutex::new(Some(on_end)),
        });
        let _ = handler.peer.set(Arc::downgrade(&peer));
        peer
    }

    /// Waits (at most `within`) until ICE gathering is complete.
    pub(crate) async fn gathering_complete(&self, within: Duration) {
        let wait = async {
            loop {
                let notified = self.gathered.notified();
                if self.gathering_done.load(Ordering::SeqCst) {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(within, wait).await;
    }

    /// Starts the tasks that run the peer, with the outgoing track (and its payload type
    /// and SSRC) if the peer receives audio.
    pub(crate) fn start(self: &Arc<Self>, outgoing: Option<(Arc<TrackLocalStaticRTP>, u8, u32)>) {
        *self.outgoing.lock().expect("outgoing lock") = outgoing;
        tokio::spawn(outputs_task(Arc::clone(self)));
        tokio::spawn(pacer_task(Arc::clone(self)));
        tokio::spawn(watchdog_task(Arc::clone(self)));
    }

    pub(crate) fn is_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_activity_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn channel(&self) -> Option<Arc<dyn DataChannel>> {
        self.channel.lock().expect("channel lock").clone()
    }

    /// Sends one JSON message on the data channel (if open); a message over the size
    /// limit is replaced by an error saying so.
    async fn send(&self, message: &Value) {
        let Some(channel) = self.channel() else {
            return;
        };
        let mut text = message.to_string();
        if text.len() > self.limits.max_message_bytes {
            text = messages::error(
                "message_too_large",
                &format!(
                    "a {} message of {} bytes exceeds the {}-byte message limit",
                    message["type"].as_str().unwrap_or("server"),
                    text.len(),
                    self.limits.max_message_bytes
                ),
                message["node_id"].as_str(),
            )
            .to_string();
        }
        if let Err(e) = channel.send_text(&text).await {
            tracing::debug!(peer = %self.id, "data channel send failed: {e}");
        }
    }

    /// Ends the peer once: tells it why (if its channel is open), closes the connection,
    /// cancels the session (or lets a finished one go) and frees its place.
    pub(crate) fn end(self: &Arc<Self>, reason: EndReason) {
        if self.ended.swap(true, Ordering::SeqCst) {
            return;
        }
        self.end_notify.notify_waiters();
        // A stored permit: the pacer sees it even if it was not waiting yet.
        self.audio_ready.notify_one();
        let peer = Arc::clone(self);
        tokio::spawn(async move {
            tracing::info!(peer = %peer.id, pipeline = %peer.pipeline, code = reason.code, "peer ended: {}", reason.message);
            if let Some(channel) = peer.channel() {
                let _ = channel
                    .send_text(
                        &json!({"type": "end", "code": reason.code, "message": reason.message})
                            .to_string(),
                    )
                    .await;
                // Give the last messages up to a second to leave.
                let deadline = Instant::now() + Duration::from_secs(1);
                while Instant::now() < deadline
                    && channel.outstanding_bytes().await.unwrap_or(0) > 0
                    && !matches!(reason.code, "peer_gone" | "peer_closed" | "hung_up")
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            peer.session.cancel();
            let _ = peer.pc.close().await;
            peer.session.wait_finished().await;
            let on_end = peer.on_end.lock().expect("on_end lock").take();
            if let Some(on_end) = on_end {
                on_end(&peer, &reason);
            }
        });
    }

    fn clear_audio(&self) -> usize {
        self.audio.lock().expect("audio lock").clear()
    }
}

/// Decodes one remote track into session inputs.
async fn inbound_audio_task(peer: Arc<Peer>, track: Arc<dyn TrackRemote>) {
    let (tx, mut rx) = mpsc::channel::<TransportData>(INPUT_QUEUE);
    // The session's input side: waits under backpressure, apart from the RTP reader.
    let feeder = {
        let peer = Arc::clone(&peer);
        tokio::spawn(async move {
            while let Some(item) = rx.recv().await {
                if let Err(e) = peer.session.send_input(item).await {
                    tracing::debug!(peer = %peer.id, "audio input refused: {e}");
                    break;
                }
            }
        })
    };
    let mut inbound = Inbound {
        reorder: Reorder::new(REORDER_HOLD),
        decoder: OpusIn::new("audio:0"),
        decoded: Vec::new(),
        dropped: 0,
        reported_drop: None,
        bad_packets: 0,
    };
    loop {
        let event = match inbound.reorder.deadline() {
            Some(at) => {
                let at = tokio::time::Instant::from_std(at);
                match tokio::time::timeout_at(at, track.poll()).await {
                    Ok(event) => event,
                    Err(_) => {
                        // A hole waited long enough: what follows it is decoded now.
                        for packet in inbound.reorder.poll(Instant::now()) {
                            inbound.decode(packet);
                        }
                        if !inbound.forward(&peer, &tx).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            None => track.poll().await,
        };
        let Some(event) = event else { break };
        if peer.is_ended() {
            break;
        }
        if let TrackRemoteEvent::OnRtpPacket(packet) = event {
            peer.touch();
            let ordered = inbound.reorder.push(
                packet.header.sequence_number,
                packet.header.timestamp,
                packet.payload,
                Instant::now(),
            );
            for packet in ordered {
                inbound.decode(packet);
            }
            if !inbound.forward(&peer, &tx).await {
                break;
            }
        }
    }
    drop(tx);
    let _ = feeder.await;
}

/// The state of one inbound track.
struct Inbound {
    reorder: Reorder,
    decoder: OpusIn,
    decoded: Vec<remotemedia_runtime_core::data::RuntimeData>,
    dropped: u64,
    reported_drop: Option<Instant>,
    bad_packets: u64,
}

impl Inbound {
    fn decode(&mut self, packet: crate::audio_in::Ordered) {
        if let Err(e) = self.decoder.decode(packet, &mut self.decoded) {
            self.bad_packets += 1;
            tracing::debug!("inbound audio: {e}");
        }
    }

    /// Hands the decoded frames to the session's queue; false once the session is gone.
    async fn forward(&mut self, peer: &Peer, tx: &mpsc::Sender<TransportData>) -> bool {
        for frame in self.decoded.drain(..) {
            match tx.try_send(TransportData::new(frame)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => self.dropped += 1,
                Err(mpsc::error::TrySendError::Closed(_)) => return false,
            }
        }
        let due = self
            .reported_drop
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
        if self.dropped > 0 && due {
            self.reported_drop = Some(Instant::now());
            peer.send(&json!({
                "type": "warning",
                "code": "input_overflow",
                "message": format!(
                    "the pipeline is behind real time: {} audio frame(s) dropped so far",
                    self.dropped
                ),
            }))
            .await;
        }
        if self.bad_packets == 1 {
            self.bad_packets += 1; // said once
            peer.send(&messages::error(
                "bad_audio",
                "an undecodable Opus packet was skipped",
                None,
            ))
            .await;
        }
        true
    }
}

/// The peer's data-channel messages.
async fn data_channel_task(peer: Arc<Peer>, channel: Arc<dyn DataChannel>) {
    while let Some(event) = channel.poll().await {
        if peer.is_ended() {
            break;
        }
        match event {
            DataChannelEvent::OnOpen => {
                peer.send(&json!({
                    "type": "ready",
                    "session_id": peer.session.session_id(),
                    "pipeline": peer.pipeline,
                    "peer_id": peer.id,
                }))
                .await;
            }
            DataChannelEvent::OnMessage(message) => {
                peer.touch();
                if message.data.len() > peer.limits.max_message_bytes {
                    peer.send(&messages::error(
                        "message_too_large",
                        &format!(
                            "a message of {} bytes exceeds the {}-byte limit; it was not used",
                            message.data.len(),
                            peer.limits.max_message_bytes
                        ),
                        None,
                    ))
                    .await;
                    continue;
                }
                let parsed = if message.is_string {
                    std::str::from_utf8(&message.data)
                        .map_err(|_| "a text message must be UTF-8".to_owned())
                        .and_then(PeerMessage::parse)
                } else {
                    Err("binary messages are not accepted; send JSON text messages".to_owned())
                };
                match parsed {
                    Err(e) => peer.send(&messages::error("bad_message", &e, None)).await,
                    Ok(PeerMessage::BargeIn) => {
                        let frames = peer.clear_audio();
                        peer.send(&json!({"type": "barge_in", "source": "peer", "cleared_ms": frames as u64 * 1000 / u64::from(RATE)}))
                            .await;
                    }
                    Ok(PeerMessage::Ping { id }) => {
                        peer.send(&json!({"type": "pong", "id": id})).await;
                    }
                    Ok(PeerMessage::End) => {
                        let _ = peer.session.close().await;
                    }
                    Ok(message) => {
                        if let Some(input) = messages::input(message) {
                            if let Err(e) = peer.session.send_input(input).await {
                                peer.send(&messages::error(
                                    "input_refused",
                                    &e.to_string(),
                                    e.node_id(),
                                ))
                                .await;
                            }
                        }
                    }
                }
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
}

/// The session's outputs: audio to the outgoing queue, the rest as messages.
async fn outputs_task(peer: Arc<Peer>) {
    let mut told_no_track = false;
    loop {
        let next = tokio::select! {
            next = peer.session.next_output() => next,
            _ = peer.end_notify.notified() => return,
        };
        match next {
            Ok(Some(output)) => {
                if messages::is_barge_in(&output.data) {
                    let frames = peer.clear_audio();
                    peer.send(&json!({"type": "barge_in", "source": "pipeline", "node_id": output.node_id(), "cleared_ms": frames as u64 * 1000 / u64::from(RATE)}))
                        .await;
                } else if matches!(output.data, RuntimeData::Audio { .. }) {
                    if peer.outgoing.lock().expect("outgoing lock").is_none() {
                        if !told_no_track {
                            told_no_track = true;
                            peer.send(&json!({
                                "type": "warning",
                                "code": "no_audio_track",
                                "message": "audio outputs are not sent: the offer had no audio section",
                                "node_id": output.node_id(),
                            }))
                            .await;
                        }
                        continue;
                    }
                    let pushed = peer.audio.lock().expect("audio lock").push(output.data);
                    match pushed {
                        Ok(()) => peer.audio_ready.notify_one(),
                        Err(e) => {
                            peer.send(&messages::error("bad_audio", &e, output.node_id.as_deref()))
                                .await
                        }
                    }
                } else {
                    peer.send(&messages::output(&output)).await;
                }
            }
            Ok(None) => {
                // Let queued audio play out before the peer ends.
                wait_audio_drained(&peer).await;
                peer.end(EndReason::new("finished", "the pipeline finished"));
                return;
            }
            Err(e) => {
                let node = e.node_id().map(str::to_owned);
                peer.send(&messages::error(
                    "node_failed",
                    &e.to_string(),
                    node.as_deref(),
                ))
                .await;
                peer.end(EndReason::new("node_failed", e.to_string()));
                return;
            }
        }
    }
}

async fn wait_audio_drained(peer: &Peer) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && !peer.is_ended() {
        if peer.audio.lock().expect("audio lock").queued_frames() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends the outgoing audio at real-time pace: when the track was idle, a packet as soon as
/// a frame is ready; then one per 20 ms while frames are queued. A partial frame (the end
/// of a reply) is padded with silence once no more audio came for 20 ms. After a pause the
/// RTP clock advances by the pause, and the first packet has the marker bit.
async fn pacer_task(peer: Arc<Peer>) {
    let Some((track, payload_type, ssrc)) = peer.outgoing.lock().expect("outgoing lock").clone()
    else {
        return;
    };
    let frame = Duration::from_millis(20);
    let mut sequence: u16 = rand_u16();
    let mut timestamp: u32 = u32::from(rand_u16()) << 16;
    // When the next packet is due (the end of the last one's audio), while talking.
    let mut next_due: Option<tokio::time::Instant> = None;
    let mut partial_since: Option<tokio::time::Instant> = None;
    loop {
        if peer.is_ended() {
            return;
        }
        let now = tokio::time::Instant::now();
        // A packet may leave up to EARLY before its slot: the schedule is anchored at the
        // first packet of a talk spurt, and a live stream's frames arrive with jitter
        // around it; waiting for the slot would add that jitter as latency. The long-run
        // rate stays one packet per 20 ms (each slot is the previous one + 20 ms).
        let may_send = next_due.is_none_or(|due| now + EARLY >= due);
        let (packet, queued) = {
            let mut audio = peer.audio.lock().expect("audio lock");
            let mut queued = audio.queued_frames();
            if queued < FRAME {
                // The audio paused: what the resampler holds is due.
                audio.flush_resampler();
                queued = audio.queued_frames();
            }
            if queued > 0 && queued < FRAME {
                partial_since.get_or_insert(now);
            } else {
                partial_since = None;
            }
            let pad = partial_since.is_some_and(|since| now >= since + frame);
            let packet = if may_send {
                audio.next_packet(pad)
            } else {
                Ok(None)
            };
            (packet, audio.queued_frames().min(queued))
        };
        match packet {
            Ok(Some(payload)) => {
                partial_since = None;
                // Late by more than a frame (or idle): a new talk spurt on a fresh schedule.
                let start_of_talk = next_due.is_none_or(|due| now > due + frame);
                if start_of_talk {
                    if let Some(due) = next_due {
                        let silent = now.duration_since(due).as_micros() as u64;
                        timestamp =
                            timestamp.wrapping_add((silent * u64::from(RATE) / 1_000_000) as u32);
                    }
                }
                let packet = rtc::rtp::Packet {
                    header: rtc::rtp::Header {
                        version: 2,
                        marker: start_of_talk,
                        payload_type,
                        sequence_number: sequence,
                        timestamp,
                        ssrc,
                        ..Default::default()
                    },
                    payload,
                };
                sequence = sequence.wrapping_add(1);
                timestamp = timestamp.wrapping_add(FRAME as u32);
                if let Err(e) = track.write_rtp(packet).await {
                    tracing::debug!(peer = %peer.id, "outgoing audio: {e}");
                }
                let base = match next_due {
                    Some(due) if !start_of_talk => due,
                    _ => now,
                };
                next_due = Some(base + frame);
                continue;
            }
            Ok(None) => {}
            Err(e) => peer.send(&messages::error("bad_audio", &e, None)).await,
        }
        // Sleep until the next packet is due, a partial frame is to be padded, or more
        // audio arrives.
        let wake = if queued >= FRAME {
            next_due.map(|due| due - EARLY)
        } else {
            partial_since.map(|since| since + frame)
        };
        match wake {
            Some(at) if at > now => {
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = peer.audio_ready.notified(), if queued < FRAME => {}
                    _ = peer.end_notify.notified() => return,
                }
            }
            Some(_) => tokio::task::yield_now().await,
            None => {
                tokio::select! {
                    _ = peer.audio_ready.notified() => {}
                    _ = peer.end_notify.notified() => return,
                }
            }
        }
    }
}

/// A random starting point for the RTP sequence number and clock (RFC 3550 §5.1).
fn rand_u16() -> u16 {
    let mut bytes = [0u8; 2];
    let _ = getrandom::fill(&mut bytes);
    u16::from_be_bytes(bytes)
}

/// Ends a peer that never connected, or that sent nothing for the idle timeout.
async fn watchdog_task(peer: Arc<Peer>) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = peer.end_notify.notified() => return,
        }
        if peer.is_ended() {
            return;
        }
        let age = peer.started.elapsed();
        if !peer.connected.load(Ordering::SeqCst) {
            if age >= peer.limits.connect_timeout {
                peer.end(EndReason::new(
                    "connect_timeout",
                    format!(
                        "the peer did not connect within {} s of the answer",
                        peer.limits.connect_timeout.as_secs()
                    ),
                ));
                return;
            }
            continue;
        }
        let last = Duration::from_millis(peer.last_activity_ms.load(Ordering::Relaxed));
        if age.saturating_sub(last) >= peer.limits.idle_timeout {
            peer.end(EndReason::new(
                "idle_timeout",
                format!(
                    "nothing received from the peer for {} s",
                    peer.limits.idle_timeout.as_secs()
                ),
            ));
            return;
        }
    }
}
