//! `FileIngestPlugin` and the ingest registry: formats, conversion on ingest, track tags,
//! and every bad input.

mod support;

use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::ingestion::{
    global_ingest_registry, IngestConfig, IngestStatus, TrackSelection,
};
use std::path::PathBuf;
use support::{channel, zero_crossing_frequency};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

struct Decoded {
    samples: Vec<f32>,
    sample_rate: u32,
    channels: u16,
    stream_ids: Vec<String>,
    timestamps: Vec<u64>,
}

async fn decode(config: IngestConfig) -> remotemedia_runtime_core::Result<Decoded> {
    let source = global_ingest_registry().create_from_uri(&config)?;
    let mut stream = source.start().await?;
    let mut out = Decoded {
        samples: Vec::new(),
        sample_rate: 0,
        channels: 0,
        stream_ids: Vec::new(),
        timestamps: Vec::new(),
    };
    while let Some(data) = stream.recv().await {
        let RuntimeData::Audio {
            samples,
            sample_rate,
            channels,
            stream_id,
            timestamp_us,
        } = data
        else {
            panic!("file ingest delivers audio only");
        };
        out.samples.extend_from_slice(&samples);
        out.sample_rate = sample_rate;
        out.channels = channels;
        out.timestamps.push(timestamp_us);
        let id = stream_id.as_deref().unwrap_or("").to_owned();
        if !out.stream_ids.contains(&id) {
            out.stream_ids.push(id);
        }
    }
    if let Some(error) = stream.error() {
        return Err(error.clone());
    }
    assert_eq!(source.status(), IngestStatus::Disconnected);
    Ok(out)
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("remotemedia-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write temp file");
    path
}

#[tokio::test]
async fn every_supported_format_decodes_with_channels_kept_apart() {
    for name in [
        "tone.wav",
        "tone.flac",
        "tone.mp3",
        "tone.ogg",
        "tone.aiff",
        "tone.caf",
        "tone-ima-adpcm.wav",
        "tone-ms-adpcm.wav",
        "tone.m4a",
        "tone-alac.m4a",
        "tone.mka",
    ] {
        let d = decode(IngestConfig::from_url(fixture(name)))
            .await
            .expect(name);
        assert_eq!((d.sample_rate, d.channels), (22_050, 2), "{name}");
        assert_eq!(d.stream_ids, ["audio:0"], "{name}");
        let frames = d.samples.len() / 2;
        // Lossy codecs may keep some encoder padding the container does not describe.
        let tolerance = match name {
            "tone.mp3" | "tone.ogg" | "tone.m4a" | "tone.mka" => 2400,
            // ADPCM codes whole blocks: the last one is padded.
            "tone-ima-adpcm.wav" | "tone-ms-adpcm.wav" => 1024,
            _ => 0,
        };
        assert!(
            frames.abs_diff(11_025) <= tolerance,
            "{name}: {frames} frames"
        );
        println!("{name}: {frames} frames");
        let middle = |c: usize| {
            let ch = channel(&d.samples, 2, c);
            ch[ch.len() / 5..ch.len() * 4 / 5].to_vec()
        };
        let (left, right) = (middle(0), middle(1));
        // 4-bit ADPCM's quantization noise adds zero crossings (sox decodes the same).
        let hz = if name.contains("adpcm") { 25.0 } else { 15.0 };
        assert!(
            (zero_crossing_frequency(&left, 22_050) - 440.0).abs() < hz,
            "{name} left"
        );
        assert!(
            (zero_crossing_frequency(&right, 22_050) - 880.0).abs() < hz,
            "{name} right"
        );
        assert!(
            d.timestamps.windows(2).all(|w| w[0] < w[1]),
            "{name}: timestamps advance"
        );
        assert_eq!(d.timestamps[0], 0);
    }
}

#[tokio::test]
async fn a_codec_or_container_the_ingest_cannot_read_is_named() {
    let err = decode(IngestConfig::from_url(fixture("tone.webm")))
        .await
        .err()
        .expect("Opus is not decoded");
    assert!(
        err.to_string().contains("cannot decode track audio:0: its codec is Opus, which the file ingest does not decode (it decodes PCM,"),
        "{err}"
    );
    for (bytes, found) in [
        (
            b"#!AMR\n\x3c\x48\xf5\x1f\x96\x66\x79\xe1\xe0\x01\xe7\xcf\xf0\x00".to_vec(),
            "AMR",
        ),
        (
            b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk".to_vec(),
            "MIDI",
        ),
        (
            b"RIFF\x24\x00\x00\x00AVI LIST\x00\x00\x00\x00".to_vec(),
            "AVI",
        ),
        (
            b"\x0b\x77\x5b\x13\x8c\x40\x2f\x84\x2b\xf1\x4e\xfa\xb0\xfd\xf3\xf7".to_vec(),
            "AC-3",
        ),
    ] {
        let path = temp_file(&format!("unreadable-{found}"), &bytes);
        let err = decode(IngestConfig::from_url(path.display().to_string()))
            .await
            .err()
            .expect(found);
        assert!(
            err.to_string().contains(&format!(
                "the file is {found}, which the file ingest cannot read"
            )),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("it reads WAV, AIFF, CAF, FLAC, MP3, AAC (ADTS), OGG, MP4/M4A, MKV/WebM"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_container_the_ingest_reads_with_contents_it_cannot_decode_says_so() {
    // WAVE_FORMAT_EXTENSIBLE with a µ-law sub-type: the WAV is read, its contents are not.
    let mut wav = b"RIFF\0\0\0\0WAVEfmt \x28\0\0\0\xfe\xff\x01\0\x40\x1f\0\0\x40\x1f\0\0\x01\0\x08\0\x16\0\x08\0\x04\0\0\0".to_vec();
    wav.extend_from_slice(b"\x07\0\0\0\0\0\x10\0\x80\0\0\xaa\0\x38\x9b\x71data\x40\0\0\0");
    wav.extend_from_slice(&[0x7f; 64]);
    let size = (wav.len() - 8) as u32;
    wav[4..8].copy_from_slice(&size.to_le_bytes());
    let path = temp_file("mulaw-extensible.wav", &wav);
    let err = decode(IngestConfig::from_url(path.display().to_string()))
        .await
        .err()
        .expect("not decoded");
    assert!(
        err.to_string()
            .contains("the file is WAV, but what it holds cannot be read: "),
        "{err}"
    );
}

#[tokio::test]
async fn file_urls_and_bare_paths_are_the_same_source() {
    let bare = decode(IngestConfig::from_url(fixture("tone.flac")))
        .await
        .expect("bare");
    let url = decode(IngestConfig::from_url(format!(
        "file://{}",
        fixture("tone.flac")
    )))
    .await
    .expect("file://");
    assert_eq!(bare.samples, url.samples);
}

#[tokio::test]
async fn requested_rate_and_channels_are_honoured() {
    let d = decode(IngestConfig {
        audio_sample_rate: Some(16_000),
        audio_channels: Some(1),
        ..IngestConfig::from_url(fixture("tone.wav"))
    })
    .await
    .expect("decodes");
    assert_eq!((d.sample_rate, d.channels), (16_000, 1));
    assert_eq!(
        d.samples.len(),
        8000,
        "11025 frames at 22050 Hz = 8000 at 16 kHz"
    );
    let expected_last = d.timestamps.last().copied().unwrap_or(0);
    assert!(expected_last < 500_000);
}

#[tokio::test]
async fn upmix_on_ingest_copies_the_mono_mix() {
    let mono = decode(IngestConfig {
        audio_channels: Some(1),
        ..IngestConfig::from_url(fixture("tone.wav"))
    })
    .await
    .expect("mono");
    let quad = decode(IngestConfig {
        audio_channels: Some(4),
        ..IngestConfig::from_url(fixture("tone.wav"))
    })
    .await
    .expect("quad");
    assert_eq!(quad.channels, 4);
    assert_eq!(quad.samples.len(), mono.samples.len() * 4);
}

#[tokio::test]
async fn track_selection_by_tag() {
    let all = decode(IngestConfig {
        track_selection: TrackSelection::All,
        ..IngestConfig::from_url(fixture("tone.ogg"))
    })
    .await
    .expect("all");
    assert_eq!(all.stream_ids, ["audio:0"]);
    let specific = decode(IngestConfig {
        track_selection: TrackSelection::Specific(vec!["audio:0".into()]),
        ..IngestConfig::from_url(fixture("tone.ogg"))
    })
    .await
    .expect("specific");
    assert_eq!(specific.samples, all.samples);
    let err = decode(IngestConfig {
        track_selection: TrackSelection::Specific(vec!["audio:3".into()]),
        ..IngestConfig::from_url(fixture("tone.ogg"))
    })
    .await
    .err()
    .expect("no such track");
    assert!(
        err.to_string()
            .contains("no track matches the selection Specific([\"audio:3\"]) (tracks: audio:0)"),
        "{err}"
    );
}

#[tokio::test]
async fn media_info_describes_the_tracks() {
    let config = IngestConfig::from_url(fixture("tone.flac"));
    let source = global_ingest_registry()
        .create_from_uri(&config)
        .expect("source");
    assert_eq!(source.status(), IngestStatus::Idle);
    let stream = source.start().await.expect("start");
    let info = stream.media_info();
    assert_eq!(info.format.as_deref(), Some("flac"));
    assert_eq!(info.tracks[0].stream_id, "audio:0");
    assert_eq!(info.tracks[0].codec, "flac");
    assert_eq!(info.duration_us(), Some(500_000));
}

#[tokio::test]
async fn missing_file_is_an_error_naming_it() {
    let err = global_ingest_registry()
        .create_from_uri(&IngestConfig::from_url("/no/such/file.wav"))
        .err()
        .expect("missing");
    assert_eq!(
        err.to_string(),
        "cannot ingest /no/such/file.wav: file not found"
    );
}

#[tokio::test]
async fn directory_is_not_a_media_file() {
    let dir = std::env::temp_dir();
    let err = global_ingest_registry()
        .create_from_uri(&IngestConfig::from_url(dir.display().to_string()))
        .err()
        .expect("directory");
    assert!(
        err.to_string()
            .ends_with("is a directory, not a media file"),
        "{err}"
    );
}

#[tokio::test]
async fn non_media_file_is_an_error_at_start() {
    let path = temp_file(
        "notes.wav",
        b"these are not audio samples, just text in a file\n",
    );
    let err = decode(IngestConfig::from_url(path.display().to_string()))
        .await
        .err()
        .expect("not media");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot ingest {}: not a media file",
            path.display()
        )),
        "{text}"
    );
}

#[tokio::test]
async fn empty_file_is_an_error() {
    let path = temp_file("empty.flac", b"");
    let err = decode(IngestConfig::from_url(path.display().to_string()))
        .await
        .err()
        .expect("empty");
    assert!(err.to_string().contains("not a media file"), "{err}");
}

#[tokio::test]
async fn truncated_wav_is_an_error_not_a_short_stream() {
    let bytes = std::fs::read(fixture("tone.wav")).expect("fixture");
    let path = temp_file("cut.wav", &bytes[..bytes.len() / 2]);
    let err = decode(IngestConfig::from_url(path.display().to_string()))
        .await
        .err()
        .expect("truncated");
    let text = err.to_string();
    assert!(text.contains("truncated: audio:0 ends after"), "{text}");
    assert!(
        text.contains("of the 11025 frames its header announces"),
        "{text}"
    );
}

#[tokio::test]
async fn truncated_flac_is_an_error() {
    let bytes = std::fs::read(fixture("tone.flac")).expect("fixture");
    let path = temp_file("cut.flac", &bytes[..bytes.len() / 3]);
    let err = decode(IngestConfig::from_url(path.display().to_string()))
        .await
        .err()
        .expect("truncated");
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[tokio::test]
async fn unknown_scheme_lists_the_registered_ones() {
    let err = global_ingest_registry()
        .create_from_uri(&IngestConfig::from_url("rtsp://camera/stream"))
        .err()
        .expect("no rtsp plugin");
    assert_eq!(
        err.to_string(),
        "cannot ingest rtsp://camera/stream: no ingest plugin handles the rtsp:// scheme (registered: file://, -, bare paths); rtmp:// rtmps:// rtsp:// rtsps:// udp:// srt:// rtp:// are read by the ingest-rtmp adapter (crate remotemedia-ingest-rtmp: register its RtmpIngestPlugin)"
    );
    let err = global_ingest_registry()
        .create_from_uri(&IngestConfig::from_url("gopher://x/y"))
        .err()
        .expect("no gopher plugin");
    assert_eq!(
        err.to_string(),
        "cannot ingest gopher://x/y: no ingest plugin handles the gopher:// scheme (registered: file://, -, bare paths)"
    );
}

#[tokio::test]
async fn raw_pcm_is_only_for_stdin() {
    let err = global_ingest_registry()
        .create_from_uri(&IngestConfig {
            raw_pcm: Some(
                remotemedia_runtime_core::ingestion::RawPcmFormat::parse("s16le:16000:1")
                    .expect("format"),
            ),
            ..IngestConfig::from_url(fixture("tone.wav"))
        })
        .err()
        .expect("raw pcm on a file");
    assert!(err
        .to_string()
        .ends_with("a raw PCM format can only be declared for stdin (-)"));
}

#[tokio::test]
async fn stopping_ends_the_stream() {
    let source = global_ingest_registry()
        .create_from_uri(&IngestConfig::from_url(fixture("tone.wav")))
        .expect("source");
    let mut stream = source.start().await.expect("start");
    assert!(stream.recv().await.is_some());
    source.stop().await.expect("stop");
    assert_eq!(source.status(), IngestStatus::Disconnected);
    let mut remaining = 0;
    while stream.recv().await.is_some() {
        remaining += 1;
    }
    assert!(
        remaining <= 17,
        "at most the buffered items arrive after stop: {remaining}"
    );
}

#[tokio::test]
async fn duplicate_plugin_registration_is_refused() {
    let err = global_ingest_registry()
        .register(std::sync::Arc::new(
            remotemedia_runtime_core::ingestion::FileIngestPlugin,
        ))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "an ingest plugin named 'file' is already registered"
    );
}

async fn ingest_error(name: &str, bytes: &[u8]) -> String {
    let path = temp_file(name, bytes);
    decode(IngestConfig::from_url(path.display().to_string()))
        .await
        .err()
        .expect("an error")
        .to_string()
}

#[tokio::test]
async fn an_mp3_cut_inside_a_frame_is_truncated() {
    let bytes = std::fs::read(fixture("tone.mp3")).expect("fixture");
    // Every cut but the frame boundaries lands inside a frame.
    for cut in [bytes.len() / 3, bytes.len() / 2 + 100, bytes.len() - 7] {
        let text = ingest_error("cut.mp3", &bytes[..cut]).await;
        assert!(
            text.contains("truncated: the MP3 stream ends inside a frame ("),
            "cut at {cut}: {text}"
        );
    }
}

/// Offsets of the OGG pages of `bytes`.
fn ogg_pages(bytes: &[u8]) -> Vec<usize> {
    let mut pages = Vec::new();
    let mut at = 0;
    while at + 27 <= bytes.len() && &bytes[at..at + 4] == b"OggS" {
        pages.push(at);
        let segments = usize::from(bytes[at + 26]);
        let body: usize = bytes[at + 27..at + 27 + segments]
            .iter()
            .map(|&s| usize::from(s))
            .sum();
        at += 27 + segments + body;
    }
    pages
}

#[tokio::test]
async fn an_ogg_cut_inside_a_page_or_before_its_last_page_is_truncated() {
    let bytes = std::fs::read(fixture("tone.ogg")).expect("fixture");
    let pages = ogg_pages(&bytes);
    assert!(pages.len() >= 3, "{pages:?}");
    let last = *pages.last().expect("pages");
    let text = ingest_error("mid.ogg", &bytes[..last + 40]).await;
    assert!(text.contains("truncated"), "{text}");
    // Cut on a page boundary: every page whole, but the stream never ends.
    let text = ingest_error("page.ogg", &bytes[..last]).await;
    assert!(
        text.contains(
            "truncated: the OGG stream is incomplete: its last page does not end the stream"
        ),
        "{text}"
    );
}

/// A WAV header (PCM or float) and `payload`.
fn wav(format: u16, channels: u16, rate: u32, bits: u16, payload: &[u8]) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(36 + payload.len() as u32).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&format.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn a_wav_declaring_rate_zero_is_named_not_a_panic() {
    let text = ingest_error("rate0.wav", &wav(1, 1, 0, 16, &[0; 320])).await;
    assert!(
        text.ends_with(": the WAV header declares a sample rate of 0 Hz"),
        "{text}"
    );
    let text = ingest_error("nochannels.wav", &wav(1, 0, 16_000, 16, &[0; 320])).await;
    assert!(
        text.ends_with(": the WAV header declares 0 channels"),
        "{text}"
    );
}

#[tokio::test]
async fn a_float_wav_holding_nan_is_refused_naming_the_sample() {
    let mut payload = Vec::new();
    for (i, v) in [0.25f32, 0.5, -0.5, f32::NAN].iter().enumerate() {
        let _ = i;
        payload.extend_from_slice(&v.to_le_bytes());
    }
    let text = ingest_error("nan.wav", &wav(3, 1, 16_000, 32, &payload)).await;
    assert!(
        text.ends_with(": sample 3 of audio:0 (at 0.000 s) is NaN: samples must be finite numbers"),
        "{text}"
    );
}
