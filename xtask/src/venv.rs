//! Python virtual environments for benchmarks and the Python client tests.

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Creates (once) a venv with `packages` and returns its python.
pub fn ensure_venv(venv: &Path, packages: &[&str]) -> Result<PathBuf> {
    let python = venv.join("bin/python");
    let marker = venv.join(format!(".installed-{}", packages.join("+")));
    if marker.exists() {
        return Ok(python);
    }
    let bar = ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(200));
    bar.set_message(format!("creating {}", venv.display()));
    if !python.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(venv)
            .status()
            .context("python3 is needed for the Python side of the benchmark")?;
        if !status.success() {
            bail!("python3 -m venv {} failed", venv.display());
        }
    }
    bar.set_message(format!("pip install {}", packages.join(" ")));
    let output = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages)
        .output()
        .context("cannot run pip")?;
    bar.finish_and_clear();
    if !output.status.success() {
        bail!(
            "pip install {} failed:\n{}",
            packages.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::write(&marker, "")?;
    Ok(python)
}
