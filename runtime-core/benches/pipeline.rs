//! Executor overhead: a frame through chains of 1, 4 and 16 `PassThrough` nodes, for
//! 20 ms / 200 ms / 2 s of 48 kHz stereo, and the cost of starting a session.
//!
//! Per-hop cost = (time for 16 nodes - time for 1 node) / 15. Side by side, in the same run:
//! the same chains on a multi-threaded runtime, and a baseline of hand-wired tokio tasks
//! joined by plain bounded mpsc channels (the least any task-per-node design can cost).
//! Run: `cargo bench -p remotemedia-runtime-core --bench pipeline`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::{Manifest, NodeManifest};
use remotemedia_runtime_core::transport::{PipelineRunner, TransportData};
use std::sync::Arc;

fn chain(len: usize) -> Arc<Manifest> {
    let nodes: Vec<NodeManifest> = (0..len)
        .map(|i| NodeManifest::new(format!("p{i}"), "PassThrough"))
        .collect();
    Arc::new(Manifest {
        version: "v1".into(),
        metadata: Default::default(),
        nodes,
        connections: Vec::new(),
    })
}

fn frame(frames: usize) -> TransportData {
    TransportData::new(RuntimeData::audio(vec![0.25f32; frames * 2], 48_000, 2))
}

fn per_hop(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let runner = PipelineRunner::new().expect("runner");
    let mut group = c.benchmark_group("chain_round_trip");
    for &(label, frames) in &[("20ms", 960usize), ("200ms", 9_600), ("2s", 96_000)] {
        for &len in &[1usize, 4, 16] {
            let session = rt
                .block_on(runner.create_stream_session(chain(len)))
                .expect("session");
            let input = frame(frames);
            group.throughput(Throughput::Elements(1));
            group.bench_with_input(
                BenchmarkId::new(label, format!("{len}_nodes")),
                &len,
                |b, _| {
                    b.iter(|| {
                        rt.block_on(async {
                            session.send_input(input.clone()).await.expect("send");
                            let out = session.recv_output().await.expect("recv");
                            assert!(out.is_some());
                            assert!(session.recv_output().await.expect("recv").is_none());
                        })
                    })
                },
            );
        }
    }
    group.finish();
}

fn per_hop_multi_thread(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let runner = PipelineRunner::new().expect("runner");
    let mut group = c.benchmark_group("chain_round_trip_multi_thread");
    for &len in &[1usize, 4, 16] {
        let session = rt
            .block_on(runner.create_stream_session(chain(len)))
            .expect("session");
        let input = frame(960);
        group.bench_with_input(
            BenchmarkId::new("20ms", format!("{len}_nodes")),
            &len,
            |b, _| {
                b.iter(|| {
                    rt.block_on(async {
                        session.send_input(input.clone()).await.expect("send");
                        assert!(session.recv_output().await.expect("recv").is_some());
                        assert!(session.recv_output().await.expect("recv").is_none());
                    })
                })
            },
        );
    }
    group.finish();
}

/// Baseline: `len` tasks forwarding items over bounded tokio channels, nothing else.
fn raw_channel_chain(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("raw_mpsc_chain_baseline");
    for &len in &[1usize, 4, 16] {
        let (first_tx, mut last_rx) = rt.block_on(async {
            let (first_tx, mut rx) = tokio::sync::mpsc::channel::<RuntimeData>(64);
            for _ in 0..len {
                let (tx, next_rx) = tokio::sync::mpsc::channel::<RuntimeData>(64);
                let mut input = rx;
                tokio::spawn(async move {
                    while let Some(item) = input.recv().await {
                        if tx.send(item).await.is_err() {
                            break;
                        }
                    }
                });
                rx = next_rx;
            }
            (first_tx, rx)
        });
        let input = frame(960).data;
        group.bench_with_input(
            BenchmarkId::new("20ms", format!("{len}_nodes")),
            &len,
            |b, _| {
                b.iter(|| {
                    rt.block_on(async {
                        first_tx.send(input.clone()).await.expect("send");
                        assert!(last_rx.recv().await.is_some());
                    })
                })
            },
        );
    }
    group.finish();
}

fn session_start(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let runner = PipelineRunner::new().expect("runner");
    let manifest = chain(4);
    c.bench_function("session_create_close_4_nodes", |b| {
        b.iter(|| {
            rt.block_on(async {
                let session = runner
                    .create_stream_session(Arc::clone(&manifest))
                    .await
                    .expect("session");
                session.close().await.expect("close");
                assert!(session.recv_output().await.expect("recv").is_none());
            })
        })
    });
}

criterion_group!(
    benches,
    per_hop,
    per_hop_multi_thread,
    raw_channel_chain,
    session_start
);
criterion_main!(benches);
