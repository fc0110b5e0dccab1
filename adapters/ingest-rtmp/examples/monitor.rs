//! The README's complete example: monitor a live stream's audio level and picture.
//! `cargo run -p remotemedia-ingest-rtmp --example monitor -- rtmp://127.0.0.1:1935/live/stream`

use remotemedia_ingest_rtmp::RtmpIngestPlugin;
use remotemedia_runtime_core::data::{PixelFormat, RuntimeData};
use remotemedia_runtime_core::ingestion::{
    global_ingest_registry, IngestConfig, IngestStatus, ReconnectPolicy,
};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = global_ingest_registry();
    registry.register(Arc::new(RtmpIngestPlugin))?;

    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "rtmp://127.0.0.1:1935/live/stream".to_owned());
    let config = IngestConfig {
        audio_sample_rate: Some(16_000),
        audio_channels: Some(1),
        video_pixel_format: Some(PixelFormat::Gray8),
        video_width: Some(320),
        video_max_fps: Some(5.0),
        read_timeout_ms: Some(5_000),
        reconnect: ReconnectPolicy {
            max_attempts: 10,
            ..ReconnectPolicy::default()
        },
        ..IngestConfig::from_url(url)
    };
    let source = registry.create_from_uri(&config)?;

    // Status changes as they happen: Connecting, Connected, Reconnecting { attempt, max }, ...
    let mut updates = source
        .status_updates()
        .expect("the adapter reports its status");
    tokio::spawn(async move {
        while updates.changed().await.is_ok() {
            let status: IngestStatus = updates.borrow_and_update().clone();
            eprintln!("status: {status:?}");
        }
    });

    let mut stream = source.start().await?;
    for track in &stream.media_info().tracks {
        println!(
            "{} {} selected={}",
            track.stream_id, track.codec, track.selected
        );
    }
    let (mut sum_sq, mut count, mut next_report_us) = (0.0f64, 0usize, 1_000_000u64);
    while let Some(data) = stream.recv().await {
        match data {
            RuntimeData::Audio {
                samples,
                timestamp_us,
                ..
            } => {
                sum_sq += samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
                count += samples.len();
                if timestamp_us >= next_report_us {
                    let rms_db = 10.0 * (sum_sq / count.max(1) as f64).max(1e-12).log10();
                    println!("{:.1} s: audio {rms_db:.1} dBFS", timestamp_us as f64 / 1e6);
                    (sum_sq, count, next_report_us) = (0.0, 0, next_report_us + 1_000_000);
                }
            }
            RuntimeData::Video {
                pixel_data,
                width,
                height,
                timestamp_us,
                ..
            } => {
                let mean = pixel_data.iter().map(|&y| u64::from(y)).sum::<u64>() as f64
                    / pixel_data.len().max(1) as f64;
                println!(
                    "{:.1} s: {width}x{height} picture, mean luma {mean:.0}",
                    timestamp_us as f64 / 1e6
                );
            }
            _ => {}
        }
    }
    // None: the stream ended; error() says whether it failed.
    if let Some(error) = stream.error() {
        eprintln!("{error}");
    }
    Ok(())
}
