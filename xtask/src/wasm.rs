//! `cargo xtask wasm`: builds `remotemedia-wasm` for `wasm32-unknown-unknown` and lays out
//! the JavaScript package (wasm-bindgen's `--target web` output plus `executors/wasm/js`)
//! in `<target>/wasm-pkg`; `cargo xtask ci` runs its Node.js tests against it and compares
//! every audio node's outputs in wasm with the native ones.

use crate::{absolute_target_dir, cargo_args, ensure_wasm_target, run};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasm-bindgen CLI must match the `wasm-bindgen` crate exactly.
const BINDGEN_VERSION: &str = "0.2.130";

/// wasm-bindgen's CLI, installed once under `$HOME/.cache/remotemedia/tools`.
fn bindgen() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let root = PathBuf::from(home)
        .join(".cache/remotemedia/tools")
        .join(format!("wasm-bindgen-{BINDGEN_VERSION}"));
    let bin = root.join("bin/wasm-bindgen");
    if !bin.exists() {
        println!(
            "installing wasm-bindgen-cli {BINDGEN_VERSION} (once, into {})",
            root.display()
        );
        let mut install = Command::new("cargo");
        install
            .args([
                "install",
                "wasm-bindgen-cli",
                "--version",
                BINDGEN_VERSION,
                "--root",
            ])
            .arg(&root);
        run(install)?;
    }
    Ok(bin)
}

/// Builds the package; returns its directory.
pub fn build(root: &Path) -> Result<PathBuf> {
    ensure_wasm_target()?;
    let bindgen = bindgen()?;
    run(cargo_args(&[
        "build",
        "--release",
        "-p",
        "remotemedia-wasm",
        "--target",
        "wasm32-unknown-unknown",
    ]))?;
    let target = absolute_target_dir();
    let wasm = target.join("wasm32-unknown-unknown/release/remotemedia_wasm.wasm");
    let pkg = target.join("wasm-pkg");
    let _ = std::fs::remove_dir_all(&pkg);
    std::fs::create_dir_all(&pkg)?;
    let mut generate = Command::new(bindgen);
    generate
        .args(["--target", "web", "--out-dir"])
        .arg(&pkg)
        .arg(&wasm);
    run(generate)?;
    for file in ["index.js", "package.json"] {
        std::fs::copy(root.join("executors/wasm/js").join(file), pkg.join(file))
            .with_context(|| format!("copying executors/wasm/js/{file}"))?;
    }
    Ok(pkg)
}

/// The package's tests under Node.js's test runner.
pub fn test(root: &Path) -> Result<()> {
    let pkg = build(root)?;
    let mut node = Command::new("node");
    node.args(["--test", "executors/wasm/tests/"])
        .current_dir(root)
        .env("REMOTEMEDIA_WASM_PKG", &pkg);
    run(node)?;
    // Every audio node in wasm against the same node natively.
    let mut same = cargo_args(&[
        "test",
        "-p",
        "remotemedia-wasm",
        "--test",
        "same_as_native",
        "--",
        "--ignored",
    ]);
    same.env("REMOTEMEDIA_WASM_PKG", &pkg);
    run(same)
}
