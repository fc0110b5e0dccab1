//! npm packages the project's tests and packages use (playwright-core, pyodide), each
//! installed once at an exact version under `$HOME/.cache/remotemedia/<dir>`.

use crate::run;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::process::Command;

/// Installs `spec` (`name@version`) under `$HOME/.cache/remotemedia/<dir>` unless that
/// version is there; returns the package's directory (`.../node_modules/<name>`).
pub fn ensure(dir: &str, spec: &str) -> Result<PathBuf> {
    let (name, version) = spec
        .rsplit_once('@')
        .with_context(|| format!("npm package {spec} has no version"))?;
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let dir = PathBuf::from(home).join(".cache/remotemedia").join(dir);
    let module = dir.join("node_modules").join(name);
    let installed = std::fs::read_to_string(module.join("package.json"))
        .is_ok_and(|p| p.contains(&format!("\"version\": \"{version}\"")));
    if !installed {
        std::fs::create_dir_all(&dir)?;
        let mut npm = Command::new("npm");
        npm.args(["install", "--no-audit", "--no-fund", "--no-save", spec])
            .current_dir(&dir);
        run(npm).with_context(|| format!("npm install {spec}"))?;
    }
    Ok(module)
}
