//! [`RtmpIngestSource`]: one input read by FFmpeg on a thread of its own, reconnecting
//! per the config's policy.

use crate::clock::Clock;
use crate::decode::{Carry, Tracks};
use crate::url::{redacted, Protocol, Target};
use ffmpeg_next as ffmpeg;
use remotemedia_runtime_core::ingestion::{
    IngestConfig, IngestSender, IngestSource, IngestStatus, IngestStatusCell, IngestStream,
    MediaInfo,
};
use remotemedia_runtime_core::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// Items buffered between the reading thread and the reader.
const STREAM_CAPACITY: usize = 16;
/// Opening a live input may take this long by default.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A live input may stay silent this long by default before it counts as lost.
pub(crate) const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the start of the stream may be analysed for its tracks' parameters (FFmpeg's
/// default is 5 s for some formats; 0.5 s finds audio and video of live streams and keeps
/// publish → first data near 0.4 s, docs/PERFORMANCE.md).
const ANALYZE_DURATION_US: &str = "500000";

/// One configured input.
pub(crate) struct RtmpIngestSource {
    pub(crate) config: IngestConfig,
    pub(crate) target: Target,
    pub(crate) status: Arc<IngestStatusCell>,
    pub(crate) watchdog: Mutex<Option<Arc<Watchdog>>>,
}

/// What FFmpeg's interrupt callback looks at: a stop, and the deadline of the blocking
/// call under way (ms since `epoch`; 0: none).
pub(crate) struct Watchdog {
    epoch: Instant,
    stopped: AtomicBool,
    deadline_ms: AtomicU64,
}

impl Watchdog {
    fn new() -> Self {
        Self {
            epoch: Instant::now(),
            stopped: AtomicBool::new(false),
            deadline_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The next blocking call may take `limit` (None: until stopped).
    fn arm(&self, limit: Option<Duration>) {
        let deadline = limit.map_or(0, |l| self.now_ms() + l.as_millis().max(1) as u64);
        self.deadline_ms.store(deadline, Ordering::SeqCst);
    }

    fn expired(&self) -> bool {
        let deadline = self.deadline_ms.load(Ordering::SeqCst);
        deadline != 0 && self.now_ms() >= deadline
    }

    fn interrupted(&self) -> bool {
        self.stopped.load(Ordering::SeqCst) || self.expired()
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for RtmpIngestSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtmpIngestSource")
            .field("url", &redacted(&self.config.url))
            .field("status", &self.status.get())
            .finish()
    }
}

impl RtmpIngestSource {
    fn fail(&self, message: String) -> Error {
        Error::Ingest {
            source_url: redacted(&self.config.url),
            message,
        }
    }
}

#[async_trait::async_trait]
impl IngestSource for RtmpIngestSource {
    async fn start(&self) -> Result<IngestStream> {
        let watchdog = Arc::new(Watchdog::new());
        if let Some(old) = self
            .watchdog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(Arc::clone(&watchdog))
        {
            old.stop();
        }
        self.status.restart();
        self.status.set(IngestStatus::Connecting);
        let (info_tx, info_rx) = oneshot::channel();
        let (sender, stream_parts) = IngestStream::channel(STREAM_CAPACITY, MediaInfo::default());
        let reader = Reader {
            config: self.config.clone(),
            target: self.target.clone(),
            status: Arc::clone(&self.status),
            watchdog: Arc::clone(&watchdog),
            sender,
        };
        let url = redacted(&self.config.url);
        std::thread::Builder::new()
            .name("remotemedia-ingest-rtmp".to_owned())
            .spawn(move || reader.run(info_tx))
            .map_err(|e| self.fail(format!("cannot start the reading thread: {e}")))?;
        // Dropping the stream parts' receiver ends the thread; the stream is rebuilt with
        // the media info once the input is open.
        match info_rx.await {
            Ok(Ok(info)) => Ok(stream_parts.with_media_info(info)),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::Ingest {
                source_url: url,
                message: "the reading thread ended before opening the input".to_owned(),
            }),
        }
    }

    async fn stop(&self) -> Result<()> {
        if let Some(watchdog) = self
            .watchdog
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            watchdog.stop();
        }
        self.status.stop();
        Ok(())
    }

    fn status(&self) -> IngestStatus {
        self.status.get()
    }

    fn status_updates(&self) -> Option<watch::Receiver<IngestStatus>> {
        Some(self.status.subscribe())
    }
}

/// How a connection ended.
enum Ended {
    /// The input ended cleanly (end of file, the publisher finished).
    Clean,
    /// The input was lost (timeout, reset, broken data).
    Lost(String),
    /// Stopped, or the reader went away.
    Stopped,
}

/// The reading thread's state.
struct Reader {
    config: IngestConfig,
    target: Target,
    status: Arc<IngestStatusCell>,
    watchdog: Arc<Watchdog>,
    sender: IngestSender,
}

impl Reader {
    fn fail(&self, message: String) -> Error {
        Error::Ingest {
            source_url: redacted(&self.config.url),
            message,
        }
    }

    fn is_live(&self) -> bool {
        matches!(self.target, Target::Live { .. })
    }

    fn listening(&self) -> bool {
        matches!(self.target, Target::Live { listen: true, .. })
    }

    fn connect_timeout(&self) -> Option<Duration> {
        match self.config.connect_timeout_ms {
            Some(ms) => Some(Duration::from_millis(ms)),
            None if self.listening() => None,
            None => Some(DEFAULT_CONNECT_TIMEOUT),
        }
    }

    fn read_timeout(&self) -> Duration {
        self.config
            .read_timeout_ms
            .map_or(DEFAULT_READ_TIMEOUT, Duration::from_millis)
    }

    fn run(self, info_tx: oneshot::Sender<Result<MediaInfo>>) {
        let url = redacted(&self.config.url);
        let status = Arc::clone(&self.status);
        let sender = self.sender.clone();
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.read_all(info_tx)))
                .unwrap_or_else(|payload| {
                    let what = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_owned());
                    Err(Error::Ingest {
                        source_url: url,
                        message: format!("the reader failed ({what})"),
                    })
                });
        match outcome {
            Ok(()) => status.set(IngestStatus::Disconnected),
            Err(error) => {
                status.set(IngestStatus::Error(error.to_string()));
                sender.blocking_fail(error);
            }
        }
    }

    /// Connects (and reconnects) and delivers until the end. Errors before the first
    /// connection go to `info_tx`; later ones are returned.
    fn read_all(&self, info_tx: oneshot::Sender<Result<MediaInfo>>) -> Result<()> {
        let policy = &self.config.reconnect;
        let mut info_tx = Some(info_tx);
        let mut clock = Clock::default();
        let mut carry = Carry::default();
        let mut attempt = 0u32;
        // Why the last connection ended (None: cleanly), and why the last attempt to get
        // it back failed.
        let mut lost: Option<Option<String>> = None;
        let mut last_failure: Option<String> = None;
        loop {
            let opened = self.open();
            let ended = match opened {
                Ok(mut input) => {
                    let prepared = Tracks::open(&input, &self.config).map_err(|why| self.fail(why));
                    match prepared {
                        Ok((mut tracks, found)) => {
                            attempt = 0;
                            lost = None;
                            last_failure = None;
                            if let Some(tx) = info_tx.take() {
                                let info = MediaInfo {
                                    format: Some(found.format),
                                    tracks: found.tracks,
                                };
                                if tx.send(Ok(info)).is_err() {
                                    return Ok(());
                                }
                            }
                            self.status.set(IngestStatus::Connected);
                            let start = unsafe { (*input.as_ptr()).start_time };
                            clock.begin_connection(
                                (start != ffmpeg::ffi::AV_NOPTS_VALUE).then_some(start),
                            );
                            self.pump(&mut input, &mut tracks, &mut clock, &mut carry)
                        }
                        Err(error) if info_tx.is_some() => {
                            // The input is there but cannot be delivered: not a reason to
                            // try again.
                            if let Some(tx) = info_tx.take() {
                                let _ = tx.send(Err(error));
                            }
                            return Ok(());
                        }
                        Err(error) => return Err(error),
                    }
                }
                Err(why) => {
                    if self.watchdog.is_stopped() || self.sender.is_closed() {
                        Ended::Stopped
                    } else {
                        Ended::Lost(why)
                    }
                }
            };
            match ended {
                Ended::Stopped => {
                    if let Some(tx) = info_tx.take() {
                        let _ =
                            tx.send(Err(self.fail("stopped before the input opened".to_owned())));
                    }
                    return self.finish(&mut carry);
                }
                Ended::Clean if !self.is_live() => return self.finish(&mut carry),
                // A connection that was up ended: cleanly, or lost.
                Ended::Clean if lost.is_none() && attempt == 0 && info_tx.is_none() => {
                    lost = Some(None)
                }
                Ended::Lost(why) if lost.is_none() && info_tx.is_none() && attempt == 0 => {
                    lost = Some(Some(why))
                }
                Ended::Clean => last_failure = Some("the stream ended at once".to_owned()),
                Ended::Lost(why) => last_failure = Some(why),
            }
            attempt += 1;
            if attempt > policy.max_attempts {
                let why = match (&lost, last_failure.take()) {
                    // A live stream that ended cleanly and did not come back ends cleanly.
                    (Some(None), _) => return self.finish(&mut carry),
                    (Some(Some(loss)), None) => loss.clone(),
                    (Some(Some(loss)), Some(failure)) => format!(
                        "lost the input ({loss}); {} reconnection attempt(s) failed, the last: {failure}",
                        policy.max_attempts
                    ),
                    (None, failure) => {
                        failure.unwrap_or_else(|| "the input could not be opened".to_owned())
                    }
                };
                let error = self.fail(why);
                match info_tx.take() {
                    Some(tx) => {
                        let _ = tx.send(Err(error));
                        return Ok(());
                    }
                    None => {
                        self.finish(&mut carry)?;
                        return Err(error);
                    }
                }
            }
            self.status.set(IngestStatus::Reconnecting {
                attempt,
                max: policy.max_attempts,
            });
            let delay = policy
                .initial_delay_ms
                .saturating_mul(1u64 << (attempt - 1).min(20))
                .min(policy.max_delay_ms.max(policy.initial_delay_ms));
            tracing::info!(
                url = %redacted(&self.config.url),
                attempt,
                max = policy.max_attempts,
                delay_ms = delay,
                "ingest input lost ({}); reconnecting",
                last_failure
                    .as_deref()
                    .or(lost.as_ref().and_then(|l| l.as_deref()))
                    .unwrap_or("the stream ended")
            );
            if !self.pause(Duration::from_millis(delay)) {
                return self.finish(&mut carry);
            }
        }
    }

    /// Sends what the audio conversions still hold.
    fn finish(&self, carry: &mut Carry) -> Result<()> {
        let tail = carry.finish().map_err(|why| self.fail(why))?;
        for item in tail {
            if !self.sender.blocking_send(item) {
                break;
            }
        }
        Ok(())
    }

    /// Sleeps `delay` unless stopped first; false when stopped.
    fn pause(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        while Instant::now() < until {
            if self.watchdog.is_stopped() || self.sender.is_closed() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
        }
        !self.watchdog.is_stopped()
    }

    /// The FFmpeg options for this input.
    fn options(&self) -> ffmpeg::Dictionary<'static> {
        let mut options = ffmpeg::Dictionary::new();
        options.set("analyzeduration", ANALYZE_DURATION_US);
        // Timestamps are taken from the stream, never from a frame rate: no need to read
        // 20 frames to guess one (that alone cost 0.4 s of start-up on live inputs).
        options.set("fpsprobesize", "0");
        let Target::Live {
            protocol,
            listen,
            host,
            ..
        } = &self.target
        else {
            return options;
        };
        let read_us = self.read_timeout().as_micros().to_string();
        let listen_s = self
            .connect_timeout()
            .map_or_else(|| "-1".to_owned(), |t| t.as_secs().max(1).to_string());
        options.set("rw_timeout", &read_us);
        match protocol {
            Protocol::Rtmp | Protocol::Rtmps => {
                if *listen {
                    options.set("listen", "1");
                    options.set("timeout", &listen_s);
                }
            }
            Protocol::Rtsp | Protocol::Rtsps => {
                options.set("rtsp_transport", "tcp");
                if *listen {
                    options.set("rtsp_flags", "listen");
                    options.set("listen_timeout", &listen_s);
                } else {
                    options.set("timeout", &read_us);
                }
            }
            Protocol::Udp | Protocol::Rtp => {
                options.set("timeout", &read_us);
                options.set("overrun_nonfatal", "1");
                options.set("fifo_size", "50000");
                // Bind the address the URL names, not every interface.
                let multicast = host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_multicast());
                if !host.is_empty() && !multicast {
                    options.set("localaddr", host);
                }
            }
            Protocol::Srt => {
                options.set("timeout", &read_us);
                if *listen {
                    options.set("mode", "listener");
                } else if let Some(timeout) = self.connect_timeout() {
                    options.set("connect_timeout", &timeout.as_millis().to_string());
                }
            }
        }
        options
    }

    /// Opens the input within the connect timeout.
    fn open(&self) -> std::result::Result<ffmpeg::format::context::Input, String> {
        let (path, what) = match &self.target {
            Target::Live { url, listen, .. } => (
                url.clone(),
                if *listen {
                    "waiting for the publisher"
                } else {
                    "connecting"
                },
            ),
            Target::File(path) => (path.display().to_string(), "opening the file"),
        };
        let limit = if self.is_live() {
            self.connect_timeout()
        } else {
            None
        };
        self.watchdog.arm(limit);
        let watchdog = Arc::clone(&self.watchdog);
        // A reader that went away (the stream dropped, or `start` abandoned) ends every
        // wait too: nothing is left listening on a port for nobody.
        let sender = self.sender.clone();
        let opened = ffmpeg::format::input_with_interrupt_and_dictionary(
            &path,
            move || watchdog.interrupted() || sender.is_closed(),
            self.options(),
        );
        // FFmpeg reports an interrupted call with whatever error its layer makes of it.
        let timed_out = self.watchdog.expired();
        self.watchdog.arm(None);
        opened.map_err(|e| {
            if self.watchdog.is_stopped() {
                "stopped".to_owned()
            } else if timed_out {
                format!(
                    "timed out after {:.1} s {what}",
                    limit.unwrap_or_default().as_secs_f64()
                )
            } else {
                describe(&e, what)
            }
        })
    }

    /// Reads and decodes until the connection ends.
    fn pump(
        &self,
        input: &mut ffmpeg::format::context::Input,
        tracks: &mut Tracks,
        clock: &mut Clock,
        carry: &mut Carry,
    ) -> Ended {
        let read_timeout = self.read_timeout();
        let live = self.is_live();
        let mut packet = ffmpeg::Packet::empty();
        let mut out = Vec::new();
        let ended = loop {
            if self.watchdog.is_stopped() {
                break Ended::Stopped;
            }
            self.watchdog.arm(live.then_some(read_timeout));
            let read = packet.read(input);
            let timed_out = self.watchdog.expired();
            self.watchdog.arm(None);
            match read {
                Ok(()) => {}
                Err(_) if self.watchdog.is_stopped() || self.sender.is_closed() => {
                    break Ended::Stopped
                }
                Err(_) if timed_out => {
                    break Ended::Lost(format!("no data for {:.1} s", read_timeout.as_secs_f64()))
                }
                Err(ffmpeg::Error::Eof) => break Ended::Clean,
                Err(e) => break Ended::Lost(describe(&e, "reading")),
            }
            if let Err(why) = tracks.decode(&packet, &self.config, clock, carry, &mut out) {
                break Ended::Lost(why);
            }
            for item in out.drain(..) {
                if !self.sender.blocking_send(item) {
                    return Ended::Stopped;
                }
            }
        };
        // What the decoders still hold belongs to this connection.
        if let Err(why) = tracks.drain(&self.config, clock, carry, &mut out) {
            tracing::debug!("draining the decoders: {why}");
        }
        for item in out.drain(..) {
            if !self.sender.blocking_send(item) {
                return Ended::Stopped;
            }
        }
        ended
    }
}

/// An FFmpeg error as a cause a user can act on.
fn describe(error: &ffmpeg::Error, what: &str) -> String {
    let text = error.to_string();
    match error {
        ffmpeg::Error::InvalidData => {
            format!("{what}: the data is not a media stream FFmpeg can read ({text})")
        }
        ffmpeg::Error::StreamNotFound | ffmpeg::Error::HttpNotFound => {
            format!("{what}: the server has no such stream ({text})")
        }
        _ => format!("{what}: {text}"),
    }
}
