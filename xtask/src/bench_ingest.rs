//! `cargo xtask bench ingest`: decode a 10-minute file and run it through a 4-node
//! pipeline with the release `remotemedia` binary; report x realtime and peak memory.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// Builds the 10-minute inputs from the bundled speech with sox (installed if missing).
fn make_inputs(root: &Path, work: &Path) -> Result<Vec<(String, std::path::PathBuf)>> {
    if Command::new("sox").arg("--version").output().is_err() {
        println!("==> installing sox (apt-get)");
        crate::run({
            let mut c = Command::new("apt-get");
            c.args(["install", "-y", "-qq", "sox", "libsox-fmt-all"])
                .env("DEBIAN_FRONTEND", "noninteractive");
            c
        })?;
    }
    let speech = root.join("examples/media/speech.wav");
    let mut inputs = Vec::new();
    for (label, name, extra) in [
        ("WAV 44.1 kHz stereo s16", "ten-minutes.wav", vec![]),
        ("FLAC 44.1 kHz stereo", "ten-minutes.flac", vec![]),
        (
            "MP3 44.1 kHz stereo 128 kb/s",
            "ten-minutes.mp3",
            vec!["-C", "128"],
        ),
        (
            "OGG/Vorbis 44.1 kHz stereo q5",
            "ten-minutes.ogg",
            vec!["-C", "5"],
        ),
    ] {
        let path = work.join(name);
        if !path.exists() {
            // 8.54 s of speech x 71 = 10.1 minutes.
            let status = Command::new("sox")
                .arg(&speech)
                .args(["-r", "44100", "-c", "2"])
                .args(&extra)
                .arg(&path)
                .args(["repeat", "70"])
                .status()
                .context("cannot run sox")?;
            if !status.success() {
                bail!("sox could not write {}", path.display());
            }
        }
        inputs.push((label.to_owned(), path));
    }
    Ok(inputs)
}

pub fn run(root: &Path) -> Result<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let work = target.join("bench-ingest");
    std::fs::create_dir_all(&work)?;
    let inputs = make_inputs(root, &work)?;
    crate::run({
        let mut c = crate::cargo();
        c.args(["build", "--release", "-p", "remotemedia-cli"]);
        c
    })?;
    let binary = target.join("release/remotemedia");
    let manifest = root.join("xtask/bench/ingest-pipeline.yaml");

    println!("\n| input (10.1 min) | size | x realtime | peak memory | outputs |");
    println!("|---|---|---|---|---|");
    for (label, path) in inputs {
        let size_mb = std::fs::metadata(&path)?.len() as f64 / 1e6;
        let output = Command::new(&binary)
            .arg("run")
            .arg(&manifest)
            .arg("--input")
            .arg(&path)
            .args(["--channels", "1", "--stats", "--no-progress"])
            .output()
            .context("cannot run remotemedia")?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            bail!("remotemedia failed on {}: {stderr}", path.display());
        }
        let stats = stderr
            .lines()
            .find(|l| l.starts_with("stats:"))
            .context("no stats line")?;
        // stats: 606.4 s of media in 1.23 s (493x realtime), 140 outputs, peak memory 12.3 MiB
        let field = |after: &str, until: &str| -> String {
            stats
                .split_once(after)
                .and_then(|(_, rest)| rest.split_once(until))
                .map(|(v, _)| v.trim().to_owned())
                .unwrap_or_default()
        };
        println!(
            "| {label} | {size_mb:.1} MB | {}x | {} | {} |",
            field("(", "x realtime"),
            stats
                .split_once("peak memory ")
                .map_or("?", |(_, m)| m.trim()),
            field("realtime), ", " outputs"),
        );
        println!("<!-- {stats} -->");
    }
    Ok(())
}
