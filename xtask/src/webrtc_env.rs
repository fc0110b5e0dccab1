//! What the WebRTC transport builds against and is tested with: libopus (the Opus
//! binding links it), iproute2 (the browser tests' private network namespace), Debian's
//! Chromium, and playwright-core from npm (driving Chromium), kept under
//! `$HOME/.cache/remotemedia/browser`.

use crate::ffmpeg_env::ensure_debian_packages;
use anyhow::Result;
use std::path::PathBuf;

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
    crate::npm::ensure("browser", PLAYWRIGHT)
}
