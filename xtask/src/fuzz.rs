//! `cargo xtask fuzz TARGET --seconds N`: run one cargo-fuzz target (libFuzzer) for a
//! while, from a corpus seeded with the project's own manifests, frames and media; print
//! what it did (executions, coverage, crashes). Not part of CI.
//!
//! libFuzzer needs compiler flags of the nightly toolchain; the stable toolchain accepts
//! them with `RUSTC_BOOTSTRAP=1`, which this sets for the fuzz build only (in its own
//! target directory, so the main build cache is untouched).

use crate::{run, target_dir};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// The targets in `fuzz/fuzz_targets`.
pub(crate) const TARGETS: &[&str] = &["manifest", "frame_codec", "grpc_data", "file_ingest"];

fn ensure_cargo_fuzz() -> Result<()> {
    let installed = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if installed {
        return Ok(());
    }
    println!("installing cargo-fuzz (crates.io)");
    let mut install = Command::new("cargo");
    install.args(["install", "cargo-fuzz", "--locked"]);
    run(install)
}

/// Copies the seed inputs of `target` into its working corpus.
fn seed(root: &Path, target: &str, corpus: &Path) -> Result<()> {
    std::fs::create_dir_all(corpus)?;
    let copy = |from: &Path| -> Result<()> {
        if let Some(name) = from.file_name() {
            std::fs::copy(from, corpus.join(name))
                .with_context(|| format!("cannot seed from {}", from.display()))?;
        }
        Ok(())
    };
    let dir = |d: &str| {
        std::fs::read_dir(root.join(d))
            .into_iter()
            .flatten()
            .flatten()
    };
    match target {
        "manifest" => {
            for entry in dir("examples/pipelines") {
                copy(&entry.path())?;
            }
        }
        "file_ingest" => {
            for entry in dir("runtime-core/tests/fixtures") {
                let path = entry.path();
                if path.extension().is_some_and(|e| e != "md") {
                    copy(&path)?;
                }
            }
        }
        // The codec and the protobuf conversion start from small inputs libFuzzer grows.
        _ => {}
    }
    Ok(())
}

pub(crate) fn run_target(root: &Path, target: &str, seconds: u64) -> Result<()> {
    if !TARGETS.contains(&target) {
        bail!(
            "unknown fuzz target '{target}' (targets: {})",
            TARGETS.join(", ")
        );
    }
    ensure_cargo_fuzz()?;
    let work = target_dir().join("fuzz-work");
    let corpus = work.join("corpus").join(target);
    let artifacts = work.join("artifacts").join(target);
    std::fs::create_dir_all(&artifacts)?;
    seed(root, target, &corpus)?;
    let mut fuzz = Command::new("cargo");
    fuzz.current_dir(root.join("fuzz"))
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir().join("fuzz"))
        .args(["fuzz", "run", "--release", "--sanitizer", "none", target])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-rss_limit_mb=2048")
        .arg("-timeout=10")
        .arg("-print_final_stats=1");
    let started = std::time::SystemTime::now();
    let status = fuzz.status().context("cannot run cargo fuzz")?;
    // Artifacts of earlier runs (already turned into tests) are not this run's findings.
    let crashes: Vec<String> = std::fs::read_dir(&artifacts)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|modified| modified >= started)
        })
        .map(|e| e.path().display().to_string())
        .collect();
    println!(
        "fuzz {target}: {seconds} s, corpus {} inputs, {} new crash artifacts{}",
        std::fs::read_dir(&corpus).map_or(0, |d| d.count()),
        crashes.len(),
        if crashes.is_empty() {
            String::new()
        } else {
            format!(": {}", crashes.join(", "))
        }
    );
    if !status.success() || !crashes.is_empty() {
        bail!("fuzz target {target} found a failure");
    }
    Ok(())
}
