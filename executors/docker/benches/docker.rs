//! `cargo xtask bench docker`: the Docker executor next to the multiprocess executor, in
//! one run — round trips of a 20 ms frame and of 4 MiB through an echo node, session
//! start (image cached, container cold; and with a shared container running), and image
//! builds (cold: empty download cache and no images; cached).
//!
//! `cargo bench -p remotemedia-docker --bench docker -- <python>`; `<python>` has the
//! remotemedia wheel and remotemedia-nodes installed, and a Docker engine must run.

use remotemedia_docker::{DockerBackend, DockerConfig};
use remotemedia_multiprocess::{MultiprocessBackend, MultiprocessConfig};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::{Manifest, NodeManifest};
use remotemedia_runtime_core::nodes::registry::{ExecutorBackend, NodeRegistry, NodeSpec};
use remotemedia_runtime_core::nodes::{NodeContext, NodeExecutor, Outputs};
use remotemedia_runtime_core::transport::PipelineRunner;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SIZES: &[(&str, usize, u16, u32)] = &[
    ("7.7 KB (20 ms, 48 kHz stereo)", 1_920, 2, 48_000),
    ("4 MiB", 1_048_576, 1, 16_000),
];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    percentile(&values, 0.5)
}

fn audio(samples: usize, channels: u16, rate: u32) -> RuntimeData {
    let data: Vec<f32> = (0..samples)
        .map(|i| ((i % 200) as f32 - 100.0) / 100.0)
        .collect();
    RuntimeData::audio(data, rate, channels)
}

async fn echo(backend: &dyn ExecutorBackend, node: NodeManifest) -> Box<dyn NodeExecutor> {
    let mut executor = backend
        .create_node(NodeSpec::new("bench", node.clone()))
        .await
        .expect("create EchoNode");
    let ctx = NodeContext {
        node_id: node.id.clone(),
        node_type: node.node_type.clone(),
        session_id: "bench".to_owned(),
        params: serde_json::json!({}),
    };
    executor
        .initialize(&ctx)
        .await
        .expect("initialize EchoNode");
    executor
}

/// (p50, p99) in µs for each size.
async fn round_trips(node: &mut Box<dyn NodeExecutor>) -> Vec<(f64, f64)> {
    let mut outputs = Outputs::new();
    let mut results = Vec::new();
    for &(_, samples, channels, rate) in SIZES {
        let input = audio(samples, channels, rate);
        let warm_until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < warm_until {
            node.process(input.clone(), &mut outputs)
                .await
                .expect("warm-up");
            outputs.clear();
        }
        let rounds = if samples > 100_000 { 300 } else { 3_000 };
        let mut micros = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let started = Instant::now();
            node.process(input.clone(), &mut outputs)
                .await
                .expect("echo");
            micros.push(started.elapsed().as_secs_f64() * 1e6);
            let out: Vec<RuntimeData> = outputs.drain().collect();
            assert_eq!(out.len(), 1);
        }
        micros.sort_by(|a, b| a.total_cmp(b));
        results.push((percentile(&micros, 0.5), percentile(&micros, 0.99)));
    }
    results
}

fn docker_node(block: serde_json::Value) -> NodeManifest {
    let mut node = NodeManifest::new("echo", "EchoNode");
    node.docker = Some(block);
    node
}

fn runner(python: &std::path::Path, config: DockerConfig) -> (PipelineRunner, Arc<DockerBackend>) {
    let mut registry = NodeRegistry::with_builtins();
    remotemedia_multiprocess::register(
        &mut registry,
        MultiprocessConfig {
            python_executable: Some(python.to_path_buf()),
            ..Default::default()
        },
    );
    let backend = remotemedia_docker::register(&mut registry, config);
    (
        PipelineRunner::with_registry(registry).expect("runner"),
        backend,
    )
}

/// Milliseconds from asking for a session with one Docker node until it is ready.
async fn session_start(runner: &PipelineRunner, manifest: &Arc<Manifest>) -> f64 {
    let started = Instant::now();
    let session = runner
        .create_stream_session(Arc::clone(manifest))
        .await
        .expect("session");
    let ms = started.elapsed().as_secs_f64() * 1e3;
    session.close().await.expect("close");
    while session.recv_output().await.expect("drain").is_some() {}
    ms
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(python) = args.first().map(PathBuf::from) else {
        eprintln!("usage: docker <python>");
        std::process::exit(2);
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let config = DockerConfig {
            host_python: Some(python.clone()),
            ..Default::default()
        };
        let block = serde_json::json!({"resource_limits": {"memory_mb": 1024}});

        // Round trips, side by side.
        let docker = DockerBackend::new(config.clone());
        let mut in_docker = echo(&docker, docker_node(block.clone())).await;
        let multiprocess = MultiprocessBackend::new(MultiprocessConfig {
            python_executable: Some(python.clone()),
            ..Default::default()
        });
        let mut in_process = echo(&multiprocess, NodeManifest::new("echo", "EchoNode")).await;
        let d = round_trips(&mut in_docker).await;
        let m = round_trips(&mut in_process).await;
        println!("Round trip Rust → Python EchoNode → Rust, p50 / p99 in µs, one run");
        println!("{:<32} {:>20} {:>20} {:>10}", "frame", "docker", "multiprocess", "docker x");
        for (i, &(label, ..)) in SIZES.iter().enumerate() {
            println!(
                "{:<32} {:>20} {:>20} {:>9.2}x",
                label,
                format!("{:.1} / {:.1}", d[i].0, d[i].1),
                format!("{:.1} / {:.1}", m[i].0, m[i].1),
                d[i].0 / m[i].0.max(1e-9)
            );
        }
        in_docker.cleanup().await.expect("cleanup");
        in_process.cleanup().await.expect("cleanup");
        drop(in_docker);
        drop(docker);

        // Session start.
        let manifest = Arc::new(Manifest::from_yaml(
            "nodes: [{id: echo, node_type: EchoNode, docker: {resource_limits: {memory_mb: 1024}}}]",
        ).expect("manifest"));
        let (cold_runner, _cold_backend) = runner(&python, DockerConfig { grace_period: Duration::ZERO, ..config.clone() });
        let mut cold = Vec::new();
        for _ in 0..5 {
            cold.push(session_start(&cold_runner, &manifest).await);
            tokio::time::sleep(Duration::from_millis(500)).await; // the container is removed
        }
        let (shared_runner, _shared_backend) = runner(&python, config.clone());
        let holder = shared_runner.create_stream_session(Arc::clone(&manifest)).await.expect("holder");
        let mut shared = Vec::new();
        for _ in 0..10 {
            // The agent's spare interpreter refills between sessions, as between real ones.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            shared.push(session_start(&shared_runner, &manifest).await);
        }
        holder.close().await.expect("close");
        println!(
            "Session start with one Docker node, image cached: container cold {:.0} ms (median of 5), shared container running {:.1} ms (median of 10)",
            median(cold),
            median(shared)
        );

        // Image builds: cold (empty cache directory, images removed) and cached.
        let cache = std::env::temp_dir().join(format!("rm-bench-docker-cache-{}", std::process::id()));
        let build_config = DockerConfig { cache_dir: cache.clone(), ..config.clone() };
        let builder = DockerBackend::new(build_config);
        let engine = builder.docker().await.expect("engine");
        let pipeline: Manifest = Manifest::from_yaml(
            "nodes: [{id: echo, node_type: EchoNode, docker: {python_packages: [six]}}]",
        ).expect("manifest");
        let quiet: remotemedia_docker::image::Progress = Arc::new(|_: &str| {});
        let first = builder.prepare(&pipeline, Arc::clone(&quiet)).await.expect("build");
        let (_, node_image) = first[0].clone();
        let force = bollard::query_parameters::RemoveImageOptionsBuilder::default().force(true).build();
        let _ = engine.remove_image(&node_image, Some(force.clone()), None).await;
        let bases: Vec<String> = engine
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .unwrap_or_default()
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter(|t| t.starts_with("remotemedia-python:3.11-"))
            .collect();
        for tag in &bases {
            let _ = engine.remove_image(tag, Some(force.clone()), None).await;
        }
        let _ = std::fs::remove_dir_all(&cache);
        let cold_builder = DockerBackend::new(DockerConfig { cache_dir: cache.clone(), ..config.clone() });
        let started = Instant::now();
        cold_builder.prepare(&pipeline, Arc::clone(&quiet)).await.expect("cold build");
        let cold_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        cold_builder.prepare(&pipeline, quiet).await.expect("cached build");
        let cached_ms = started.elapsed().as_secs_f64() * 1e3;
        let _ = std::fs::remove_dir_all(&cache);
        println!(
            "Image build (Python 3.11 base from Debian packages + numpy + six + the runtime's packages): cold {cold_s:.1} s (empty download cache, no images), cached {cached_ms:.0} ms"
        );
    });
}
