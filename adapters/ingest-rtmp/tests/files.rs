//! Video files through the adapter (routed to it by extension once it is registered),
//! subtitles, the A/V skew of a sync test signal measured end to end, and what the file
//! plugin says of a video file without the adapter.

mod common;

use common::*;
use remotemedia_runtime_core::data::{PixelFormat, RuntimeData};
use remotemedia_runtime_core::ingestion::{
    FileIngestPlugin, IngestConfig, IngestRegistry, IngestStatus, TrackSelection,
};
use remotemedia_runtime_core::nodes::video::{AVSyncMethod, AVSyncNode, AVSyncParams};
use remotemedia_runtime_core::nodes::{params::ConfigurableNode, Node, Outputs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A scratch directory removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "remotemedia-ingest-files-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `seconds` of bars and tone (and an SRT subtitle track for mkv) to `path`.
fn make_file(path: &std::path::Path, seconds: f64) {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let mut args: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        "pal75bars=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1000:sample_rate=48000",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let subtitles = path.with_extension("srt");
    if ext == "mkv" {
        std::fs::write(&subtitles, "1\n00:00:00,500 --> 00:00:01,250\nHello <i>there</i>\n\n2\n00:00:01,500 --> 00:00:01,900\nSecond line\n").expect("srt");
        args.extend(["-i".to_owned(), subtitles.display().to_string()]);
        args.extend(
            ["-map", "0:v", "-map", "1:a", "-map", "2:s", "-c:s", "ass"]
                .iter()
                .map(|s| (*s).to_owned()),
        );
    }
    let (video, audio) = match ext {
        "webm" => ("libvpx", "libopus"),
        _ => ("libx264", "aac"),
    };
    args.extend(
        [
            "-t",
            &seconds.to_string(),
            "-c:v",
            video,
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            audio,
            "-ac",
            "2",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    if video == "libx264" {
        args.extend(["-preset", "ultrafast"].iter().map(|s| (*s).to_owned()));
    }
    args.push(path.display().to_string());
    let status = std::process::Command::new("ffmpeg")
        .args(&args)
        .status()
        .expect("ffmpeg");
    assert!(status.success(), "ffmpeg made {}", path.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn video_files_are_decoded_to_the_end() {
    let scratch = Scratch::new("formats");
    for ext in ["mp4", "mkv", "webm", "mov", "ts"] {
        let path = scratch.0.join(format!("clip.{ext}"));
        make_file(&path, 2.0);
        let source = source(&IngestConfig {
            video_pixel_format: Some(PixelFormat::Rgb24),
            video_width: Some(160),
            audio_sample_rate: Some(16_000),
            audio_channels: Some(1),
            ..IngestConfig::from_url(path.display().to_string())
        });
        let mut stream = source
            .start()
            .await
            .unwrap_or_else(|e| panic!("{ext}: {e}"));
        let items = collect(&mut stream, Duration::from_secs(30), |_| false).await;
        assert!(stream.error().is_none(), "{ext}: {:?}", stream.error());
        assert_eq!(source.status(), IngestStatus::Disconnected, "{ext}");
        let seconds = audio_seconds(&items, "audio:0");
        assert!((seconds - 2.0).abs() < 0.1, "{ext}: {seconds} s of audio");
        let (samples, rate) = channel0(&items, "audio:0");
        assert_eq!(rate, 16_000, "{ext}");
        // The middle: the codec's first and last frames ramp.
        let hz = tone_hz(&samples[samples.len() / 4..samples.len() * 3 / 4], rate);
        assert!((hz - 1000.0).abs() < 2.0, "{ext}: {hz} Hz");
        let frames = video_frames(&items, "video:0");
        assert!(
            (48..=51).contains(&frames.len()),
            "{ext}: {} frames",
            frames.len()
        );
        let time = |frame: &RuntimeData| match frame {
            RuntimeData::Video { timestamp_us, .. } => *timestamp_us as i64,
            _ => 0,
        };
        let RuntimeData::Video {
            pixel_data,
            width,
            height,
            ..
        } = frames[25]
        else {
            unreachable!()
        };
        assert_eq!(
            (*width, *height),
            (160, 120),
            "{ext}: scaled keeping the aspect ratio"
        );
        assert_bars(pixel_data, 160, 120, 24);
        // The file's own clock: some muxers shift every track by the audio codec's delay.
        let first = time(frames[0]);
        assert!(first <= 50_000, "{ext}: the first frame at {first} µs");
        let span = time(frames[25]) - first;
        assert!(
            (span - 1_000_000).abs() <= 1_000,
            "{ext}: frame 25 is {span} µs after frame 0"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn subtitles_come_as_text_with_their_times() {
    let scratch = Scratch::new("subtitles");
    let path = scratch.0.join("clip.mkv");
    make_file(&path, 2.0);
    let source = source(&IngestConfig {
        track_selection: TrackSelection::specific(["subtitle", "video:0"]),
        video_width: Some(32),
        ..IngestConfig::from_url(path.display().to_string())
    });
    let mut stream = source.start().await.expect("start");
    let items = collect(&mut stream, Duration::from_secs(30), |_| false).await;
    let subtitles: Vec<&serde_json::Value> = items
        .iter()
        .filter_map(|i| match i {
            RuntimeData::Json(v) => Some(v),
            _ => None,
        })
        .collect();
    assert_eq!(subtitles.len(), 2, "{subtitles:?}");
    assert_eq!(subtitles[0]["stream_id"], "subtitle:0");
    assert_eq!(subtitles[0]["text"], "Hello there");
    assert_eq!(subtitles[1]["text"], "Second line");
    // On the file's clock, with the picture: 0.5 s and 1.5 s after the first frame.
    let frames = video_frames(&items, "video:0");
    let RuntimeData::Video { timestamp_us, .. } = frames[0] else {
        unreachable!()
    };
    let first_ms = *timestamp_us as f64 / 1000.0;
    let at = |i: usize, key: &str| subtitles[i][key].as_f64().expect("time") - first_ms;
    assert!(
        (at(0, "start_ms") - 500.0).abs() < 1.0,
        "{subtitles:?} vs {first_ms}"
    );
    assert!((at(0, "end_ms") - 1250.0).abs() < 1.0, "{subtitles:?}");
    assert!((at(1, "start_ms") - 1500.0).abs() < 1.0, "{subtitles:?}");
    assert!(
        audio_seconds(&items, "audio:0") == 0.0,
        "audio was not selected"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_adapter_the_file_plugin_names_it() {
    let scratch = Scratch::new("hint");
    let path = scratch.0.join("clip.mp4");
    make_file(&path, 1.0);
    let registry = IngestRegistry::new();
    registry
        .register(Arc::new(FileIngestPlugin))
        .expect("register");
    let err = match registry.create_from_uri(&IngestConfig::from_url(path.display().to_string())) {
        Ok(source) => source.start().await.expect_err("video needs the adapter"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("ingest-rtmp adapter"), "{err}");
    let err = registry
        .create_from_uri(&IngestConfig::from_url("rtmp://127.0.0.1/live/s"))
        .err()
        .expect("no plugin for rtmp");
    assert!(err.to_string().contains("ingest-rtmp adapter"), "{err}");
}

/// Feeds a stream's audio and video to an AVSyncNode measuring sync markers; the mean of
/// its window reports.
async fn measured_skew_ms(video_late_ms: u32) -> f64 {
    let port = tcp_port();
    let url = format!("rtmp://127.0.0.1:{port}/live/sync");
    let source = source(&IngestConfig {
        listen: true,
        connect_timeout_ms: Some(15_000),
        ..IngestConfig::from_url(&url)
    });
    let (mut stream, _publisher) = start_with_publisher(
        &source,
        Media::Markers(video_late_ms),
        None,
        &["-f", "flv", &url],
    )
    .await;
    let mut node = AVSyncNode::from_params(AVSyncParams {
        method: AVSyncMethod::Markers,
        ..AVSyncParams::default()
    })
    .expect("node");
    let mut outputs = Outputs::new();
    let mut reports = Vec::new();
    while reports.len() < 4 {
        let item = tokio::time::timeout(Duration::from_secs(20), stream.recv())
            .await
            .expect("data in time")
            .expect("stream goes on");
        node.process(item, &mut outputs).expect("process");
        reports.extend(outputs.drain().filter_map(|o| match o {
            RuntimeData::Json(v) if v.get("alert").is_none() => v["av_skew_ms"].as_f64(),
            _ => None,
        }));
    }
    source.stop().await.expect("stop");
    // The first second can hold a partial marker.
    let steady = &reports[1..];
    steady.iter().sum::<f64>() / steady.len() as f64
}

#[tokio::test(flavor = "multi_thread")]
async fn av_skew_of_a_sync_signal_is_measured_through_rtmp() {
    let synced = measured_skew_ms(0).await;
    assert!(synced.abs() <= 25.0, "synced source: {synced} ms");
    let late = measured_skew_ms(200).await;
    assert!((late - 200.0).abs() <= 25.0, "video 200 ms late: {late} ms");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_picture_past_the_size_cap_ends_the_input_naming_the_track() {
    let scratch = Scratch::new("huge");
    let path = scratch.0.join("wide.mkv");
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "color=c=gray:size=8200x16:rate=1",
            "-frames:v",
            "2",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .arg(&path)
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    let source = source(&IngestConfig::from_url(path.display().to_string()));
    let result = match source.start().await {
        Ok(mut stream) => {
            let items = collect(&mut stream, Duration::from_secs(10), |_| false).await;
            assert!(
                video_frames(&items, "video:0").is_empty(),
                "no frame was delivered"
            );
            stream.error().map(|e| e.to_string())
        }
        Err(e) => Some(e.to_string()),
    };
    let error = result.expect("an error");
    assert!(
        error.contains("video:0 decodes to 8200x16 pictures") && error.contains("8192"),
        "{error}"
    );
    assert!(
        matches!(source.status(), IngestStatus::Error(_)),
        "{:?}",
        source.status()
    );
}
