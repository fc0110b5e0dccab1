//! Real publishers and servers on 127.0.0.1 for the adapter's tests: the ffmpeg CLI
//! publishing generated media, nginx with the RTMP module, gst-rtsp-server.

#![allow(dead_code)]

use remotemedia_ingest_rtmp::RtmpIngestPlugin;
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::ingestion::{
    global_ingest_registry, IngestConfig, IngestSource, IngestStream,
};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

/// Registers the plugin once per test process.
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        global_ingest_registry()
            .register(Arc::new(RtmpIngestPlugin))
            .expect("register the plugin");
    });
}

/// A source for `config`, through the global registry.
pub fn source(config: &IngestConfig) -> Arc<dyn IngestSource> {
    register();
    global_ingest_registry()
        .create_from_uri(config)
        .expect("create the source")
}

/// A free TCP port on 127.0.0.1.
pub fn tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A free UDP port on 127.0.0.1.
pub fn udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

/// A child process killed (and reaped) when dropped.
pub struct Process {
    child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Process {
    pub fn spawn(name: &str, program: &str, args: &[String]) -> Self {
        let log = std::env::temp_dir().join(format!(
            "remotemedia-ingest-test-{}-{}-{}.log",
            name,
            std::process::id(),
            unique()
        ));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        Self {
            child,
            name: name.to_owned(),
            log,
        }
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for it to exit on its own.
    pub fn wait(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills it with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// What a publisher sends.
#[derive(Debug, Clone, Copy)]
pub enum Media {
    /// 75 % colour bars 320x240 at 25 fps, and a 1 kHz sine at -18 dBFS peak, 48 kHz stereo.
    BarsAndTone,
    /// A sync test signal: a white flash (two frames) and a 1 kHz beep (100 ms, -6 dBFS) at
    /// every whole second, the picture's timestamps `0` ms late.
    Markers(u32),
    /// Bars, plus two audio tracks: 1 kHz (language eng) and 440 Hz (language fre).
    TwoAudioTracks,
}

const X264: [&str; 10] = [
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-tune",
    "zerolatency",
    "-g",
    "25",
    "-pix_fmt",
    "yuv420p",
];

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// The ffmpeg arguments that generate `media` for `seconds` (None: until killed) in
/// real time, before the output arguments.
pub fn media_args(media: Media, seconds: Option<f64>) -> Vec<String> {
    let mut args = strings(&["-hide_banner", "-nostats", "-loglevel", "error"]);
    let bars = "pal75bars=size=320x240:rate=25";
    match media {
        Media::BarsAndTone => {
            args.extend(strings(&["-re", "-f", "lavfi", "-i", bars]));
            args.extend(strings(&[
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=1000:sample_rate=48000",
            ]));
            args.extend(strings(&["-map", "0:v", "-map", "1:a"]));
        }
        Media::Markers(video_late_ms) => {
            if video_late_ms > 0 {
                args.extend(strings(&[
                    "-itsoffset",
                    &format!("{}", f64::from(video_late_ms) / 1000.0),
                ]));
            }
            args.extend(strings(&[
                "-re",
                "-f",
                "lavfi",
                "-i",
                "color=c=0x202020:size=320x240:rate=25,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t\\,1)\\,0.08)'",
            ]));
            args.extend(strings(&[
                "-re",
                "-f",
                "lavfi",
                "-i",
                "aevalsrc='if(lt(mod(t\\,1)\\,0.1)\\,0.5*sin(2*PI*1000*t)\\,0)':s=48000",
            ]));
            args.extend(strings(&["-map", "0:v", "-map", "1:a"]));
        }
        Media::TwoAudioTracks => {
            args.extend(strings(&["-re", "-f", "lavfi", "-i", bars]));
            args.extend(strings(&[
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=1000:sample_rate=48000",
            ]));
            args.extend(strings(&[
                "-re",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000",
            ]));
            args.extend(strings(&[
                "-map",
                "0:v",
                "-map",
                "1:a",
                "-map",
                "2:a",
                "-metadata:s:a:0",
                "language=eng",
                "-metadata:s:a:1",
                "language=fre",
            ]));
        }
    }
    if let Some(seconds) = seconds {
        args.extend(strings(&["-t", &format!("{seconds}")]));
    }
    args.extend(strings(&X264));
    args.extend(strings(&["-c:a", "aac", "-b:a", "128k", "-ac", "2"]));
    args
}

/// An ffmpeg publisher of `media` to `output` (format and URL arguments).
pub fn publish(media: Media, seconds: Option<f64>, output: &[&str]) -> Process {
    let mut args = media_args(media, seconds);
    args.extend(strings(output));
    Process::spawn("ffmpeg", "ffmpeg", &args)
}

/// A publisher to a server that may not be listening yet (our own listen mode): started
/// again, as a broadcaster's encoder would, until it stays connected.
pub fn publish_when_listening(media: Media, seconds: Option<f64>, output: &[&str]) -> Process {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let mut publisher = publish(media, seconds, output);
        match publisher.wait(Duration::from_millis(700)) {
            None => return publisher,
            Some(status) if status.success() => return publisher,
            Some(_) if Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Some(status) => panic!(
                "the publisher never connected ({status}): {}",
                publisher.output()
            ),
        }
    }
}

/// Starts `source` (in listen mode) and a publisher of `media` to `output` that retries
/// until the source listens; returns the started stream and the publisher.
pub async fn start_with_publisher(
    source: &Arc<dyn IngestSource>,
    media: Media,
    seconds: Option<f64>,
    output: &[&str],
) -> (IngestStream, Process) {
    let start = tokio::spawn({
        let source = Arc::clone(source);
        async move { source.start().await }
    });
    let output: Vec<String> = strings(output);
    let publisher = tokio::task::spawn_blocking(move || {
        let output: Vec<&str> = output.iter().map(String::as_str).collect();
        publish_when_listening(media, seconds, &output)
    })
    .await
    .expect("publisher");
    let stream = start.await.expect("join").expect("start");
    (stream, publisher)
}

/// Items received until `enough` says so, the stream ends, or `limit` passes.
pub async fn collect(
    stream: &mut IngestStream,
    limit: Duration,
    mut enough: impl FnMut(&[RuntimeData]) -> bool,
) -> Vec<RuntimeData> {
    let mut items = Vec::new();
    let until = tokio::time::Instant::now() + limit;
    while !enough(&items) {
        match tokio::time::timeout_at(until, stream.recv()).await {
            Ok(Some(item)) => items.push(item),
            Ok(None) | Err(_) => break,
        }
    }
    items
}

/// Media seconds of audio of one track among `items`.
pub fn audio_seconds(items: &[RuntimeData], track: &str) -> f64 {
    items
        .iter()
        .filter_map(|item| match item {
            RuntimeData::Audio {
                sample_rate,
                stream_id,
                ..
            } if stream_id.as_deref() == Some(track) => {
                Some(item.audio_frames().unwrap_or(0) as f64 / f64::from(*sample_rate))
            }
            _ => None,
        })
        .sum()
}

/// Video frames of one track among `items`.
pub fn video_frames<'a>(items: &'a [RuntimeData], track: &str) -> Vec<&'a RuntimeData> {
    items
        .iter()
        .filter(|item| {
            matches!(item, RuntimeData::Video { stream_id, .. } if stream_id.as_deref() == Some(track))
        })
        .collect()
}

/// Channel 0 of one audio track's items, concatenated, with its rate.
pub fn channel0(items: &[RuntimeData], track: &str) -> (Vec<f32>, u32) {
    let mut out = Vec::new();
    let mut rate = 0;
    for item in items {
        if let RuntimeData::Audio {
            samples,
            sample_rate,
            channels,
            stream_id,
            ..
        } = item
        {
            if stream_id.as_deref() == Some(track) {
                rate = *sample_rate;
                out.extend(samples.iter().step_by(usize::from(*channels)));
            }
        }
    }
    (out, rate)
}

/// Frequency of a steady tone from its rising zero crossings.
pub fn tone_hz(samples: &[f32], rate: u32) -> f64 {
    let crossings: Vec<usize> = samples
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[0] < 0.0 && w[1] >= 0.0)
        .map(|(i, _)| i)
        .collect();
    let (Some(first), Some(last)) = (crossings.first(), crossings.last()) else {
        return 0.0;
    };
    (crossings.len() - 1) as f64 * f64::from(rate) / (last - first) as f64
}

/// RMS level in dBFS.
pub fn rms_db(samples: &[f32]) -> f64 {
    let mean =
        samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / samples.len().max(1) as f64;
    10.0 * mean.max(1e-12).log10()
}

/// Checks an rgb24 frame of 75 % colour bars: 8 bars, from the left white, yellow, cyan,
/// green, magenta, red, blue, black, the colours at 75 % of full scale (EBU 100/0/75/0),
/// within `tolerance`.
pub fn assert_bars(pixels: &[u8], width: usize, height: usize, tolerance: i32) {
    const BARS: [[i32; 3]; 8] = [
        [255, 255, 255],
        [191, 191, 0],
        [0, 191, 191],
        [0, 191, 0],
        [191, 0, 191],
        [191, 0, 0],
        [0, 0, 191],
        [0, 0, 0],
    ];
    let row = height / 2;
    for (bar, expected) in BARS.iter().enumerate() {
        let x = (bar * width / 8) + width / 16;
        let at = (row * width + x) * 3;
        let got = [
            pixels[at] as i32,
            pixels[at + 1] as i32,
            pixels[at + 2] as i32,
        ];
        for c in 0..3 {
            assert!(
                (got[c] - expected[c]).abs() <= tolerance,
                "bar {bar} at x={x}: got {got:?}, expected {expected:?}"
            );
        }
    }
}

/// nginx with the RTMP module, listening on a free port, with one application `live`.
pub struct Nginx {
    pub port: u16,
    _process: Process,
    dir: PathBuf,
}

impl Nginx {
    pub fn start() -> Self {
        let port = tcp_port();
        let dir = std::env::temp_dir().join(format!(
            "remotemedia-nginx-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(dir.join("logs")).expect("nginx dir");
        let conf = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
             daemon off;\nmaster_process off;\nworker_processes 1;\n\
             error_log {dir}/logs/error.log info;\npid {dir}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096; \
             application live {{ live on; record off; }} }} }}\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).expect("nginx.conf");
        let process = Process::spawn(
            "nginx",
            "nginx",
            &strings(&[
                "-p",
                &dir.display().to_string(),
                "-c",
                &dir.join("nginx.conf").display().to_string(),
            ]),
        );
        // Ready when it accepts connections.
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "nginx did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            port,
            _process: process,
            dir,
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Debian's gst-rtsp-server (through its Python bindings) serving bars and a 1 kHz tone
/// (H.264 + Opus) at rtsp://127.0.0.1:PORT/test.
pub struct RtspServer {
    pub port: u16,
    _process: Process,
}

impl RtspServer {
    pub fn start() -> Self {
        let port = tcp_port();
        let script = format!(
            r#"
import gi, sys
gi.require_version('Gst', '1.0')
gi.require_version('GstRtspServer', '1.0')
from gi.repository import Gst, GstRtspServer, GLib
Gst.init(None)
server = GstRtspServer.RTSPServer()
server.set_address('127.0.0.1')
server.set_service('{port}')
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch('( videotestsrc is-live=true pattern=smpte75 ! video/x-raw,width=320,height=240,framerate=25/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 ! rtph264pay name=pay0 pt=96 audiotestsrc is-live=true wave=sine freq=1000 volume=0.125 ! audioconvert ! audioresample ! audio/x-raw,rate=48000,channels=2 ! opusenc ! rtpopuspay name=pay1 pt=97 )')
factory.set_shared(True)
server.get_mount_points().add_factory('/test', factory)
server.attach(None)
print('ready', flush=True)
GLib.MainLoop().run()
"#
        );
        let process = Process::spawn(
            "gst-rtsp-server",
            "/usr/bin/python3",
            &strings(&["-c", &script]),
        );
        let until = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < until,
                "the RTSP server did not start: {}",
                process.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            port,
            _process: process,
        }
    }
}
