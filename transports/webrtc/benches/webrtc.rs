//! `cargo xtask bench webrtc`: what the WebRTC transport adds, in one run.
//!
//! The bench starts itself a second time as the server process (a WebRTC server and a
//! gRPC server sharing one runner, both offering a PassThrough pipeline), so the server's
//! CPU is measured apart from the clients'. Then, from this process:
//!
//! 1. **Added latency**, one peer: 20 ms frames of a 48 kHz tone sent at real-time pace as
//!    Opus, through PassThrough, back as Opus; latency = from sending frame k to the
//!    arrival of returned packet k (the 20 ms of the frame itself is not in it). The same
//!    frames (raw f32) over the gRPC stream of the same server, side by side.
//! 2. **Concurrent peers** at real-time pace: latency p50/p99 over all frames, the server's
//!    CPU, and CPU per peer (Opus decode and encode, SRTP, the session).
//!
//! `cargo bench -p remotemedia-webrtc --bench webrtc -- [seconds] [peers...]`

#[path = "../tests/support/mod.rs"]
mod support;

use remotemedia_grpc::proto::pipeline_service_client::PipelineServiceClient;
use remotemedia_grpc::proto::{self, data_item::Payload, stream_request, stream_response};
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::transport::PipelineRunner;
use remotemedia_webrtc::{Limits, Pipelines, WebRtcConfig, WebRtcServer};
use std::io::{BufRead, Write};
use std::time::{Duration, Instant};
use support::{encode_48k, tone_48k, Client};

const ECHO: &str = "nodes: [{id: echo, node_type: PassThrough}]";
const FRAME: Duration = Duration::from_millis(20);

/// Server mode: both servers on ephemeral ports; prints `webrtc <addr> grpc <addr>`; runs
/// until stdin closes.
fn serve() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let runner = PipelineRunner::new().expect("runner");
        let mut pipelines = Pipelines::default();
        pipelines
            .add(&runner, "echo", &Manifest::from_yaml(ECHO).unwrap())
            .unwrap();
        let config = WebRtcConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            limits: Limits {
                max_peers: 10_000,
                ..Limits::default()
            },
            ..WebRtcConfig::default()
        };
        let webrtc = WebRtcServer::new(runner.clone(), pipelines, config);
        let webrtc_listener = webrtc.bind().await.unwrap();
        let grpc_config = remotemedia_grpc::ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            ..Default::default()
        };
        let (grpc_listener, grpc_addr) = remotemedia_grpc::bind(&grpc_config).await.unwrap();
        println!(
            "webrtc {} grpc {}",
            webrtc_listener.local_addr().unwrap(),
            grpc_addr
        );
        std::io::stdout().flush().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        std::thread::spawn(move || {
            let mut line = String::new();
            while std::io::stdin()
                .read_line(&mut line)
                .map(|n| n > 0)
                .unwrap_or(false)
            {}
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let w = tokio::spawn({
            let stop = stopped(stop_rx.clone());
            async move { webrtc.serve(webrtc_listener, stop).await }
        });
        let _ = remotemedia_grpc::serve(runner, grpc_config, grpc_listener, stopped(stop_rx)).await;
        let _ = w.await;
    });
}

/// Clock ticks (1/100 s) of user+system CPU time of a process.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize] as f64 / 1000.0
}

/// One peer at real-time pace for `seconds`: per-frame latencies in µs (frames matched
/// by order), frames sent.
async fn peer_run(base: String, packets: Vec<bytes::Bytes>, start: Instant) -> (Vec<u64>, usize) {
    let client = Client::connect_url(&base, "echo", None, None).await;
    tokio::time::sleep_until(start.into()).await;
    let mut sent_at = Vec::with_capacity(packets.len());
    let mut tick = tokio::time::interval(FRAME);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for (i, p) in packets.iter().enumerate() {
        tick.tick().await;
        sent_at.push(Instant::now());
        client.send_packet(p.clone(), i as u32 * 960, i == 0).await;
    }
    client
        .wait_for(Duration::from_secs(3), |r| r.audio.len() >= packets.len())
        .await;
    let arrivals: Vec<Instant> = client
        .received
        .lock()
        .unwrap()
        .audio
        .iter()
        .map(|(at, _, _)| *at)
        .collect();
    let _ = client.hang_up().await;
    let latencies = sent_at
        .iter()
        .zip(&arrivals)
        .map(|(s, a)| a.saturating_duration_since(*s).as_micros() as u64)
        .collect();
    (latencies, packets.len())
}

/// The same frames over one gRPC stream: latency from sending a frame to its output.
async fn grpc_run(addr: String, frames: Vec<Vec<f32>>) -> Vec<u64> {
    let mut client = PipelineServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("gRPC connect");
    let (tx, rx) = tokio::sync::mpsc::channel::<proto::StreamRequest>(8);
    tx.send(proto::StreamRequest {
        kind: Some(stream_request::Kind::Open(proto::OpenSession {
            manifest: ECHO.into(),
        })),
    })
    .await
    .unwrap();
    let mut responses = client
        .stream_pipeline(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let (arrived_tx, mut arrived_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let receiver = tokio::spawn(async move {
        while let Ok(Some(message)) = responses.message().await {
            if let Some(stream_response::Kind::Output(_)) = message.kind {
                let _ = arrived_tx.send(Instant::now());
            }
        }
    });
    let mut tick = tokio::time::interval(FRAME);
    let mut latencies = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        tick.tick().await;
        let bytes: Vec<u8> = frame.iter().flat_map(|s| s.to_le_bytes()).collect();
        let sent = Instant::now();
        tx.send(proto::StreamRequest {
            kind: Some(stream_request::Kind::Data(proto::DataItem {
                payload: Some(Payload::Audio(proto::AudioData {
                    samples: bytes.into(),
                    sample_rate: 48_000,
                    channels: 1,
                    stream_id: None,
                    timestamp_us: i as u64 * 20_000,
                })),
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        if let Some(at) = arrived_rx.recv().await {
            latencies.push(at.saturating_duration_since(sent).as_micros() as u64);
        }
    }
    let _ = tx
        .send(proto::StreamRequest {
            kind: Some(stream_request::Kind::Close(proto::CloseSession {})),
        })
        .await;
    drop(tx);
    let _ = receiver.await;
    latencies
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) == Some("--serve") {
        serve();
        return;
    }
    let seconds: f32 = args.first().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let mut counts: Vec<usize> = args.iter().skip(1).filter_map(|s| s.parse().ok()).collect();
    if counts.is_empty() {
        counts = vec![1, 10, 25, 50];
    }
    support::DECODE.store(false, std::sync::atomic::Ordering::Relaxed);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--serve")
        .env("RUST_LOG", "error")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("server process");
    let pid = child.id().to_string();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    let (webrtc, grpc) = (format!("http://{}", words[1]), words[3].to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tone = tone_48k(440.0, 0.3, seconds);
    let packets = encode_48k(&tone);
    let frames: Vec<Vec<f32>> = tone.chunks(960).map(<[f32]>::to_vec).collect();

    println!("## One peer, 20 ms frames at real time, PassThrough ({seconds} s)\n");
    println!("| transport | frames | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    let (mut w, _) = runtime.block_on(peer_run(webrtc.clone(), packets.clone(), Instant::now()));
    w.sort_unstable();
    let mut g = runtime.block_on(grpc_run(grpc.clone(), frames));
    g.sort_unstable();
    for (name, l) in [("WebRTC (Opus in and out)", &w), ("gRPC stream (f32)", &g)] {
        println!(
            "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms |",
            l.len(),
            percentile(l, 0.5),
            percentile(l, 0.99),
            percentile(l, 1.0)
        );
    }
    println!(
        "\nWebRTC / gRPC p50: {:.2}x\n",
        percentile(&w, 0.5) / percentile(&g, 0.5)
    );

    println!("## Concurrent peers at real time ({seconds} s each)\n");
    println!("| peers | frames | p50 | p99 | max | answered | server CPU | server CPU per peer | clients' CPU |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in counts {
        let before = cpu_ticks(&pid);
        let clients_before = cpu_ticks("self");
        let wall = Instant::now();
        let (mut all, sent) = runtime.block_on(async {
            // Connect everyone first, then start together, frame boundaries spread.
            let start = Instant::now() + Duration::from_millis(400 + 40 * n as u64);
            let mut tasks = Vec::new();
            for i in 0..n {
                let offset = FRAME.mul_f64(i as f64 / n as f64);
                tasks.push(tokio::spawn(peer_run(
                    webrtc.clone(),
                    packets.clone(),
                    start + offset,
                )));
            }
            let mut all = Vec::new();
            let mut sent = 0;
            for t in tasks {
                if let Ok((l, s)) = t.await {
                    all.extend(l);
                    sent += s;
                }
            }
            (all, sent)
        });
        let cpu = (cpu_ticks(&pid) - before) as f64 / wall.elapsed().as_secs_f64();
        let clients = (cpu_ticks("self") - clients_before) as f64 / wall.elapsed().as_secs_f64();
        all.sort_unstable();
        println!(
            "| {n} | {sent} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} % | {cpu:.0} % | {:.2} % | {clients:.0} % |",
            percentile(&all, 0.5),
            percentile(&all, 0.99),
            percentile(&all, 1.0),
            100.0 * all.len() as f64 / sent.max(1) as f64,
            cpu / n as f64
        );
    }
    drop(child.stdin.take());
    let _ = child.wait();
}
