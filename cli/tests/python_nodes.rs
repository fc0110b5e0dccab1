//! The `remotemedia` command with Python nodes (real worker processes, real models):
//! the transcription example on the bundled dictation, the voice loop, listings and
//! errors. Needs `REMOTEMEDIA_PYTHON` (an interpreter with the remotemedia wheel and
//! remotemedia-nodes[all] installed; `cargo xtask python-env` makes one).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn python() -> String {
    match std::env::var("REMOTEMEDIA_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => panic!(
            "these tests run real Python workers: set REMOTEMEDIA_PYTHON to an interpreter with \
             the remotemedia wheel and remotemedia-nodes installed (`cargo xtask python-env` \
             creates one and prints its path)"
        ),
    }
}

fn remotemedia(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_remotemedia"))
        .args(args)
        .current_dir(root())
        .env("REMOTEMEDIA_PYTHON", python())
        .output()
        .expect("run remotemedia")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn transcript_lines(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .filter_map(|l| l.strip_prefix("[asr] "))
        .map(str::to_owned)
        .collect()
}

/// Lower-case words without punctuation, digits spelled out (Whisper writes cased,
/// punctuated text, and numbers as it likes).
fn words(line: &str) -> String {
    const DIGITS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    line.chars()
        .map(|c| if c == '-' { ' ' } else { c })
        .filter(|c| c.is_alphanumeric() || c.is_whitespace() || *c == '\'')
        .collect::<String>()
        .to_lowercase()
        .split_whitespace()
        .map(|w| match w.parse::<usize>() {
            Ok(n) if n < 10 => DIGITS[n],
            _ => w,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Word error rate of `heard` against `said`: word-level edit distance over the words said.
fn wer(said: &str, heard: &str) -> f64 {
    let said: Vec<String> = words(said).split(' ').map(str::to_owned).collect();
    let heard: Vec<String> = words(heard)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
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
    row[heard.len()] as f64 / said.len() as f64
}

#[test]
fn the_word_error_rate_is_the_edit_distance_over_the_words_said() {
    assert_eq!(wer("a b c d", "A, b c d."), 0.0);
    assert_eq!(wer("a b c d", "a x c d"), 0.25);
    assert_eq!(wer("a b c d", "a c d"), 0.25);
    assert_eq!(wer("a b c d", "a b c d e"), 0.25);
    assert_eq!(wer("hello world", "oh we're ill"), 1.5);
    assert_eq!(wer("one two three", "1, 2, 3."), 0.0);
}

const DICTATION: [&str; 3] = [
    "this is a test of the system",
    "please call me tomorrow morning",
    "one two three four five six seven",
];

#[test]
fn transcribe_example_writes_the_dictation_word_for_word() {
    let o = remotemedia(&[
        "run",
        "examples/pipelines/transcribe.yaml",
        "--input",
        "examples/media/dictation.wav",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Whisper small, the default engine: every word (PocketSphinx missed some).
    let lines: Vec<String> = transcript_lines(&o).iter().map(|l| words(l)).collect();
    assert_eq!(lines, DICTATION);
}

#[test]
fn the_default_engine_hears_espeak_ngs_default_voice() {
    // Robotic formant speech, made here with espeak-ng's default voice.
    let said = "The quick brown fox jumps over the lazy dog. Please call me tomorrow morning about the meeting. \
                We will review the budget and the schedule for next week. \
                The weather today is sunny with a light breeze from the west.";
    let wav = std::env::temp_dir().join(format!("rm-espeak-{}.wav", std::process::id()));
    let made = Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg(said)
        .status()
        .expect("espeak-ng (cargo xtask python-env installs it)");
    assert!(made.success());
    let o = remotemedia(&[
        "run",
        "examples/pipelines/transcribe.yaml",
        "--input",
        wav.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let heard = transcript_lines(&o).join(" ");
    let rate = wer(said, &heard);
    assert!(rate <= 0.10, "WER {rate:.2}: {heard}");
    let _ = std::fs::remove_file(&wav);
}

#[test]
fn every_engine_transcribes_the_dictation_with_media_times() {
    let manifest = std::env::temp_dir().join(format!("rm-engines-{}.yaml", std::process::id()));
    let example = std::fs::read_to_string(root().join("examples/pipelines/transcribe.yaml"))
        .expect("transcribe.yaml");
    // (engine, WER it must reach on the dictation, whether it gives segments finer than
    // the utterance)
    for (engine, most, fine) in [
        ("whisper-small", 0.0, false),
        ("whisper-tiny", 0.0, false),
        ("pocketsphinx", 0.10, true),
    ] {
        std::fs::write(
            &manifest,
            example.replace(
                "params: { engine: whisper-small }",
                &format!("params: {{ engine: {engine}, output: json }}"),
            ),
        )
        .expect("manifest");
        let o = remotemedia(&[
            "run",
            manifest.to_str().expect("path"),
            "--input",
            "examples/media/dictation.wav",
        ]);
        assert!(o.status.success(), "{engine}: {}", stderr(&o));
        let results: Vec<serde_json::Value> = transcript_lines(&o)
            .iter()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(results.len(), 3, "{engine}: {results:?}");
        let heard: Vec<&str> = results
            .iter()
            .map(|r| r["text"].as_str().expect("text"))
            .collect();
        let rate = wer(&DICTATION.join(" "), &heard.join(" "));
        assert!(rate <= most, "{engine}: WER {rate:.2}: {heard:?}");
        // Media times: the sentences start about 0.1, 3.1 and 6.1 s into the file; every
        // segment lies in its utterance, in order.
        let mut last_end = 0.0;
        for (result, starts_near) in results.iter().zip([0.0, 3.0, 6.0]) {
            assert_eq!(result["engine"], engine);
            let start = result["start_s"].as_f64().expect("start_s");
            let end = result["end_s"].as_f64().expect("end_s");
            assert!(
                (start - starts_near).abs() < 0.8 && end > start,
                "{engine}: {result}"
            );
            assert!(start >= last_end, "{engine}: {result}");
            let segments = result["segments"].as_array().expect("segments");
            assert!(!segments.is_empty(), "{engine}: {result}");
            if fine {
                assert!(segments.len() > 1, "{engine}: {result}");
            }
            let mut at = start;
            for segment in segments {
                let (s, e) = (
                    segment["start_s"].as_f64().expect("s"),
                    segment["end_s"].as_f64().expect("e"),
                );
                assert!(
                    s >= at - 1e-3 && e >= s && e <= end + 1e-3,
                    "{engine}: {result}"
                );
                at = s;
            }
            last_end = end;
        }
    }
    let _ = std::fs::remove_file(&manifest);
}

#[test]
fn voice_loop_returns_the_words_it_spoke() {
    let o = remotemedia(&[
        "run",
        "examples/pipelines/voice-loop.yaml",
        "--text",
        "please call me tomorrow morning",
        "--text",
        "this is a test of the system",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Piper speaks, Whisper small hears: the words exactly.
    let lines: Vec<String> = transcript_lines(&o).iter().map(|l| words(l)).collect();
    assert_eq!(
        lines,
        [
            "please call me tomorrow morning",
            "this is a test of the system"
        ]
    );
}

#[test]
fn the_neural_and_hts_voices_are_understood_by_the_recognizer() {
    let manifest = std::env::temp_dir().join(format!("rm-tts-engines-{}.yaml", std::process::id()));
    for engine in ["piper", "festival", "espeak-ng"] {
        std::fs::write(
            &manifest,
            format!(
                "nodes:\n  - {{id: tts, node_type: TextToSpeechNode, params: {{engine: {engine}}}}}\n  - {{id: resample, node_type: FastResampleNode, params: {{target_rate: 16000, quality: High}}}}\n  - {{id: asr, node_type: SpeechRecognitionNode}}\n"
            ),
        )
        .expect("manifest");
        let o = remotemedia(&[
            "run",
            manifest.to_str().expect("path"),
            "--text",
            "please call me tomorrow morning",
        ]);
        assert!(o.status.success(), "{engine}: {}", stderr(&o));
        let lines: Vec<String> = transcript_lines(&o).iter().map(|l| words(l)).collect();
        assert_eq!(lines, ["please call me tomorrow morning"], "{engine}");
    }
    let _ = std::fs::remove_file(&manifest);
}

#[test]
fn the_voice_loop_needs_no_network_at_all() {
    // In an empty network namespace (only a loopback that is down): the models and voices
    // are on disk, nothing is fetched at run time.
    let o = Command::new("unshare")
        .args(["--net", "--"])
        .arg(env!("CARGO_BIN_EXE_remotemedia"))
        .args([
            "run",
            "examples/pipelines/voice-loop.yaml",
            "--text",
            "please call me tomorrow morning",
        ])
        .current_dir(root())
        .env("REMOTEMEDIA_PYTHON", python())
        .output()
        .expect("unshare (util-linux; the tests run as root)");
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = transcript_lines(&o).iter().map(|l| words(l)).collect();
    assert_eq!(lines, ["please call me tomorrow morning"], "{}", stderr(&o));
    // Every recognition engine, too.
    let manifest = std::env::temp_dir().join(format!("rm-offline-{}.yaml", std::process::id()));
    let example = std::fs::read_to_string(root().join("examples/pipelines/transcribe.yaml"))
        .expect("transcribe.yaml");
    for engine in ["whisper-tiny", "pocketsphinx"] {
        std::fs::write(
            &manifest,
            example.replace(
                "params: { engine: whisper-small }",
                &format!("params: {{ engine: {engine} }}"),
            ),
        )
        .expect("manifest");
        let o = Command::new("unshare")
            .args(["--net", "--"])
            .arg(env!("CARGO_BIN_EXE_remotemedia"))
            .args([
                "run",
                manifest.to_str().expect("path"),
                "--input",
                "examples/media/dictation.wav",
            ])
            .current_dir(root())
            .env("REMOTEMEDIA_PYTHON", python())
            .output()
            .expect("unshare");
        assert!(o.status.success(), "{engine}: {}", stderr(&o));
        assert_eq!(transcript_lines(&o).len(), 3, "{engine}: {}", stdout(&o));
    }
    let _ = std::fs::remove_file(&manifest);
}

#[test]
fn tts_audio_can_be_written_to_a_wav_file() {
    let out = std::env::temp_dir().join(format!("rm-tts-{}.wav", std::process::id()));
    let manifest = std::env::temp_dir().join(format!("rm-tts-{}.yaml", std::process::id()));
    std::fs::write(
        &manifest,
        "nodes: [{id: tts, node_type: TextToSpeechNode, params: {sample_rate: 16000}}]",
    )
    .expect("manifest");
    let o = remotemedia(&[
        "run",
        manifest.to_str().expect("path"),
        "--text",
        "hello there",
        "--output",
        out.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reader = hound::WavReader::open(&out).expect("a WAV file");
    assert_eq!(reader.spec().sample_rate, 16_000);
    assert_eq!(reader.spec().channels, 1);
    assert!(reader.duration() > 8_000, "{} frames", reader.duration());
    let _ = std::fs::remove_file(&out);
    let _ = std::fs::remove_file(&manifest);
}

#[test]
fn nodes_lists_the_python_catalog_with_params() {
    let o = remotemedia(&["nodes", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).expect("JSON");
    for name in [
        "EchoNode",
        "SileroVADNode",
        "SpeechRecognitionNode",
        "TextToSpeechNode",
    ] {
        let node = list
            .iter()
            .find(|n| n["node_type"] == name)
            .unwrap_or_else(|| panic!("{name} listed"));
        assert_eq!(node["kind"], "python", "{node}");
    }
    let tts = list
        .iter()
        .find(|n| n["node_type"] == "TextToSpeechNode")
        .expect("tts");
    assert_eq!(tts["params"]["properties"]["sample_rate"]["default"], 22050);
}

#[test]
fn bad_python_node_params_are_rejected_before_any_worker_starts() {
    let manifest = std::env::temp_dir().join(format!("rm-bad-vad-{}.yaml", std::process::id()));
    std::fs::write(
        &manifest,
        "nodes:\n  - {id: vad, node_type: SileroVADNode, params: {threshold: 2}}\n",
    )
    .expect("manifest");
    let o = remotemedia(&["validate", manifest.to_str().expect("path")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "node 'vad' (SileroVADNode): param 'threshold': value 2 is out of range 0..=1"
        ),
        "{}",
        stderr(&o)
    );
    let _ = std::fs::remove_file(&manifest);
}

#[test]
fn an_unknown_voice_fails_at_session_start_naming_the_node() {
    let manifest = std::env::temp_dir().join(format!("rm-bad-voice-{}.yaml", std::process::id()));
    std::fs::write(
        &manifest,
        "nodes: [{id: tts, node_type: TextToSpeechNode, params: {voice: nosuchvoice}}]",
    )
    .expect("manifest");
    let o = remotemedia(&["run", manifest.to_str().expect("path"), "--text", "hi"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("node 'tts' (TextToSpeechNode) failed to start: Python exception in initialize(): RuntimeError: piper has no voice 'nosuchvoice' (installed voices: en_US-joe-medium)"),
        "{err}"
    );
    for (engine, expected) in [
        (
            "espeak-ng",
            "RuntimeError: espeak-ng has no voice 'nosuchvoice'",
        ),
        (
            "festival",
            "RuntimeError: festival has no voice 'nosuchvoice' (installed: cmu_us_slt_arctic_hts)",
        ),
    ] {
        std::fs::write(
            &manifest,
            format!("nodes: [{{id: tts, node_type: TextToSpeechNode, params: {{engine: {engine}, voice: nosuchvoice}}}}]"),
        )
        .expect("manifest");
        let o = remotemedia(&["run", manifest.to_str().expect("path"), "--text", "hi"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(expected), "{engine}: {}", stderr(&o));
    }
    // A voice that is a path (or an option) is refused before espeak-ng sees it.
    for voice in ["../../../etc/passwd", "/etc/passwd", "-w/tmp/x"] {
        std::fs::write(
            &manifest,
            format!(
                "nodes: [{{id: tts, node_type: TextToSpeechNode, params: {{voice: '{voice}'}}}}]"
            ),
        )
        .expect("manifest");
        let o = remotemedia(&["run", manifest.to_str().expect("path"), "--text", "hi"]);
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("node 'tts' (TextToSpeechNode) failed to start: Python exception in initialize(): ValueError: param 'voice': '{voice}' is not a voice name")),
            "{err}"
        );
    }
    let _ = std::fs::remove_file(&manifest);
}

#[test]
fn a_missing_interpreter_is_named() {
    let o = Command::new(env!("CARGO_BIN_EXE_remotemedia"))
        .args([
            "run",
            "examples/pipelines/voice-loop.yaml",
            "--text",
            "hi",
            "--python",
            "/nonexistent/python3",
        ])
        .current_dir(root())
        .output()
        .expect("run remotemedia");
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("node 'tts' (TextToSpeechNode) failed to start: cannot start the Python interpreter '/nonexistent/python3'"),
        "{err}"
    );
}

#[test]
fn audio_in_the_wrong_rate_is_a_node_error_with_a_hint() {
    let manifest = std::env::temp_dir().join(format!("rm-asr-rate-{}.yaml", std::process::id()));
    std::fs::write(
        &manifest,
        "nodes: [{id: asr, node_type: SpeechRecognitionNode}]",
    )
    .expect("manifest");
    let o = remotemedia(&[
        "run",
        manifest.to_str().expect("path"),
        "--input",
        "examples/media/dictation.wav",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("node 'asr' (SpeechRecognitionNode) failed: Python exception in process(): ValueError: SpeechRecognitionNode needs 16 kHz audio, got 22050 Hz: put a FastResampleNode with target_rate 16000 before it"),
        "{err}"
    );
    let _ = std::fs::remove_file(&manifest);
}

#[test]
fn a_run_whose_python_node_raised_leaves_no_shared_memory() {
    let dir = std::env::temp_dir().join(format!("rm-cli-raise-{}", std::process::id()));
    let root_dir = dir.join("iox");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let prefix = format!("rmcli{}_", std::process::id());
    let manifest = dir.join("raises.yaml");
    std::fs::write(
        &manifest,
        format!(
            "nodes:\n  - {{id: risky, node_type: Raises, multiprocess: {{modules: [rm_test_nodes], python_path: ['{}']}}}}\n",
            root().join("executors/multiprocess/tests/python").display()
        ),
    )
    .expect("manifest");
    let o = Command::new(env!("CARGO_BIN_EXE_remotemedia"))
        .args([
            "run",
            manifest.to_str().expect("utf-8"),
            "--text",
            "fine",
            "--text",
            "boom",
        ])
        .env("REMOTEMEDIA_PYTHON", python())
        .env("REMOTEMEDIA_IPC_ROOT", &root_dir)
        .env("REMOTEMEDIA_IPC_PREFIX", &prefix)
        .output()
        .expect("run remotemedia");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ValueError: bad input: boom"),
        "{}",
        stderr(&o)
    );
    let mut left: Vec<String> = Vec::new();
    let mut dirs = vec![root_dir.clone()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                dirs.push(entry.path());
            } else if !entry.path().to_string_lossy().ends_with(".global_mgmt") {
                left.push(entry.path().display().to_string());
            }
        }
    }
    for entry in std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) {
            if !name.ends_with(".global_mgmt") {
                left.push(name);
            }
            let _ = std::fs::remove_file(entry.path());
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_relative_python_path_is_relative_to_the_manifest_file() {
    let dir = std::env::temp_dir().join(format!("rm-cli-relative-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("mynodes")).expect("temp dir");
    std::fs::write(
        dir.join("mynodes/shout.py"),
        "import remotemedia\n\n\n@remotemedia.node(\"Shout\")\nclass Shout(remotemedia.Node):\n    def process(self, data):\n        return data.upper()\n",
    )
    .expect("module");
    std::fs::write(
        dir.join("shout.yaml"),
        "nodes:\n  - {id: s, node_type: Shout, multiprocess: {python_path: [mynodes], modules: [shout]}}\n",
    )
    .expect("manifest");
    // Run from another directory: the module is found next to the manifest.
    let o = Command::new(env!("CARGO_BIN_EXE_remotemedia"))
        .args(["run", "shout.yaml", "--text", "hello"])
        .current_dir(&dir)
        .env("REMOTEMEDIA_PYTHON", python())
        .output()
        .expect("run remotemedia");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let elsewhere = Command::new(env!("CARGO_BIN_EXE_remotemedia"))
        .args([
            "run",
            dir.join("shout.yaml").to_str().expect("utf-8"),
            "--text",
            "hello",
        ])
        .current_dir("/")
        .env("REMOTEMEDIA_PYTHON", python())
        .output()
        .expect("run remotemedia");
    assert_eq!(elsewhere.status.code(), Some(0), "{}", stderr(&elsewhere));
    assert_eq!(stdout(&o), stdout(&elsewhere));
    assert!(stdout(&o).contains("HELLO"), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(&dir);
}
