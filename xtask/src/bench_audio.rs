//! `cargo xtask bench audio`: native audio nodes vs the Python way, in one run.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Python packages the comparison needs, installed into a venv by this command.
const PYTHON_PACKAGES: &[&str] = &["numpy", "scipy", "soxr", "webrtcvad-wheels"];

/// Native case → the Python case it is compared with.
const PAIRS: &[(&str, &str, &str)] = &[
    ("level", "level", "rms/peak dBFS per 20 ms chunk"),
    ("gain", "gain", "+6 dB with clipping"),
    ("chunk", "chunk", "1024-frame packets re-framed to 320"),
    ("clipping", "clipping", "saturated share per chunk"),
    ("silence", "silence", "10 ms window rms vs threshold"),
    ("downmix", "downmix", "stereo to mono"),
    ("vad", "vad", "voice activity, 16 kHz, 20 ms frames"),
];

pub fn run(root: &Path) -> Result<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let work = target.join("bench-audio");
    std::fs::create_dir_all(&work)?;
    let python = crate::venv::ensure_venv(&target.join("bench-venv"), PYTHON_PACKAGES)?;

    println!("==> native nodes (cargo bench --bench audio_nodes)");
    crate::run({
        let mut c = crate::cargo();
        c.args([
            "bench",
            "-p",
            "remotemedia-runtime-core",
            "--bench",
            "audio_nodes",
            "--",
        ])
        .arg(&work);
        c
    })?;
    println!("==> the Python way (numpy, scipy, soxr, webrtcvad)");
    crate::run({
        let mut c = Command::new(&python);
        c.arg(root.join("xtask/bench/audio_python.py")).arg(&work);
        c
    })?;

    let rust = read_results(&work.join("rust.json"))?;
    let python = read_json(&work.join("python.json"))?;
    let py_results = python["results"].as_array().cloned().unwrap_or_default();
    let find = |set: &[Value], case: &str| -> Option<Value> {
        set.iter().find(|r| r["case"] == case).cloned()
    };

    println!("\nNative nodes vs Python, 60 s of audio streamed in 20 ms chunks, best of 5 runs");
    println!("versions: {}", python["versions"]);
    println!(
        "\n| work | native (x realtime) | Python (x realtime) | Python impl | native / Python |"
    );
    println!("|---|---|---|---|---|");
    for (native, py, what) in PAIRS {
        let (Some(n), Some(p)) = (find(&rust, native), find(&py_results, py)) else {
            bail!("missing result for {native}");
        };
        let (nx, px) = (x(&n), x(&p));
        println!(
            "| {native}: {what} | {nx:.0} | {px:.0} | {} | {:.1}x |",
            p["impl"].as_str().unwrap_or("?"),
            nx / px
        );
    }

    println!("\nResampling 44.1 kHz -> 16 kHz, 1 kHz sine, streamed in 20 ms chunks");
    println!("\n| resampler | x realtime | THD+N (dB) | output frames |");
    println!("|---|---|---|---|");
    let mut rows: Vec<(String, f64, f64, u64)> = Vec::new();
    for r in rust.iter().filter(|r| {
        r["case"]
            .as_str()
            .is_some_and(|c| c.starts_with("resample_"))
    }) {
        rows.push((
            format!(
                "FastResampleNode {}",
                &r["case"].as_str().unwrap_or("?")[9..]
            ),
            x(r),
            r["thd_n_db"].as_f64().unwrap_or(0.0),
            r["output_frames"].as_u64().unwrap_or(0),
        ));
    }
    for r in py_results.iter().filter(|r| r.get("thd_n_db").is_some()) {
        rows.push((
            r["impl"].as_str().unwrap_or("?").to_owned(),
            x(r),
            r["thd_n_db"].as_f64().unwrap_or(0.0),
            r["output_frames"].as_u64().unwrap_or(0),
        ));
    }
    for (name, speed, thd, frames) in &rows {
        println!("| {name} | {speed:.0} | {thd:.1} | {frames} |");
    }
    // Equal-quality comparison: each filtered native quality against the fastest soxr
    // setting that is at least as clean.
    println!();
    for (name, speed, thd, _) in rows
        .iter()
        .filter(|r| r.0.ends_with("medium") || r.0.ends_with("high"))
    {
        let rival = rows
            .iter()
            .filter(|r| r.0.starts_with("soxr") && r.2 <= *thd + 3.0)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        match rival {
            Some((rname, rspeed, rthd, _)) => println!(
                "{name} ({thd:.1} dB) vs {rname} ({rthd:.1} dB): {:.2}x the speed",
                speed / rspeed
            ),
            None => println!(
                "{name} ({thd:.1} dB): cleaner than every soxr setting; vs soxr VHQ: {:.2}x the speed",
                speed / rows.iter().find(|r| r.0.ends_with("VHQ")).map_or(1.0, |r| r.1)
            ),
        }
    }
    Ok(())
}

fn x(result: &Value) -> f64 {
    result["x_realtime"].as_f64().unwrap_or(0.0)
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

fn read_results(path: &Path) -> Result<Vec<Value>> {
    Ok(read_json(path)?["results"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}
