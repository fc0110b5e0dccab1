//! `cargo xtask bench models`: the speech models side by side, in one run —
//!
//! 1. every ASR engine on the same clips (the bundled dictation and speech, and paragraphs
//!    spoken by espeak-ng's default and klatt2 voices): word error rate and real-time
//!    factor, one session alone, model loaded;
//! 2. every TTS engine, judged by the word error rate of the default ASR on its speech, and
//!    its real-time factor;
//! 3. memory: Whisper small in one shared worker for 1 and 10 sessions, against a worker
//!    per session;
//! 4. density: sessions with a Python node (EchoNode) fed 20 ms frames in real time,
//!    shared workers against a worker per session: round-trip p50/p99 and descriptors per
//!    session.
//!
//! `cargo bench -p remotemedia-multiprocess --bench models -- <python> [density]`;
//! `<python>` must have the remotemedia wheel, remotemedia-nodes and the models (`cargo
//! xtask python-env`); `density` runs the last part alone.

use remotemedia_multiprocess::{register, MultiprocessBackend, MultiprocessConfig};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::nodes::registry::NodeRegistry;
use remotemedia_runtime_core::transport::{PipelineRunner, PipelineSession, TransportData};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RATE: u32 = 16_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manifest(yaml: &str) -> Arc<Manifest> {
    Arc::new(Manifest::from_yaml(yaml).expect("manifest"))
}

/// Lower-case words without punctuation, digits spelled out.
fn words(text: &str) -> Vec<String> {
    const DIGITS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    text.chars()
        .map(|c| if c == '-' { ' ' } else { c })
        .filter(|c| c.is_alphanumeric() || c.is_whitespace() || *c == '\'')
        .collect::<String>()
        .to_lowercase()
        .split_whitespace()
        .map(|w| match w.parse::<usize>() {
            Ok(n) if n < 10 => DIGITS[n].to_owned(),
            _ => w.to_owned(),
        })
        .collect()
}

/// Word errors (edit distance) of `heard` against `said`, and the words said.
fn errors(said: &str, heard: &str) -> (usize, usize) {
    let (said, heard) = (words(said), words(heard));
    let mut row: Vec<usize> = (0..=heard.len()).collect();
    for (i, s) in said.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, h) in heard.iter().enumerate() {
            let substitute = diagonal + usize::from(s != h);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    (row[heard.len()], said.len())
}

fn read_wav(path: &Path) -> (Vec<f32>, u32, u16) {
    let mut reader = hound::WavReader::open(path).expect("a WAV file");
    let spec = reader.spec();
    let samples = reader
        .samples::<i16>()
        .map(|s| f32::from(s.expect("sample")) / 32768.0)
        .collect();
    (samples, spec.sample_rate, spec.channels)
}

async fn session(runner: &PipelineRunner, yaml: &str) -> PipelineSession {
    runner
        .create_stream_session(manifest(yaml))
        .await
        .expect("session")
}

/// Sends `data` and collects what comes back until the session is quiescent.
async fn call(session: &PipelineSession, data: RuntimeData) -> Vec<RuntimeData> {
    session
        .send_input(TransportData::new(data))
        .await
        .expect("send");
    let mut outputs = Vec::new();
    while let Some(out) = session.recv_output().await.expect("output") {
        outputs.push(out.data);
    }
    outputs
}

fn text_of(outputs: &[RuntimeData]) -> String {
    outputs
        .iter()
        .filter_map(|d| match d {
            RuntimeData::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `audio` as 16 kHz mono, by the native nodes.
async fn to_16k_mono(runner: &PipelineRunner, audio: RuntimeData) -> Vec<f32> {
    let s = session(
        runner,
        "nodes:\n  - {id: mono, node_type: AudioFormatConverterNode, params: {channels: 1}}\n  - {id: rs, node_type: FastResampleNode, params: {target_rate: 16000, quality: High}}\n",
    )
    .await;
    let mut outputs = call(&s, audio).await;
    s.close().await.expect("close");
    while let Some(out) = s.recv_output().await.expect("drain") {
        outputs.push(out.data);
    }
    let mut samples = Vec::new();
    for out in outputs {
        if let RuntimeData::Audio { samples: s, .. } = out {
            samples.extend_from_slice(&s);
        }
    }
    samples
}

struct Clip {
    name: &'static str,
    said: &'static str,
    samples: Vec<f32>,
}

const PARAGRAPH: &str = "The quick brown fox jumps over the lazy dog. Please call me tomorrow morning about the meeting. We will review the budget and the schedule for next week. The weather today is sunny with a light breeze from the west.";

async fn clips(runner: &PipelineRunner) -> Vec<Clip> {
    let mut clips = Vec::new();
    for (name, file, said) in [
        (
            "dictation (9.4 s, espeak-ng)",
            "examples/media/dictation.wav",
            "This is a test of the system. Please call me tomorrow morning. One two three four five six seven.",
        ),
        (
            "speech (6.6 s)",
            "examples/media/speech.wav",
            "The quick brown fox jumps over the lazy dog. Remote media runs pipelines in real time.",
        ),
    ] {
        let (samples, rate, channels) = read_wav(&root().join(file));
        let samples = to_16k_mono(runner, RuntimeData::audio(samples, rate, channels)).await;
        clips.push(Clip {
            name,
            said,
            samples,
        });
    }
    for (name, voice) in [
        ("paragraph, espeak-ng default voice", "en-us"),
        ("paragraph, espeak-ng klatt2 voice", "en-us+klatt2"),
    ] {
        let wav = std::env::temp_dir().join(format!("rm-bench-{}.wav", std::process::id()));
        let made = std::process::Command::new("espeak-ng")
            .args(["-v", voice, "-w"])
            .arg(&wav)
            .arg(PARAGRAPH)
            .status()
            .expect("espeak-ng");
        assert!(made.success());
        let (samples, rate, channels) = read_wav(&wav);
        let _ = std::fs::remove_file(&wav);
        let samples = to_16k_mono(runner, RuntimeData::audio(samples, rate, channels)).await;
        clips.push(Clip {
            name,
            said: PARAGRAPH,
            samples,
        });
    }
    clips
}

async fn asr_engines(runner: &PipelineRunner, clips: &[Clip]) {
    println!("\n## ASR engines: word error rate and real-time factor (one session alone, model loaded)\n");
    println!("| engine | clip | WER | real-time factor | heard |");
    println!("|---|---|---|---|---|");
    for engine in ["whisper-small", "whisper-tiny", "pocketsphinx"] {
        let s = session(
            runner,
            &format!("nodes: [{{id: asr, node_type: SpeechRecognitionNode, params: {{engine: {engine}}}}}]"),
        )
        .await;
        // Warm-up: the first call pays for lazily built kernels.
        call(&s, RuntimeData::audio(clips[0].samples.clone(), RATE, 1)).await;
        let (mut wrong, mut total, mut busy, mut audio) = (0, 0, 0.0, 0.0);
        for clip in clips {
            let started = Instant::now();
            let outputs = call(&s, RuntimeData::audio(clip.samples.clone(), RATE, 1)).await;
            let took = started.elapsed().as_secs_f64();
            let seconds = clip.samples.len() as f64 / f64::from(RATE);
            let heard = text_of(&outputs);
            let (e, n) = errors(clip.said, &heard);
            wrong += e;
            total += n;
            busy += took;
            audio += seconds;
            println!(
                "| {engine} | {} | {:.2} | {:.3} | {} |",
                clip.name,
                e as f64 / n as f64,
                took / seconds,
                heard
            );
        }
        println!(
            "| **{engine}** | **all clips** | **{:.2}** | **{:.3}** | |",
            wrong as f64 / total as f64,
            busy / audio
        );
        s.close().await.expect("close");
    }
}

async fn tts_engines(runner: &PipelineRunner) {
    println!("\n## TTS engines, judged by the default ASR (whisper-small) on their speech\n");
    println!("| engine | WER | real-time factor (synthesis) |");
    println!("|---|---|---|");
    let sentences = [
        "Please call me tomorrow morning.",
        "We will review the budget and the schedule for next week.",
        "The weather today is sunny with a light breeze from the west.",
    ];
    for engine in ["piper", "festival", "espeak-ng"] {
        let tts = session(
            runner,
            &format!("nodes: [{{id: tts, node_type: TextToSpeechNode, params: {{engine: {engine}, sample_rate: 16000}}}}]"),
        )
        .await;
        let asr = session(
            runner,
            "nodes: [{id: asr, node_type: SpeechRecognitionNode}]",
        )
        .await;
        let (mut wrong, mut total, mut busy, mut audio) = (0, 0, 0.0, 0.0);
        for sentence in sentences {
            let started = Instant::now();
            let speech = call(&tts, RuntimeData::Text(sentence.to_owned())).await;
            busy += started.elapsed().as_secs_f64();
            let mut samples = Vec::new();
            for out in speech {
                if let RuntimeData::Audio { samples: s, .. } = out {
                    samples.extend_from_slice(&s);
                }
            }
            audio += samples.len() as f64 / f64::from(RATE);
            let heard = text_of(&call(&asr, RuntimeData::audio(samples, RATE, 1)).await);
            let (e, n) = errors(sentence, &heard);
            wrong += e;
            total += n;
        }
        println!(
            "| {engine} | {:.2} | {:.3} |",
            wrong as f64 / total as f64,
            busy / audio
        );
        tts.close().await.expect("close");
        asr.close().await.expect("close");
    }
}

/// Resident memory of `pid` in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Worker processes this process started.
fn workers() -> Vec<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|pid| {
                    let stat =
                        std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                    let ppid = stat.rsplit(") ").next().and_then(|r| r.split(' ').nth(1));
                    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                    ppid == Some(me.as_str())
                        && String::from_utf8_lossy(&cmd).contains("remotemedia.worker")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits (up to 20 s) until the workers of the last round have exited.
async fn workers_gone() {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !workers().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

async fn whisper_memory(runner: &PipelineRunner, clip: &Clip) {
    println!("\n## Whisper small: memory for concurrent sessions\n");
    println!("| workers | sessions | processes | resident, all workers (MiB) | per added session (MiB) |");
    println!("|---|---|---|---|---|");
    for (label, share) in [("shared", "true"), ("a worker per session", "false")] {
        let mut first = 0.0;
        for n in [1usize, 3, 10] {
            if share == "false" && n == 10 {
                continue; // ten models would take ~6 GB
            }
            let yaml = format!(
                "nodes: [{{id: asr, node_type: SpeechRecognitionNode, multiprocess: {{share: {share}}}}}]"
            );
            let mut sessions = Vec::new();
            for _ in 0..n {
                sessions.push(session(runner, &yaml).await);
            }
            let mut tasks = Vec::new();
            for s in sessions {
                let samples = clip.samples.clone();
                tasks.push(tokio::spawn(async move {
                    let out = call(&s, RuntimeData::audio(samples, RATE, 1)).await;
                    (s, out)
                }));
            }
            let mut peak: f64 = 0.0;
            let mut done = Vec::new();
            while !tasks.iter().all(|t| t.is_finished()) {
                peak = peak.max(workers().into_iter().map(rss_mib).sum());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            for task in tasks {
                done.push(task.await.expect("session"));
            }
            let processes = workers().len();
            peak = peak.max(workers().into_iter().map(rss_mib).sum());
            if n == 1 {
                first = peak;
            }
            let per = if n > 1 {
                format!("{:.0}", (peak - first) / (n - 1) as f64)
            } else {
                "–".to_owned()
            };
            println!("| {label} | {n} | {processes} | {peak:.0} | {per} |");
            for (s, _) in done {
                s.close().await.expect("close");
            }
            workers_gone().await;
        }
    }
}

/// What one density round measured.
struct Density {
    /// Round trips (send → echo back), ms, sorted.
    rtt: Vec<f64>,
    /// Frames whose echo came more than 20 ms after the frame was due.
    late: usize,
    frames: usize,
    descriptors_per_session: f64,
    processes: usize,
}

/// `n` sessions, each sending a 20 ms frame every 20 ms for `seconds`.
async fn density(
    runner: &Arc<PipelineRunner>,
    n: usize,
    share: &str,
    seconds: f64,
) -> Option<Density> {
    let yaml =
        format!("nodes: [{{id: echo, node_type: EchoNode, multiprocess: {{share: {share}}}}}]");
    workers_gone().await;
    // The last round's channels close as its nodes are dropped: wait until the count
    // settles.
    let mut before = descriptors();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = descriptors();
        if now == before {
            break;
        }
        before = now;
    }
    let mut sessions = Vec::new();
    for _ in 0..n {
        match runner.create_stream_session(manifest(&yaml)).await {
            Ok(s) => sessions.push(s),
            Err(e) => {
                eprintln!("{n} sessions ({share}): {e}");
                for s in sessions {
                    let _ = s.close().await;
                }
                return None;
            }
        }
    }
    let per_session = descriptors().saturating_sub(before) as f64 / n as f64;
    let processes = workers().len();
    let frames = (seconds * 50.0) as usize;
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::new();
    for (i, s) in sessions.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            // Sessions start spread over one frame period, like independent callers.
            let offset = Duration::from_micros((i as u64 * 20_000) / n as u64);
            let mut tick = tokio::time::interval_at(start + offset, Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let frame = RuntimeData::audio(vec![0.1; 320], RATE, 1);
            let mut rtt = Vec::with_capacity(frames);
            let mut late = 0;
            for _ in 0..frames {
                let due = tick.tick().await;
                let sent = Instant::now();
                s.send_input(TransportData::new(frame.clone()))
                    .await
                    .expect("send");
                s.recv_output().await.expect("echo").expect("one");
                rtt.push(sent.elapsed().as_secs_f64() * 1e3);
                // A session that falls behind its 20 ms clock counts it.
                if due.elapsed() > Duration::from_millis(20) {
                    late += 1;
                }
            }
            s.close().await.expect("close");
            (rtt, late)
        }));
    }
    let mut rtt = Vec::new();
    let mut late = 0;
    for task in tasks {
        let (r, l) = task.await.expect("session");
        rtt.extend(r);
        late += l;
    }
    rtt.sort_by(|a, b| a.total_cmp(b));
    Some(Density {
        frames: rtt.len(),
        rtt,
        late,
        descriptors_per_session: per_session,
        processes,
    })
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn densities(runner: &Arc<PipelineRunner>) {
    println!("\n## Density: EchoNode sessions fed 20 ms frames in real time (2 cores)\n");
    println!("| workers | sessions | worker processes | round trip p50 (ms) | p99 (ms) | frames answered > 20 ms after due | held (p99 < 20 ms) | runtime descriptors per session |");
    println!("|---|---|---|---|---|---|---|---|");
    for (label, share, counts) in [
        ("a worker per session", "false", &[25usize, 50, 100][..]),
        (
            "shared (64 per worker)",
            "64",
            &[25, 50, 100, 200, 300, 400][..],
        ),
    ] {
        for &n in counts {
            let Some(d) = density(runner, n, share, 6.0).await else {
                println!("| {label} | {n} | – | – | – | – | could not start | – |");
                continue;
            };
            let (p50, p99) = (pct(&d.rtt, 0.5), pct(&d.rtt, 0.99));
            println!(
                "| {label} | {n} | {} | {p50:.3} | {p99:.3} | {:.2} % | {} | {:.2} |",
                d.processes,
                100.0 * d.late as f64 / d.frames as f64,
                if p99 < 20.0 { "yes" } else { "no" },
                d.descriptors_per_session
            );
            workers_gone().await;
        }
    }
}

fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let python = PathBuf::from(args.first().expect("usage: models <python>"));
    raise_descriptor_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let config = MultiprocessConfig {
            python_executable: Some(python),
            shared_linger: Duration::ZERO,
            max_workers: Some(1_000),
            ..MultiprocessConfig::default()
        };
        let mut registry = NodeRegistry::with_builtins();
        let _backend: Arc<MultiprocessBackend> = register(&mut registry, config);
        let runner = Arc::new(PipelineRunner::with_registry(registry).expect("runner"));
        println!(
            "# cargo xtask bench models ({} CPUs)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        if args.get(1).map(String::as_str) != Some("density") {
            let clips = clips(&runner).await;
            asr_engines(&runner, &clips).await;
            tts_engines(&runner).await;
            whisper_memory(&runner, &clips[1]).await;
        }
        densities(&runner).await;
    });
}
