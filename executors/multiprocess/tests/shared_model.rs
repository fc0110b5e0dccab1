//! One Whisper small model for many sessions: ten transcription sessions in one shared
//! worker process, the memory each added session costs (the worker's resident memory at
//! its peak while transcribing), and the transcripts. A file of its own: it keeps both
//! cores busy for a minute and would slow the other tests down.

mod support;

use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::transport::PipelineSession;
use std::sync::Arc;
use std::time::Duration;
use support::{item, Harness};

async fn session(harness: &Harness, yaml: &str) -> PipelineSession {
    harness.session(yaml).await
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

/// Every session transcribes `clip` at once and closes; their transcripts, and the peak
/// resident memory of worker `pid` meanwhile.
async fn transcribe_all(
    sessions: Vec<PipelineSession>,
    clip: &[f32],
    pid: u32,
) -> (Vec<RuntimeData>, u64) {
    let mut tasks = Vec::new();
    for s in sessions {
        let clip = clip.to_vec();
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
    while !tasks.iter().all(|t| t.is_finished()) {
        peak = peak.max(rss(pid));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut texts = Vec::new();
    for task in tasks {
        texts.push(task.await.expect("session"));
    }
    (texts, peak)
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
    let expected = RuntimeData::Text("The quick brown fox jumps over the lazy dog.".to_owned());
    // A session that stays open keeps the worker (and its model) between the rounds.
    let keeper = session(&harness, yaml).await;
    let pids = harness.backend.shared_worker_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    let pid = pids[0];
    // One session alone: the peak while it transcribes.
    let first = session(&harness, yaml).await;
    let (texts, alone) = transcribe_all(vec![first], &clip, pid).await;
    assert_eq!(texts, vec![expected.clone()]);
    let mut sessions = Vec::new();
    for _ in 0..10 {
        sessions.push(session(&harness, yaml).await);
    }
    assert_eq!(
        harness.backend.shared_worker_pids(),
        vec![pid],
        "one worker for eleven sessions"
    );
    assert_eq!(harness.backend.running_workers(), 1);
    assert_eq!(harness.backend.shared_workers(), (1, 11));
    // Ten at once (their utterances are batched in the worker): the peak meanwhile.
    let (texts, peak) = transcribe_all(sessions, &clip, pid).await;
    assert_eq!(texts, vec![expected; 10]);
    let per_session = peak.saturating_sub(alone) / 9;
    eprintln!(
        "whisper-small: one session {} MiB resident at its peak; ten: {} MiB; {} MiB per added session",
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
    keeper.close().await.expect("close");
    drop(keeper);
    harness.assert_no_leftovers();
}
