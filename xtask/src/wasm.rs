//! `cargo xtask wasm`: builds `remotemedia-wasm` for `wasm32-unknown-unknown` and lays out
//! the JavaScript package in `<target>/wasm-pkg`: wasm-bindgen's `--target web` output,
//! `executors/wasm/js` (the API and the Python host), the SDK's pure-Python files
//! (`python/remotemedia/`) and Pyodide (`pyodide/`, from npm), so the package loads
//! everything from its own origin. `cargo xtask wasm serve` adds the demo page and serves
//! it; `cargo xtask ci` runs the Node.js tests, compares every audio node in wasm with the
//! native one, and runs the demo page's hybrid pipeline in headless Chromium against
//! `remotemedia run`.

use crate::{absolute_target_dir, cargo_args, ensure_wasm_target, run};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasm-bindgen CLI must match the `wasm-bindgen` crate exactly.
const BINDGEN_VERSION: &str = "0.2.130";

/// The Pyodide the package ships (Python 3.14, standard library only offline).
pub const PYODIDE: &str = "pyodide@314.0.7";

/// Pyodide's files the package needs (the runtime, the standard library, the lock file
/// `loadPyodide` reads).
const PYODIDE_FILES: &[&str] = &[
    "pyodide.mjs",
    "pyodide.asm.mjs",
    "pyodide.asm.wasm",
    "python_stdlib.zip",
    "pyodide-lock.json",
];

/// The SDK files that run in Pyodide (pure Python).
const SDK_FILES: &[&str] = &["__init__.py", "sdk.py", "_hosting.py", "_browser.py"];

/// The package's JavaScript files.
const JS_FILES: &[&str] = &["index.js", "python.js", "package.json"];

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
    let pyodide = crate::npm::ensure("pyodide", PYODIDE)?;
    // The `wasm-release` profile (Cargo.toml): release with fat LTO in one unit.
    run(cargo_args(&[
        "build",
        "--profile",
        "wasm-release",
        "-p",
        "remotemedia-wasm",
        "--target",
        "wasm32-unknown-unknown",
    ]))?;
    let target = absolute_target_dir();
    let wasm = target.join("wasm32-unknown-unknown/wasm-release/remotemedia_wasm.wasm");
    let pkg = target.join("wasm-pkg");
    let _ = std::fs::remove_dir_all(&pkg);
    std::fs::create_dir_all(&pkg)?;
    let mut generate = Command::new(bindgen);
    generate
        .args(["--target", "web", "--out-dir"])
        .arg(&pkg)
        .arg(&wasm);
    run(generate)?;
    copy_files(&root.join("executors/wasm/js"), &pkg, JS_FILES)?;
    copy_files(
        &root.join("transports/ffi/python/remotemedia"),
        &pkg.join("python/remotemedia"),
        SDK_FILES,
    )?;
    copy_files(&pyodide, &pkg.join("pyodide"), PYODIDE_FILES)?;
    Ok(pkg)
}

fn copy_files(from: &Path, to: &Path, files: &[&str]) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for file in files {
        std::fs::copy(from.join(file), to.join(file)).with_context(|| {
            format!("copying {} to {}", from.join(file).display(), to.display())
        })?;
    }
    Ok(())
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if entry.file_name() != "__pycache__" {
                copy_tree(&path, &to.join(entry.file_name()))?;
            }
        } else {
            std::fs::copy(&path, to.join(entry.file_name()))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    Ok(())
}

/// The demo site in `<target>/wasm-site`: the page (`executors/wasm/demo`), the package
/// (`pkg/`), the bundled media (`media/`) and the example manifests with their Python
/// modules (`pipelines/`), so the manifests' relative `python_path` works as on disk.
pub fn site(root: &Path) -> Result<PathBuf> {
    let pkg = build(root)?;
    let site = absolute_target_dir().join("wasm-site");
    let _ = std::fs::remove_dir_all(&site);
    copy_tree(&root.join("executors/wasm/demo"), &site)?;
    std::fs::remove_file(site.join("serve.py"))?;
    copy_tree(&pkg, &site.join("pkg"))?;
    copy_files(
        &root.join("examples/media"),
        &site.join("media"),
        &["speech.wav", "dictation.wav"],
    )?;
    copy_tree(&root.join("examples/pipelines"), &site.join("pipelines"))?;
    Ok(site)
}

/// `cargo xtask wasm serve`: builds the site and serves it on `address` until stopped.
pub fn serve(root: &Path, address: &str) -> Result<()> {
    let site = site(root)?;
    let Some((host, port)) = address.rsplit_once(':') else {
        bail!("--listen takes HOST:PORT, not {address}");
    };
    println!(
        "serving {} at http://{address}/ (Ctrl-C stops)",
        site.display()
    );
    let mut server = Command::new("python3");
    server
        .arg(root.join("executors/wasm/demo/serve.py"))
        .args(["--bind", host, "--port", port, "--directory"])
        .arg(&site);
    run(server)
}

/// The package's tests: Node.js's test runner on the API (Python nodes in Pyodide
/// included), every audio node against the native one, and the demo page in headless
/// Chromium against `remotemedia run` (`playwright`: playwright-core's directory; `python`:
/// the interpreter of the Python environment, for the native run).
pub fn test(root: &Path, playwright: &Path, python: &Path) -> Result<()> {
    let site = site(root)?;
    let pkg = site.join("pkg");
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
    run(same)?;
    // `--workspace` and the features of CI's test step, so nothing rebuilds.
    let mut browser = cargo_args(&[
        "test",
        "--workspace",
        crate::WITH_INGEST[0],
        crate::WITH_INGEST[1],
        "--test",
        "wasm_browser",
        "--",
        "--ignored",
    ]);
    browser
        .env("REMOTEMEDIA_WASM_SITE", &site)
        .env("REMOTEMEDIA_PLAYWRIGHT", playwright)
        .env("REMOTEMEDIA_PYTHON", python);
    run(browser)
}
