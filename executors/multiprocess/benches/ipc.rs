//! `cargo xtask bench ipc`: Rust → Python EchoNode → Rust, over the multiprocess
//! executor's shared memory and, in the same run, over a Unix socket with `struct`
//! framing and with pickle (the plain ways), for four frame sizes; then throughput, idle
//! CPU and session start time.
//!
//! `cargo bench -p remotemedia-multiprocess --bench ipc -- <python> <socket-echo.py>`
//!
//! `<python>` must have the remotemedia wheel and remotemedia-nodes installed.

use remotemedia_multiprocess::{register, MultiprocessBackend, MultiprocessConfig};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::{Manifest, NodeManifest};
use remotemedia_runtime_core::nodes::registry::NodeRegistry;
use remotemedia_runtime_core::nodes::registry::{ExecutorBackend, NodeSpec};
use remotemedia_runtime_core::nodes::{NodeContext, NodeExecutor, Outputs};
use remotemedia_runtime_core::transport::{PipelineRunner, TransportData};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// (label, f32 samples, channels, rate): 640 B, 7.7 KB (20 ms of 48 kHz stereo), 64 KiB,
/// 4 MiB.
const SIZES: &[(&str, usize, u16, u32)] = &[
    ("640 B (20 ms, 8 kHz mono)", 160, 1, 8_000),
    ("7.7 KB (20 ms, 48 kHz stereo)", 1_920, 2, 48_000),
    ("64 KiB", 16_384, 1, 16_000),
    ("4 MiB", 1_048_576, 1, 16_000),
];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

/// Round trips before measuring each size, for at least this long: both sides settle
/// (first mappings of the shared-memory pool, code paths, where the kernel places the two
/// busy threads).
const WARM_UP: Duration = Duration::from_secs(1);

fn iterations(samples: usize) -> usize {
    if samples >= 1_000_000 {
        300
    } else {
        3_000
    }
}

struct Figures {
    p50: f64,
    p99: f64,
    mean: f64,
}

fn figures(mut micros: Vec<f64>) -> Figures {
    micros.sort_by(|a, b| a.total_cmp(b));
    let mean = micros.iter().sum::<f64>() / micros.len().max(1) as f64;
    Figures {
        p50: percentile(&micros, 0.5),
        p99: percentile(&micros, 0.99),
        mean,
    }
}

fn audio(samples: usize, channels: u16, rate: u32) -> RuntimeData {
    let data: Vec<f32> = (0..samples)
        .map(|i| ((i % 200) as f32 - 100.0) / 100.0)
        .collect();
    RuntimeData::audio(data, rate, channels)
}

async fn echo_node(backend: &MultiprocessBackend) -> Box<dyn NodeExecutor> {
    let node = NodeManifest::new("echo", "EchoNode");
    let spec = NodeSpec::new("bench", node.clone());
    let mut executor = backend.create_node(spec).await.expect("create EchoNode");
    let ctx = NodeContext {
        node_id: "echo".to_owned(),
        node_type: "EchoNode".to_owned(),
        session_id: "bench".to_owned(),
        params: serde_json::json!({}),
    };
    executor
        .initialize(&ctx)
        .await
        .expect("initialize EchoNode");
    executor
}

async fn shared_memory_round_trips(backend: &MultiprocessBackend) -> Vec<Figures> {
    let mut node = echo_node(backend).await;
    let mut outputs = Outputs::new();
    let mut results = Vec::new();
    for &(_, samples, channels, rate) in SIZES {
        let input = audio(samples, channels, rate);
        for _ in 0..50 {
            node.process(input.clone(), &mut outputs)
                .await
                .expect("warm-up");
            outputs.clear();
        }
        let mut micros = Vec::with_capacity(iterations(samples));
        for _ in 0..iterations(samples) {
            let started = Instant::now();
            node.process(input.clone(), &mut outputs)
                .await
                .expect("echo");
            micros.push(started.elapsed().as_secs_f64() * 1e6);
            let out: Vec<RuntimeData> = outputs.drain().collect();
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].audio_frames(), input.audio_frames());
        }
        results.push(figures(micros));
    }
    node.cleanup().await.expect("cleanup");
    results
}

/// How the socket baseline frames an item.
#[derive(Clone, Copy)]
enum Framing {
    /// A `struct` header and the raw payload.
    Struct,
    /// A length prefix and a pickle of `{sample_rate, channels, samples}`.
    Pickle,
}

/// One item as the pickle baseline sends it.
#[derive(serde::Serialize, serde::Deserialize)]
struct PickledAudio {
    sample_rate: u32,
    channels: u16,
    #[serde(with = "serde_bytes")]
    samples: Vec<u8>,
}

fn socket_round_trips(python: &PathBuf, script: &PathBuf, framing: Framing) -> Vec<Figures> {
    let path = std::env::temp_dir().join(format!("rm-bench-echo-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mode = match framing {
        Framing::Struct => "struct",
        Framing::Pickle => "pickle",
    };
    let mut child = Command::new(python)
        .arg(script)
        .arg(&path)
        .arg(mode)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the socket echo server");
    let mut ready = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut ready)
        .expect("ready line");
    let mut stream = UnixStream::connect(&path).expect("connect");
    let mut results = Vec::new();
    for &(_, samples, channels, rate) in SIZES {
        let data: Vec<f32> = (0..samples)
            .map(|i| ((i % 200) as f32 - 100.0) / 100.0)
            .collect();
        let payload: &[u8] = bytemuck_bytes(&data);
        // The struct variant reads into one buffer allocated up front; pickle allocates per
        // call, as its API does.
        let mut reply = vec![0u8; payload.len()];
        let mut one = |stream: &mut UnixStream| match framing {
            Framing::Struct => {
                let mut header = [0u8; 16];
                header[0..4].copy_from_slice(&rate.to_le_bytes());
                header[4..8].copy_from_slice(&u32::from(channels).to_le_bytes());
                header[8..16].copy_from_slice(&(payload.len() as u64).to_le_bytes());
                stream.write_all(&header).expect("send header");
                stream.write_all(payload).expect("send payload");
                let mut reply_header = [0u8; 16];
                stream.read_exact(&mut reply_header).expect("reply header");
                let size = u64::from_le_bytes(reply_header[8..16].try_into().expect("8 bytes"));
                assert_eq!(size as usize, payload.len());
                stream.read_exact(&mut reply).expect("reply payload");
            }
            Framing::Pickle => {
                let frame = PickledAudio {
                    sample_rate: rate,
                    channels,
                    samples: payload.to_vec(),
                };
                let body =
                    serde_pickle::to_vec(&frame, serde_pickle::SerOptions::new()).expect("pickle");
                stream
                    .write_all(&(body.len() as u64).to_le_bytes())
                    .expect("send length");
                stream.write_all(&body).expect("send pickle");
                let mut length = [0u8; 8];
                stream.read_exact(&mut length).expect("reply length");
                let mut body = vec![0u8; u64::from_le_bytes(length) as usize];
                stream.read_exact(&mut body).expect("reply pickle");
                let back: PickledAudio =
                    serde_pickle::from_slice(&body, serde_pickle::DeOptions::new())
                        .expect("unpickle");
                reply = back.samples;
            }
        };
        let warm_until = Instant::now() + WARM_UP;
        while Instant::now() < warm_until {
            one(&mut stream);
        }
        let mut micros = Vec::with_capacity(iterations(samples));
        for _ in 0..iterations(samples) {
            let started = Instant::now();
            one(&mut stream);
            micros.push(started.elapsed().as_secs_f64() * 1e6);
        }
        assert_eq!(reply, payload);
        results.push(figures(micros));
    }
    drop(stream);
    let _ = child.wait();
    let _ = std::fs::remove_file(&path);
    results
}

fn bytemuck_bytes(data: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and any byte pattern is a valid u8.
    unsafe { std::slice::from_raw_parts(data.as_ptr().cast::<u8>(), std::mem::size_of_val(data)) }
}

fn memcpy_micros(bytes: usize) -> f64 {
    let source = vec![1u8; bytes];
    let mut target = vec![0u8; bytes];
    let rounds = 200;
    let started = Instant::now();
    for _ in 0..rounds {
        target.copy_from_slice(std::hint::black_box(&source));
        std::hint::black_box(&target);
    }
    started.elapsed().as_secs_f64() * 1e6 / rounds as f64
}

/// Frames per second through a session (executor + IPC), 20 ms frames of 48 kHz stereo
/// sent back to back.
async fn session_throughput(runner: &PipelineRunner) -> f64 {
    let manifest = Arc::new(
        Manifest::from_yaml("nodes: [{id: echo, node_type: EchoNode}]").expect("manifest"),
    );
    let session = runner
        .create_stream_session(manifest)
        .await
        .expect("session");
    let frame = audio(1_920, 2, 48_000);
    let frames = 20_000;
    let started = Instant::now();
    let mut received = 0usize;
    for i in 0..frames {
        session
            .send_input(TransportData::new(frame.clone()))
            .await
            .expect("send");
        if i % 32 == 31 {
            while let Some(_out) = session.recv_output().await.expect("recv") {
                received += 1;
            }
        }
    }
    session.close().await.expect("close");
    while session.recv_output().await.expect("drain").is_some() {
        received += 1;
    }
    assert_eq!(received, frames);
    frames as f64 / started.elapsed().as_secs_f64()
}

fn cpu_ticks(pid: u32) -> u64 {
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

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// CPU share of one core used by an idle worker over `seconds`.
async fn idle_cpu(backend: &MultiprocessBackend, seconds: u64) -> (f64, u32) {
    let node = NodeManifest::new("idle", "EchoNode");
    let spec = NodeSpec::new("bench", node);
    let mut executor = backend.create_node(spec).await.expect("create");
    let ctx = NodeContext {
        node_id: "idle".to_owned(),
        node_type: "EchoNode".to_owned(),
        session_id: "bench".to_owned(),
        params: serde_json::json!({}),
    };
    executor.initialize(&ctx).await.expect("initialize");
    let mut outputs = Outputs::new();
    executor
        .process(RuntimeData::Text("wake".into()), &mut outputs)
        .await
        .expect("one item");
    let pid = worker_pid_of_newest_child();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_ticks(pid);
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let used = cpu_ticks(pid).saturating_sub(before) as f64 / ticks_per_second();
    executor.cleanup().await.expect("cleanup");
    (used / seconds as f64 * 100.0, pid)
}

/// The most recently started child of this process (the worker just created).
fn worker_pid_of_newest_child() -> u32 {
    let me = std::process::id().to_string();
    let mut newest = (0u64, 0u32);
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.get(1) == Some(&me.as_str()) {
            let start: u64 = fields.get(19).and_then(|s| s.parse().ok()).unwrap_or(0);
            if start >= newest.0 {
                newest = (start, pid);
            }
        }
    }
    newest.1
}

/// Median time to create a session with one Python node until it is ready.
async fn session_start(runner: &PipelineRunner, rounds: usize, settle: Duration) -> f64 {
    let manifest = Arc::new(
        Manifest::from_yaml("nodes: [{id: echo, node_type: EchoNode}]").expect("manifest"),
    );
    let mut millis = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        // Let a warm pool refill, as it would between real sessions.
        tokio::time::sleep(settle).await;
        let started = Instant::now();
        let session = runner
            .create_stream_session(Arc::clone(&manifest))
            .await
            .expect("session");
        millis.push(started.elapsed().as_secs_f64() * 1e3);
        session.close().await.expect("close");
        while session.recv_output().await.expect("drain").is_some() {}
    }
    millis.sort_by(|a, b| a.total_cmp(b));
    percentile(&millis, 0.5)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (Some(python), Some(script)) = (args.first(), args.get(1)) else {
        eprintln!("usage: ipc <python> <ipc_socket_echo.py>");
        std::process::exit(2);
    };
    let python = PathBuf::from(python);
    let script = PathBuf::from(script);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let config = MultiprocessConfig {
        python_executable: Some(python.clone()),
        ..Default::default()
    };
    let backend = MultiprocessBackend::new(config.clone());

    println!("Round trip Rust → Python EchoNode → Rust, p50 / p99 / mean in µs, one run");
    let shm = runtime.block_on(shared_memory_round_trips(&backend));
    let by_struct = socket_round_trips(&python, &script, Framing::Struct);
    let by_pickle = socket_round_trips(&python, &script, Framing::Pickle);
    println!(
        "{:<32} {:>24}   {:>24}   {:>24}   {:>8} {:>8}",
        "frame", "shared memory", "socket + struct", "socket + pickle", "struct x", "pickle x"
    );
    let cell = |f: &Figures| format!("{:.1} / {:.1} / {:.1}", f.p50, f.p99, f.mean);
    for (i, &(label, ..)) in SIZES.iter().enumerate() {
        println!(
            "{:<32} {:>24}   {:>24}   {:>24}   {:>7.2}x {:>7.2}x",
            label,
            cell(&shm[i]),
            cell(&by_struct[i]),
            cell(&by_pickle[i]),
            by_struct[i].p50 / shm[i].p50.max(1e-9),
            by_pickle[i].p50 / shm[i].p50.max(1e-9),
        );
    }
    println!(
        "4 MiB p50 / 640 B p50: shared memory {:.2}x, socket + struct {:.2}x, socket + pickle {:.2}x; one 4 MiB memcpy here: {:.0} µs",
        shm[3].p50 / shm[0].p50.max(1e-9),
        by_struct[3].p50 / by_struct[0].p50.max(1e-9),
        by_pickle[3].p50 / by_pickle[0].p50.max(1e-9),
        memcpy_micros(4 << 20)
    );

    let cold_runner =
        PipelineRunner::with_registry(registry_with_python_nodes(config.clone())).expect("runner");
    let throughput = runtime.block_on(session_throughput(&cold_runner));
    println!("Throughput through a session, 20 ms 48 kHz stereo frames back to back: {throughput:.0} frames/s ({:.0}x real time)", throughput * 0.02);

    let (idle, pid) = runtime.block_on(idle_cpu(&backend, 10));
    println!("Idle worker (pid {pid}) CPU over 10 s: {idle:.3} % of one core");

    let cold = runtime.block_on(session_start(&cold_runner, 10, Duration::from_millis(0)));
    let warm_runner =
        PipelineRunner::with_registry(registry_with_python_nodes(MultiprocessConfig {
            warm_workers: 1,
            ..config
        }))
        .expect("runner");
    let warm = runtime.block_on(session_start(&warm_runner, 10, Duration::from_millis(1500)));
    println!("Session start with one Python node (median of 10): cold interpreter {cold:.1} ms, warm interpreter {warm:.1} ms");
}

/// The built-in nodes plus this backend and its Python catalog.
fn registry_with_python_nodes(config: MultiprocessConfig) -> NodeRegistry {
    let mut registry = NodeRegistry::with_builtins();
    register(&mut registry, config);
    registry
}
