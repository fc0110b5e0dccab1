//! Executor overhead: a frame through chains of 1, 4 and 16 `PassThrough` nodes, for
//! 20 ms / 200 ms / 2 s of 48 kHz stereo, and the cost of starting a session.
//!
//! Per-hop cost = (time for 16 nodes - time for 1 node) / 15.
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

criterion_group!(benches, per_hop, session_start);
criterion_main!(benches);
