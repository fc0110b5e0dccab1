//! The Docker engine the Docker executor's tests run against: Debian's `docker.io`,
//! installed when missing and started by hand (these machines have no systemd).

use crate::python_env::ensure_debian_package;
use anyhow::{bail, Context, Result};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn engine_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure `docker info` answers: installs `docker.io`, starts `dockerd` (without
/// iptables or a bridge: containers get no network anyway) and waits for it.
pub fn ensure() -> Result<()> {
    ensure_debian_package("dockerd", "docker.io")?;
    if engine_answers() {
        return Ok(());
    }
    println!("starting dockerd (log: /tmp/remotemedia-dockerd.log)");
    let log = std::fs::File::create("/tmp/remotemedia-dockerd.log")
        .context("cannot create the dockerd log")?;
    let mut command = Command::new("setsid");
    command
        .args([
            "dockerd",
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Detached on purpose: the engine outlives this command, like a system service.
    let _daemon = command.spawn().context("cannot start dockerd")?;
    let started = Instant::now();
    while !engine_answers() {
        if started.elapsed() > Duration::from_secs(60) {
            bail!("dockerd did not answer within 60 s; see /tmp/remotemedia-dockerd.log");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    println!("dockerd ready in {:.1?}", started.elapsed());
    Ok(())
}
