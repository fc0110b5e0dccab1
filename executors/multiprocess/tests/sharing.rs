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
    harness
        .runner
        .create_stream_session(manifest(yaml))
        .await
        .expect("session")
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
    let harness = Harness::with(|c| c.shared_linger = Duration::from_millis(400));
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

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

/// Worker processes this test process started.
fn workers() -> Vec<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let ppid = stat.rsplit(") ").next().and_then(|r| r.split(' ').nth(1));
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid == Some(me.as_str())
                && String::from_utf8_lossy(&cmdline).contains("remotemedia.worker")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_transcription_sessions_share_one_whisper_process() {
    let harness = Arc::new(Harness::new());
    let mut reader = hound::WavReader::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/media/speech.wav"
    ))
    .expect("speech.wav");
    assert_eq!(reader.spec().sample_rate, 16_000);
    let samples: Vec<f32> = reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect();
    // The first sentence (the clip's first 3.3 s).
    let clip: Vec<f32> = samples[..(16_000.0 * 3.3) as usize].to_vec();
    let yaml = "nodes: [{id: asr, node_type: SpeechRecognitionNode}]";
    let first = session(&harness, yaml).await;
    let pids = workers();
    assert_eq!(pids.len(), 1, "{pids:?}");
    let pid = pids[0];
    let alone = rss(pid);
    let mut sessions = vec![first];
    for _ in 1..10 {
        sessions.push(session(&harness, yaml).await);
    }
    assert_eq!(workers(), vec![pid], "one worker for ten sessions");
    assert_eq!(harness.backend.shared_workers(), (1, 10));
    // Every session transcribes at once (their utterances are batched in the worker).
    let mut tasks = Vec::new();
    for s in sessions {
        let clip = clip.clone();
        tasks.push(tokio::spawn(async move {
            s.send_input(item(RuntimeData::audio(clip, 16_000, 1)))
                .await
                .expect("send");
            let out = s.recv_output().await.expect("transcript").expect("one");
            s.close().await.expect("close");
            out.data
        }));
    }
    let mut peak = 0;
    let mut texts = Vec::new();
    for task in tasks {
        let data = task.await.expect("session");
        peak = peak.max(rss(pid));
        texts.push(data);
    }
    for text in texts {
        assert_eq!(
            text,
            RuntimeData::Text("The quick brown fox jumps over the lazy dog.".to_owned())
        );
    }
    let per_session = peak.saturating_sub(alone) / 9;
    eprintln!(
        "whisper-small: one session {} MiB resident; ten: {} MiB; {} MiB per added session",
        alone >> 20,
        peak >> 20,
        per_session >> 20
    );
    assert!(alone < 1 << 30, "{} MiB for one model", alone >> 20);
    assert!(
        per_session < 50 << 20,
        "{} MiB per added session",
        per_session >> 20
    );
    harness.assert_no_leftovers();
}
