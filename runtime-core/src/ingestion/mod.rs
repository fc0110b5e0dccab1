//! Media ingestion: turn a URL or path into a stream of [`RuntimeData`].
//!
//! - [`IngestPlugin`] — a factory for one family of sources, claiming URL schemes
//!   (`"file://"`, `"rtsp://"`, ...).
//! - [`IngestSource`] — one configured source; [`start`](IngestSource::start) returns an
//!   [`IngestStream`] you read with `recv().await`.
//! - [`IngestConfig`] — the URL plus what to deliver: audio rate and channels, which
//!   tracks, how to reconnect.
//! - [`global_ingest_registry`] — the shared plugin table. With the `native` feature the
//!   built-in [`FileIngestPlugin`] is registered automatically (`file://`, bare paths, `-`
//!   for stdin).
//!
//! ```no_run
//! use remotemedia_runtime_core::data::RuntimeData;
//! use remotemedia_runtime_core::ingestion::{global_ingest_registry, IngestConfig};
//!
//! # async fn run() -> remotemedia_runtime_core::Result<()> {
//! let config = IngestConfig {
//!     audio_sample_rate: Some(16_000),
//!     audio_channels: Some(1),
//!     ..IngestConfig::from_url("examples/media/speech.wav")
//! };
//! let source = global_ingest_registry().create_from_uri(&config)?;
//! let mut stream = source.start().await?;
//! while let Some(data) = stream.recv().await {
//!     if let RuntimeData::Audio { samples, stream_id, .. } = data {
//!         println!("{:?}: {} samples", stream_id, samples.len());
//!     }
//! }
//! if let Some(error) = stream.error() {
//!     eprintln!("ingest failed: {error}");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Writing a plugin
//!
//! Implement [`IngestPlugin`] (`name`, `schemes`, `create`, optionally `validate`) and
//! [`IngestSource`]; in `start`, make a channel with [`IngestStream::channel`], hand the
//! [`IngestSender`] to whatever produces data (a task or a thread), and return the stream.
//! Send `Err` through the sender to report a failure mid-stream; dropping the sender ends
//! the stream. Register with `global_ingest_registry().register(Arc::new(MyPlugin))`.

mod convert;
#[cfg(feature = "native")]
mod file;
#[cfg(feature = "native")]
mod integrity;

pub use convert::AudioConversion;
#[cfg(feature = "native")]
pub use file::FileIngestPlugin;

use crate::data::{PixelFormat, RuntimeData};
use crate::{Error, Result};
use async_trait::async_trait;
use std::sync::{Arc, OnceLock, RwLock};
use tokio::sync::{mpsc, watch};

/// Which tracks of a multi-track source to deliver. Tracks are tagged `"audio:0"`,
/// `"audio:1"`, `"video:0"`, `"subtitle:0"`, ... in the order the container lists them
/// (numbered per kind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TrackSelection {
    /// The first audio track and the first video track.
    #[default]
    FirstAudioVideo,
    /// Every track.
    All,
    /// The tracks matching any of these selectors, each `KIND` (every track of the kind:
    /// `audio`, `video`, `subtitle`), `KIND:INDEX` (one track: `audio:1`) or `KIND:LANGUAGE`
    /// (the tracks of the kind whose language tag is LANGUAGE, e.g. `audio:eng`, compared
    /// without case). See [`TrackSelection::check`].
    Specific(Vec<String>),
}

/// The live-stream schemes the `ingest-rtmp` adapter (`remotemedia-ingest-rtmp`) reads,
/// named in the error for such a URL when no plugin is registered for it.
pub const LIVE_SCHEMES: [&str; 7] = [
    "rtmp://", "rtmps://", "rtsp://", "rtsps://", "udp://", "srt://", "rtp://",
];

/// Extensions of the video containers the `ingest-rtmp` adapter decodes; the file plugin
/// names the adapter when such a file holds video.
pub const VIDEO_FILE_EXTENSIONS: [&str; 10] = [
    "mp4", "m4v", "mkv", "webm", "mov", "ts", "m2ts", "mts", "flv", "avi",
];

/// The kinds of tracks a source delivers.
pub const TRACK_KINDS: [&str; 3] = ["audio", "video", "subtitle"];

impl TrackSelection {
    /// A [`TrackSelection::Specific`] of these selectors.
    pub fn specific<S: Into<String>>(selectors: impl IntoIterator<Item = S>) -> Self {
        TrackSelection::Specific(selectors.into_iter().map(Into::into).collect())
    }

    /// Checks every selector of a `Specific` selection: an unknown kind or an empty part is
    /// an error naming the selector.
    pub fn check(&self) -> Result<()> {
        let TrackSelection::Specific(selectors) = self else {
            return Ok(());
        };
        if selectors.is_empty() {
            return Err(Error::InvalidData(
                "the track selection lists no track".to_owned(),
            ));
        }
        for selector in selectors {
            let (kind, rest) = match selector.split_once(':') {
                Some((kind, rest)) => (kind, Some(rest)),
                None => (selector.as_str(), None),
            };
            let bad = |why: &str| {
                Error::InvalidData(format!(
                    "track selector '{selector}' {why} (expected KIND, KIND:INDEX or KIND:LANGUAGE with KIND one of {}, e.g. audio:1 or audio:eng)",
                    TRACK_KINDS.join(", ")
                ))
            };
            if !TRACK_KINDS.contains(&kind) {
                return Err(bad("has an unknown kind"));
            }
            if let Some(rest) = rest {
                let index = rest.parse::<usize>().is_ok();
                let language = !rest.is_empty()
                    && rest.len() <= 16
                    && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
                if !index && !language {
                    return Err(bad("has neither an index nor a language after the colon"));
                }
            }
        }
        Ok(())
    }

    /// Whether the track tagged `stream_id` (`index` among tracks of its kind) is selected,
    /// for a track with no language tag.
    pub fn selects(&self, stream_id: &str, index_of_kind: usize) -> bool {
        self.selects_track(stream_id, index_of_kind, None)
    }

    /// Whether the track tagged `stream_id` (`index` among tracks of its kind, with the
    /// language tag `language`) is selected.
    pub fn selects_track(
        &self,
        stream_id: &str,
        index_of_kind: usize,
        language: Option<&str>,
    ) -> bool {
        let kind = stream_id.split(':').next().unwrap_or("");
        match self {
            TrackSelection::FirstAudioVideo => {
                index_of_kind == 0 && (kind == "audio" || kind == "video")
            }
            TrackSelection::All => true,
            TrackSelection::Specific(selectors) => selectors.iter().any(|selector| match selector
                .split_once(':')
            {
                None => selector == kind,
                Some((k, rest)) if k == kind => match rest.parse::<usize>() {
                    Ok(index) => index == index_of_kind,
                    Err(_) => language.is_some_and(|l| l.eq_ignore_ascii_case(rest)),
                },
                Some(_) => false,
            }),
        }
    }
}

/// How a live source reconnects after losing its input. File sources ignore it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Attempts before giving up (0: never reconnect).
    pub max_attempts: u32,
    /// Delay before the first attempt, in milliseconds (doubles per attempt).
    pub initial_delay_ms: u64,
    /// Upper bound of the delay, in milliseconds.
    pub max_delay_ms: u64,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 0,
            initial_delay_ms: 500,
            max_delay_ms: 10_000,
        }
    }
}

/// Encoding of headerless PCM (e.g. on stdin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PcmEncoding {
    /// 16-bit signed little-endian.
    S16Le,
    /// 32-bit float little-endian.
    F32Le,
}

/// Declares the format of headerless PCM input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawPcmFormat {
    /// Sample encoding.
    pub encoding: PcmEncoding,
    /// Frames per second.
    pub sample_rate: u32,
    /// Interleaved channels.
    pub channels: u16,
}

impl RawPcmFormat {
    /// Parses `s16le:16000:1` / `f32le:48000:2` (encoding:rate:channels).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidData(format!(
                "raw PCM format '{text}' {why} (expected ENCODING:RATE:CHANNELS, e.g. s16le:16000:1)"
            ))
        };
        let parts: Vec<&str> = text.split(':').collect();
        let [encoding, rate, channels] = parts.as_slice() else {
            return Err(bad("does not have three parts"));
        };
        let encoding = match encoding.to_ascii_lowercase().as_str() {
            "s16le" | "s16" => PcmEncoding::S16Le,
            "f32le" | "f32" => PcmEncoding::F32Le,
            _ => return Err(bad("has an unknown encoding (s16le or f32le)")),
        };
        let sample_rate: u32 = rate
            .parse()
            .ok()
            .filter(|r| (1..=768_000).contains(r))
            .ok_or_else(|| bad("has an invalid sample rate"))?;
        let channels: u16 = channels
            .parse()
            .ok()
            .filter(|c| (1..=64).contains(c))
            .ok_or_else(|| bad("has an invalid channel count"))?;
        Ok(Self {
            encoding,
            sample_rate,
            channels,
        })
    }
}

/// What to ingest and how to deliver it.
///
/// Audio, video and live-input settings are honoured by the plugins that deliver such
/// data: the built-in file plugin decodes audio only; the `ingest-rtmp` adapter
/// (`remotemedia-ingest-rtmp`) decodes video and reads live streams.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestConfig {
    /// Source URL or path (`file:///a.wav`, `a.flac`, `-` for stdin, `rtsp://...`).
    pub url: String,
    /// Resample audio to this rate (None: keep the source's).
    pub audio_sample_rate: Option<u32>,
    /// Convert audio to this many channels (None: keep the source's).
    pub audio_channels: Option<u16>,
    /// Which tracks to deliver.
    pub track_selection: TrackSelection,
    /// Reconnection for live sources.
    pub reconnect: ReconnectPolicy,
    /// Format of headerless PCM input; stdin without it is probed (WAV, FLAC, ...).
    pub raw_pcm: Option<RawPcmFormat>,
    /// Scale video to this width (None: the source's; with only `video_height` set, the
    /// width that keeps the aspect ratio).
    pub video_width: Option<u32>,
    /// Scale video to this height (None: the source's, or the aspect-keeping height).
    pub video_height: Option<u32>,
    /// Deliver video frames in this pixel format (None: `yuv420p`). `encoded` is not a
    /// decoded format and is refused.
    pub video_pixel_format: Option<PixelFormat>,
    /// Deliver at most this many video frames per second of media time; frames in
    /// between are dropped (None: every frame).
    pub video_max_fps: Option<f64>,
    /// Live sources: how long opening the input may take, in milliseconds — connecting
    /// and reading the stream's header; in listen mode, waiting for the publisher (None:
    /// the plugin's default, 10 s; in listen mode, wait until stopped).
    pub connect_timeout_ms: Option<u64>,
    /// Live sources: how long the input may stay silent before it counts as lost, in
    /// milliseconds (None: the plugin's default, 10 s).
    pub read_timeout_ms: Option<u64>,
    /// Live sources: be the server the publisher pushes to (RTMP, RTSP, SRT listener) or
    /// bind the UDP port, instead of connecting to a server. The URL's host and port are
    /// the address to listen on.
    pub listen: bool,
}

impl IngestConfig {
    /// A config for `url` with every other setting at its default.
    pub fn from_url(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The URL's scheme including `://` (`"rtsp://"`), or `None` for bare paths and `-`.
    pub fn scheme(&self) -> Option<&str> {
        let end = self.url.find("://")?;
        let scheme = &self.url[..end];
        let valid = !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        valid.then(|| &self.url[..end + 3])
    }
}

/// Where a source is in its life: `Idle` → `Connecting` → `Connected`, then for a live
/// source that loses its input `Reconnecting { attempt, max }` → `Connected` again, and at
/// the end `Disconnected` (the input ended cleanly, or the source was stopped) or `Error`.
/// A file is `Connected` while it is being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestStatus {
    /// Created, not started.
    Idle,
    /// Opening the input (connecting, or waiting for the publisher in listen mode).
    Connecting,
    /// Delivering data.
    Connected,
    /// The input was lost; attempt `attempt` of `max` to get it back is under way.
    Reconnecting {
        /// This attempt, from 1.
        attempt: u32,
        /// The policy's attempts.
        max: u32,
    },
    /// Ended without an error: end of input, a publisher that finished, or a stop.
    Disconnected,
    /// Ended with this error.
    Error(String),
}

impl IngestStatus {
    /// Whether the source has ended (`Disconnected` or `Error`).
    pub fn is_final(&self) -> bool {
        matches!(self, IngestStatus::Disconnected | IngestStatus::Error(_))
    }
}

/// A source's status, shared between the source and its producer, with updates for
/// watchers ([`IngestSource::status_updates`]). After [`stop`](Self::stop) the status
/// stays `Disconnected` until the next [`restart`](Self::restart): what a producer
/// reports after a stop does not override it.
#[derive(Debug)]
pub struct IngestStatusCell {
    tx: watch::Sender<IngestStatus>,
    stopped: std::sync::atomic::AtomicBool,
}

impl Default for IngestStatusCell {
    fn default() -> Self {
        Self {
            tx: watch::Sender::new(IngestStatus::Idle),
            stopped: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl IngestStatusCell {
    /// A cell holding `Idle`.
    pub fn new() -> Self {
        Self::default()
    }

    /// The current status.
    pub fn get(&self) -> IngestStatus {
        self.tx.borrow().clone()
    }

    /// Sets the status, unless the source was stopped.
    pub fn set(&self, status: IngestStatus) {
        use std::sync::atomic::Ordering;
        if self.stopped.load(Ordering::SeqCst) {
            return;
        }
        self.tx.send_if_modified(|current| {
            let changed = *current != status;
            *current = status;
            changed
        });
    }

    /// Marks the source stopped: `Disconnected`, and later updates are ignored.
    pub fn stop(&self) {
        self.set(IngestStatus::Disconnected);
        self.stopped
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Clears a stop, for a source that starts again.
    pub fn restart(&self) {
        self.stopped
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// A receiver of the status (a watch channel: `changed().await` wakes on each change;
    /// a watcher that looks late sees the latest status, not every one in between).
    pub fn subscribe(&self) -> watch::Receiver<IngestStatus> {
        self.tx.subscribe()
    }
}

/// One track of a source, as found when it started.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackInfo {
    /// The track's tag (`"audio:0"`).
    pub stream_id: String,
    /// Codec name as the decoder reports it.
    pub codec: String,
    /// Rate of the delivered audio (after any requested conversion).
    pub sample_rate: Option<u32>,
    /// Channels of the delivered audio (after any requested conversion).
    pub channels: Option<u16>,
    /// Duration, when the container states it.
    pub duration_us: Option<u64>,
    /// Whether the track is delivered (per the track selection).
    pub selected: bool,
    /// The track's language tag, when the container states one (`"eng"`).
    pub language: Option<String>,
    /// Width of the delivered video (after any requested scaling).
    pub width: Option<u32>,
    /// Height of the delivered video (after any requested scaling).
    pub height: Option<u32>,
}

/// What a started source found in its input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaInfo {
    /// The container/format name, when known (`"wav"`, `"flac"`, ...).
    pub format: Option<String>,
    /// The tracks, selected or not.
    pub tracks: Vec<TrackInfo>,
}

impl MediaInfo {
    /// The longest stated duration among the selected tracks.
    pub fn duration_us(&self) -> Option<u64> {
        self.tracks
            .iter()
            .filter(|t| t.selected)
            .filter_map(|t| t.duration_us)
            .max()
    }
}

/// The producing half of an [`IngestStream`].
#[derive(Debug, Clone)]
pub struct IngestSender {
    tx: mpsc::Sender<Result<RuntimeData>>,
}

impl IngestSender {
    /// Sends one item, waiting while the reader is behind. False when the reader is gone.
    pub async fn send(&self, data: RuntimeData) -> bool {
        self.tx.send(Ok(data)).await.is_ok()
    }

    /// Blocking form of [`send`](Self::send) for producer threads (not async tasks).
    pub fn blocking_send(&self, data: RuntimeData) -> bool {
        self.tx.blocking_send(Ok(data)).is_ok()
    }

    /// Reports a failure; the stream ends after it.
    pub fn blocking_fail(&self, error: Error) {
        let _ = self.tx.blocking_send(Err(error));
    }

    /// Async form of [`blocking_fail`](Self::blocking_fail).
    pub async fn fail(&self, error: Error) {
        let _ = self.tx.send(Err(error)).await;
    }

    /// Whether the reader has gone away.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The data of a started source, in order. Memory stays bounded: the producer waits
/// while the reader is behind.
#[derive(Debug)]
pub struct IngestStream {
    rx: mpsc::Receiver<Result<RuntimeData>>,
    info: MediaInfo,
    error: Option<Error>,
}

impl IngestStream {
    /// A stream and its sender, holding at most `capacity` undelivered items.
    pub fn channel(capacity: usize, info: MediaInfo) -> (IngestSender, IngestStream) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            IngestSender { tx },
            IngestStream {
                rx,
                info,
                error: None,
            },
        )
    }

    /// The next item; `None` at the end of the input or after a failure (see
    /// [`error`](Self::error)).
    pub async fn recv(&mut self) -> Option<RuntimeData> {
        match self.next().await? {
            Ok(data) => Some(data),
            Err(error) => {
                self.error = Some(error);
                None
            }
        }
    }

    /// The next item or the failure that ended the stream.
    pub async fn next(&mut self) -> Option<Result<RuntimeData>> {
        if self.error.is_some() {
            return None;
        }
        self.rx.recv().await
    }

    /// The failure that ended the stream, if any.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_ref()
    }

    /// What the source found when it started.
    pub fn media_info(&self) -> &MediaInfo {
        &self.info
    }

    /// The same stream with `info` as its media info: for a plugin that makes the channel
    /// before its input is open (the producer needs the sender first).
    pub fn with_media_info(mut self, info: MediaInfo) -> Self {
        self.info = info;
        self
    }
}

/// One configured media source.
#[async_trait]
pub trait IngestSource: Send + Sync {
    /// Opens the input and starts delivering. Errors that can be seen up front — a missing
    /// file, a non-media file, an unreachable server — are returned here.
    async fn start(&self) -> Result<IngestStream>;

    /// Stops delivering; the stream ends. Idempotent.
    async fn stop(&self) -> Result<()>;

    /// The source's current state.
    fn status(&self) -> IngestStatus;

    /// A receiver of the source's status, for sources that report it (the file plugin and
    /// the ingest-rtmp adapter do); `None` otherwise. A `tokio::sync::watch` receiver:
    /// `changed().await` wakes on each change; a watcher that looks late sees the latest.
    fn status_updates(&self) -> Option<watch::Receiver<IngestStatus>> {
        None
    }
}

/// A factory for sources of some URL schemes.
pub trait IngestPlugin: Send + Sync {
    /// The plugin's name (`"file"`, `"rtmp"`).
    fn name(&self) -> &'static str;

    /// The schemes it handles, as `"scheme://"`. The plugin that lists `"file://"` also
    /// receives bare paths and `-`.
    fn schemes(&self) -> &'static [&'static str];

    /// Creates a source for `config` (do not open it yet: that is `start`'s job).
    fn create(&self, config: IngestConfig) -> Result<Arc<dyn IngestSource>, Error>;

    /// Checks a config before creating a source.
    fn validate(&self, config: &IngestConfig) -> Result<(), Error> {
        let _ = config;
        Ok(())
    }

    /// File extensions (lower case, without the dot) whose local files this plugin reads
    /// instead of the file plugin, e.g. a video decoder claiming `mp4`. None by default.
    fn file_extensions(&self) -> &'static [&'static str] {
        &[]
    }
}

/// The table of ingest plugins; see [`global_ingest_registry`].
#[derive(Default)]
pub struct IngestRegistry {
    plugins: RwLock<Vec<Arc<dyn IngestPlugin>>>,
}

impl std::fmt::Debug for IngestRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestRegistry")
            .field("schemes", &self.schemes())
            .finish()
    }
}

impl IngestRegistry {
    /// An empty registry (most code wants [`global_ingest_registry`]).
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<dyn IngestPlugin>>> {
        self.plugins.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a plugin. Fails if a plugin with the same name is registered or one of its
    /// schemes is already claimed.
    pub fn register(&self, plugin: Arc<dyn IngestPlugin>) -> Result<()> {
        let mut plugins = self.plugins.write().unwrap_or_else(|p| p.into_inner());
        for existing in plugins.iter() {
            if existing.name() == plugin.name() {
                return Err(Error::Other(format!(
                    "an ingest plugin named '{}' is already registered",
                    plugin.name()
                )));
            }
            if let Some(scheme) = plugin
                .schemes()
                .iter()
                .find(|s| existing.schemes().contains(s))
            {
                return Err(Error::Other(format!(
                    "scheme {scheme} is already handled by the '{}' ingest plugin",
                    existing.name()
                )));
            }
        }
        plugins.push(plugin);
        Ok(())
    }

    /// Every registered scheme.
    pub fn schemes(&self) -> Vec<&'static str> {
        self.read()
            .iter()
            .flat_map(|p| p.schemes().iter().copied())
            .collect()
    }

    /// The plugin that handles `config.url`: by scheme; a local path (bare or `file://`)
    /// goes to a plugin that claims its extension ([`IngestPlugin::file_extensions`]),
    /// else to the file plugin.
    pub fn plugin_for(&self, config: &IngestConfig) -> Result<Arc<dyn IngestPlugin>> {
        let wanted = config.scheme().unwrap_or("file://");
        let plugins = self.read();
        if wanted == "file://" {
            let path = config.url.strip_prefix("file://").unwrap_or(&config.url);
            let extension = std::path::Path::new(path)
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if let Some(extension) = extension {
                let claimed = plugins
                    .iter()
                    .find(|p| p.file_extensions().contains(&extension.as_str()));
                if let Some(plugin) = claimed {
                    return Ok(Arc::clone(plugin));
                }
            }
        }
        plugins
            .iter()
            .find(|p| p.schemes().contains(&wanted))
            .cloned()
            .ok_or_else(|| {
                let mut schemes: Vec<&str> = plugins
                    .iter()
                    .flat_map(|p| p.schemes().iter().copied())
                    .collect();
                if schemes.contains(&"file://") {
                    schemes.push("bare paths");
                }
                let hint = if LIVE_SCHEMES.contains(&wanted) {
                    format!(
                        "; {} are read by the ingest-rtmp adapter (crate remotemedia-ingest-rtmp: register its RtmpIngestPlugin)",
                        LIVE_SCHEMES.join(" ")
                    )
                } else {
                    String::new()
                };
                Error::Ingest {
                    source_url: config.url.clone(),
                    message: format!(
                        "no ingest plugin handles {} (registered: {}){hint}",
                        if config.scheme().is_some() {
                            format!("the {wanted} scheme")
                        } else {
                            "file paths".to_owned()
                        },
                        if schemes.is_empty() {
                            "none".to_owned()
                        } else {
                            schemes.join(", ")
                        }
                    ),
                }
            })
    }

    /// Validates `config` with the plugin for its URL and creates the source.
    pub fn create_from_uri(&self, config: &IngestConfig) -> Result<Arc<dyn IngestSource>> {
        let plugin = self.plugin_for(config)?;
        plugin.validate(config)?;
        plugin.create(config.clone())
    }
}

/// The process-wide ingest registry. With the `native` feature, [`FileIngestPlugin`] is
/// registered on first use.
pub fn global_ingest_registry() -> &'static IngestRegistry {
    static REGISTRY: OnceLock<IngestRegistry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = IngestRegistry::new();
        #[cfg(feature = "native")]
        {
            // Cannot fail: the registry is empty.
            let _ = registry.register(Arc::new(FileIngestPlugin));
        }
        registry
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_parsed_with_their_separator() {
        assert_eq!(
            IngestConfig::from_url("rtsp://h/s").scheme(),
            Some("rtsp://")
        );
        assert_eq!(
            IngestConfig::from_url("file:///a.wav").scheme(),
            Some("file://")
        );
        assert_eq!(IngestConfig::from_url("a.wav").scheme(), None);
        assert_eq!(IngestConfig::from_url("-").scheme(), None);
        assert_eq!(IngestConfig::from_url("C:/x://y").scheme(), None);
    }

    #[test]
    fn raw_pcm_format_parses_and_rejects_nonsense() {
        let f = RawPcmFormat::parse("s16le:16000:1").expect("valid");
        assert_eq!(
            (f.encoding, f.sample_rate, f.channels),
            (PcmEncoding::S16Le, 16000, 1)
        );
        let err = RawPcmFormat::parse("s24le:16000:1").unwrap_err();
        assert!(err.to_string().contains("unknown encoding"), "{err}");
        assert!(RawPcmFormat::parse("s16le:0:1").is_err());
    }

    #[test]
    fn first_audio_video_selects_the_first_of_each_kind() {
        let s = TrackSelection::FirstAudioVideo;
        assert!(s.selects("audio:0", 0));
        assert!(!s.selects("audio:1", 1));
        assert!(s.selects("video:0", 0));
        assert!(!s.selects("subtitle:0", 0));
    }
}
