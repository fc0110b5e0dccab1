//! What the ingest-rtmp adapter builds against and is tested with: Debian's FFmpeg
//! development packages (and clang for ffmpeg-sys-next's bindings), the ffmpeg CLI that
//! publishes test streams, nginx with the RTMP module, and gst-rtsp-server with its
//! Python bindings.

use crate::run;
use anyhow::{bail, Result};
use std::process::{Command, Stdio};

/// Debian packages of the adapter's build and tests.
pub const PACKAGES: &[&str] = &[
    "ffmpeg",
    "libavcodec-dev",
    "libavformat-dev",
    "libavutil-dev",
    "libswscale-dev",
    "libswresample-dev",
    "libavfilter-dev",
    "libavdevice-dev",
    "pkg-config",
    "clang",
    "libclang-dev",
    "nginx",
    "libnginx-mod-rtmp",
    "gir1.2-gst-rtsp-server-1.0",
    "gstreamer1.0-plugins-base",
    "gstreamer1.0-plugins-good",
    "gstreamer1.0-plugins-ugly",
    "python3-gi",
];

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Installs whichever of `packages` is missing, in one apt-get run.
pub fn ensure_debian_packages(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("installing {} (Debian)", missing.join(" "));
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    if install().is_ok_and(|s| s.success()) {
        return Ok(());
    }
    let mut update = Command::new("apt-get");
    update.args(["update", "-q"]);
    run(update)?;
    match install() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => bail!("apt-get install {} failed with {status}", missing.join(" ")),
        Err(e) => bail!("cannot run apt-get: {e}"),
    }
}

/// The adapter's build and test dependencies.
pub fn ensure() -> Result<()> {
    ensure_debian_packages(PACKAGES)
}
