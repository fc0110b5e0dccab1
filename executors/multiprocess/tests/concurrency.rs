//! Many sessions with Python workers at once stay isolated and lose nothing.

mod support;

use remotemedia_runtime_core::data::RuntimeData;
use std::sync::Arc;
use support::{item, manifest, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_sessions_each_get_back_exactly_their_frames() {
    let harness = Arc::new(Harness::new());
    let mut tasks = Vec::new();
    for session_index in 0..16u32 {
        let harness = Arc::clone(&harness);
        tasks.push(tokio::spawn(async move {
            let pipeline = manifest(
                "nodes:\n  - {id: echo, node_type: EchoNode}\n  - {id: chunk, node_type: AudioChunkerNode, params: {chunk_size: 160}}\n",
            );
            let session = harness
                .runner
                .create_stream_session(pipeline)
                .await
                .expect("session");
            let mut received = Vec::new();
            for frame in 0..50u32 {
                // Every sample carries the session and frame it belongs to.
                let value = (session_index * 1000 + frame) as f32;
                let audio = RuntimeData::audio(vec![value; 320], 16_000, 1);
                session.send_input(item(audio)).await.expect("send");
                while let Some(out) = session.recv_output().await.expect("recv") {
                    received.push(out.data);
                }
            }
            session.close().await.expect("close");
            while let Some(out) = session.recv_output().await.expect("drain") {
                received.push(out.data);
            }
            (session_index, received)
        }));
    }
    for task in tasks {
        let (session_index, received) = task.await.expect("session task");
        assert_eq!(received.len(), 100, "session {session_index}");
        for (i, data) in received.iter().enumerate() {
            let expected = (session_index * 1000 + (i / 2) as u32) as f32;
            match data {
                RuntimeData::Audio { samples, .. } => {
                    assert_eq!(samples.len(), 160);
                    assert!(
                        samples.iter().all(|&s| s == expected),
                        "session {session_index} chunk {i}"
                    );
                }
                other => panic!("session {session_index}: unexpected {other:?}"),
            }
        }
    }
    harness.assert_no_leftovers();
}
