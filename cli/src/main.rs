//! `remotemedia`: run a pipeline manifest on a media file or stdin, validate manifests,
//! list node types.

mod output;

use anyhow::{anyhow, bail, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use output::{AudioTarget, Format, OutputSink, WavEncoding, Written, MEDIA_END_US};
use remotemedia_runtime_core::data::{PixelFormat, RuntimeData};
use remotemedia_runtime_core::ingestion::{
    global_ingest_registry, IngestConfig, IngestSource, IngestStatus, IngestStream, RawPcmFormat,
    ReconnectPolicy, TrackSelection, LIVE_SCHEMES, VIDEO_FILE_EXTENSIONS,
};
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::nodes::schema::ParamKind;
use remotemedia_runtime_core::transport::{
    PipelineRunner, PipelineTransport, StreamSession, TransportData,
};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
#[command(
    name = "remotemedia",
    version,
    about = "Run real-time media pipelines described by a manifest",
    long_about = "Run real-time media pipelines described by a JSON or YAML manifest.\n\nExit status: 0 on success, 1 on any error (invalid manifest, unreadable input, node failure), 2 on bad command-line usage."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Stream a media file, URL or stdin through a pipeline and print its outputs.
    Run(RunArgs),
    /// Check a manifest (structure, node types, params) without running it.
    Validate {
        /// The manifest (.json, .yaml or .yml).
        manifest: String,
    },
    /// List every node type with its params, types and defaults.
    Nodes {
        /// Print JSON (params as JSON Schema) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Serve pipelines over gRPC (the same server as remotemedia-grpc-server) and, with
    /// --webrtc, to WebRTC peers (browsers) running the --pipeline manifests.
    Serve(ServeArgs),
    /// Build, list and remove the images and containers of Docker nodes.
    #[command(subcommand)]
    Docker(DockerCommand),
}

/// `remotemedia serve`: the gRPC server's flags and the WebRTC server's.
#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    grpc: remotemedia_grpc::args::ServerArgs,
    #[cfg(feature = "webrtc")]
    #[command(flatten)]
    webrtc: remotemedia_webrtc::args::WebRtcArgs,
    #[cfg(not(feature = "webrtc"))]
    #[command(flatten)]
    webrtc: NoWebRtc,
}

/// The WebRTC flags of a build without WebRTC: they only say how to get it.
#[cfg(not(feature = "webrtc"))]
#[derive(clap::Args)]
struct NoWebRtc {
    /// Serve WebRTC peers on this address (not in this build: build the command with
    /// `cargo xtask cli`, or with `--features webrtc`, which needs libopus-dev).
    #[arg(long, value_name = "ADDR")]
    webrtc: Option<String>,
    /// A pipeline WebRTC peers may run, NAME=PATH (needs a build with WebRTC).
    #[arg(long = "pipeline", value_name = "NAME=PATH")]
    pipelines: Vec<String>,
}

#[derive(Subcommand)]
enum DockerCommand {
    /// Build (or find) the image of every Docker node of a manifest, with progress.
    Build {
        /// The manifest (.json, .yaml or .yml).
        manifest: String,
        /// Python interpreter whose remotemedia packages go into the images.
        #[arg(long, env = "REMOTEMEDIA_PYTHON")]
        python: Option<std::path::PathBuf>,
        /// Never show the spinner.
        #[arg(long)]
        no_progress: bool,
    },
    /// List the images and containers of Docker nodes.
    Ls,
    /// Remove containers no running runtime uses; with --images, also every image of
    /// Docker nodes that no container uses (they are rebuilt when next needed).
    Prune {
        /// Remove images too.
        #[arg(long)]
        images: bool,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// The manifest (.json, .yaml or .yml).
    manifest: String,
    /// Input: a file path, a file:// URL, a live stream URL (rtmp://, rtmps://, rtsp://,
    /// rtsps://, udp://, srt://, rtp://; with the ingest-rtmp feature), or `-` for stdin
    /// (WAV, AIFF, CAF, FLAC, MP3, AAC, OGG, MP4/M4A, MKV/WebM audio; raw PCM with
    /// --raw-format). Video files (mp4, mkv, webm, mov, ts, ...) need the ingest-rtmp
    /// feature.
    #[arg(
        short,
        long,
        required_unless_present_any = ["text", "json", "json_lines"],
        conflicts_with_all = ["text", "json", "json_lines"]
    )]
    input: Option<String>,
    /// Send this text as the input instead of media (repeat for several items), e.g. to a
    /// pipeline that starts with TextToSpeechNode or TextCollectorNode.
    #[arg(long, conflicts_with_all = ["json", "json_lines"])]
    text: Vec<String>,
    /// Send this JSON value as an input item (repeat for several), e.g.
    /// '{"operation": "add", "operands": [2, 3]}' to CalculatorNode.
    #[arg(long, value_name = "JSON", conflicts_with = "json_lines")]
    json: Vec<String>,
    /// Send each line of this file (`-`: stdin) as a JSON input item; blank lines are
    /// skipped.
    #[arg(long, value_name = "PATH")]
    json_lines: Option<String>,
    /// Python interpreter for Python nodes (it needs the remotemedia package installed).
    #[arg(long, env = "REMOTEMEDIA_PYTHON")]
    python: Option<std::path::PathBuf>,
    /// Write audio outputs to this WAV file, or `-` for stdout (printed lines then go to
    /// stderr). All audio outputs must share one rate and channel count.
    #[arg(short, long, conflicts_with = "output_dir")]
    output: Option<String>,
    /// Write each audio output to a WAV file of its own in this directory
    /// (0001-NODE.wav, 0002-NODE.wav, ...), e.g. one per utterance.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<std::path::PathBuf>,
    /// Sample encoding of written WAV files.
    #[arg(long, value_enum, default_value = "s16")]
    wav_format: WavEncoding,
    /// How text and JSON outputs are printed.
    #[arg(short, long, value_enum, default_value = "text")]
    format: Format,
    /// Resample the input to this rate while decoding.
    #[arg(long)]
    sample_rate: Option<u32>,
    /// Convert the input to this many channels while decoding.
    #[arg(long)]
    channels: Option<u16>,
    /// Declare headerless PCM on stdin: ENCODING:RATE:CHANNELS, e.g. s16le:16000:1.
    #[arg(long)]
    raw_format: Option<String>,
    /// Ingest these tracks: KIND (audio, video, subtitle), KIND:INDEX (audio:1) or
    /// KIND:LANGUAGE (audio:eng); repeat for several; `all` for every track. Default: the
    /// first audio and the first video track.
    #[arg(long = "track")]
    tracks: Vec<String>,
    /// Live input: be the server the publisher pushes to (RTMP, RTSP, SRT listener) at
    /// the URL's address, instead of connecting to a server. UDP and RTP always listen.
    #[arg(long)]
    listen: bool,
    /// Live input: seconds to connect (in listen mode: to wait for the publisher; default
    /// unbounded there, 10 elsewhere).
    #[arg(long, value_name = "SECONDS")]
    connect_timeout: Option<f64>,
    /// Live input: seconds without data after which the input counts as lost (default 10).
    #[arg(long, value_name = "SECONDS")]
    read_timeout: Option<f64>,
    /// Live input: reconnection attempts after the input is lost (0: end at once), with
    /// backoff from 0.5 s doubling to 10 s.
    #[arg(long, value_name = "N", default_value_t = 5)]
    reconnect: u32,
    /// Video: scale frames to this width (with only one of --width/--height, the other
    /// keeps the aspect ratio).
    #[arg(long)]
    width: Option<u32>,
    /// Video: scale frames to this height.
    #[arg(long)]
    height: Option<u32>,
    /// Video: deliver frames in this pixel format (yuv420p, nv12, rgb24, rgba32, gray8;
    /// default yuv420p).
    #[arg(long)]
    pixel_format: Option<String>,
    /// Video: deliver at most this many frames per second.
    #[arg(long, value_name = "FPS")]
    max_fps: Option<f64>,
    /// Never show the progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Print timing and peak memory to stderr at the end.
    #[arg(long)]
    stats: bool,
}

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(args) => {
                // Our warnings only by default, and not the core's "session failed": the
                // error is printed once, at the end (libraries such as the decoders stay
                // quiet). RUST_LOG=remotemedia::python=info shows what Python workers print.
                remotemedia_grpc::args::init_logging_with(
                    "remotemedia=warn,remotemedia_runtime_core=error",
                );
                run(args).await
            }
            Command::Validate { manifest } => validate(&manifest),
            Command::Nodes { json } => nodes(json),
            Command::Serve(args) => {
                // The WebRTC stack logs every state change at info: warnings only.
                remotemedia_grpc::args::init_logging_with(
                    "info,rtc=warn,rtc_ice=warn,rtc_dtls=error,rtc_sctp=error,rtc_srtp=warn,webrtc=warn",
                );
                serve(args).await
            }
            Command::Docker(command) => {
                remotemedia_grpc::args::init_logging_with("remotemedia=warn");
                docker(command).await
            }
        }
    });
    if let Err(error) = result {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

/// Prints a line; a closed stdout/stderr (e.g. piped into `head`) ends the program quietly.
fn emit_line(to_stderr: bool, line: &str) {
    use std::io::Write;
    let result = if to_stderr {
        writeln!(std::io::stderr().lock(), "{line}")
    } else {
        writeln!(std::io::stdout().lock(), "{line}")
    };
    if let Err(e) = result {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

fn load_manifest(path: &str) -> Result<Manifest> {
    Ok(Manifest::from_file(path)?)
}

/// The built-in nodes plus Python nodes, run by `python` (default: `$REMOTEMEDIA_PYTHON`,
/// else `python3`).
fn runner(python: Option<std::path::PathBuf>) -> Result<PipelineRunner> {
    Ok(runner_and_docker(python)?.0)
}

fn runner_and_docker(
    python: Option<std::path::PathBuf>,
) -> Result<(PipelineRunner, Arc<remotemedia_executors::DockerBackend>)> {
    let mut setup = remotemedia_executors::RuntimeSetup::default();
    setup.multiprocess.python_executable = python;
    Ok(setup.runner_and_docker()?)
}

/// Builds the images of the manifest's Docker nodes, with a spinner on a terminal.
async fn prepare_docker(
    docker: &remotemedia_executors::DockerBackend,
    manifest: &Manifest,
    show: bool,
) -> Result<Vec<(String, String)>> {
    let spinner = if show && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    } else {
        ProgressBar::hidden()
    };
    let shown = spinner.clone();
    let quiet = !show;
    let progress: Arc<dyn Fn(&str) + Send + Sync> = Arc::new(move |step: &str| {
        if shown.is_hidden() {
            if !quiet {
                eprintln!("docker: {step}");
            }
        } else {
            shown.set_message(step.to_owned());
        }
    });
    let result = docker.prepare(manifest, progress).await;
    spinner.finish_and_clear();
    Ok(result?)
}

/// The gRPC server; `--webrtc` needs a build with WebRTC.
#[cfg(not(feature = "webrtc"))]
async fn serve(args: ServeArgs) -> Result<()> {
    if args.webrtc.webrtc.is_some() || !args.webrtc.pipelines.is_empty() {
        bail!(
            "this remotemedia was built without WebRTC: build it with `cargo xtask cli` \
             (or `cargo build --release -p remotemedia-cli --features webrtc`, which needs \
             libopus-dev)"
        );
    }
    remotemedia_grpc::args::run_server("remotemedia serve", &args.grpc).await
}

/// The gRPC server, and the WebRTC server next to it when `--webrtc` is given (one runner,
/// one bearer token); both stop on SIGINT/SIGTERM.
#[cfg(feature = "webrtc")]
async fn serve(args: ServeArgs) -> Result<()> {
    let Some(webrtc_config) = args.webrtc.config(args.grpc.auth_token.clone()) else {
        if !args.webrtc.pipelines.is_empty() {
            bail!("--pipeline offers a pipeline to WebRTC peers: add --webrtc ADDR");
        }
        return remotemedia_grpc::args::run_server("remotemedia serve", &args.grpc).await;
    };
    let config = args.grpc.load_config()?;
    let runner = args.grpc.runner(Some(&config))?;
    let pipelines = args.webrtc.pipelines(&runner)?;
    let webrtc = remotemedia_webrtc::WebRtcServer::new(runner.clone(), pipelines, webrtc_config);
    let webrtc_listener = webrtc.bind().await.map_err(|e| {
        anyhow!(
            "cannot listen for WebRTC signaling on {}: {e}",
            args.webrtc
                .webrtc
                .unwrap_or_else(|| ([127, 0, 0, 1], 0).into())
        )
    })?;
    let (listener, addr) = remotemedia_grpc::bind(&config)
        .await
        .map_err(|e| anyhow!("cannot listen on {}: {e}", config.listen))?;
    // Scripts and tests read these lines to find the ports.
    eprintln!("remotemedia serve listening on {addr}");
    eprintln!(
        "remotemedia serve: WebRTC on http://{} (demo page at /)",
        webrtc_listener.local_addr()?
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        remotemedia_grpc::args::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let webrtc_task = {
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move { webrtc.serve(webrtc_listener, stop).await })
    };
    let grpc = remotemedia_grpc::serve(runner, config, listener, stopped(stop_rx)).await;
    let webrtc = webrtc_task
        .await
        .map_err(|e| anyhow!("the WebRTC server failed: {e}"))?;
    grpc?;
    webrtc.map_err(|e| anyhow!("the WebRTC server failed: {e}"))
}

async fn docker(command: DockerCommand) -> Result<()> {
    match command {
        DockerCommand::Build {
            manifest,
            python,
            no_progress,
        } => {
            let loaded = load_manifest(&manifest)?;
            let (runner, docker) = runner_and_docker(python)?;
            runner.validate(&loaded)?;
            let images = prepare_docker(&docker, &loaded, !no_progress).await?;
            if images.is_empty() {
                println!("{manifest}: no Docker nodes");
            }
            for (node, image) in images {
                println!("node '{node}': {image}");
            }
            Ok(())
        }
        DockerCommand::Ls => {
            let (_, docker) = runner_and_docker(None)?;
            let listing = docker.list().await.map_err(anyhow::Error::msg)?;
            println!("images:");
            for image in &listing.images {
                println!("  {}  {}", image.name, image.detail);
            }
            println!("containers:");
            for container in &listing.containers {
                println!("  {}  {}", container.name, container.detail);
            }
            Ok(())
        }
        DockerCommand::Prune { images } => {
            let (_, docker) = runner_and_docker(None)?;
            let removed = docker.prune(images).await.map_err(anyhow::Error::msg)?;
            if removed.is_empty() {
                println!("nothing to remove");
            }
            for item in removed {
                println!("removed {item}");
            }
            Ok(())
        }
    }
}

fn validate(path: &str) -> Result<()> {
    let manifest = load_manifest(path)?;
    let runner = runner(None)?;
    let pipeline = runner.validate(&manifest)?;
    let graph = pipeline.graph();
    let ids = |indices: &[usize]| {
        indices
            .iter()
            .map(|&i| manifest.nodes[i].id.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let edges: usize = graph.downstream.iter().map(Vec::len).sum();
    println!(
        "{path}: valid{} — {} node(s), {} connection(s); inputs go to: {}; outputs come from: {}",
        if manifest.metadata.name.is_empty() {
            String::new()
        } else {
            format!(" pipeline '{}'", manifest.metadata.name)
        },
        manifest.nodes.len(),
        edges,
        ids(&graph.sources),
        ids(&graph.sinks),
    );
    Ok(())
}

fn nodes(json: bool) -> Result<()> {
    let runner = runner(None)?;
    let types = runner.registry().node_types();
    if json {
        let list: Vec<serde_json::Value> = types.iter().map(|t| t.to_json()).collect();
        emit_line(false, &serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for info in types {
        let aliases = if info.aliases.is_empty() {
            String::new()
        } else {
            format!(" (alias {})", info.aliases.join(", "))
        };
        emit_line(
            false,
            &format!("{}{aliases} — {}", info.node_type, info.description),
        );
        match &info.schema {
            Some(schema) if schema.params().is_empty() => emit_line(false, "    no params"),
            Some(schema) => {
                for p in schema.params() {
                    let kind = match &p.kind {
                        ParamKind::Integer { min, max } => format!("integer {min}..={max}"),
                        ParamKind::Number { min, max } => format!("number {min}..={max}"),
                        ParamKind::Bool => "boolean".to_owned(),
                        ParamKind::String => "string".to_owned(),
                        ParamKind::Choice(c) => c.join("|"),
                        ParamKind::IntegerOrChoice { min, max, choices } => {
                            format!("integer {min}..={max} or {}", choices.join("|"))
                        }
                        _ => "any".to_owned(),
                    };
                    let default = p
                        .default
                        .as_ref()
                        .map_or_else(|| "none".to_owned(), |d| d.to_string());
                    emit_line(
                        false,
                        &format!(
                            "    {:<28} {kind}, default {default} — {}",
                            p.name, p.description
                        ),
                    );
                }
            }
            None => emit_line(false, "    params not declared"),
        }
    }
    Ok(())
}

fn ingest_config(args: &RunArgs) -> Result<IngestConfig> {
    let track_selection = match args.tracks.as_slice() {
        [] => TrackSelection::FirstAudioVideo,
        [one] if one == "all" => TrackSelection::All,
        many => TrackSelection::Specific(many.to_vec()),
    };
    let raw_pcm = args
        .raw_format
        .as_deref()
        .map(RawPcmFormat::parse)
        .transpose()?;
    let millis = |flag: &str, seconds: Option<f64>| -> Result<Option<u64>> {
        match seconds {
            None => Ok(None),
            Some(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => {
                Ok(Some((s * 1000.0).ceil() as u64))
            }
            Some(s) => Err(anyhow!(
                "--{flag} {s} is not a number of seconds in (0, 86400]"
            )),
        }
    };
    Ok(IngestConfig {
        audio_sample_rate: args.sample_rate,
        audio_channels: args.channels,
        track_selection,
        raw_pcm,
        reconnect: ReconnectPolicy {
            max_attempts: args.reconnect,
            ..ReconnectPolicy::default()
        },
        video_width: args.width,
        video_height: args.height,
        video_pixel_format: args
            .pixel_format
            .as_deref()
            .map(PixelFormat::parse_named)
            .transpose()?,
        video_max_fps: args.max_fps,
        connect_timeout_ms: millis("connect-timeout", args.connect_timeout)?,
        read_timeout_ms: millis("read-timeout", args.read_timeout)?,
        listen: args.listen,
        ..IngestConfig::from_url(args.input.clone().unwrap_or_default())
    })
}

/// Registers the live/video ingest adapter when the command is built with it.
fn register_ingest_plugins() -> Result<()> {
    #[cfg(feature = "ingest-rtmp")]
    {
        use std::sync::Once;
        static ONCE: Once = Once::new();
        let mut result = Ok(());
        ONCE.call_once(|| {
            result = global_ingest_registry()
                .register(Arc::new(remotemedia_ingest_rtmp::RtmpIngestPlugin))
                .map_err(anyhow::Error::from);
        });
        result?;
    }
    Ok(())
}

/// Whether `input` needs the ingest-rtmp adapter: a live URL or a video file.
fn needs_adapter(input: &str) -> bool {
    let lower = input.to_ascii_lowercase();
    if LIVE_SCHEMES.iter().any(|s| lower.starts_with(s)) {
        return true;
    }
    std::path::Path::new(&lower)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| VIDEO_FILE_EXTENSIONS.contains(&e))
}

/// The error for an input that needs the adapter, when this command lacks it.
fn without_adapter(error: remotemedia_runtime_core::Error, input: &str) -> anyhow::Error {
    if cfg!(feature = "ingest-rtmp") || !needs_adapter(input) {
        return error.into();
    }
    anyhow!(
        "{error}\nthis remotemedia command was built without the ingest-rtmp feature, which reads live streams and video files: build it with `cargo xtask cli` (installs FFmpeg's development packages and runs `cargo build --release -p remotemedia-cli --features ingest-rtmp`)"
    )
}

/// Prints a live source's status changes to stderr.
fn report_status(source: &Arc<dyn IngestSource>, url: &str, bar: &ProgressBar) {
    let Some(mut updates) = source.status_updates() else {
        return;
    };
    let url = url.to_owned();
    let bar = bar.clone();
    tokio::spawn(async move {
        let mut connected_once = false;
        while updates.changed().await.is_ok() {
            let status = updates.borrow_and_update().clone();
            let line = match &status {
                IngestStatus::Connected => {
                    connected_once = true;
                    format!("ingest: receiving {url}")
                }
                IngestStatus::Reconnecting { attempt, max } if connected_once => {
                    format!("ingest: lost {url}; reconnecting (attempt {attempt} of {max})")
                }
                IngestStatus::Reconnecting { attempt, max } => {
                    format!(
                        "ingest: cannot reach {url} yet; trying again (attempt {attempt} of {max})"
                    )
                }
                _ => continue,
            };
            bar.suspend(|| eprintln!("{line}"));
        }
    });
}

fn progress_bar(args: &RunArgs, duration_us: Option<u64>) -> ProgressBar {
    // Only for files, and only when both outputs are a terminal (not piped or redirected).
    let show = !args.no_progress
        && args.input.as_deref().is_some_and(|input| input != "-")
        && std::io::stderr().is_terminal()
        && std::io::stdout().is_terminal();
    if !show {
        return ProgressBar::hidden();
    }
    let Some(total_us) = duration_us else {
        // A live stream: how much media has come, no end to show.
        let live = args.input.as_deref().is_some_and(|i| {
            LIVE_SCHEMES
                .iter()
                .any(|s| i.to_ascii_lowercase().starts_with(s))
        });
        if !live {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
        bar.set_style(
            ProgressStyle::with_template("{spinner} live: {pos} ms of media, {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        return bar;
    };
    let bar = ProgressBar::with_draw_target(
        Some(total_us / 1000),
        ProgressDrawTarget::stderr_with_hz(10),
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:30}] {pos}/{len} ms of media, {msg} ({elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

/// Forwards outputs to the sink as they come; returns the sink when the session ends.
async fn print_outputs(
    session: Arc<dyn StreamSession>,
    mut sink: OutputSink,
    bar: ProgressBar,
) -> Result<OutputSink> {
    loop {
        let output = session.next_output().await?;
        let Some(output) = output else {
            return Ok(sink);
        };
        if let Some(line) = sink.handle(&output)? {
            let to_stderr = sink.lines_to_stderr();
            bar.suspend(|| emit_line(to_stderr, &line));
        }
    }
}

/// Where `run` takes its input items from.
enum Input {
    /// A decoded media source.
    Media {
        source: Arc<dyn IngestSource>,
        stream: IngestStream,
    },
    /// Items given on the command line (`--text`, `--json`).
    Items(std::vec::IntoIter<RuntimeData>),
    /// JSON lines from a file or stdin (`--json-lines`).
    JsonLines {
        name: String,
        lines: tokio::io::Lines<tokio::io::BufReader<Box<dyn tokio::io::AsyncRead + Unpin + Send>>>,
        line: usize,
    },
}

impl Input {
    async fn open_json_lines(path: &str) -> Result<Self> {
        use tokio::io::AsyncBufReadExt;
        let (name, reader): (String, Box<dyn tokio::io::AsyncRead + Unpin + Send>) = if path == "-"
        {
            ("stdin".to_owned(), Box::new(tokio::io::stdin()))
        } else {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| anyhow!("cannot open {path}: {e}"))?;
            (path.to_owned(), Box::new(file))
        };
        Ok(Input::JsonLines {
            name,
            lines: tokio::io::BufReader::new(reader).lines(),
            line: 0,
        })
    }

    /// The next item; an unreadable or malformed JSON line is an error naming the line.
    async fn next(&mut self) -> Result<Option<RuntimeData>> {
        match self {
            Input::Media { stream, .. } => Ok(stream.recv().await),
            Input::Items(items) => Ok(items.next()),
            Input::JsonLines { name, lines, line } => loop {
                *line += 1;
                let Some(text) = lines
                    .next_line()
                    .await
                    .map_err(|e| anyhow!("cannot read {name}: line {line}: {e}"))?
                else {
                    return Ok(None);
                };
                if text.trim().is_empty() {
                    continue;
                }
                let value: serde_json::Value = serde_json::from_str(&text)
                    .map_err(|e| anyhow!("{name}: line {line}: not JSON: {e}"))?;
                return Ok(Some(RuntimeData::Json(value)));
            },
        }
    }
}

/// The items of `--text` or `--json`; a `--json` value that does not parse is an error
/// naming it.
fn command_line_items(args: &RunArgs) -> Result<Vec<RuntimeData>> {
    if !args.text.is_empty() {
        return Ok(args.text.iter().cloned().map(RuntimeData::Text).collect());
    }
    args.json
        .iter()
        .enumerate()
        .map(|(i, text)| {
            serde_json::from_str(text)
                .map(RuntimeData::Json)
                .map_err(|e| anyhow!("--json value {} is not JSON: {e}: {text}", i + 1))
        })
        .collect()
}

/// How long `run` waits, before it exits, for the session to release its nodes (a Python
/// worker's shutdown timeout is 5 s by default).
const SESSION_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

async fn run(args: RunArgs) -> Result<()> {
    let started = Instant::now();
    let manifest = load_manifest(&args.manifest)?;
    let (runner, docker) = runner_and_docker(args.python.clone())?;
    let pipeline = Arc::new(runner.validate(&manifest)?);
    // Docker nodes' images are built before the session, with progress, so the
    // session's start is not a silent wait.
    prepare_docker(&docker, &manifest, !args.no_progress).await?;
    let result = run_validated(args, runner, pipeline, started).await;
    docker.shutdown().await;
    result
}

async fn run_validated(
    args: RunArgs,
    runner: PipelineRunner,
    pipeline: Arc<remotemedia_runtime_core::pipeline::ValidatedPipeline>,
    started: Instant,
) -> Result<()> {
    let mut input = if let Some(path) = &args.json_lines {
        Input::open_json_lines(path).await?
    } else if args.text.is_empty() && args.json.is_empty() {
        register_ingest_plugins()?;
        let config = ingest_config(&args)?;
        let source = global_ingest_registry()
            .create_from_uri(&config)
            .map_err(|e| without_adapter(e, &config.url))?;
        let live = LIVE_SCHEMES
            .iter()
            .any(|s| config.url.to_ascii_lowercase().starts_with(s));
        if live {
            report_status(&source, &config.url, &ProgressBar::hidden());
            if config.listen {
                eprintln!("ingest: waiting for a publisher at {}", config.url);
            }
        }
        // Opening a live input can wait (for a publisher, a server): Ctrl-C ends it.
        let stream = tokio::select! {
            started = source.start() => started.map_err(|e| without_adapter(e, &config.url))?,
            _ = tokio::signal::ctrl_c() => {
                let _ = source.stop().await;
                eprintln!("interrupted before the input opened");
                return Ok(());
            }
        };
        Input::Media { source, stream }
    } else {
        Input::Items(command_line_items(&args)?.into_iter())
    };
    let bar = match &input {
        Input::Media { stream, .. } => progress_bar(&args, stream.media_info().duration_us()),
        _ => ProgressBar::hidden(),
    };
    let audio = match (&args.output, &args.output_dir) {
        (Some(path), _) => AudioTarget::Wav(path.clone()),
        (None, Some(dir)) => AudioTarget::Directory(dir.clone()),
        (None, None) => AudioTarget::Lines,
    };
    let sink = OutputSink::new(args.format, audio, args.wav_format)?;

    let session: Arc<dyn StreamSession> = runner.stream_pipeline(pipeline).await?.into();
    let mut printer = tokio::spawn(print_outputs(Arc::clone(&session), sink, bar.clone()));

    let mut media_us = 0u64;
    let mut interrupted = false;
    let mut input_error = None;
    let mut send_error = None;
    let feed = async {
        let mut sequence = 0u64;
        loop {
            let next = tokio::select! {
                data = input.next() => data,
                _ = tokio::signal::ctrl_c() => {
                    interrupted = true;
                    Ok(None)
                }
            };
            let data = match next {
                Ok(Some(data)) => data,
                Ok(None) => break,
                Err(error) => {
                    input_error = Some(error);
                    break;
                }
            };
            let mut item = TransportData::new(data).with_sequence(sequence);
            sequence += 1;
            if let (
                Some(frames),
                RuntimeData::Audio {
                    sample_rate,
                    timestamp_us,
                    ..
                },
            ) = (item.data.audio_frames(), &item.data)
            {
                let end_us =
                    timestamp_us + frames as u64 * 1_000_000 / u64::from((*sample_rate).max(1));
                media_us = media_us.max(end_us);
                item = item.with_metadata(MEDIA_END_US, end_us.to_string());
                bar.set_position(media_us / 1000);
                let elapsed = started.elapsed().as_secs_f64().max(1e-6);
                bar.set_message(format!("{:.0}x realtime", media_us as f64 / 1e6 / elapsed));
            } else if let RuntimeData::Video { timestamp_us, .. } = &item.data {
                let at = *timestamp_us;
                item = item.with_metadata(MEDIA_END_US, at.to_string());
            }
            if let Err(error) = session.send_input(item).await {
                send_error = Some(error);
                break;
            }
        }
    };
    // The output side can fail first (a WAV that cannot take a format, a full disk): then
    // the input stops at once, and the session with it.
    let output_failed = tokio::select! {
        () = feed => None,
        printed = &mut printer => Some(printed),
    };
    if let Some(printed) = output_failed {
        let error = match printed {
            Ok(Err(error)) => error,
            Ok(Ok(_)) => anyhow!("the session ended before its input did"),
            Err(e) => anyhow!("the output task failed: {e}"),
        };
        session.cancel();
        if let Input::Media { source, .. } = &input {
            let _ = source.stop().await;
        }
        bar.finish_and_clear();
        if tokio::time::timeout(SESSION_RELEASE_WAIT, session.wait_finished())
            .await
            .is_err()
        {
            eprintln!(
                "warning: the session did not release its nodes within {SESSION_RELEASE_WAIT:?}"
            );
        }
        return Err(error);
    }
    if interrupted {
        if let Input::Media { source, .. } = &input {
            source.stop().await?;
        }
        bar.suspend(|| eprintln!("interrupted: finishing the outputs already in flight"));
    }
    if input_error.is_some() {
        session.cancel();
    } else {
        session.close().await?;
    }
    let printed = printer
        .await
        .map_err(|e| anyhow!("the output task failed: {e}"))?;
    bar.finish_and_clear();
    // Before the process exits, even after a failure: the nodes' cleanup stops their
    // worker processes and removes their shared memory.
    if tokio::time::timeout(SESSION_RELEASE_WAIT, session.wait_finished())
        .await
        .is_err()
    {
        eprintln!("warning: the session did not release its nodes within {SESSION_RELEASE_WAIT:?}");
    }
    if let Some(error) = input_error {
        return Err(error);
    }
    let mut sink = printed?;
    if let Some(error) = send_error {
        return Err(error.into());
    }
    if let Input::Media { stream, .. } = &input {
        if let Some(error) = stream.error() {
            return Err(anyhow!("{error}"));
        }
    }
    match sink.finish()? {
        Written::Wav(path, frames, rate, channels) if path != "-" => eprintln!(
            "wrote {path}: {:.2} s of {rate} Hz audio, {channels} channel(s)",
            frames as f64 / f64::from(rate.max(1))
        ),
        Written::Files(dir, count) => {
            eprintln!("wrote {count} WAV file(s) to {}", dir.display())
        }
        Written::NoAudio(path, outputs) => eprintln!(
            "warning: nothing was written to {path}: the pipeline produced no audio ({outputs} other output(s), printed above)"
        ),
        Written::Wav(..) | Written::Nothing => {}
    }
    if args.stats {
        let wall = started.elapsed();
        eprintln!(
            "stats: {:.1} s of media in {:.2} s ({:.0}x realtime), {} outputs, peak memory {}",
            media_us as f64 / 1e6,
            wall.as_secs_f64(),
            media_us as f64 / 1e6 / wall.as_secs_f64().max(1e-9),
            sink.outputs,
            peak_memory_mib().map_or_else(|| "unknown".to_owned(), |m| format!("{m:.1} MiB")),
        );
        for m in session.metrics() {
            eprintln!(
                "  node {:<16} {:>8} in {:>8} out  p50 {:>8.1} µs  p99 {:>8.1} µs",
                m.node_id,
                m.processed,
                m.emitted,
                m.latency_p50_ns as f64 / 1000.0,
                m.latency_p99_ns as f64 / 1000.0
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(not(feature = "ingest-rtmp"))]
    fn live_urls_and_video_files_without_the_feature_say_how_to_get_it() {
        register_ingest_plugins().expect("nothing to register");
        for url in ["rtmp://127.0.0.1/live/s", "srt://127.0.0.1:9000"] {
            let config = IngestConfig::from_url(url);
            let err = global_ingest_registry()
                .create_from_uri(&config)
                .map_err(|e| without_adapter(e, url))
                .err()
                .expect("no plugin for live URLs");
            let text = err.to_string();
            assert!(
                text.contains("built without the ingest-rtmp feature")
                    && text.contains("cargo xtask cli"),
                "{text}"
            );
        }
        assert!(needs_adapter("clip.MP4") && !needs_adapter("speech.wav"));
    }

    #[derive(clap::Parser)]
    struct Run {
        #[command(flatten)]
        args: RunArgs,
    }

    fn run_args(args: &[&str]) -> RunArgs {
        Run::try_parse_from(std::iter::once("run").chain(args.iter().copied()))
            .expect("parses")
            .args
    }

    #[test]
    fn bad_live_settings_are_refused_naming_the_flag() {
        let args = run_args(&["m.yaml", "--input", "x", "--read-timeout=-1"]);
        let err = ingest_config(&args).unwrap_err().to_string();
        assert!(err.contains("--read-timeout -1"), "{err}");
        let args = run_args(&["m.yaml", "--input", "x", "--pixel-format", "bgr"]);
        let err = ingest_config(&args).unwrap_err().to_string();
        assert!(err.contains("unknown pixel format 'bgr'"), "{err}");
    }
}
