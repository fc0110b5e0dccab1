//! The WASM engine in a real browser: headless Chromium (Debian's, driven by
//! playwright-core) loads the demo page from a static file server and runs the hybrid
//! manifest — native resampling and framing in wasm, a Python noise gate in Pyodide, a
//! native level meter — on the bundled speech; its outputs must equal those of
//! `remotemedia run` on the same manifest and file (the Python node in a worker process).
//! Then the page's own controls run the live monitor on a fake microphone.
//!
//! Needs the demo site (`cargo xtask wasm serve` builds it; CI passes it as
//! `REMOTEMEDIA_WASM_SITE`), Chromium, playwright-core and a Python environment with the
//! wheel (`REMOTEMEDIA_PYTHON`): `cargo xtask ci` provides them and runs these tests with
//! `--ignored`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn env_path(name: &str) -> PathBuf {
    std::env::var_os(name)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("set {name} (cargo xtask ci does)"))
}

/// The demo site behind the static file server the demo uses, on a free port.
struct SiteServer {
    child: Child,
    url: String,
}

impl SiteServer {
    fn start() -> SiteServer {
        let mut child = Command::new("python3")
            .arg(repo().join("executors/wasm/demo/serve.py"))
            .args(["--bind", "127.0.0.1", "--port", "0", "--directory"])
            .arg(env_path("REMOTEMEDIA_WASM_SITE"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 serve.py");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints its URL");
        SiteServer { child, url }
    }
}

impl Drop for SiteServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the page driver; the JSON it printed.
fn drive(url: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::new("node")
        .arg(repo().join("executors/wasm/tests/browser/run-page.cjs"))
        .arg(url)
        .args(args)
        .env("REMOTEMEDIA_PLAYWRIGHT", env_path("REMOTEMEDIA_PLAYWRIGHT"))
        .stderr(Stdio::inherit())
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|_| panic!("the driver printed {stdout:?}"))
}

/// `(node id, data)` of every output of `remotemedia run MANIFEST --input WAV`.
fn native_outputs(manifest: &str, wav: &str) -> Vec<(String, serde_json::Value)> {
    let output = Command::new(env!("CARGO_BIN_EXE_remotemedia"))
        .args(["run", manifest, "--input", wav, "--format", "json"])
        .current_dir(repo())
        .output()
        .expect("remotemedia run");
    assert!(
        output.status.success(),
        "remotemedia run: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            (
                v["node_id"].as_str().expect("node_id").to_owned(),
                v["data"].clone(),
            )
        })
        .collect()
}

/// Equal JSON, numbers compared as numbers (JavaScript writes `0` where Rust writes `0.0`).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// One browser test at a time: each runs Chromium (and the hybrid one Python besides),
/// which fill the two cores.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
#[ignore = "needs the demo site, Chromium, playwright-core and the Python environment: cargo xtask ci runs it"]
fn the_page_runs_the_hybrid_manifest_with_the_outputs_of_the_native_runtime() {
    let _turn = one_at_a_time();
    let site = SiteServer::start();
    let seen = drive(
        &site.url,
        &["run", "pipelines/hybrid-gate.yaml", "media/speech.wav"],
    );
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    // Python was loaded for the gate, from the page's own origin, with progress reported.
    let progress = seen["progress"].as_str().unwrap_or_default();
    assert!(
        progress.contains("Pyodide 314.0.7 (Python 3."),
        "{progress}"
    );
    assert!(progress.contains("module noise_gate from"), "{progress}");
    let browser: Vec<(String, serde_json::Value)> = seen["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .map(|o| {
            (
                o["nodeId"].as_str().unwrap_or("").to_owned(),
                o["data"].clone(),
            )
        })
        .collect();
    let native = native_outputs(
        "examples/pipelines/hybrid-gate.yaml",
        "examples/media/speech.wav",
    );
    // 8.5 s of speech in 20 ms frames, one level per frame.
    assert_eq!(native.len(), 427, "native outputs");
    assert_eq!(browser.len(), native.len(), "the page's outputs");
    for (i, (page, here)) in browser.iter().zip(&native).enumerate() {
        assert!(
            page.0 == here.0 && same_json(&page.1, &here.1),
            "output {i}: the page's {page:?} vs remotemedia run's {here:?}"
        );
    }
    // The gate did something: muted frames between the sentences, loud ones in them.
    let levels: Vec<f64> = native
        .iter()
        .map(|(_, d)| d["rms_db"].as_f64().unwrap())
        .collect();
    assert!(levels.iter().any(|&l| l == -120.0), "{levels:?}");
    assert!(levels.iter().any(|&l| l > -30.0), "{levels:?}");
    eprintln!(
        "the page ran {} frames in {} ms; first levels {:?}",
        browser.len(),
        seen["ms"],
        &levels[..5]
    );
}

#[test]
#[ignore = "needs the demo site, Chromium and playwright-core: cargo xtask ci runs it"]
fn the_page_monitors_the_microphone_live() {
    let _turn = one_at_a_time();
    let site = SiteServer::start();
    let mic = repo().join("examples/media/speech.wav");
    let seen = drive(&site.url, &["mic", mic.to_str().expect("path")]);
    eprintln!("the page saw: {seen}");
    assert_eq!(seen["ok"], true, "{seen}");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    // Level, VAD and health shown live; speech found; the session ended cleanly on Stop.
    let level: f64 = seen["level"].as_str().unwrap().parse().expect("a level");
    assert!((-120.0..=0.0).contains(&level), "{seen}");
    assert!(
        seen["log"].as_str().unwrap().contains("speech starts"),
        "{seen}"
    );
    assert!(
        ["speech", "silence"].contains(&seen["vad"].as_str().unwrap()),
        "{seen}"
    );
    assert_eq!(seen["finalStatus"], "finished", "{seen}");
}
