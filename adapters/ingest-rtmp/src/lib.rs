//! Live streams and video files for RemoteMedia pipelines, decoded by FFmpeg.
//!
//! [`RtmpIngestPlugin`] is an ingest plugin for the core's
//! [`global_ingest_registry`](remotemedia_runtime_core::ingestion::global_ingest_registry):
//!
//! - **Schemes**: `rtmp://`, `rtmps://`, `rtsp://`, `rtsps://`, `udp://` (MPEG-TS),
//!   `srt://`, `rtp://`; and local video files (`mp4`, `m4v`, `mkv`, `webm`, `mov`, `ts`,
//!   `m2ts`, `mts`, `flv`, `avi`), which the registry hands to this plugin instead of the
//!   audio-only file plugin once it is registered.
//! - **Tracks**: audio, video and subtitle tracks, picked by the config's
//!   [`TrackSelection`](remotemedia_runtime_core::ingestion::TrackSelection) and tagged
//!   `audio:N`, `video:N`, `subtitle:N`. Audio arrives as interleaved f32 at the requested
//!   rate and channels; video as raw frames in the requested pixel format (default
//!   `yuv420p`) and size, optionally capped in frame rate; subtitles as Json
//!   `{"stream_id", "text", "start_ms", "end_ms"}`.
//! - **Time**: `timestamp_us` is the stream's own presentation time, from 0 at the
//!   stream's start, on one clock for all tracks; after a reconnection it goes on where
//!   the delivered media ended (never back).
//! - **Live inputs**: opening is bounded by `connect_timeout_ms` (10 s by default; in
//!   listen mode, the wait for a publisher is unbounded unless set) and silence by
//!   `read_timeout_ms` (10 s). A lost input is reconnected per the config's
//!   [`ReconnectPolicy`](remotemedia_runtime_core::ingestion::ReconnectPolicy); the status
//!   goes `Connecting` → `Connected` → `Reconnecting { attempt, max }` → … →
//!   `Disconnected` or `Error`.
//! - **Listen mode** (`listen: true`, or `?listen=1` in the URL): the runtime is the server
//!   a publisher pushes to — RTMP, RTSP (ANNOUNCE/RECORD), SRT listener; UDP and RTP always
//!   bind the URL's address.
//!
//! ```no_run
//! use remotemedia_ingest_rtmp::RtmpIngestPlugin;
//! use remotemedia_runtime_core::data::RuntimeData;
//! use remotemedia_runtime_core::ingestion::{global_ingest_registry, IngestConfig};
//! use std::sync::Arc;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let registry = global_ingest_registry();
//! registry.register(Arc::new(RtmpIngestPlugin))?;
//! let config = IngestConfig {
//!     audio_sample_rate: Some(16_000),
//!     audio_channels: Some(1),
//!     ..IngestConfig::from_url("rtmp://127.0.0.1:1935/live/stream")
//! };
//! let source = registry.create_from_uri(&config)?;
//! let mut stream = source.start().await?;
//! while let Some(data) = stream.recv().await {
//!     match data {
//!         RuntimeData::Audio { samples, .. } => println!("{} samples", samples.len()),
//!         RuntimeData::Video { width, height, timestamp_us, .. } => {
//!             println!("{width}x{height} frame at {timestamp_us} µs")
//!         }
//!         _ => {}
//!     }
//! }
//! if let Some(error) = stream.error() {
//!     eprintln!("{error}");
//! }
//! # Ok(())
//! # }
//! ```

mod clock;
mod decode;
mod source;
mod url;

use remotemedia_runtime_core::data::{PixelFormat, MAX_CHANNELS, MAX_SAMPLE_RATE};
use remotemedia_runtime_core::ingestion::{
    IngestConfig, IngestPlugin, IngestSource, IngestStatusCell, LIVE_SCHEMES, VIDEO_FILE_EXTENSIONS,
};
use remotemedia_runtime_core::Error;
use std::sync::{Arc, Mutex, Once};

pub use decode::{MAX_PIXELS, MAX_SIDE};

/// The ingest plugin for live streams and video files; see the [crate docs](crate).
#[derive(Debug, Default, Clone, Copy)]
pub struct RtmpIngestPlugin;

/// Longest timeout accepted (one day).
const MAX_TIMEOUT_MS: u64 = 86_400_000;

impl IngestPlugin for RtmpIngestPlugin {
    fn name(&self) -> &'static str {
        "rtmp"
    }

    fn schemes(&self) -> &'static [&'static str] {
        &LIVE_SCHEMES
    }

    fn file_extensions(&self) -> &'static [&'static str] {
        &VIDEO_FILE_EXTENSIONS
    }

    fn validate(&self, config: &IngestConfig) -> Result<(), Error> {
        check(config).map(|_| ())
    }

    fn create(&self, config: IngestConfig) -> Result<Arc<dyn IngestSource>, Error> {
        let target = check(&config)?;
        init_ffmpeg();
        Ok(Arc::new(source::RtmpIngestSource {
            config,
            target,
            status: Arc::new(IngestStatusCell::new()),
            watchdog: Mutex::new(None),
        }))
    }
}

/// Validates every setting before anything is opened.
fn check(config: &IngestConfig) -> Result<url::Target, Error> {
    let fail = |message: String| Error::Ingest {
        source_url: url::redacted(&config.url),
        message,
    };
    let target = url::parse(config).map_err(&fail)?;
    if let url::Target::File(path) = &target {
        if !path.exists() {
            return Err(fail("file not found".to_owned()));
        }
        if path.is_dir() {
            return Err(fail("is a directory, not a media file".to_owned()));
        }
        if config.listen {
            return Err(fail("listen mode is for live URLs, not files".to_owned()));
        }
    }
    if config.raw_pcm.is_some() {
        return Err(fail(
            "a raw PCM format is for stdin, which the file plugin reads".to_owned(),
        ));
    }
    if let Some(rate) = config.audio_sample_rate {
        if !(1000..=MAX_SAMPLE_RATE).contains(&rate) {
            return Err(fail(format!(
                "requested sample rate {rate} is out of range 1000..={MAX_SAMPLE_RATE}"
            )));
        }
    }
    if let Some(channels) = config.audio_channels {
        if channels == 0 || channels > MAX_CHANNELS {
            return Err(fail(format!(
                "requested channel count {channels} is out of range 1..={MAX_CHANNELS}"
            )));
        }
    }
    for (name, value) in [
        ("video_width", config.video_width),
        ("video_height", config.video_height),
    ] {
        if let Some(v) = value {
            if v == 0 || v > MAX_SIDE {
                return Err(fail(format!("{name} {v} is out of range 1..={MAX_SIDE}")));
            }
        }
    }
    if config.video_pixel_format == Some(PixelFormat::Encoded) {
        return Err(fail(
            "video_pixel_format 'encoded' is not a decoded format (choose yuv420p, nv12, rgb24, rgba32 or gray8)"
                .to_owned(),
        ));
    }
    if let Some(fps) = config.video_max_fps {
        if !fps.is_finite() || fps <= 0.0 || fps > 1000.0 {
            return Err(fail(format!(
                "video_max_fps {fps} is out of range (0, 1000]"
            )));
        }
    }
    for (name, value) in [
        ("connect_timeout_ms", config.connect_timeout_ms),
        ("read_timeout_ms", config.read_timeout_ms),
    ] {
        if let Some(ms) = value {
            if ms == 0 || ms > MAX_TIMEOUT_MS {
                return Err(fail(format!(
                    "{name} {ms} is out of range 1..={MAX_TIMEOUT_MS}"
                )));
            }
        }
    }
    let reconnect = &config.reconnect;
    if reconnect.max_attempts > 1_000_000 || reconnect.max_delay_ms > MAX_TIMEOUT_MS {
        return Err(fail(
            "the reconnect policy is out of range (at most 1000000 attempts, delays up to a day)"
                .to_owned(),
        ));
    }
    config
        .track_selection
        .check()
        .map_err(|e| fail(e.to_string()))?;
    Ok(target)
}

/// FFmpeg's one-time set-up: networking, and its log kept quiet (errors reach the caller
/// as `Error::Ingest`); `REMOTEMEDIA_FFMPEG_LOG=info|verbose|debug` shows it on stderr.
fn init_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg_next::init();
        ffmpeg_next::format::network::init();
        use ffmpeg_next::util::log::Level;
        let level = match std::env::var("REMOTEMEDIA_FFMPEG_LOG").as_deref() {
            Ok("error") => Level::Error,
            Ok("warning") => Level::Warning,
            Ok("info") => Level::Info,
            Ok("verbose") => Level::Verbose,
            Ok("debug") => Level::Debug,
            _ => Level::Quiet,
        };
        ffmpeg_next::util::log::set_level(level);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_out_of_range_are_refused_naming_them() {
        let base = IngestConfig::from_url("rtmp://127.0.0.1/live/s");
        let cases = [
            (
                IngestConfig {
                    video_width: Some(0),
                    ..base.clone()
                },
                "video_width 0",
            ),
            (
                IngestConfig {
                    video_max_fps: Some(f64::NAN),
                    ..base.clone()
                },
                "video_max_fps NaN",
            ),
            (
                IngestConfig {
                    read_timeout_ms: Some(0),
                    ..base.clone()
                },
                "read_timeout_ms 0",
            ),
            (
                IngestConfig {
                    video_pixel_format: Some(PixelFormat::Encoded),
                    ..base.clone()
                },
                "'encoded'",
            ),
            (
                IngestConfig {
                    track_selection: remotemedia_runtime_core::ingestion::TrackSelection::specific(
                        ["sound:1"],
                    ),
                    ..base.clone()
                },
                "track selector 'sound:1'",
            ),
        ];
        for (config, expected) in cases {
            let err = RtmpIngestPlugin.validate(&config).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected}: {err}");
        }
    }
}
