//! Live inputs through real publishers and servers on 127.0.0.1: our listen modes,
//! nginx's RTMP module, gst-rtsp-server, UDP MPEG-TS, SRT both ways; reconnection; and
//! inputs that fail. Content is checked, not just counted: tone frequency and level,
//! picture size and colour bars, timestamps.

mod common;

use common::*;
use remotemedia_runtime_core::data::{PixelFormat, RuntimeData};
use remotemedia_runtime_core::ingestion::{
    IngestConfig, IngestStatus, ReconnectPolicy, TrackSelection,
};
use std::time::{Duration, Instant};

fn config(url: &str) -> IngestConfig {
    IngestConfig {
        video_pixel_format: Some(PixelFormat::Rgb24),
        connect_timeout_ms: Some(15_000),
        read_timeout_ms: Some(5_000),
        ..IngestConfig::from_url(url)
    }
}

/// Two seconds of bars and tone, checked: 1 kHz at -24.08 dBFS RMS on each channel of
/// 48 kHz stereo (the -18 dBFS peak sine, -21.07 dBFS RMS, spread over two channels by
/// the publisher at -3.01 dB each), 320x240 bars, timestamps monotonic per track.
async fn check_bars_and_tone(stream: &mut remotemedia_runtime_core::ingestion::IngestStream) {
    let items = collect(stream, Duration::from_secs(20), |items| {
        audio_seconds(items, "audio:0") >= 2.0 && video_frames(items, "video:0").len() >= 50
    })
    .await;
    assert!(stream.error().is_none(), "{:?}", stream.error());
    assert!(
        audio_seconds(&items, "audio:0") >= 2.0,
        "audio: {} s",
        audio_seconds(&items, "audio:0")
    );
    let (samples, rate) = channel0(&items, "audio:0");
    assert_eq!(rate, 48_000);
    // Skip the codec's first frames (priming, the encoder's ramp).
    let steady = &samples[samples.len() / 4..];
    let hz = tone_hz(steady, rate);
    assert!((hz - 1000.0).abs() < 2.0, "tone at {hz} Hz");
    let level = rms_db(steady);
    assert!((level - -24.08).abs() < 1.0, "tone at {level:.2} dBFS");
    let frames = video_frames(&items, "video:0");
    assert!(frames.len() >= 50, "{} frames", frames.len());
    let RuntimeData::Video {
        pixel_data,
        width,
        height,
        format,
        ..
    } = frames[frames.len() - 1]
    else {
        unreachable!()
    };
    assert_eq!((*width, *height, *format), (320, 240, PixelFormat::Rgb24));
    assert_bars(pixel_data, 320, 240, 24);
    assert_monotonic(&items);
}

/// Timestamps never go back on a track; audio items do not overlap.
fn assert_monotonic(items: &[RuntimeData]) {
    let mut last: std::collections::HashMap<String, u64> = Default::default();
    for item in items {
        let (track, start, end) = match item {
            RuntimeData::Audio {
                stream_id,
                timestamp_us,
                sample_rate,
                ..
            } => {
                let frames = item.audio_frames().unwrap_or(0) as u64;
                (
                    stream_id.as_deref().unwrap_or("").to_owned(),
                    *timestamp_us,
                    timestamp_us + frames * 1_000_000 / u64::from(*sample_rate),
                )
            }
            RuntimeData::Video {
                stream_id,
                timestamp_us,
                ..
            } => (
                stream_id.as_deref().unwrap_or("").to_owned(),
                *timestamp_us,
                timestamp_us + 1,
            ),
            _ => continue,
        };
        if let Some(previous_end) = last.get(&track) {
            assert!(
                start + 1 >= *previous_end,
                "{track}: item at {start} µs starts before the last ended ({previous_end} µs)"
            );
        }
        last.insert(track, end);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_mpeg_ts_is_decoded() {
    let port = udp_port();
    let url = format!("udp://127.0.0.1:{port}");
    let source = source(&config(&url));
    let _publisher = publish(
        Media::BarsAndTone,
        None,
        &["-f", "mpegts", &format!("{url}?pkt_size=1316")],
    );
    let mut stream = source.start().await.expect("start");
    let info = stream.media_info().clone();
    assert_eq!(info.format.as_deref(), Some("mpegts"));
    check_bars_and_tone(&mut stream).await;
    assert_eq!(source.status(), IngestStatus::Connected);
    source.stop().await.expect("stop");
    assert_eq!(source.status(), IngestStatus::Disconnected);
}

#[tokio::test(flavor = "multi_thread")]
async fn rtmp_publishers_push_to_our_listen_mode() {
    let port = tcp_port();
    let url = format!("rtmp://127.0.0.1:{port}/live/s");
    let source = source(&IngestConfig {
        listen: true,
        ..config(&url)
    });
    let (mut stream, _publisher) =
        start_with_publisher(&source, Media::BarsAndTone, None, &["-f", "flv", &url]).await;
    let tracks: Vec<_> = stream
        .media_info()
        .tracks
        .iter()
        .map(|t| (t.stream_id.clone(), t.codec.clone(), t.selected))
        .collect();
    assert_eq!(
        tracks,
        vec![
            ("video:0".into(), "h264".into(), true),
            ("audio:0".into(), "aac".into(), true)
        ]
    );
    check_bars_and_tone(&mut stream).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rtmp_is_pulled_from_nginx() {
    let nginx = Nginx::start();
    let url = format!("rtmp://127.0.0.1:{}/live/s", nginx.port);
    let _publisher = publish(Media::BarsAndTone, None, &["-f", "flv", &url]);
    let source = source(&config(&url));
    let mut stream = source.start().await.expect("start");
    check_bars_and_tone(&mut stream).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_port_is_an_error_naming_url_and_cause() {
    let port = tcp_port();
    for url in [
        format!("rtmp://127.0.0.1:{port}/live/s"),
        format!("rtsp://127.0.0.1:{port}/s"),
    ] {
        let began = Instant::now();
        let err = source(&config(&url))
            .start()
            .await
            .expect_err("nothing listens");
        let text = err.to_string();
        assert!(
            text.contains(&url) && text.contains("Connection refused"),
            "{text}"
        );
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn selection_picks_tracks_by_index_and_language() {
    for (selection, expected) in [
        (TrackSelection::specific(["audio:1"]), vec!["audio:1"]),
        (
            TrackSelection::specific(["audio:fre", "video"]),
            vec!["audio:1", "video:0"],
        ),
        (TrackSelection::All, vec!["audio:0", "audio:1", "video:0"]),
        (TrackSelection::FirstAudioVideo, vec!["audio:0", "video:0"]),
    ] {
        let port = udp_port();
        let url = format!("udp://127.0.0.1:{port}");
        let _publisher = publish(
            Media::TwoAudioTracks,
            None,
            &["-f", "mpegts", &format!("{url}?pkt_size=1316")],
        );
        let source = source(&IngestConfig {
            track_selection: selection.clone(),
            ..config(&url)
        });
        let mut stream = source.start().await.expect("start");
        let languages: Vec<_> = stream
            .media_info()
            .tracks
            .iter()
            .map(|t| (t.stream_id.clone(), t.language.clone()))
            .collect();
        assert!(
            languages.contains(&("audio:1".into(), Some("fre".into()))),
            "{languages:?}"
        );
        let items = collect(&mut stream, Duration::from_secs(20), |items| {
            expected.iter().all(|track| {
                if track.starts_with("audio") {
                    audio_seconds(items, track) >= 1.0
                } else {
                    video_frames(items, track).len() >= 10
                }
            })
        })
        .await;
        let mut seen: Vec<String> = items
            .iter()
            .filter_map(|i| match i {
                RuntimeData::Audio { stream_id, .. } | RuntimeData::Video { stream_id, .. } => {
                    stream_id.as_deref().map(str::to_owned)
                }
                _ => None,
            })
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, expected, "{selection:?}");
        if expected.contains(&"audio:1") {
            let (samples, rate) = channel0(&items, "audio:1");
            let hz = tone_hz(&samples[samples.len() / 2..], rate);
            assert!(
                (hz - 440.0).abs() < 2.0,
                "audio:1 is the 440 Hz track: {hz}"
            );
        }
        source.stop().await.expect("stop");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_publisher_killed_and_restarted_is_reconnected_without_repeating_media() {
    let port = tcp_port();
    let url = format!("rtmp://127.0.0.1:{port}/live/s");
    let source = source(&IngestConfig {
        listen: true,
        read_timeout_ms: Some(2_000),
        connect_timeout_ms: Some(4_000),
        reconnect: ReconnectPolicy {
            max_attempts: 2,
            initial_delay_ms: 100,
            max_delay_ms: 1_000,
        },
        ..config(&url)
    });
    let mut statuses = source.status_updates().expect("status updates");
    let seen = tokio::spawn(async move {
        let mut seen = vec![statuses.borrow_and_update().clone()];
        while statuses.changed().await.is_ok() {
            seen.push(statuses.borrow_and_update().clone());
            if seen.last().is_some_and(IngestStatus::is_final) {
                break;
            }
        }
        seen
    });
    let (mut stream, mut publisher) =
        start_with_publisher(&source, Media::BarsAndTone, None, &["-f", "flv", &url]).await;
    let mut items = collect(&mut stream, Duration::from_secs(20), |items| {
        audio_seconds(items, "audio:0") >= 1.5
    })
    .await;
    publisher.kill();
    // The restarted publisher sends 2 s and finishes; no third one comes.
    let _restarted = tokio::task::spawn_blocking({
        let url = url.clone();
        move || publish_when_listening(Media::BarsAndTone, Some(2.0), &["-f", "flv", &url])
    })
    .await
    .expect("publisher");
    let began = Instant::now();
    items.extend(collect(&mut stream, Duration::from_secs(60), |_| false).await);
    // Gone for good: two more waits of 4 s, then an error naming the URL and the cause.
    assert!(
        began.elapsed() < Duration::from_secs(20),
        "{:?}",
        began.elapsed()
    );
    let error = stream
        .error()
        .expect("the publisher did not come back")
        .to_string();
    assert!(
        error.contains(&url)
            && error.contains("lost the input")
            && error.contains("timed out after 4.0 s waiting for the publisher"),
        "{error}"
    );
    assert_monotonic(&items);
    let total = audio_seconds(&items, "audio:0");
    assert!(total >= 3.0, "both publishers' audio: {total} s");
    let frames = video_frames(&items, "video:0");
    let numbers: Vec<u64> = frames
        .iter()
        .map(|f| match f {
            RuntimeData::Video { frame_number, .. } => *frame_number,
            _ => 0,
        })
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "frame numbers go on across the reconnection"
    );
    let seen = seen.await.expect("statuses");
    let connected = seen
        .iter()
        .filter(|s| **s == IngestStatus::Connected)
        .count();
    assert!(connected >= 2, "{seen:?}");
    assert!(
        seen.iter()
            .any(|s| matches!(s, IngestStatus::Reconnecting { attempt: 1, max: 2 })),
        "{seen:?}"
    );
    assert!(
        matches!(seen.last(), Some(IngestStatus::Error(_))),
        "{seen:?}"
    );
    // A watch receiver shows the latest status when it looks: before the first
    // Connected, only Idle or Connecting.
    let first_connected = seen
        .iter()
        .position(|s| *s == IngestStatus::Connected)
        .expect("connected");
    assert!(
        seen[..first_connected]
            .iter()
            .all(|s| matches!(s, IngestStatus::Idle | IngestStatus::Connecting)),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rtsp_publishers_push_to_our_listen_mode() {
    let port = tcp_port();
    let url = format!("rtsp://127.0.0.1:{port}/live");
    let source = source(&config(&format!("{url}?listen=1")));
    let (mut stream, _publisher) = start_with_publisher(
        &source,
        Media::BarsAndTone,
        None,
        &["-f", "rtsp", "-rtsp_transport", "tcp", &url],
    )
    .await;
    check_bars_and_tone(&mut stream).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rtsp_is_pulled_from_gst_rtsp_server() {
    let server = RtspServer::start();
    let url = format!("rtsp://127.0.0.1:{}/test", server.port);
    let source = source(&config(&url));
    let mut stream = source.start().await.expect("start");
    let codecs: Vec<_> = stream
        .media_info()
        .tracks
        .iter()
        .map(|t| t.codec.clone())
        .collect();
    assert!(
        codecs.contains(&"h264".to_owned()) && codecs.contains(&"opus".to_owned()),
        "{codecs:?}"
    );
    let items = collect(&mut stream, Duration::from_secs(20), |items| {
        audio_seconds(items, "audio:0") >= 2.0 && video_frames(items, "video:0").len() >= 25
    })
    .await;
    assert!(stream.error().is_none(), "{:?}", stream.error());
    let (samples, rate) = channel0(&items, "audio:0");
    let steady = &samples[samples.len() / 4..];
    let hz = tone_hz(steady, rate);
    assert!((hz - 1000.0).abs() < 2.0, "tone at {hz} Hz");
    // audiotestsrc volume 0.125: -21.07 dBFS RMS on each channel.
    let level = rms_db(steady);
    assert!((level - -21.07).abs() < 1.0, "tone at {level:.2} dBFS");
    let frames = video_frames(&items, "video:0");
    let RuntimeData::Video { width, height, .. } = frames[frames.len() - 1] else {
        unreachable!()
    };
    assert_eq!((*width, *height), (320, 240));
    assert_monotonic(&items);
}

#[tokio::test(flavor = "multi_thread")]
async fn srt_as_listener_and_as_caller() {
    // Our listener, ffmpeg calling.
    let port = udp_port();
    let url = format!("srt://127.0.0.1:{port}");
    let listener = source(&IngestConfig {
        listen: true,
        ..config(&url)
    });
    let publish_url = format!("{url}?mode=caller");
    let (mut stream, _publisher) = start_with_publisher(
        &listener,
        Media::BarsAndTone,
        None,
        &["-f", "mpegts", &publish_url],
    )
    .await;
    check_bars_and_tone(&mut stream).await;
    listener.stop().await.expect("stop");

    // ffmpeg listening, our caller; the caller may come first: reconnection covers it.
    let port = udp_port();
    let url = format!("srt://127.0.0.1:{port}");
    let _publisher = publish(
        Media::BarsAndTone,
        None,
        &["-f", "mpegts", &format!("{url}?mode=listener")],
    );
    let caller = source(&IngestConfig {
        connect_timeout_ms: Some(2_000),
        reconnect: ReconnectPolicy {
            max_attempts: 10,
            initial_delay_ms: 200,
            max_delay_ms: 500,
        },
        ..config(&url)
    });
    let mut stream = caller.start().await.expect("start");
    check_bars_and_tone(&mut stream).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_on_the_port_is_an_error_within_the_timeout() {
    // A TCP server that answers with noise.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        use std::io::Write;
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let noise: Vec<u8> = (0..8192u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            let _ = stream.write_all(&noise);
        }
    });
    for url in [
        format!("rtmp://127.0.0.1:{port}/live/s"),
        format!("rtsp://127.0.0.1:{port}/s"),
    ] {
        let began = Instant::now();
        let err = source(&IngestConfig {
            connect_timeout_ms: Some(3_000),
            ..config(&url)
        })
        .start()
        .await
        .expect_err("noise is not a stream");
        assert!(err.to_string().contains(&url), "{err}");
        assert!(
            began.elapsed() < Duration::from_secs(6),
            "{url}: {:?}",
            began.elapsed()
        );
    }
    // Noise datagrams to a UDP input.
    let port = udp_port();
    let url = format!("udp://127.0.0.1:{port}");
    let sender = std::thread::spawn(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        for i in 0..400u32 {
            let noise: Vec<u8> = (0..1316u32)
                .map(|j| ((i * 7919 + j).wrapping_mul(2_654_435_761) >> 11) as u8)
                .collect();
            let _ = socket.send_to(&noise, ("127.0.0.1", port));
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    let began = Instant::now();
    let err = source(&IngestConfig {
        connect_timeout_ms: Some(3_000),
        ..config(&url)
    })
    .start()
    .await
    .expect_err("noise is not a stream");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(
        began.elapsed() < Duration::from_secs(6),
        "{:?}",
        began.elapsed()
    );
    sender.join().expect("sender");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_path_or_an_unreachable_host_is_an_error_within_the_timeout() {
    let nginx = Nginx::start();
    let url = format!("rtmp://127.0.0.1:{}/nosuchapp/s", nginx.port);
    let err = source(&IngestConfig {
        connect_timeout_ms: Some(3_000),
        ..config(&url)
    })
    .start()
    .await
    .expect_err("no such application");
    assert!(err.to_string().contains(&url), "{err}");
    // A stream nobody publishes: nginx waits, we do not.
    let url = format!("rtmp://127.0.0.1:{}/live/nobody", nginx.port);
    let began = Instant::now();
    let err = source(&IngestConfig {
        connect_timeout_ms: Some(2_000),
        ..config(&url)
    })
    .start()
    .await
    .expect_err("nothing published");
    assert!(
        err.to_string().contains("timed out after 2.0 s connecting"),
        "{err}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "{:?}",
        began.elapsed()
    );
    // TEST-NET-1: routed nowhere.
    let url = "rtsp://192.0.2.1:554/s";
    let began = Instant::now();
    let err = source(&IngestConfig {
        connect_timeout_ms: Some(1_500),
        ..config(url)
    })
    .start()
    .await
    .expect_err("unreachable");
    assert!(err.to_string().contains(url), "{err}");
    assert!(
        began.elapsed() < Duration::from_secs(3),
        "{:?}",
        began.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stopping_or_abandoning_a_listen_wait_frees_the_port_at_once() {
    // stop() while waiting for a publisher: start() answers at once.
    let port = tcp_port();
    let url = format!("rtmp://127.0.0.1:{port}/live/s");
    let waiting = source(&IngestConfig {
        listen: true,
        ..config(&url)
    });
    let start = tokio::spawn({
        let waiting = waiting.clone();
        async move { waiting.start().await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let began = Instant::now();
    waiting.stop().await.expect("stop");
    let err = start.await.expect("join").expect_err("stopped");
    assert!(
        err.to_string().contains("stopped before the input opened"),
        "{err}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(1),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(waiting.status(), IngestStatus::Disconnected);

    // A start() abandoned by its caller (a timeout, Ctrl-C): the thread and its listening
    // socket go too.
    let abandoned = source(&IngestConfig {
        listen: true,
        ..config(&url)
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), abandoned.start())
            .await
            .is_err()
    );
    let until = Instant::now() + Duration::from_secs(2);
    while std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "the port is still taken");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
