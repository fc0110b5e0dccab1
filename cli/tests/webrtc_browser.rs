//! A real browser talks to `remotemedia serve --webrtc`: headless Chromium (Debian's, driven
//! by playwright-core) loads the server's demo page with a fake microphone playing the
//! bundled speech, and the test checks what the page saw: VAD events, the transcript, the
//! spoken reply's audio, the round trip time.
//!
//! Chromium gathers no ICE candidates on loopback alone, so server and browser run in two
//! private network namespaces of the test's own, joined by a veth pair (the server at
//! 10.213.N.1, the browser at .2); nothing else is ever a target. Needs root (for the namespace), Chromium and
//! playwright-core: `cargo xtask ci` installs them and runs these tests with `--ignored`.

#![cfg(feature = "webrtc")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One browser test at a time: each runs Chromium and a server (the voice one with
/// Whisper and Piper), which together fill the two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// Two network namespaces joined by a veth pair — the server's (10.213.N.1) and the
/// browser's (10.213.N.2) — so each side has one address and the path between them is
/// the only one (with both ends in one namespace, Chromium may send from the server's own
/// address, which the server's ICE agent does not take); removed on drop.
struct Namespace {
    name: String,
    browser: String,
    server_ip: String,
}

fn ip(args: &[&str]) {
    let status = Command::new("ip")
        .args(args)
        .status()
        .expect("the ip command (iproute2)");
    assert!(status.success(), "ip {}", args.join(" "));
}

impl Namespace {
    fn create(index: u8) -> Namespace {
        remove_stale_namespaces();
        let pid = std::process::id();
        let name = format!("rm-webrtc-{pid}-{index}");
        let browser = format!("{name}b");
        let (a, b) = (format!("rmw{pid}a{index}"), format!("rmw{pid}b{index}"));
        let subnet = format!("10.213.{}", (pid % 200) as u8 + index);
        ip(&["netns", "add", &name]);
        ip(&["netns", "add", &browser]);
        let ns = Namespace {
            name,
            browser,
            server_ip: format!("{subnet}.1"),
        };
        ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        for (dev, space, host) in [(&a, &ns.name, 1), (&b, &ns.browser, 2)] {
            ip(&["netns", "exec", space, "ip", "link", "set", "lo", "up"]);
            ip(&["link", "set", dev, "netns", space]);
            let addr = format!("{subnet}.{host}/24");
            ip(&[
                "netns", "exec", space, "ip", "addr", "add", &addr, "dev", dev,
            ]);
            ip(&["netns", "exec", space, "ip", "link", "set", dev, "up"]);
        }
        ns
    }

    /// `program` in the server's namespace.
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).arg(program);
        command
    }

    /// `program` in the browser's namespace.
    fn browser_command(&self, program: &Path) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.browser]).arg(program);
        command
    }
}

/// Deletes the namespaces of earlier test processes that were killed before they could.
fn remove_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name
            .strip_prefix("rm-webrtc-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        for space in [&self.name, &self.browser] {
            let _ = Command::new("ip").args(["netns", "del", space]).status();
        }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn playwright() -> PathBuf {
    std::env::var_os("REMOTEMEDIA_PLAYWRIGHT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").expect("HOME"))
                .join(".cache/remotemedia/browser/node_modules/playwright-core")
        })
}

/// `remotemedia serve` in the namespace; its WebRTC address from its announcement.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start(ns: &Namespace, pipelines: &[&str], extra: &[&str]) -> Server {
        let mut command = ns.command(Path::new(env!("CARGO_BIN_EXE_remotemedia")));
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(["--webrtc", &format!("{}:0", ns.server_ip)])
            .args(extra)
            .current_dir(repo())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for p in pipelines {
            command.args(["--pipeline", p]);
        }
        let mut child = command.spawn().expect("remotemedia serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                if let Some(rest) = line.split("WebRTC on ").nth(1) {
                    let url = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(url);
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(120))
            .expect("the server announces its WebRTC address");
        Server { child, url }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM, as an operator stops it; the server ends its peers and exits.
        unsafe_sigterm(self.child.id());
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_sigterm(pid: u32) {
    // `ip netns exec` execs the program, so the child's pid is the server's.
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

/// Runs the page driver in the namespace; the JSON it printed.
fn drive(ns: &Namespace, url: &str, wav: &Path, until: &str) -> serde_json::Value {
    drive_with(ns, url, wav, until, &[])
}

/// [`drive`] with more driver arguments (`--send MESSAGE`).
fn drive_with(
    ns: &Namespace,
    url: &str,
    wav: &Path,
    until: &str,
    extra: &[&str],
) -> serde_json::Value {
    let script = repo().join("transports/webrtc/tests/browser/run-demo.cjs");
    let output = ns
        .browser_command(Path::new("node"))
        .arg(script)
        .arg(url)
        .arg(wav)
        .args(["--until", until, "--timeout-ms", "150000"])
        .args(extra)
        .env("REMOTEMEDIA_PLAYWRIGHT", playwright())
        .stderr(Stdio::inherit())
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|_| panic!("the driver printed {stdout:?}"))
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Word-level edit distance of `said` from `reference`, over the reference's length.
fn wer(said: &str, reference: &str) -> f64 {
    let (h, r) = (words(said), words(reference));
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let cost = usize::from(rw != hw);
            let next = (prev + cost).min(row[j] + 1).min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[h.len()] as f64 / r.len().max(1) as f64
}

#[test]
fn word_error_rates() {
    assert_eq!(wer("the quick brown fox", "the quick brown fox"), 0.0);
    assert_eq!(
        wer(
            "The quick brown fox jump sober the lazy dog.",
            "the quick brown fox jumps over the lazy dog"
        ),
        2.0 / 9.0
    );
    assert_eq!(
        wer("hello world", "remote media runs pipelines in real time"),
        1.0
    );
}

#[test]
#[ignore = "needs root, Chromium and playwright-core: cargo xtask ci runs it"]
fn a_browser_hears_its_transcript_spoken_back() {
    let _turn = one_at_a_time();
    let ns = Namespace::create(0);
    let server = Server::start(
        &ns,
        &["voice=examples/pipelines/webrtc-voice.yaml"],
        &["--auth-token", "browser-token"],
    );
    let wav = repo().join("examples/media/speech.wav");
    let seen = drive(
        &ns,
        &format!("{}/#pipeline=voice&token=browser-token", server.url),
        &wav,
        "transcript",
    );
    eprintln!("browser saw: {seen}");
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    assert!(seen["speechStarts"].as_u64().unwrap() >= 1, "{seen}");
    assert!(seen["events"].as_u64().unwrap() > 20, "{seen}");
    // Levels of every 100 ms as the server heard them: the speech is well above silence.
    assert!(seen["levels"].as_u64().unwrap() > 20, "{seen}");
    assert!(seen["loudest"].as_f64().unwrap() > -35.0, "{seen}");
    // The fake microphone loops the clip from wherever capture started, so the first
    // utterance may be any piece of a sentence (Whisper may make anything of a fragment)
    // and is not judged. Every later one is a whole sentence of the clip within a word
    // error rate of 0.3 (the browser's audio processing and two Opus passes are in the
    // way).
    let sentences = [
        "the quick brown fox jumps over the lazy dog",
        "remote media runs pipelines in real time",
    ];
    let texts: Vec<String> = seen["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    assert!(texts.len() >= 2, "{texts:?}");
    for text in &texts[1..] {
        let best = sentences
            .iter()
            .map(|s| wer(text, s))
            .fold(f64::MAX, f64::min);
        assert!(
            best <= 0.3,
            "transcript {text:?}: word error rate {best:.2} ({texts:?})"
        );
    }
    // The spoken reply played in the page: audible level, Opus packets decoded (the
    // shortest reply, "Dog.", is about 0.4 s: 20 packets).
    assert!(seen["outPeak"].as_f64().unwrap() > 0.01, "{seen}");
    assert!(
        seen["inbound"]["packetsReceived"].as_u64().unwrap() >= 10,
        "{seen}"
    );
    assert!(
        seen["inbound"]["totalAudioEnergy"].as_f64().unwrap() > 0.0,
        "{seen}"
    );
    assert!(seen["rttMs"].as_f64().unwrap() < 1000.0, "{seen}");
}

#[test]
#[ignore = "needs root, Chromium and playwright-core: cargo xtask ci runs it"]
fn a_browser_with_the_wrong_token_is_refused_and_with_the_right_one_hears_its_echo() {
    let _turn = one_at_a_time();
    let ns = Namespace::create(1);
    let server = Server::start(
        &ns,
        &["echo=examples/pipelines/webrtc-echo.yaml"],
        &["--auth-token", "right"],
    );
    let wav = repo().join("examples/media/speech.wav");
    // Without the right token the page cannot even list the pipelines.
    let seen = drive(
        &ns,
        &format!("{}/#pipeline=echo&token=wrong", server.url),
        &wav,
        "audio",
    );
    assert_eq!(seen["errors"][0]["status"], 401, "{seen}");
    assert_eq!(seen["status"], "refused", "{seen}");
    let echo = drive(
        &ns,
        &format!("{}/#pipeline=echo&token=right", server.url),
        &wav,
        "audio",
    );
    eprintln!("echo: {echo}");
    assert_eq!(echo["ok"], true, "{echo}");
    assert!(echo["outPeak"].as_f64().unwrap() > 0.01, "{echo}");
}

#[test]
#[ignore = "needs root, Chromium and playwright-core: cargo xtask ci runs it"]
fn a_failing_node_reaches_the_browser_with_its_id_and_the_session_ends() {
    let _turn = one_at_a_time();
    let ns = Namespace::create(2);
    let dir = std::env::temp_dir().join(format!("rm-webrtc-calc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = dir.join("calc.yaml");
    std::fs::write(
        &manifest,
        "nodes: [{id: calc, node_type: CalculatorNode}]\n",
    )
    .unwrap();
    let server = Server::start(&ns, &[&format!("calc={}", manifest.display())], &[]);
    let seen = drive_with(
        &ns,
        &format!("{}/#pipeline=calc", server.url),
        &repo().join("examples/media/speech.wav"),
        "end",
        &[
            "--send",
            r#"{"type": "json", "data": {"operation": "divide", "operands": [1, 0]}}"#,
        ],
    );
    eprintln!("failing node: {seen}");
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["status"], "ended: node_failed", "{seen}");
    let error = &seen["errors"][0];
    assert_eq!(error["code"], "node_failed", "{seen}");
    assert_eq!(error["node_id"], "calc", "{seen}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
