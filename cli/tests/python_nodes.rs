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

/// Whether `line` has every word of `words`.
fn has_words(line: &str, words: &[&str]) -> bool {
    let got: Vec<&str> = line.split_whitespace().collect();
    words.iter().all(|w| got.contains(w))
}

#[test]
fn transcribe_example_writes_the_spoken_words() {
    let o = remotemedia(&[
        "run",
        "examples/pipelines/transcribe.yaml",
        "--input",
        "examples/media/dictation.wav",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = transcript_lines(&o);
    assert_eq!(lines.len(), 3, "one line per sentence: {lines:?}");
    assert!(
        has_words(&lines[0], &["this", "test", "system"]),
        "{lines:?}"
    );
    assert!(
        has_words(&lines[1], &["please", "call", "tomorrow", "morning"]),
        "{lines:?}"
    );
    assert!(
        has_words(&lines[2], &["two", "three", "four", "five", "six", "seven"]),
        "{lines:?}"
    );
}

#[test]
fn voice_loop_recovers_the_words_it_spoke() {
    let o = remotemedia(&[
        "run",
        "examples/pipelines/voice-loop.yaml",
        "--text",
        "please call me tomorrow morning",
        "--text",
        "this is a test of the system",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = transcript_lines(&o);
    // Piper speaks deterministically; PocketSphinx hears "... call me tomorrow morning"
    // and "this is a test of the system".
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        has_words(&lines[0], &["call", "tomorrow", "morning"]),
        "{lines:?}"
    );
    assert!(has_words(&lines[1], &["test", "system"]), "{lines:?}");
}

#[test]
fn the_neural_and_hts_voices_are_understood_by_the_recognizer() {
    let manifest = std::env::temp_dir().join(format!("rm-tts-engines-{}.yaml", std::process::id()));
    for engine in ["piper", "festival"] {
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
        let lines = transcript_lines(&o);
        assert_eq!(lines.len(), 1, "{engine}: {lines:?}");
        assert!(
            has_words(&lines[0], &["call", "tomorrow", "morning"]),
            "{engine}: {lines:?}"
        );
    }
    let _ = std::fs::remove_file(&manifest);
}

/// Lower-case words without punctuation (Whisper writes cased, punctuated text).
fn words(line: &str) -> String {
    line.chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect::<String>()
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn whisper_small_transcribes_the_dictation() {
    let manifest = std::env::temp_dir().join(format!("rm-whisper-{}.yaml", std::process::id()));
    let example = std::fs::read_to_string(root().join("examples/pipelines/transcribe.yaml"))
        .expect("transcribe.yaml");
    std::fs::write(
        &manifest,
        example.replace(
            "params: { engine: pocketsphinx }",
            "params: { engine: whisper-small }",
        ),
    )
    .expect("manifest");
    let o = remotemedia(&[
        "run",
        manifest.to_str().expect("path"),
        "--input",
        "examples/media/dictation.wav",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = transcript_lines(&o).iter().map(|l| words(l)).collect();
    // Word for word (PocketSphinx gets most words of each sentence).
    assert_eq!(
        lines,
        vec![
            "this is a test of the system",
            "please call me tomorrow morning",
            "one two three four five six seven"
        ]
    );
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
    let lines = transcript_lines(&o);
    assert_eq!(lines.len(), 1, "{}", stderr(&o));
    assert!(
        has_words(&lines[0], &["call", "tomorrow", "morning"]),
        "{lines:?}"
    );
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
