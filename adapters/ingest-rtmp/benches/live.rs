//! `cargo xtask bench ingest-live`: live ingest through FFmpeg, in one run.
//!
//! - publish → first `RuntimeData`: an ffmpeg publisher started against our RTMP listen
//!   mode and our UDP input; the time from starting it to the first item (median of 5);
//! - CPU per stream of 720p30 H.264 + 48 kHz stereo AAC over UDP MPEG-TS: decoded only,
//!   and decoded and monitored by `examples/pipelines/stream-monitor.yaml`; beside it, in
//!   the same run, `ffmpeg -f null` decoding the same stream (the floor);
//! - how many such monitored streams the machine holds in real time.
//!
//! The publishers send a pre-encoded clip (`-c copy`, looped), so they cost next to nothing.

use remotemedia_ingest_rtmp::RtmpIngestPlugin;
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::ingestion::{global_ingest_registry, IngestConfig, IngestSource};
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::transport::{
    PipelineRunner, PipelineTransport, StreamSession, TransportData,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cpu_seconds(who: i32) -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(who, &mut usage) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(usage.ru_utime) + t(usage.ru_stime)
}

fn port(udp: bool) -> u16 {
    if udp {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("port")
            .port()
    } else {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port()
    }
}

fn ffmpeg(args: &[&str]) -> Killed {
    Killed(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostats", "-loglevel", "error"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg"),
    )
}

/// A 10 s 720p30 H.264 + 48 kHz stereo AAC clip, in MPEG-TS and FLV.
fn clips(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("bench dir");
    let ts = dir.join("720p30.ts");
    let flv = dir.join("720p30.flv");
    if !ts.exists() || !flv.exists() {
        println!("encoding the 720p30 clip (once)");
        for out in [&ts, &flv] {
            let status = Command::new("ffmpeg")
                .args([
                    "-hide_banner",
                    "-loglevel",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=1280x720:rate=30",
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=1000:sample_rate=48000",
                    "-t",
                    "10",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "veryfast",
                    "-tune",
                    "zerolatency",
                    "-g",
                    "30",
                    "-b:v",
                    "2500k",
                    "-pix_fmt",
                    "yuv420p",
                    "-c:a",
                    "aac",
                    "-b:a",
                    "128k",
                    "-ac",
                    "2",
                ])
                .arg(out)
                .status()
                .expect("ffmpeg");
            assert!(status.success(), "encoding the clip");
        }
    }
    (ts, flv)
}

fn udp_publisher(clip: &Path, port: u16) -> Killed {
    ffmpeg(&[
        "-re",
        "-stream_loop",
        "-1",
        "-i",
        &clip.display().to_string(),
        "-c",
        "copy",
        "-f",
        "mpegts",
        &format!("udp://127.0.0.1:{port}?pkt_size=1316"),
    ])
}

fn source(config: IngestConfig) -> Arc<dyn IngestSource> {
    global_ingest_registry()
        .create_from_uri(&config)
        .expect("source")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Publish → first item, ms: (RTMP listen, UDP).
async fn first_data_latency(ts: &Path, flv: &Path) -> (f64, f64) {
    let mut rtmp = Vec::new();
    let mut udp = Vec::new();
    for _ in 0..5 {
        let p = port(false);
        let url = format!("rtmp://127.0.0.1:{p}/live/s");
        let src = source(IngestConfig {
            listen: true,
            ..IngestConfig::from_url(&url)
        });
        let start = tokio::spawn({
            let src = src.clone();
            async move { src.start().await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await; // listening by then
        let published = Instant::now();
        let _publisher = ffmpeg(&[
            "-re",
            "-i",
            &flv.display().to_string(),
            "-c",
            "copy",
            "-f",
            "flv",
            &url,
        ]);
        let mut stream = start.await.expect("join").expect("start");
        stream.recv().await.expect("first item");
        rtmp.push(published.elapsed().as_secs_f64() * 1000.0);
        src.stop().await.expect("stop");

        let p = port(true);
        let src = source(IngestConfig::from_url(format!("udp://127.0.0.1:{p}")));
        let start = tokio::spawn({
            let src = src.clone();
            async move { src.start().await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await; // bound by then
        let published = Instant::now();
        let _publisher = udp_publisher(ts, p);
        let mut stream = start.await.expect("join").expect("start");
        stream.recv().await.expect("first item");
        udp.push(published.elapsed().as_secs_f64() * 1000.0);
        src.stop().await.expect("stop");
    }
    (median(rtmp), median(udp))
}

/// One monitored (or only decoded) stream; returns the media seconds received.
struct Stream {
    media_us: Arc<AtomicU64>,
    started: Instant,
    _publisher: Killed,
    source: Arc<dyn IngestSource>,
}

async fn open_stream(
    ts: &Path,
    runner: Option<&Arc<PipelineRunner>>,
    manifest: &Arc<Manifest>,
) -> Stream {
    let p = port(true);
    let source = source(IngestConfig::from_url(format!("udp://127.0.0.1:{p}")));
    let publisher = udp_publisher(ts, p);
    let mut stream = source.start().await.expect("start");
    let media_us = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&media_us);
    let session: Option<Arc<dyn StreamSession>> = match runner {
        Some(runner) => {
            let pipeline = Arc::new(runner.validate(manifest).expect("valid"));
            Some(
                runner
                    .stream_pipeline(pipeline)
                    .await
                    .expect("session")
                    .into(),
            )
        }
        None => None,
    };
    if let Some(session) = &session {
        let session = Arc::clone(session);
        tokio::spawn(async move { while let Ok(Some(_)) = session.next_output().await {} });
    }
    tokio::spawn(async move {
        let mut base = None;
        while let Some(item) = stream.recv().await {
            if let RuntimeData::Audio { timestamp_us, .. } = &item {
                let base = *base.get_or_insert(*timestamp_us);
                counter.store(timestamp_us - base, Ordering::Relaxed);
            }
            if let Some(session) = &session {
                if session.send_input(TransportData::new(item)).await.is_err() {
                    break;
                }
            }
        }
    });
    Stream {
        media_us,
        started: Instant::now(),
        _publisher: publisher,
        source,
    }
}

/// Runs `n` streams for `seconds`; returns (CPU cores used by this process, the worst lag
/// behind real time in seconds).
async fn run_streams(
    n: usize,
    monitored: bool,
    seconds: f64,
    ts: &Path,
    runner: &Arc<PipelineRunner>,
    manifest: &Arc<Manifest>,
) -> (f64, f64) {
    let mut streams = Vec::new();
    for _ in 0..n {
        streams.push(open_stream(ts, monitored.then_some(runner), manifest).await);
    }
    // Steady state: skip the first second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (cpu0, wall0) = (cpu_seconds(libc::RUSAGE_SELF), Instant::now());
    let lag = |s: &Stream| {
        s.started.elapsed().as_secs_f64() - s.media_us.load(Ordering::Relaxed) as f64 / 1e6
    };
    let lag0: Vec<f64> = streams.iter().map(lag).collect();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let cores = (cpu_seconds(libc::RUSAGE_SELF) - cpu0) / wall0.elapsed().as_secs_f64();
    // Falling behind shows as lag that grows.
    let worst = streams
        .iter()
        .zip(&lag0)
        .map(|(s, l0)| lag(s) - l0)
        .fold(f64::MIN, f64::max);
    for s in &streams {
        s.source.stop().await.expect("stop");
    }
    drop(streams);
    tokio::time::sleep(Duration::from_millis(300)).await;
    (cores, worst)
}

/// `ffmpeg -f null` decoding the same UDP stream for `seconds`: CPU cores.
fn ffmpeg_floor(ts: &Path, seconds: f64) -> f64 {
    let p = port(true);
    let _publisher = udp_publisher(ts, p);
    let before = cpu_seconds(libc::RUSAGE_CHILDREN);
    let started = Instant::now();
    let status = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-threads",
            "1",
            "-i",
            &format!("udp://127.0.0.1:{p}"),
            "-t",
            &seconds.to_string(),
            "-f",
            "null",
            "-",
        ])
        .status()
        .expect("ffmpeg");
    assert!(status.success());
    let wall = started.elapsed().as_secs_f64();
    // The publisher is still running (killed after): only the decoder has been reaped.
    (cpu_seconds(libc::RUSAGE_CHILDREN) - before) / wall
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("ingest_live: benchmark");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        global_ingest_registry().register(Arc::new(RtmpIngestPlugin)).expect("register");
        let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")));
        let (ts, flv) = clips(&target.join("bench-ingest-live"));
        let manifest = Arc::new(
            Manifest::from_yaml(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/pipelines/stream-monitor.yaml")).expect("manifest"))
                .expect("manifest"),
        );
        let runner = Arc::new(PipelineRunner::new().expect("runner"));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!("machine: {cpus} CPU(s)");

        let (rtmp_ms, udp_ms) = first_data_latency(&ts, &flv).await;
        println!("publish -> first RuntimeData (median of 5, from starting the publisher): RTMP listen {rtmp_ms:.0} ms, UDP MPEG-TS {udp_ms:.0} ms");
        if std::env::args().any(|a| a == "--latency-only") {
            return;
        }

        let floor = ffmpeg_floor(&ts, 8.0);
        let (decoded, _) = run_streams(1, false, 8.0, &ts, &runner, &manifest).await;
        let (monitored, _) = run_streams(1, true, 8.0, &ts, &runner, &manifest).await;
        println!("CPU per 720p30 + 48 kHz stereo stream (cores): ffmpeg -f null {floor:.3} | adapter, decoded {decoded:.3} ({:.2}x the floor) | decoded + stream-monitor pipeline {monitored:.3} ({:.2}x)", decoded / floor, monitored / floor);

        let mut held = 0;
        for n in [2usize, 4, 8, 12, 16, 20, 24, 28] {
            let (cores, lag) = run_streams(n, true, 8.0, &ts, &runner, &manifest).await;
            let real_time = lag < 0.5;
            println!("{n:>2} monitored streams: {cores:.2} cores, lag grew {lag:+.2} s in 8 s -> {}", if real_time { "real time" } else { "falls behind" });
            if !real_time {
                break;
            }
            held = n;
        }
        println!("monitored 720p30 streams held in real time on {cpus} CPU(s): {held} (of the counts tried)");
    });
}
