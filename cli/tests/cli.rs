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
fn an_unknown_executor_is_refused_at_validation_naming_the_available_ones() {
    let manifest = temp_path("gpu-farm.yaml");
    std::fs::write(
        &manifest,
        "nodes:\n  - {id: ml, node_type: EchoNode, executor: gpu-farm}\n",
    )
    .expect("write");
    let o = remotemedia(&["validate", manifest.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "error: node 'ml' (EchoNode) needs the 'gpu-farm' executor, which is not available here (available: native, docker, multiprocess)"
    );
}

#[test]
fn a_bad_docker_block_is_refused_at_validation_naming_node_and_key() {
    let manifest = temp_path("docker.yaml");
    std::fs::write(
        &manifest,
        "nodes:\n  - {id: ml, node_type: EchoNode, docker: {image: ml:latest}}\n",
    )
    .expect("write");
    let o = remotemedia(&["validate", manifest.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: invalid manifest: node 'ml' (EchoNode): docker.image: unknown key (known keys: python_version, python_packages"),
        "{}",
        stderr(&o)
    );
    std::fs::write(
        &manifest,
        "nodes:\n  - {id: ml, node_type: EchoNode, docker: {python_version: \"3.10\"}}\n",
    )
    .expect("write");
    let o = remotemedia(&["validate", manifest.to_str().expect("utf8")]);
    assert!(
        stderr(&o).contains("docker.python_version: Python 3.10 cannot be built here")
            && stderr(&o).contains("3.11 (Debian 12 bookworm), 3.13 (Debian 13 trixie)"),
        "{}",
        stderr(&o)
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
    let o = remotemedia(&["run", VAD, "--input", "gopher://localhost/live"]);
    assert_eq!(o.status.code(), Some(1));
    let registered = if cfg!(feature = "ingest-rtmp") {
        "(registered: file://, -, rtmp://, rtmps://, rtsp://, rtsps://, udp://, srt://, rtp://, bare paths)"
    } else {
        "(registered: file://, -, bare paths)"
    };
    assert!(
        stderr(&o).contains(&format!(
            "no ingest plugin handles the gopher:// scheme {registered}"
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_live_url_nobody_serves_fails_after_its_reconnection_attempts() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("rtmp://127.0.0.1:{port}/live/s");
    let o = remotemedia(&["run", VAD, "--input", &url, "--reconnect", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    if cfg!(feature = "ingest-rtmp") {
        assert!(
            err.contains(&format!(
                "ingest: cannot reach {url} yet; trying again (attempt 1 of 1)"
            )) && err.contains(&format!(
                "error: cannot ingest {url}: connecting: Connection refused"
            )),
            "{err}"
        );
    } else {
        assert!(err.contains("cargo xtask cli"), "{err}");
    }
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

/// Runs the VAD segmentation of the bundled speech with `extra` arguments.
fn segment_speech(extra: &[&str]) -> Output {
    let mut args = vec!["run", VAD, "--input", SPEECH];
    args.extend_from_slice(extra);
    remotemedia(&args)
}

/// Runs remotemedia and waits at most `limit` for it; a run still going then is killed and
/// reported as hung.
fn remotemedia_within(args: &[&str], limit: std::time::Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_remotemedia"))
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn remotemedia");
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().expect("output");
            panic!("remotemedia hung ({limit:?}): {}", stderr(&o));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_failing_output_side_ends_the_run_with_its_error() {
    // Two audio sinks at different rates cannot share one WAV: the writer fails on the
    // first item of the second rate while the input is still being fed.
    let manifest = temp_path("two-rates.yaml");
    std::fs::write(
        &manifest,
        "nodes:\n  - {id: split, node_type: PassThrough}\n  - {id: r16, node_type: FastResampleNode, params: {target_rate: 16000}}\n  - {id: r8, node_type: FastResampleNode, params: {target_rate: 8000}}\nconnections:\n  - {from: split, to: r16}\n  - {from: split, to: r8}\n",
    )
    .expect("write");
    let wav = temp_path("two-rates.wav");
    for _ in 0..3 {
        let o = remotemedia_within(
            &[
                "run",
                manifest.to_str().expect("utf8"),
                "--input",
                SPEECH,
                "--output",
                wav.to_str().expect("utf8"),
            ],
            std::time::Duration::from_secs(30),
        );
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("a WAV holds one format"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn output_to_a_wav_from_a_pipeline_without_audio_says_nothing_was_written() {
    let manifest = temp_path("calc.yaml");
    std::fs::write(&manifest, "nodes: [{id: calc, node_type: CalculatorNode}]").expect("write");
    let wav = temp_path("nothing.wav");
    let _ = std::fs::remove_file(&wav);
    let o = remotemedia(&[
        "run",
        manifest.to_str().expect("utf8"),
        "--json",
        r#"{"operation": "add", "operands": [2, 3]}"#,
        "--output",
        wav.to_str().expect("utf8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!wav.exists());
    assert!(
        stderr(&o).contains(&format!(
            "warning: nothing was written to {}: the pipeline produced no audio (1 other output(s), printed above)",
            wav.display()
        )),
        "{}",
        stderr(&o)
    );
}

#[test]
fn json_items_reach_the_pipeline_from_arguments_and_json_lines() {
    let manifest = temp_path("calc-json.yaml");
    std::fs::write(&manifest, "nodes: [{id: calc, node_type: CalculatorNode}]").expect("write");
    let m = manifest.to_str().expect("utf8");
    let o = remotemedia(&[
        "run",
        m,
        "--json",
        r#"{"operation": "add", "operands": [2, 3]}"#,
        "--json",
        r#"{"operation": "multiply", "operands": [4, 5]}"#,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "[calc] {\"operation\":\"add\",\"result\":5}\n[calc] {\"operation\":\"multiply\",\"result\":20}\n"
    );
    let lines = b"{\"operation\": \"add\", \"operands\": [1, 1]}\n\n{\"operation\": \"add\", \"operands\": [2, 2]}\n";
    let from_stdin = remotemedia_with_stdin(&["run", m, "--json-lines", "-"], lines);
    assert!(from_stdin.status.success(), "{}", stderr(&from_stdin));
    assert_eq!(
        stdout(&from_stdin).lines().count(),
        2,
        "{}",
        stdout(&from_stdin)
    );
    let bad = remotemedia_with_stdin(
        &["run", m, "--json-lines", "-"],
        b"{\"operation\": \"add\", \"operands\": [1, 1]}\nnot json\n",
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("error: stdin: line 2: not JSON"),
        "{}",
        stderr(&bad)
    );
    let not_json = remotemedia(&["run", m, "--json", "{oops"]);
    assert_eq!(not_json.status.code(), Some(1));
    assert!(
        stderr(&not_json).contains("--json value 1 is not JSON"),
        "{}",
        stderr(&not_json)
    );
}

#[test]
fn json_lines_carry_node_id_and_media_time() {
    let o = segment_speech(&["--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert_eq!(line["node_id"], "utterances");
        let start = line["timestamp_us"].as_f64().expect("timestamp") / 1e6;
        let length = line["frames"].as_f64().expect("frames") / 16_000.0;
        let known_at = line["media_time_s"].as_f64().expect("media time");
        // An utterance is known once its closing silence has been heard.
        assert!(known_at >= start + length - 0.05, "{line}");
        assert!(known_at <= 9.0, "{line}");
        assert!(line["input_sequence"].as_u64().is_some(), "{line}");
    }
}

/// The data chunk of a WAV: (format tag, channels, rate, bits, data size field, data).
fn wav_parts(bytes: &[u8]) -> (u16, u16, u32, u16, u32, Vec<u8>) {
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let mut at = 12;
    let mut fmt = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        let body = at + 8;
        if id == b"fmt " {
            let u16_at = |o: usize| u16::from_le_bytes([bytes[body + o], bytes[body + o + 1]]);
            let rate = u32::from_le_bytes(bytes[body + 4..body + 8].try_into().expect("4"));
            fmt = Some((u16_at(0), u16_at(2), rate, u16_at(14)));
        }
        if id == b"data" {
            let (tag, channels, rate, bits) = fmt.expect("fmt before data");
            return (tag, channels, rate, bits, size, bytes[body..].to_vec());
        }
        at = body + size as usize + (size as usize & 1);
    }
    panic!("no data chunk");
}

#[test]
fn written_wavs_are_read_by_common_readers() {
    let wav = temp_path("readers.wav");
    let o = segment_speech(&["--output", wav.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    // 16-bit PCM by default, with exact sizes: Python's wave module reads it.
    let bytes = std::fs::read(&wav).expect("wav");
    let (tag, channels, rate, bits, size, data) = wav_parts(&bytes);
    assert_eq!((tag, channels, rate, bits), (1, 1, 16_000, 16));
    assert_eq!(size as usize, data.len());
    let python = Command::new("python3")
        .args([
            "-c",
            "import sys, wave; w = wave.open(sys.argv[1]); print(w.getnchannels(), w.getframerate(), w.getsampwidth(), w.getnframes(), len(w.readframes(w.getnframes())))",
        ])
        .arg(&wav)
        .output()
        .expect("python3");
    assert!(
        python.status.success(),
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&python.stdout).trim(),
        format!("1 16000 2 {} {}", data.len() / 2, data.len())
    );
    // Float: format 3 with a fact chunk giving the frame count.
    let float = temp_path("readers-f32.wav");
    let o = segment_speech(&[
        "--output",
        float.to_str().expect("utf8"),
        "--wav-format",
        "f32",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&float).expect("wav");
    assert_eq!(&bytes[38..42], b"fact");
    let frames = u32::from_le_bytes(bytes[46..50].try_into().expect("4"));
    let (tag, _, _, bits, size, data) = wav_parts(&bytes);
    assert_eq!(
        (tag, bits, size as usize, frames as usize),
        (3, 32, data.len(), data.len() / 4)
    );
    let reader = hound::WavReader::open(&float).expect("hound reads it");
    assert_eq!(reader.duration(), frames);
}

#[test]
fn a_wav_streamed_to_stdout_declares_an_unknown_length_and_reads_back_whole() {
    let o = segment_speech(&["--output", "-"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (_, _, _, _, size, data) = wav_parts(&o.stdout);
    assert_eq!(
        size, 0x7fff_f000,
        "the streaming convention's unknown length"
    );
    assert!(data.len() > 16_000 * 2 * 5, "{} bytes", data.len());
    // Read back through stdin: every sample, no truncation error.
    let pass = temp_path("pass.yaml");
    std::fs::write(&pass, "nodes: [{id: p, node_type: PassThrough}]").expect("write");
    let back = remotemedia_with_stdin(
        &[
            "run",
            pass.to_str().expect("utf8"),
            "--input",
            "-",
            "--format",
            "json",
        ],
        &o.stdout,
    );
    assert!(back.status.success(), "{}", stderr(&back));
    let frames: u64 = stdout(&back)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["frames"]
                .as_u64()
                .expect("frames")
        })
        .sum();
    assert_eq!(frames as usize, data.len() / 2);
}

#[test]
fn output_dir_writes_one_wav_per_utterance() {
    let dir = temp_path("utterances");
    let _ = std::fs::remove_dir_all(&dir);
    let o = segment_speech(&["--output-dir", dir.to_str().expect("utf8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["0001-utterances.wav", "0002-utterances.wav"]);
    let printed = utterances(&stdout(&o));
    assert_eq!(printed.len(), 2, "{}", stdout(&o));
    for (file, (_, seconds)) in files.iter().zip(&printed) {
        let reader = hound::WavReader::open(file).expect("a WAV");
        let length = f64::from(reader.duration()) / 16_000.0;
        assert!((length - seconds).abs() < 0.01, "{length} vs {seconds}");
        assert!(stdout(&o).contains(&file.display().to_string()));
    }
    assert!(stderr(&o).contains("wrote 2 WAV file(s)"), "{}", stderr(&o));
}

#[test]
fn raw_pcm_on_stdin_without_its_format_says_to_declare_it() {
    let bytes = std::fs::read(root().join(SPEECH)).expect("speech");
    let o = remotemedia_with_stdin(&["run", VAD, "--input", "-"], &bytes[44..]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("for headerless PCM, declare its format (on the command line --raw-format ENCODING:RATE:CHANNELS, e.g. s16le:16000:1"),
        "{}",
        stderr(&o)
    );
}
