//! Ingesting a one-hour file streams it: memory stays bounded, whatever the file's length.
//! (Its own test binary, so no other test allocates in the process meanwhile.)

use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::ingestion::{global_ingest_registry, IngestConfig};
use std::io::Write;

/// Peak resident memory of this process (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmHWM line")
}

/// Writes a one-hour 8 kHz mono 16-bit WAV (57.6 MB) of a slow ramp, block by block.
fn write_hour_wav(path: &std::path::Path) {
    let rate: u32 = 8000;
    let frames: u32 = rate * 3600;
    let data_len = frames * 2;
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut header = Vec::with_capacity(44);
    header.extend_from_slice(b"RIFF");
    header.extend_from_slice(&(36 + data_len).to_le_bytes());
    header.extend_from_slice(b"WAVEfmt ");
    header.extend_from_slice(&16u32.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&1u16.to_le_bytes());
    header.extend_from_slice(&rate.to_le_bytes());
    header.extend_from_slice(&(rate * 2).to_le_bytes());
    header.extend_from_slice(&2u16.to_le_bytes());
    header.extend_from_slice(&16u16.to_le_bytes());
    header.extend_from_slice(b"data");
    header.extend_from_slice(&data_len.to_le_bytes());
    file.write_all(&header).expect("header");
    let block: Vec<u8> = (0..8000u32)
        .flat_map(|i| (((i % 200) as i16 - 100) * 50).to_le_bytes())
        .collect();
    for _ in 0..3600 {
        file.write_all(&block).expect("samples");
    }
    file.flush().expect("flush");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_hour_file_streams_in_bounded_memory() {
    let dir = std::env::temp_dir().join(format!("remotemedia-hour-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("hour.wav");
    write_hour_wav(&path);

    let before = peak_rss_kib();
    let source = global_ingest_registry()
        .create_from_uri(&IngestConfig::from_url(path.display().to_string()))
        .expect("source");
    let mut stream = source.start().await.expect("start");
    assert_eq!(stream.media_info().duration_us(), Some(3_600_000_000));
    let mut frames = 0u64;
    while let Some(data) = stream.recv().await {
        if let RuntimeData::Audio { samples, .. } = data {
            frames += samples.len() as u64;
        }
    }
    assert!(stream.error().is_none(), "{:?}", stream.error());
    let grown_kib = peak_rss_kib().saturating_sub(before);
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(frames, 8000 * 3600);
    // Holding the decoded hour would take 115 MB of f32; streaming needs a few buffers.
    assert!(grown_kib < 16 * 1024, "peak memory grew by {grown_kib} KiB");
}
