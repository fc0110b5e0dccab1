//! What the WebRTC transport builds against and is tested with: libopus (the Opus
//! binding links it), iproute2 (the browser tests' private network namespace), Debian's
//! Chromium, and playwright-core from npm (driving Chromium), kept under
//! `$HOME/.cache/remotemedia/browser`.

use crate::ffmpeg_env::ensure_debian_packages;
use crate::run;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// Debian packages of the build.
pub const BUILD_PACKAGES: &[&str] = &["libopus-dev", "pkg-config"];
/// Debian packages of the browser tests.
pub const TEST_PACKAGES: &[&str] = &["iproute2", "chromium"];

/// Installs what the transport builds against.
pub fn ensure_build() -> Result<()> {
    ensure_debian_packages(BUILD_PACKAGES)
}

/// The exact playwright-core the browser tests drive Chromium with.
pub const PLAYWRIGHT: &str = "playwright-core@1.65.1";

/// Installs the packages and playwright-core; returns playwright-core's directory (what
/// the tests take as `REMOTEMEDIA_PLAYWRIGHT`).
pub fn ensure() -> Result<PathBuf> {
    ensure_build()?;
    ensure_debian_packages(TEST_PACKAGES)?;
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let dir = PathBuf::from(home).join(".cache/remotemedia/browser");
    let module = dir.join("node_modules/playwright-core");
    let version = PLAYWRIGHT.rsplit('@').next().unwrap_or_default();
    let installed = std::fs::read_to_string(module.join("package.json"))
        .is_ok_and(|p| p.contains(&format!("\"version\": \"{version}\"")));
    if !installed {
        std::fs::create_dir_all(&dir)?;
        let mut npm = Command::new("npm");
        npm.args([
            "install",
            "--no-audit",
            "--no-fund",
            "--no-save",
            PLAYWRIGHT,
        ])
        .current_dir(&dir);
        run(npm).context("npm install playwright-core")?;
    }
    Ok(module)
}
