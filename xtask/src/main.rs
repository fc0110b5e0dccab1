//! Project automation. Run `cargo xtask --help`.

mod bench_audio;
mod bench_ingest;
mod dep_audit;
mod docker_engine;
mod ffmpeg_env;
mod fuzz;
mod npm;
mod python_env;
mod soak;
mod venv;
mod wasm;
mod webrtc_env;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "RemoteMedia project automation")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum WasmAction {
    /// Build the demo site (<target>/wasm-site: the page, the package, the bundled media,
    /// the example manifests), ready for any static file server; print its directory.
    Site,
    /// Build the demo page (<target>/wasm-site: the package, the bundled media, the
    /// example manifests) and serve it with a static file server; open the printed URL.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8000")]
        listen: String,
    },
}

#[derive(Subcommand)]
enum Task {
    /// Fail if runtime-core reaches a transport/executor crate (tonic, prost, pyo3, ...).
    DepAudit,
    /// Everything CI checks: fmt, clippy -D warnings, dep-audit, wasm32 build, tests, examples.
    Ci,
    /// Run the examples end to end: the CLI on the bundled speech, the console transport,
    /// node registration.
    Demo,
    /// Run benchmarks and print their figures.
    Bench {
        /// Which suite: `core` (executor overhead and session start) or `audio` (native
        /// audio nodes vs numpy/scipy/soxr/webrtcvad, installed in a venv) or `ingest`
        /// (decode a 10-minute file through a 4-node pipeline: x realtime, peak memory) or
        /// `grpc` (N real-time streaming sessions against the server: latency, CPU) or
        /// `ffi` (the Python wheel: call overhead, resampling vs soxr/scipy) or `ipc` (Rust →
        /// Python EchoNode → Rust over shared memory vs a Unix socket; throughput, idle CPU,
        /// session start) or `models` (ASR engines' word error rate and real-time factor,
        /// TTS engines judged by the default ASR, Whisper memory per session, EchoNode
        /// sessions held in real time with shared workers vs a worker per session) or
        /// `docker` or `ingest-live` (live streams through FFmpeg:
        /// publish → first data, CPU per 720p30 stream against ffmpeg -f null, streams held
        /// in real time) or `webrtc` (Opus in → PassThrough → Opus out latency against the
        /// gRPC stream, concurrent peers at real time, CPU per peer) or `wasm` (the audio
        /// nodes in the WASM engine under Node.js against native, per-frame cost).
        #[arg(default_value = "core")]
        suite: String,
    },
    /// Time a clean release build of runtime-core alone (in a fresh target directory).
    BuildTime,
    /// Build the `remotemedia` command with live-stream and video ingest and WebRTC (the
    /// ingest-rtmp and webrtc features): installs FFmpeg's development packages and
    /// libopus-dev (Debian) first, prints the binary.
    Cli,
    /// Build the JavaScript package of the WASM executor (runtime-core for
    /// wasm32-unknown-unknown, wasm-bindgen, the Python SDK and Pyodide) into
    /// <target>/wasm-pkg and print its directory; `serve` also builds the demo page and
    /// serves it.
    Wasm {
        #[command(subcommand)]
        action: Option<WasmAction>,
    },
    /// Build the `remotemedia` Python wheel (maturin, abi3) into <target>/wheels.
    Wheel,
    /// Create the Python environment Python nodes run in (the wheel, remotemedia-nodes and
    /// its models, espeak-ng) and print its interpreter, for REMOTEMEDIA_PYTHON.
    PythonEnv,
    /// Run every test suite (each test binary of the workspace, the wheel's pytest suite,
    /// the grpcio client) many times in a row and report every failure: a test that
    /// passes only sometimes is a failing test. Not part of CI.
    Soak {
        /// How many times to run each suite.
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    /// Run a cargo-fuzz target (libFuzzer) for a while and report executions and crashes:
    /// manifest, frame_codec, grpc_data, file_ingest. Not part of CI.
    Fuzz {
        /// The target.
        target: String,
        /// How long to fuzz.
        #[arg(long, default_value_t = 600)]
        seconds: u64,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root()?;
    std::env::set_current_dir(&root)?;
    match cli.command {
        Task::DepAudit => dep_audit::run(),
        Task::Ci => ci(),
        Task::Demo => demo(),
        Task::Bench { suite } => bench(&suite, &root),
        Task::BuildTime => build_time(),
        Task::Cli => cli_with_ingest(),
        Task::Wasm { action: None } => wasm::build(&root).map(|pkg| println!("{}", pkg.display())),
        Task::Wasm {
            action: Some(WasmAction::Site),
        } => wasm::site(&root).map(|site| println!("{}", site.display())),
        Task::Wasm {
            action: Some(WasmAction::Serve { listen }),
        } => wasm::serve(&root, &listen),
        Task::Wheel => wheel().map(|path| println!("{}", path.display())),
        Task::Soak { runs } => soak::run(&root, runs),
        Task::Fuzz { target, seconds } => fuzz::run_target(&root, &target, seconds),
        Task::PythonEnv => {
            let python = python_env::ensure(&root, &absolute_target_dir())?;
            println!("{}", python.display());
            Ok(())
        }
    }
}

/// The workspace `cargo xtask` was invoked in: the nearest directory at or above the
/// current one whose Cargo.toml declares `[workspace]`. (Not the directory xtask was
/// compiled from: builds shared between clones must act on the clone that runs them.)
fn workspace_root() -> Result<PathBuf> {
    let start = std::env::current_dir().context("cannot read the current directory")?;
    for dir in start.ancestors() {
        let manifest = dir.join("Cargo.toml");
        if std::fs::read_to_string(&manifest).is_ok_and(|text| text.contains("[workspace]")) {
            return Ok(dir.to_path_buf());
        }
    }
    bail!(
        "run cargo xtask inside the RemoteMedia workspace (no Cargo.toml with [workspace] at or above {})",
        start.display()
    )
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

/// Runs a command, streaming its output; fails with the command line when it fails.
pub(crate) fn run(mut command: Command) -> Result<()> {
    let line = format!("{command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot start {line}"))?;
    if !status.success() {
        bail!("{line} failed with {status}");
    }
    Ok(())
}

pub(crate) fn cargo_args(args: &[&str]) -> Command {
    let mut c = cargo();
    c.args(args);
    c
}

fn steps_bar(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Cargo arguments that build the command with the live/video ingest adapter and the
/// WebRTC transport, so the workspace's tests and lints cover them.
const WITH_INGEST: [&str; 2] = [
    "--features",
    "remotemedia-cli/ingest-rtmp,remotemedia-cli/webrtc",
];

fn cli_with_ingest() -> Result<()> {
    ffmpeg_env::ensure()?;
    webrtc_env::ensure_build()?;
    run(cargo_args(&[
        "build",
        "--release",
        "-p",
        "remotemedia-cli",
        "--features",
        "ingest-rtmp,webrtc",
    ]))?;
    println!(
        "{}",
        absolute_target_dir().join("release/remotemedia").display()
    );
    Ok(())
}

fn ci() -> Result<()> {
    ensure_wasm_target()?;
    let root = workspace_root()?;
    println!(
        "\n==> FFmpeg, nginx-rtmp and gst-rtsp-server (the ingest-rtmp adapter and its tests)"
    );
    ffmpeg_env::ensure().context("CI step 'FFmpeg packages' failed")?;
    println!("\n==> the Python environment of the Python nodes (wheel, remotemedia-nodes, models)");
    let python = python_env::ensure(&root, &absolute_target_dir())
        .context("CI step 'Python environment' failed")?;
    println!("\n==> the Docker engine (docker.io, dockerd)");
    docker_engine::ensure().context("CI step 'Docker engine' failed")?;
    println!(
        "\n==> libopus, Chromium and playwright-core (the WebRTC transport and its browser tests)"
    );
    let playwright = webrtc_env::ensure().context("CI step 'WebRTC packages' failed")?;
    let with_python = |mut command: Command| {
        command.env("REMOTEMEDIA_PYTHON", &python);
        command
    };
    let steps: Vec<(&str, Command)> = vec![
        (
            "rustfmt --check",
            cargo_args(&["fmt", "--all", "--", "--check"]),
        ),
        (
            "clippy -D warnings",
            cargo_args(&[
                "clippy",
                "--workspace",
                "--all-targets",
                WITH_INGEST[0],
                WITH_INGEST[1],
                "--",
                "-D",
                "warnings",
            ]),
        ),
        ("dep-audit", cargo_args(&["xtask", "dep-audit"])),
        (
            "runtime-core for wasm32-unknown-unknown",
            cargo_args(&[
                "check",
                "-p",
                "remotemedia-runtime-core",
                "--no-default-features",
                "--target",
                "wasm32-unknown-unknown",
            ]),
        ),
        (
            "tests (Python nodes in real workers; live streams against real servers)",
            with_python(cargo_args(&[
                "test",
                "--workspace",
                WITH_INGEST[0],
                WITH_INGEST[1],
            ])),
        ),
        (
            // The README's main command builds without FFmpeg: its answer to a live URL.
            "the command without the ingest-rtmp feature",
            cargo_args(&["test", "-p", "remotemedia-cli", "--bins"]),
        ),
        (
            // `--workspace`, as the step before: the same features, so nothing rebuilds.
            "the Docker executor and examples/docker-node against the real engine (--ignored)",
            with_python(cargo_args(&[
                "test",
                "--workspace",
                WITH_INGEST[0],
                WITH_INGEST[1],
                "--test",
                "docker",
                "--test",
                "docker_example",
                "--",
                "--ignored",
            ])),
        ),
        (
            "a real browser (headless Chromium) through remotemedia serve --webrtc (--ignored)",
            {
                let mut command = with_python(cargo_args(&[
                    "test",
                    "--workspace",
                    WITH_INGEST[0],
                    WITH_INGEST[1],
                    "--test",
                    "webrtc_browser",
                    "--",
                    "--ignored",
                ]));
                command.env("REMOTEMEDIA_PLAYWRIGHT", &playwright);
                command
            },
        ),
        (
            "gRPC server binary",
            cargo_args(&[
                "build",
                "-p",
                "remotemedia-grpc",
                "--bin",
                "remotemedia-grpc-server",
            ]),
        ),
        (
            "demo pipelines",
            with_python(cargo_args(&["xtask", "demo"])),
        ),
    ];
    let bar = steps_bar(steps.len());
    let started = Instant::now();
    for (name, command) in steps {
        bar.set_message(name);
        bar.suspend(|| println!("\n==> {name}"));
        bar.suspend(|| run(command))
            .with_context(|| format!("CI step '{name}' failed"))?;
        bar.inc(1);
    }
    bar.set_message("WASM package and its Node.js tests");
    bar.suspend(|| println!("\n==> the WASM package (wasm-bindgen) and its Node.js tests"));
    bar.suspend(|| wasm::test(&root, &playwright, &python))
        .context("CI step 'WASM package' failed")?;
    bar.set_message("Python package");
    bar.suspend(|| println!("\n==> the remotemedia wheel and its pytest suite"));
    bar.suspend(|| python_package(&python))
        .context("CI step 'Python package' failed")?;
    bar.set_message("Python grpcio client against the server");
    bar.suspend(|| println!("\n==> Python grpcio client against the real server"));
    bar.suspend(|| python_grpc_client(&python))
        .context("CI step 'Python grpcio client' failed")?;
    bar.finish_and_clear();
    println!("\nCI passed in {:.0?}", started.elapsed());
    Ok(())
}

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
}

pub(crate) fn absolute_target_dir() -> PathBuf {
    let target = target_dir();
    std::fs::create_dir_all(&target).ok();
    std::fs::canonicalize(&target).unwrap_or(target)
}

/// Generates stubs from our .proto with grpcio-tools and runs unary, streaming and error
/// calls against the real `remotemedia-grpc-server`, whose Python nodes run in
/// `node_python`.
fn python_grpc_client(node_python: &std::path::Path) -> Result<()> {
    let target = target_dir();
    let python = venv::ensure_venv(&target.join("ci-venv"), GRPC_CLIENT_PACKAGES)?;
    let server = std::fs::canonicalize(target.join("debug/remotemedia-grpc-server"))
        .context("the server binary was not built")?;
    let mut pytest = Command::new(python);
    pytest
        .args(["-m", "pytest", "-q", "transports/grpc/tests/python"])
        .env("REMOTEMEDIA_GRPC_SERVER", server)
        .env("REMOTEMEDIA_PYTHON", node_python);
    run(pytest)
}

/// The grpcio client's venv: grpcio, its stub generator, its reflection client, pytest, and h2 (raw HTTP/2 for
/// the hostile cases grpcio cannot send, like a message that stops halfway).
pub(crate) const GRPC_CLIENT_PACKAGES: &[&str] = &[
    "grpcio",
    "grpcio-tools",
    "grpcio-reflection",
    "pytest",
    "h2",
];

const FFI_VENV_PACKAGES: &[&str] = &["maturin==1.16.0", "numpy", "pytest"];

/// Builds the wheel with maturin (release, abi3) and returns its path.
pub(crate) fn wheel() -> Result<PathBuf> {
    let target = std::fs::canonicalize(target_dir()).unwrap_or_else(|_| target_dir());
    let python = venv::ensure_venv(&target.join("ffi-venv"), FFI_VENV_PACKAGES)?;
    let maturin = python.with_file_name("maturin");
    let out = target.join("wheels");
    let _ = std::fs::remove_dir_all(&out);
    let mut build = Command::new(&maturin);
    build
        .current_dir("transports/ffi")
        .args(["build", "--release", "--quiet", "-o"])
        .arg(&out)
        .arg("-i")
        .arg(&python);
    run(build)?;
    let wheel = std::fs::read_dir(&out)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .context("maturin produced no wheel")?;
    Ok(wheel)
}

/// Runs `python -m pip install --quiet <args>`.
pub(crate) fn pip_install(python: &std::path::Path, args: &[&std::ffi::OsStr]) -> Result<()> {
    let mut install = Command::new(python);
    install.args(["-m", "pip", "install", "--quiet"]).args(args);
    run(install)
}

/// Installs (or replaces) the package from `wheel` into the venv of `python`.
pub(crate) fn install_wheel(python: &std::path::Path, wheel: &std::path::Path) -> Result<()> {
    pip_install(
        python,
        &[
            "--force-reinstall".as_ref(),
            "--no-deps".as_ref(),
            wheel.as_os_str(),
        ],
    )
}

/// Runs the wheel's pytest suite in the Python environment (which has the wheel).
fn python_package(python: &std::path::Path) -> Result<()> {
    let mut pytest = Command::new(python);
    pytest.args(["-m", "pytest", "-q", "transports/ffi/tests"]);
    run(pytest)
}

pub(crate) fn ensure_wasm_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match out {
        Ok(out) if String::from_utf8_lossy(&out.stdout).contains("wasm32-unknown-unknown") => {
            Ok(())
        }
        Ok(_) => run({
            let mut c = Command::new("rustup");
            c.args(["target", "add", "wasm32-unknown-unknown"]);
            c
        }),
        Err(e) => bail!("rustup is needed to install the wasm32 target: {e}"),
    }
}

/// `remotemedia <args>` through cargo, with Python nodes run by `python`.
fn remotemedia_cli(python: &std::path::Path, args: &[&str]) -> Command {
    let mut command = cargo_args(&["run", "--quiet", "-p", "remotemedia-cli", "--"]);
    command.args(args).env("REMOTEMEDIA_PYTHON", python);
    command
}

fn demo() -> Result<()> {
    let python = match std::env::var_os("REMOTEMEDIA_PYTHON") {
        Some(python) if !python.is_empty() => PathBuf::from(python),
        _ => python_env::ensure(&workspace_root()?, &absolute_target_dir())?,
    };
    println!("==> the main job: VAD segmentation of the bundled speech");
    run(remotemedia_cli(
        &python,
        &[
            "run",
            "examples/pipelines/vad-segmentation.yaml",
            "--input",
            "examples/media/speech.wav",
        ],
    ))?;
    println!("\n==> stream health alerts on the same file");
    let mut health = remotemedia_cli(
        &python,
        &[
            "run",
            "examples/pipelines/stream-health.yaml",
            "--input",
            "examples/media/speech.wav",
            "--format",
            "json",
        ],
    );
    health.stdout(std::process::Stdio::piped());
    let output = health.output().context("cannot run remotemedia")?;
    if !output.status.success() {
        bail!("stream-health run failed");
    }
    let alerts = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.contains("\"alert\""))
        .count();
    println!("{alerts} alerts (silences and dropouts between words)");
    println!(
        "\n==> transcription with Python nodes (Silero VAD, Whisper small) of the bundled dictation"
    );
    run(remotemedia_cli(
        &python,
        &[
            "run",
            "examples/pipelines/transcribe.yaml",
            "--input",
            "examples/media/dictation.wav",
        ],
    ))?;
    println!("\n==> voice loop: text -> Piper -> 16 kHz -> Whisper small -> text");
    run(remotemedia_cli(
        &python,
        &[
            "run",
            "examples/pipelines/voice-loop.yaml",
            "--text",
            "please call me tomorrow morning",
        ],
    ))?;
    println!("\n==> unary: calculator through the console transport");
    run(cargo_args(&[
        "run",
        "--quiet",
        "-p",
        "custom-transport",
        "--",
        r#"{"operation": "multiply", "operands": [6, 7]}"#,
    ]))?;
    println!("\n==> streaming: words in, sentences out");
    let mut streaming = cargo_args(&[
        "run",
        "--quiet",
        "-p",
        "custom-transport",
        "--example",
        "streaming",
    ]);
    streaming.stdin(std::process::Stdio::null());
    run(streaming)?;
    println!("\n==> node registration: factory API and macros in one registry");
    run(cargo_args(&[
        "run",
        "--quiet",
        "-p",
        "remotemedia-runtime-core",
        "--example",
        "node_registration_example",
    ]))?;
    Ok(())
}

fn bench(suite: &str, root: &std::path::Path) -> Result<()> {
    match suite {
        "audio" => bench_audio::run(root),
        "ingest" => bench_ingest::run(root),
        "grpc" => bench_grpc(),
        "ffi" => bench_ffi(),
        "ipc" => bench_ipc(root),
        "models" => {
            let python = python_env::ensure(root, &absolute_target_dir())?;
            let mut bench = cargo_args(&[
                "bench",
                "-p",
                "remotemedia-multiprocess",
                "--bench",
                "models",
                "--",
            ]);
            bench.arg(&python);
            run(bench)
        }
        "docker" => {
            let python = python_env::ensure(root, &absolute_target_dir())?;
            docker_engine::ensure()?;
            let mut bench = cargo_args(&[
                "bench",
                "-p",
                "remotemedia-docker",
                "--bench",
                "docker",
                "--",
            ]);
            bench.arg(&python);
            run(bench)
        }
        "core" => run(cargo_args(&[
            "bench",
            "-p",
            "remotemedia-runtime-core",
            "--bench",
            "pipeline",
        ])),
        "wasm" => {
            let pkg = wasm::build(root)?;
            let mut bench = cargo_args(&[
                "bench",
                "-p",
                "remotemedia-wasm",
                "--bench",
                "wasm_vs_native",
                "--",
            ]);
            bench.arg(pkg);
            run(bench)
        }
        "webrtc" => {
            webrtc_env::ensure_build()?;
            run(cargo_args(&[
                "bench",
                "-p",
                "remotemedia-webrtc",
                "--bench",
                "webrtc",
                "--",
                "10",
                "1",
                "10",
                "25",
                "40",
                "50",
            ]))
        }
        "ingest-live" => {
            ffmpeg_env::ensure()?;
            run(cargo_args(&[
                "bench",
                "-p",
                "remotemedia-ingest-rtmp",
                "--bench",
                "live",
            ]))
        }
        other => {
            bail!("unknown bench suite '{other}' (available: core, audio, ingest, ingest-live, grpc, ffi, ipc, models, docker, webrtc, wasm)")
        }
    }
}

/// Rust → Python EchoNode → Rust over shared memory and over a Unix socket, one run.
fn bench_ipc(root: &std::path::Path) -> Result<()> {
    let python = python_env::ensure(root, &absolute_target_dir())?;
    let script = root.join("xtask/bench/ipc_socket_echo.py");
    let mut bench = cargo_args(&[
        "bench",
        "-p",
        "remotemedia-multiprocess",
        "--bench",
        "ipc",
        "--",
    ]);
    bench.arg(&python).arg(&script);
    run(bench)
}

/// The wheel driven from Python next to numpy/soxr/scipy, in one venv and one run.
fn bench_ffi() -> Result<()> {
    let wheel = wheel()?;
    let target = std::fs::canonicalize(target_dir()).unwrap_or_else(|_| target_dir());
    let python = venv::ensure_venv(&target.join("bench-ffi-venv"), &["numpy", "scipy", "soxr"])?;
    install_wheel(&python, &wheel)?;
    let mut bench = Command::new(&python);
    bench.arg("xtask/bench/ffi_python.py");
    run(bench)
}

/// Real-time streaming sessions against the release server; 10 s per session count.
fn bench_grpc() -> Result<()> {
    run(cargo_args(&[
        "build",
        "--release",
        "-p",
        "remotemedia-grpc",
        "--bin",
        "remotemedia-grpc-server",
    ]))?;
    let server = std::fs::canonicalize(target_dir().join("release/remotemedia-grpc-server"))?;
    let server = server.to_string_lossy().into_owned();
    run(cargo_args(&[
        "bench",
        "-p",
        "remotemedia-grpc",
        "--bench",
        "load",
        "--",
        &server,
        "10",
        "10",
        "100",
        "500",
        "750",
        "1000",
    ]))
}

fn build_time() -> Result<()> {
    let target =
        std::env::temp_dir().join(format!("remotemedia-build-time-{}", std::process::id()));
    let bar = ProgressBar::new_spinner();
    bar.set_message("clean release build of remotemedia-runtime-core");
    bar.enable_steady_tick(Duration::from_millis(200));
    let started = Instant::now();
    let mut command = cargo_args(&["build", "--release", "-p", "remotemedia-runtime-core"]);
    command.env("CARGO_TARGET_DIR", &target);
    let result = bar.suspend(|| run(command));
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&target);
    result?;
    println!(
        "clean release build of remotemedia-runtime-core: {:.1} s on {} cores",
        elapsed.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    Ok(())
}
