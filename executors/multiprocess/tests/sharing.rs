//! Worker processes shared by sessions: one process (and one model load) for many
//! sessions' instances of a node that shares, each instance with its own state; a failure
//! in one instance fails its session only, a crash of the process fails the sessions it
//! hosted and the next session gets a fresh process; the manifest's `share` overrides the
//! class.

mod support;

use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::transport::PipelineSession;
use std::sync::Arc;
use std::time::Duration;
use support::{item, manifest, Harness};

const SHARED: &str = "nodes: [{id: n, node_type: SharedCounter, executor: multiprocess}]";

async fn session(harness: &Harness, yaml: &str) -> PipelineSession {
    harness.session(yaml).await
}

/// Sends `text` and returns the one Json output.
async fn ask(session: &PipelineSession, text: &str) -> serde_json::Value {
    session
        .send_input(item(RuntimeData::Text(text.to_owned())))
        .await
        .expect("send");
    let out = session
        .recv_output()
        .await
        .expect("an answer")
        .expect("not quiescent");
    match out.data {
        RuntimeData::Json(v) => v,
        other => panic!("unexpected {other:?}"),
    }
}

/// The error a session ends with after `text`.
async fn fails_with(session: &PipelineSession, text: &str) -> String {
    session
        .send_input(item(RuntimeData::Text(text.to_owned())))
        .await
        .expect("send");
    match session.recv_output().await {
        Err(e) => e.to_string(),
        Ok(Some(out)) => panic!("an output instead of the failure: {:?}", out.data),
        Ok(None) => panic!("quiescent instead of the failure"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_sessions_share_one_process_and_one_model_with_their_own_state() {
    let harness = Arc::new(Harness::new());
    let mut sessions = Vec::new();
    let starting: Vec<_> = (0..10)
        .map(|_| {
            let harness = Arc::clone(&harness);
            tokio::spawn(async move { session(&harness, SHARED).await })
        })
        .collect();
    for task in starting {
        sessions.push(task.await.expect("start"));
    }
    assert_eq!(harness.backend.shared_workers(), (1, 10));
    assert_eq!(harness.backend.running_workers(), 1);
    let mut pids = std::collections::BTreeSet::new();
    for round in 1..=3 {
        for (i, s) in sessions.iter().enumerate() {
            let out = ask(s, &format!("s{i}r{round}")).await;
            assert_eq!(out["count"], round, "session {i}: {out}");
            assert_eq!(out["loads"], 1, "one model load in the process: {out}");
            assert_eq!(out["item"], format!("s{i}r{round}"));
            pids.insert(out["pid"].as_u64().expect("pid"));
        }
    }
    assert_eq!(pids.len(), 1, "{pids:?}");
    for s in &sessions {
        s.close().await.expect("close");
    }
    drop(sessions);
    harness.assert_no_leftovers();
    assert_eq!(harness.backend.running_workers(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_instance_fails_its_session_only() {
    let harness = Harness::new();
    let a = session(&harness, SHARED).await;
    let b = session(&harness, SHARED).await;
    let c = session(&harness, SHARED).await;
    let pid = ask(&a, "x").await["pid"].clone();
    let err = fails_with(&b, "raise").await;
    assert!(
        err.contains("node 'n' (SharedCounter) failed: Python exception in process(): ValueError: this instance failed"),
        "{err}"
    );
    // The others keep their process and their state.
    let out = ask(&a, "y").await;
    assert_eq!(
        (out["count"].clone(), out["pid"].clone()),
        (2.into(), pid.clone())
    );
    let out = ask(&c, "z").await;
    assert_eq!(
        (out["count"].clone(), out["pid"].clone()),
        (1.into(), pid.clone())
    );
    // A session whose instance fails to initialize in the shared process does not start;
    // the others go on.
    let err = harness
        .start_error("nodes: [{id: bad, node_type: SharedCounter, executor: multiprocess}]")
        .await;
    assert!(
        err.contains("node 'bad' (SharedCounter) failed to start: Python exception in initialize(): RuntimeError: this instance cannot start"),
        "{err}"
    );
    let out = ask(&a, "w").await;
    assert_eq!((out["count"].clone(), out["pid"].clone()), (3.into(), pid));
    for s in [a, b, c] {
        let _ = s.close().await;
    }
    harness.assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_fails_the_sessions_it_hosted_and_the_next_session_gets_a_fresh_process() {
    let harness = Harness::new();
    let a = session(&harness, SHARED).await;
    let b = session(&harness, SHARED).await;
    let first = ask(&a, "x").await["pid"].as_u64().expect("pid");
    assert_eq!(ask(&b, "x").await["pid"].as_u64(), Some(first));
    let err = fails_with(&a, "crash").await;
    assert!(
        err.contains(&format!(
            "the Python worker (pid {first}) exited with status 3 while processing item 2 (text)"
        )),
        "{err}"
    );
    let err = fails_with(&b, "next").await;
    assert!(
        err.contains(&format!(
            "the Python worker (pid {first}) exited with status 3"
        )),
        "{err}"
    );
    let c = session(&harness, SHARED).await;
    let out = ask(&c, "x").await;
    assert_ne!(out["pid"].as_u64(), Some(first), "a fresh process: {out}");
    assert_eq!(out["loads"], 1);
    assert_eq!(harness.backend.shared_workers(), (1, 1));
    for s in [a, b, c] {
        let _ = s.close().await;
    }
    harness.assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifest_overrides_what_the_class_declares() {
    let harness = Harness::new();
    // share: false — a process per session.
    let own = "nodes: [{id: n, node_type: SharedCounter, executor: multiprocess, multiprocess: {share: false}}]";
    let a = session(&harness, own).await;
    let b = session(&harness, own).await;
    assert_ne!(ask(&a, "x").await["pid"], ask(&b, "x").await["pid"]);
    assert_eq!(harness.backend.shared_workers(), (0, 0));
    // share: 2 — at most two instances per process.
    let two = "nodes: [{id: n, node_type: SharedCounter, executor: multiprocess, multiprocess: {share: 2}}]";
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(session(&harness, two).await);
    }
    let mut pids = Vec::new();
    for s in &sessions {
        pids.push(ask(s, "x").await["pid"].as_u64().expect("pid"));
    }
    assert_eq!(pids[0], pids[1]);
    assert_ne!(pids[1], pids[2]);
    assert_eq!(harness.backend.shared_workers(), (2, 3));
    // A class that does not share gets a process per session unless the manifest says so.
    let echo = "nodes: [{id: e, node_type: WritesPid, executor: multiprocess, params: {path: /dev/null}, multiprocess: {share: 3}}]";
    let e1 = session(&harness, echo).await;
    let e2 = session(&harness, echo).await;
    assert_eq!(harness.backend.shared_workers(), (3, 5));
    // Bad values are refused before anything starts.
    for (value, expected) in [
        ("0", "multiprocess.share: 0 is out of range 1..=64"),
        ("65", "multiprocess.share: 65 is out of range 1..=64"),
        ("yes", "multiprocess.share: expected true, false or a number of instances per process, found string \"yes\""),
    ] {
        let err = harness
            .runner
            .validate(&manifest(&format!(
                "nodes: [{{id: n, node_type: SharedCounter, executor: multiprocess, multiprocess: {{share: {value}}}}}]"
            )))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{value}: {err}");
    }
    for s in [a, b, e1, e2].into_iter().chain(sessions) {
        let _ = s.close().await;
    }
    harness.assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_hook_serves_several_sessions_and_every_item_gets_its_answer() {
    let harness = Arc::new(Harness::new());
    let yaml = "nodes: [{id: n, node_type: BatchCounter, executor: multiprocess}]";
    let mut tasks = Vec::new();
    for i in 0..8 {
        let harness = Arc::clone(&harness);
        tasks.push(tokio::spawn(async move {
            let s = session(&harness, yaml).await;
            let mut seen = Vec::new();
            for round in 1..=40 {
                let out = ask(&s, &format!("{i}-{round}")).await;
                assert_eq!(out["count"], round, "{out}");
                assert_eq!(out["item"], format!("{i}-{round}"));
                seen.push((out["pid"].as_u64().expect("pid"), out["batch"].as_u64()));
            }
            s.close().await.expect("close");
            seen
        }));
    }
    let mut pids = std::collections::BTreeSet::new();
    for task in tasks {
        for (pid, batch) in task.await.expect("session") {
            pids.insert(pid);
            // Every item went through the hook (alone, or with others waiting at once),
            // never more than the four instances a process hosts.
            let batch = batch.unwrap_or(1);
            assert!((1..=4).contains(&batch), "{batch}");
        }
    }
    assert_eq!(pids.len(), 2, "eight sessions, four per process: {pids:?}");
    harness.assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_process_stays_for_the_next_session_then_closes() {
    let harness = Harness::with(|c| c.shared_linger = Duration::from_secs(3));
    let a = session(&harness, SHARED).await;
    let pid = ask(&a, "x").await["pid"].clone();
    a.close().await.expect("close");
    drop(a);
    // Within the linger time the next session joins the same process (the model stays).
    let b = session(&harness, SHARED).await;
    let out = ask(&b, "x").await;
    assert_eq!(
        (
            out["pid"].clone(),
            out["count"].clone(),
            out["loads"].clone()
        ),
        (pid, 1.into(), 1.into())
    );
    b.close().await.expect("close");
    drop(b);
    // Then it closes by itself, leaving nothing.
    let left = harness.leftovers_after(10.0);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(harness.backend.shared_workers(), (0, 0));
    assert_eq!(harness.backend.running_workers(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_sessions_in_one_worker_each_get_back_exactly_their_frames() {
    let harness = Arc::new(Harness::new());
    let yaml = "nodes: [{id: echo, node_type: EchoNode, multiprocess: {share: 64, process_timeout_ms: 20000}}]";
    let mut sessions = Vec::new();
    for _ in 0..64 {
        sessions.push(session(&harness, yaml).await);
    }
    assert_eq!(harness.backend.shared_workers(), (1, 64));
    let mut tasks = Vec::new();
    for (index, s) in sessions.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for frame in 0..200u32 {
                // Every sample carries the session and frame it belongs to.
                let value = (index as u32 * 1000 + frame) as f32;
                s.send_input(item(RuntimeData::audio(vec![value; 320], 16_000, 1)))
                    .await
                    .expect("send");
                match s.recv_output().await.expect("echo").expect("one").data {
                    RuntimeData::Audio { samples, .. } => {
                        assert!(
                            samples.iter().all(|&v| v == value),
                            "session {index} frame {frame}"
                        )
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            s.close().await.expect("close");
        }));
    }
    for task in tasks {
        task.await.expect("session");
    }
    harness.assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_sessions_paced_in_real_time_in_four_workers_lose_nothing() {
    // Sessions ending while others still wait on the same worker once left an answer
    // behind a consumed wake-up (the node that took it stopped receiving at its own).
    let harness = Arc::new(Harness::new());
    let yaml = "nodes: [{id: echo, node_type: EchoNode, multiprocess: {share: 64, process_timeout_ms: 10000}}]";
    let n = 200;
    let mut sessions = Vec::new();
    for _ in 0..n {
        sessions.push(session(&harness, yaml).await);
    }
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for (i, s) in sessions.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let offset = Duration::from_micros((i as u64 * 20_000) / n as u64);
            let mut tick = tokio::time::interval_at(start + offset, Duration::from_millis(20));
            for f in 0..100 {
                tick.tick().await;
                s.send_input(item(RuntimeData::audio(vec![0.1; 320], 16_000, 1)))
                    .await
                    .expect("send");
                match s.recv_output().await {
                    Ok(Some(_)) => {}
                    other => panic!("session {i} frame {f}: {other:?}"),
                }
            }
            s.close().await.expect("close");
        }));
    }
    assert_eq!(harness.backend.shared_workers(), (4, 200));
    for task in tasks {
        task.await.expect("session");
    }
    harness.assert_no_leftovers();
}
