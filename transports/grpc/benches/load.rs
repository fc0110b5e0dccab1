//! Load benchmark for `cargo xtask bench grpc`: N concurrent streaming sessions, each
//! sending a 20 ms 16 kHz mono frame every 20 ms (real time) through
//! FastResampleNode (→ 48 kHz) + AudioChunkerNode (960 frames), against the release
//! `remotemedia-grpc-server` running as its own process on this machine.
//!
//! `cargo bench -p remotemedia-grpc --bench load -- <server-binary> <seconds> <N> [<N>...]`
//!
//! Added latency per frame = time from sending a frame to receiving the output it
//! triggers (the pipeline emits one chunk per frame, so every frame is answered).
//! CPU = user+system time of the server and of this client process, in % of one core.

use bytes::Bytes;
use remotemedia_grpc::proto::pipeline_service_client::PipelineServiceClient;
use remotemedia_grpc::proto::{self, data_item::Payload, stream_request, stream_response};
use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tonic::transport::Channel;

const MANIFEST: &str = "nodes:\n  - {id: resample, node_type: FastResampleNode, params: {target_rate: 48000}}\n  - {id: chunk, node_type: AudioChunkerNode, params: {chunk_size: 960}}\n";
const FRAME: Duration = Duration::from_millis(20);

/// Clock ticks of user+system CPU time of a process.
fn cpu_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
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

struct RunResult {
    latencies_us: Vec<u64>,
    frames_sent: u64,
    outputs: u64,
    errors: u64,
    server_cpu: f64,
    client_cpu: f64,
}

async fn session(
    channel: Channel,
    start_at: Instant,
    until: Instant,
) -> Result<(Vec<u64>, u64, u64), tonic::Status> {
    let mut client = PipelineServiceClient::new(channel);
    let (tx, rx) = mpsc::channel::<proto::StreamRequest>(8);
    tx.send(proto::StreamRequest {
        kind: Some(stream_request::Kind::Open(proto::OpenSession {
            manifest: MANIFEST.into(),
        })),
    })
    .await
    .map_err(|_| tonic::Status::internal("queue"))?;
    let mut responses = client
        .stream_pipeline(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let last_send = Arc::new(AtomicU64::new(0));
    let origin = Instant::now();
    let receiver = {
        let last_send = Arc::clone(&last_send);
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut outputs = 0u64;
            while let Ok(Some(message)) = responses.message().await {
                if let Some(stream_response::Kind::Output(_)) = message.kind {
                    let now = origin.elapsed().as_micros() as u64;
                    let sent = last_send.load(Ordering::Acquire);
                    if sent > 0 {
                        latencies.push(now.saturating_sub(sent));
                    }
                    outputs += 1;
                }
            }
            (latencies, outputs)
        })
    };
    tokio::time::sleep_until(start_at.into()).await;
    let samples: Bytes = (0..320)
        .flat_map(|i| ((i as f32 * 0.05).sin() * 0.3).to_le_bytes())
        .collect::<Vec<u8>>()
        .into();
    let mut ticker = tokio::time::interval(FRAME);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = 0u64;
    while Instant::now() < until {
        ticker.tick().await;
        let frame = proto::StreamRequest {
            kind: Some(stream_request::Kind::Data(proto::DataItem {
                payload: Some(Payload::Audio(proto::AudioData {
                    samples: samples.clone(),
                    sample_rate: 16_000,
                    channels: 1,
                    stream_id: None,
                    timestamp_us: sent * 20_000,
                })),
                ..Default::default()
            })),
        };
        last_send.store(origin.elapsed().as_micros() as u64, Ordering::Release);
        if tx.send(frame).await.is_err() {
            break;
        }
        sent += 1;
    }
    let _ = tx
        .send(proto::StreamRequest {
            kind: Some(stream_request::Kind::Close(proto::CloseSession {})),
        })
        .await;
    drop(tx);
    let (latencies, outputs) = receiver
        .await
        .map_err(|_| tonic::Status::internal("receiver"))?;
    Ok((latencies, sent, outputs))
}

async fn run(addr: &str, server_pid: &str, sessions: usize, seconds: u64) -> RunResult {
    // A few HTTP/2 connections, as a real client fleet would spread over several.
    let connections = sessions.div_ceil(100).max(1);
    let mut channels = Vec::new();
    for _ in 0..connections {
        channels.push(
            Channel::from_shared(format!("http://{addr}"))
                .expect("uri")
                .connect()
                .await
                .expect("connect"),
        );
    }
    let server_before = cpu_ticks(server_pid);
    let client_before = cpu_ticks("self");
    let wall = Instant::now();
    let start = Instant::now() + Duration::from_millis(500);
    let until = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for i in 0..sessions {
        // Spread the sessions' frame boundaries over the 20 ms period.
        let offset = FRAME.mul_f64(i as f64 / sessions as f64);
        tasks.push(tokio::spawn(session(
            channels[i % connections].clone(),
            start + offset,
            until + offset,
        )));
    }
    let mut result = RunResult {
        latencies_us: Vec::new(),
        frames_sent: 0,
        outputs: 0,
        errors: 0,
        server_cpu: 0.0,
        client_cpu: 0.0,
    };
    for task in tasks {
        match task.await {
            Ok(Ok((latencies, sent, outputs))) => {
                result.latencies_us.extend(latencies);
                result.frames_sent += sent;
                result.outputs += outputs;
            }
            _ => result.errors += 1,
        }
    }
    let elapsed = wall.elapsed().as_secs_f64();
    // /proc reports CPU time in clock ticks of 1/100 s on Linux.
    result.server_cpu = (cpu_ticks(server_pid) - server_before) as f64 / elapsed;
    result.client_cpu = (cpu_ticks("self") - client_before) as f64 / elapsed;
    result
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index] as f64 / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (Some(server), Some(seconds)) = (args.first(), args.get(1)) else {
        eprintln!("usage: load <server-binary> <seconds> <sessions>...");
        std::process::exit(2);
    };
    let seconds: u64 = seconds.parse().expect("seconds");
    let counts: Vec<usize> = args[2..]
        .iter()
        .map(|n| n.parse().expect("sessions"))
        .collect();

    let mut child = std::process::Command::new(server)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--max-sessions",
            "100000",
            "--shutdown-grace-secs",
            "1",
        ])
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the server");
    let pid = child.id().to_string();
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("server output");
    let addr = line.trim().rsplit(' ').next().expect("address").to_owned();
    std::thread::spawn(move || {
        let mut sink = String::new();
        while stderr.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("| sessions | frames/s in | p50 added latency | p99 | max | server CPU | client CPU | answered | failed sessions |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in counts {
        let mut r = runtime.block_on(run(&addr, &pid, n, seconds));
        r.latencies_us.sort_unstable();
        println!(
            "| {n} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} % | {:.0} % | {:.1} % | {} |",
            r.frames_sent as f64 / seconds as f64,
            percentile(&r.latencies_us, 0.5),
            percentile(&r.latencies_us, 0.99),
            percentile(&r.latencies_us, 1.0),
            r.server_cpu,
            r.client_cpu,
            100.0 * r.outputs as f64 / r.frames_sent.max(1) as f64,
            r.errors
        );
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let _ = child.wait();
}
