//! `cargo xtask soak`: every test suite, many times in a row, to find tests that pass
//! only sometimes. Not part of CI (it takes a while); run it after changing tests or the
//! code they exercise.

use crate::{cargo_args, python_env, target_dir, venv};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Suites run with `--ignored` (they need the Docker engine).
const DOCKER_SUITES: &[&str] = &["docker docker", "cli docker_example"];

/// One suite: how to run it once.
struct Suite {
    name: String,
    command: Box<dyn Fn() -> Command>,
}

/// A test executable `cargo test --workspace` builds.
struct TestBinary {
    /// `<package> <target>`.
    name: String,
    executable: PathBuf,
    /// The package's directory: cargo runs tests from there.
    package_dir: PathBuf,
}

/// The test executables `cargo test --workspace` builds (unit and integration tests; doc
/// tests excluded).
fn test_binaries() -> Result<Vec<TestBinary>> {
    let output = cargo_args(&["test", "--workspace", "--no-run", "--message-format=json"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot build the tests")?;
    if !output.status.success() {
        bail!("building the tests failed");
    }
    let mut binaries = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(executable), Some(name)) = (
            message["executable"].as_str(),
            message["target"]["name"].as_str(),
        ) else {
            continue;
        };
        let Some(manifest) = message["manifest_path"].as_str() else {
            continue;
        };
        if message["profile"]["test"] == true {
            let package_dir = Path::new(manifest)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            let package = package_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("?")
                .to_owned();
            binaries.push(TestBinary {
                name: format!("{package} {name}"),
                executable: PathBuf::from(executable),
                package_dir,
            });
        }
    }
    Ok(binaries)
}

pub(crate) fn run(root: &Path, runs: usize) -> Result<()> {
    let python = python_env::ensure(root, &crate::absolute_target_dir())?;
    crate::docker_engine::ensure()?;
    let mut suites: Vec<Suite> = Vec::new();
    for binary in test_binaries()? {
        let python = python.clone();
        // The suites that need the Docker engine are `#[ignore]`d by default; CI runs
        // them with --ignored, and so does the soak.
        let ignored = DOCKER_SUITES.contains(&binary.name.as_str());
        suites.push(Suite {
            name: binary.name,
            command: Box::new(move || {
                // As cargo runs tests: from the package's directory.
                let mut command = Command::new(&binary.executable);
                command
                    .current_dir(&binary.package_dir)
                    .env("CARGO_MANIFEST_DIR", &binary.package_dir)
                    .env("REMOTEMEDIA_PYTHON", &python);
                if ignored {
                    command.arg("--ignored");
                }
                command
            }),
        });
    }
    suites.push(pytest_suite(
        "python package (pytest)",
        &python,
        "transports/ffi/tests",
        &[("REMOTEMEDIA_PYTHON", python.clone())],
    ));
    let client = venv::ensure_venv(&target_dir().join("ci-venv"), crate::GRPC_CLIENT_PACKAGES)?;
    crate::run(cargo_args(&[
        "build",
        "-p",
        "remotemedia-grpc",
        "--bin",
        "remotemedia-grpc-server",
    ]))?;
    let server = std::fs::canonicalize(target_dir().join("debug/remotemedia-grpc-server"))?;
    suites.push(pytest_suite(
        "grpcio client (pytest)",
        &client,
        "transports/grpc/tests/python",
        &[
            ("REMOTEMEDIA_GRPC_SERVER", server),
            ("REMOTEMEDIA_PYTHON", python.clone()),
        ],
    ));

    let bar = ProgressBar::new((suites.len() * runs) as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut failures: BTreeMap<String, Vec<(usize, String)>> = BTreeMap::new();
    for run in 1..=runs {
        for suite in &suites {
            bar.set_message(format!("run {run}: {}", suite.name));
            let output = (suite.command)()
                .stdin(Stdio::null())
                .output()
                .with_context(|| format!("cannot run {}", suite.name))?;
            if !output.status.success() {
                let text = String::from_utf8_lossy(&output.stdout);
                let failed: Vec<&str> = text
                    .lines()
                    .filter(|l| l.contains("FAILED") || l.contains("failed"))
                    .take(10)
                    .collect();
                bar.suspend(|| {
                    eprintln!(
                        "run {run}: {} FAILED\n  {}",
                        suite.name,
                        failed.join("\n  ")
                    )
                });
                failures
                    .entry(suite.name.clone())
                    .or_default()
                    .push((run, failed.join("; ")));
            }
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    println!(
        "{} suites x {runs} runs in {:.0?}",
        suites.len(),
        started.elapsed()
    );
    if failures.is_empty() {
        println!("every run of every suite passed");
        return Ok(());
    }
    for (suite, runs_failed) in &failures {
        println!("{suite}: failed in {} of {runs} runs", runs_failed.len());
        for (run, what) in runs_failed {
            println!("  run {run}: {what}");
        }
    }
    bail!("{} suites failed at least once", failures.len())
}

/// A pytest suite run by `python` with `env`.
fn pytest_suite(name: &str, python: &Path, tests: &str, env: &[(&str, PathBuf)]) -> Suite {
    let python = python.to_path_buf();
    let tests = tests.to_owned();
    let env: Vec<(String, PathBuf)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    Suite {
        name: name.to_owned(),
        command: Box::new(move || {
            let mut command = Command::new(&python);
            command
                .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", &tests])
                .envs(env.iter().map(|(k, v)| (k, v)));
            command
        }),
    }
}
