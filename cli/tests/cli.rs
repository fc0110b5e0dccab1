//! The `remotemedia` command end to end: the README's main command, every input kind,
//! every output kind, and every bad input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn remotemedia(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_remotemedia"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run remotemedia")
}

fn remotemedia_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_remotemedia"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn remotemedia");
    let mut pipe = child.stdin.take().expect("stdin");
    let bytes = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&bytes);
    });
    let output = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    output
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("remotemedia-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

const VAD: &str = "examples/pipelines/vad-segmentation.yaml";
const SPEECH: &str = "examples/media/speech.wav";

/// The two utterances of the bundled speech, as `(start_s, duration_s)`.
fn utterances(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("[utterances] audio ")?;
            let (duration, rest) = rest.split_once(" s at ")?;
            let (start, _) = rest.split_once(" s ")?;
            Some((start.parse().ok()?, duration.parse().ok()?))
        })
        .collect()
}

#[test]
fn readme_main_command_segments_the_bundled_speech() {
    let o = remotemedia(&["run", VAD, "--input", SPEECH]);
    assert!(o.status.success(), "{}", stderr(&o));
    let found = utterances(&stdout(&o));
    assert_eq!(found.len(), 2, "{}", stdout(&o));
    // Two sentences separated by one second of silence.
    assert!(found[0].0 < 1.5 && found[0].1 > 2.0, "{found:?}");
    assert!(found[1].0 > found[0].0 + found[0].1, "{found:?}");
    assert!(stdout(&o)
        .lines()
        .all(|l| l.starts_with("[utterances] audio ")));
    assert!(
        stderr(&o).is_empty(),
        "no progress bar when not on a terminal: {}",
        stderr(&o)
    );
}

#[test]
fn json_format_prints_one_object_per_line() {
    let o = remotemedia(&[
        "run",
        "examples/pipelines/stream-health.yaml",
        "--input",
        SPEECH,
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert!(lines.len() > 400, "{} lines", lines.len());
    assert!(lines
        .iter()
        .all(|l| l["node_id"].is_string() && l["type"] == "json"));
    assert!(lines
        .iter()
        .any(|l| l["node_id"] == "level" && l["data"]["rms_db"].is_number()));
    assert!(lines
        .iter()
        .any(|l| l["node_id"] == "silence" && l["data"]["alert"] == "silence"));
}

#[test]
fn audio_outputs_are_written_to_a_wav_file() {
    let wav = temp_path("utterances.wav");
    let o = remotemedia(&[
        "run",
        VAD,
        "--input",
        SPEECH,
        "--output",
        wav.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).is_empty(),
        "audio goes to the file, not the console"
    );
    let reader = hound::WavReader::open(&wav).expect("a readable WAV");
    let spec = reader.spec();
    assert_eq!((spec.sample_rate, spec.channels), (16_000, 1));
    let seconds = reader.duration() as f64 / 16_000.0;
    assert!((4.0..8.0).contains(&seconds), "{seconds} s of speech");
    assert!(stderr(&o).contains("wrote"), "{}", stderr(&o));
}

#[test]
fn wav_to_stdout_moves_the_lines_to_stderr() {
    let o = remotemedia(&[
        "run",
        "examples/pipelines/vad-segmentation.yaml",
        "--input",
        "runtime-core/tests/fixtures/tone.wav",
        "--output",
        "-",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(&o.stdout[..4], b"RIFF");
    assert_eq!(&o.stdout[8..12], b"WAVE");
}

#[test]
fn stdin_wav_gives_the_same_result_as_the_file() {
    let bytes = std::fs::read(root().join(SPEECH)).expect("speech");
    let from_file = remotemedia(&["run", VAD, "--input", SPEECH]);
    let from_stdin = remotemedia_with_stdin(&["run", VAD, "--input", "-"], &bytes);
    assert!(from_stdin.status.success(), "{}", stderr(&from_stdin));
    assert_eq!(stdout(&from_stdin), stdout(&from_file));
}

#[test]
fn stdin_raw_pcm_with_a_declared_format() {
    let bytes = std::fs::read(root().join(SPEECH)).expect("speech");
    // The bundled WAV is 16 kHz mono s16; its samples start after the 44-byte header.
    let pcm = &bytes[44..];
    let o = remotemedia_with_stdin(
        &["run", VAD, "--input", "-", "--raw-format", "s16le:16000:1"],
        pcm,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(utterances(&stdout(&o)).len(), 2, "{}", stdout(&o));
}

#[test]
fn every_bundled_format_runs_through_a_pipeline() {
    for name in ["tone.wav", "tone.flac", "tone.mp3", "tone.ogg"] {
        let input = format!("runtime-core/tests/fixtures/{name}");
        let o = remotemedia(&[
            "run",
            "examples/pipelines/stream-health.yaml",
            "--input",
            &input,
            "--sample-rate",
            "16000",
            "--channels",
            "2",
            "--format",
            "json",
        ]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let levels = stdout(&o)
            .lines()
            .filter(|l| l.contains("\"rms_db\""))
            .count();
        // 0.5 s is 25 frames of 20 ms; lossy codecs add up to ~100 ms of encoder padding.
        assert!(
            (25..=31).contains(&levels),
            "{name}: {levels} level reports for 0.5 s"
        );
    }
}

#[test]
fn missing_manifest_is_a_clear_error() {
    let o = remotemedia(&["run", "nope.yaml", "--input", SPEECH]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: cannot read manifest nope.yaml:"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn invalid_manifest_names_node_and_param() {
    let manifest = temp_path("bad.yaml");
    std::fs::write(
        &manifest,
        "nodes:\n  - {id: chunks, node_type: AudioChunkerNode, params: {chunk_size: 0}}\n",
    )
    .expect("write");
    let o = remotemedia(&["run", manifest.to_str().expect("utf8"), "--input", SPEECH]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "error: node 'chunks' (AudioChunkerNode): param 'chunk_size': value 0 is out of range 1..=1048576"
    );
}

#[test]
fn a_docker_node_is_refused_at_validation_naming_the_missing_executor() {
    let manifest = temp_path("docker.yaml");
    std::fs::write(
        &manifest,
        "nodes:\n  - {id: ml, node_type: EchoNode, docker: {image: ml:latest}}\n",
    )
    .expect("write");
    let o = remotemedia(&["validate", manifest.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "error: node 'ml' (EchoNode) needs the 'docker' executor, which is not available here (available: native, multiprocess)"
    );
}

#[test]
fn yaml_syntax_error_gives_the_line() {
    let manifest = temp_path("syntax.yaml");
    std::fs::write(
        &manifest,
        "nodes:\n  - id: a\n    node_type: [PassThrough\n",
    )
    .expect("write");
    let o = remotemedia(&["validate", manifest.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: manifest is not valid YAML at line"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn missing_input_file_is_a_clear_error() {
    let o = remotemedia(&["run", VAD, "--input", "no/such.wav"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "error: cannot ingest no/such.wav: file not found"
    );
}

#[test]
fn non_media_input_is_a_clear_error() {
    let o = remotemedia(&["run", VAD, "--input", "README.md"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: cannot ingest README.md: not a media file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn truncated_input_fails_after_delivering_what_it_had() {
    let bytes = std::fs::read(root().join(SPEECH)).expect("speech");
    let cut = temp_path("cut.wav");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let o = remotemedia(&["run", VAD, "--input", cut.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
}

/// A file of `bytes` under the temp dir, its path as a string.
fn temp_file(name: &str, bytes: &[u8]) -> String {
    let path = temp_path(name);
    std::fs::write(&path, bytes).expect("write");
    path.to_str().expect("utf8").to_owned()
}

#[test]
fn cut_mp3_and_ogg_files_fail_with_the_reason() {
    let fixtures = root().join("runtime-core/tests/fixtures");
    let mp3 = std::fs::read(fixtures.join("tone.mp3")).expect("mp3");
    let cut = temp_file("cut.mp3", &mp3[..mp3.len() * 2 / 3]);
    let o = remotemedia(&["run", VAD, "--input", &cut]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("truncated: the MP3 stream ends"),
        "{}",
        stderr(&o)
    );
    let ogg = std::fs::read(fixtures.join("tone.ogg")).expect("ogg");
    let cut = temp_file("cut.ogg", &ogg[..ogg.len() - 100]);
    let o = remotemedia(&["run", VAD, "--input", &cut]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));
}

#[test]
fn a_wav_declaring_rate_0_is_a_clear_error() {
    let mut wav = std::fs::read(root().join(SPEECH)).expect("speech");
    // The sample rate field of the canonical 44-byte header.
    wav[24..28].copy_from_slice(&0u32.to_le_bytes());
    let path = temp_file("rate0.wav", &wav);
    let o = remotemedia(&["run", VAD, "--input", &path]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the WAV header declares a sample rate of 0 Hz"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

#[test]
fn a_yaml_alias_bomb_manifest_is_refused_quickly() {
    let anchor = format!("[{}]", vec!["1"; 5000].join(", "));
    let aliases = format!("[{}]", vec!["*a"; 20_000].join(", "));
    let manifest = temp_file(
        "bomb.yaml",
        format!(
            "metadata:\n  a: &a {anchor}\n  b: {aliases}\nnodes: [{{id: x, node_type: PassThrough}}]\n"
        )
        .as_bytes(),
    );
    let started = std::time::Instant::now();
    let o = remotemedia(&["validate", &manifest]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("counting each YAML alias as the values it repeats"),
        "{}",
        stderr(&o)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn unknown_scheme_lists_the_schemes() {
    let o = remotemedia(&["run", VAD, "--input", "rtmp://localhost/live"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(
            "no ingest plugin handles the rtmp:// scheme (registered: file://, -, bare paths)"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn node_failure_at_run_time_names_the_node() {
    let manifest = temp_path("strict.yaml");
    std::fs::write(
        &manifest,
        "nodes:\n  - {id: strict, node_type: FastResampleNode, params: {source_rate: 48000, target_rate: 16000}}\n",
    )
    .expect("write");
    let o = remotemedia(&["run", manifest.to_str().expect("utf8"), "--input", SPEECH]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "error: node 'strict' (FastResampleNode) failed: input audio is 16000 Hz but source_rate is 48000"
    );
}

#[test]
fn bad_raw_format_is_a_clear_error() {
    let o = remotemedia_with_stdin(
        &["run", VAD, "--input", "-", "--raw-format", "pcm:16000"],
        b"",
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("raw PCM format 'pcm:16000' does not have three parts"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn usage_errors_exit_with_2() {
    let o = remotemedia(&["run", VAD]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--input"), "{}", stderr(&o));
}

#[test]
fn validate_reports_the_graph() {
    let o = remotemedia(&["validate", "examples/pipelines/stream-health.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("valid pipeline 'stream-health' — 5 node(s), 4 connection(s); inputs go to: frames; outputs come from: level, silence, clipping, balance"), "{}", stdout(&o));
}

#[test]
fn nodes_lists_every_built_in_node_with_params() {
    let o = remotemedia(&["nodes"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for node in [
        "PassThrough (alias PassThroughNode)",
        "CalculatorNode",
        "TextCollectorNode",
        "AudioChunkerNode",
        "FastResampleNode (alias AudioResampleNode)",
        "AudioFormatConverterNode",
        "AudioGainNode",
        "AudioLevelNode",
        "SilenceDetectorNode",
        "ClippingDetectorNode",
        "ChannelBalanceNode",
        "VADNode",
        "AudioBufferAccumulatorNode",
    ] {
        assert!(text.contains(node), "{node} missing");
    }
    assert!(text.contains("chunk_size                   integer 1..=1048576, default 512"));

    let o = remotemedia(&["nodes", "--json"]);
    let list: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).expect("JSON");
    let resample = list
        .iter()
        .find(|n| n["node_type"] == "FastResampleNode")
        .expect("resampler listed");
    assert_eq!(
        resample["params"]["properties"]["target_rate"]["default"],
        16000
    );
    assert_eq!(
        resample["params"]["properties"]["quality"]["enum"][2],
        "High"
    );
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["run", "--help"],
        vec!["validate", "--help"],
        vec!["nodes", "--help"],
    ] {
        let o = remotemedia(&args);
        assert!(o.status.success(), "{args:?}");
        assert!(stdout(&o).contains("Usage:"), "{args:?}");
    }
}
