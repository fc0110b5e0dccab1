//! Images, built locally: no registry is needed or used.
//!
//! - **Base image** per Python version, `remotemedia-python:<version>-<hash>`: the
//!   interpreter's Debian package and its dependency closure from the Debian release that
//!   has that version (fetched with `apt-get download` through a private apt
//!   configuration, unpacked with `dpkg-deb -x`), nothing else — no shell tools beyond
//!   `dash`, no package manager.
//! - **Node image** per recipe, `remotemedia-node:<hash>`: the base (or the block's
//!   `base_image`) plus the block's `system_packages` (unpacked the same way), numpy and
//!   the block's `python_packages` (resolved on the host by pip for the image's Python
//!   version, binary wheels only), and the host's installed `remotemedia` and
//!   `remotemedia-nodes` packages. The hash covers everything that goes in, so an image
//!   is reused while its inputs are unchanged and rebuilt when one changes.
//!
//! Both are built by the engine from a context this module writes (`docker build`
//! without network); downloads are cached under [`DockerConfig::cache_dir`].

use crate::config::{hex, DockerConfig, ImageRecipe, PythonBuild};
use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// Label every image and container of this backend carries.
pub const MANAGED_LABEL: &str = "io.remotemedia.managed";
/// Label of a node image: its recipe hash.
pub const RECIPE_LABEL: &str = "io.remotemedia.recipe";
/// Bumped when what goes into images changes in a way their inputs do not show.
const LAYOUT_VERSION: &str = "1";
/// Where the image's Python packages live.
pub const SITE_DIR: &str = "/opt/remotemedia/site";

/// Progress of a build, in words ("downloading Debian packages for Python 3.13").
pub type Progress = Arc<dyn Fn(&str) + Send + Sync>;

/// Builds and finds images; one build per recipe at a time.
pub struct ImageBuilder {
    docker: Docker,
    config: DockerConfig,
    building: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    host_packages: tokio::sync::OnceCell<Result<HostPackages, String>>,
}

impl std::fmt::Debug for ImageBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageBuilder").finish_non_exhaustive()
    }
}

/// The host's installed `remotemedia` and `remotemedia-nodes`: their files and a
/// fingerprint of their contents.
#[derive(Debug, Clone)]
struct HostPackages {
    /// (absolute source, path relative to site-packages)
    files: Vec<(PathBuf, PathBuf)>,
    fingerprint: String,
    version: String,
}

/// The distributions copied from the host into every image.
const HOST_DISTRIBUTIONS: &[&str] = &["remotemedia", "remotemedia-nodes"];

const LIST_SCRIPT: &str = r#"
import importlib.metadata as m, json, sys
out = {}
for name in sys.argv[1:]:
    try:
        d = m.distribution(name)
    except m.PackageNotFoundError:
        out[name] = None
        continue
    root = str(d.locate_file(""))
    out[name] = {"version": d.version, "root": root, "files": [str(f) for f in (d.files or [])]}
print(json.dumps(out))
"#;

fn run(command: &mut Command, what: &str) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {what} ({:?}): {e}", command.get_program()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let mut lines: Vec<&str> = stderr.lines().chain(stdout.lines()).collect();
        // pip and apt put the reason in their ERROR/E: lines; keep those, or the tail.
        let errors: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|l| l.starts_with("ERROR") || l.starts_with("E:"))
            .collect();
        if !errors.is_empty() {
            lines = errors;
        }
        let keep = lines.len().saturating_sub(12);
        return Err(format!(
            "{what} failed ({}):\n{}",
            output.status,
            lines[keep..].join("\n")
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn sha256_file(path: &Path, hasher: &mut Sha256) -> std::io::Result<()> {
    let mut file = std::fs::File::open(path)?;
    std::io::copy(&mut file, hasher)?;
    Ok(())
}

fn host_packages(python: &Path) -> Result<HostPackages, String> {
    let mut command = Command::new(python);
    command.arg("-c").arg(LIST_SCRIPT).args(HOST_DISTRIBUTIONS);
    let text = run(
        &mut command,
        &format!("the host interpreter {}", python.display()),
    )?;
    let listing: serde_json::Value = serde_json::from_str(text.trim())
        .map_err(|e| format!("unexpected answer from {}: {e}", python.display()))?;
    let mut files = Vec::new();
    let mut hasher = Sha256::new();
    let mut version = String::new();
    for name in HOST_DISTRIBUTIONS {
        let Some(dist) = listing.get(*name).filter(|d| !d.is_null()) else {
            return Err(format!(
                "the host interpreter {} has no '{name}' package installed: images get the runtime's Python packages from it (install the remotemedia wheel and remotemedia-nodes there, or set REMOTEMEDIA_PYTHON to one that has them)",
                python.display()
            ));
        };
        let root = PathBuf::from(dist["root"].as_str().unwrap_or_default());
        if *name == "remotemedia" {
            version = dist["version"].as_str().unwrap_or_default().to_owned();
        }
        let mut listed: Vec<&str> = dist["files"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f.as_str()).collect())
            .unwrap_or_default();
        listed.sort_unstable();
        for relative in listed {
            let rel = PathBuf::from(relative);
            if rel.is_absolute()
                || rel.components().any(|c| {
                    matches!(c, std::path::Component::ParentDir) || c.as_os_str() == "__pycache__"
                })
            {
                continue; // scripts outside site-packages, bytecode caches
            }
            let source = root.join(&rel);
            if !source.is_file() {
                continue;
            }
            hasher.update(relative.as_bytes());
            sha256_file(&source, &mut hasher)
                .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
            files.push((source, rel));
        }
    }
    Ok(HostPackages {
        files,
        fingerprint: hex(&hasher.finalize()[..16]),
        version,
    })
}

/// An exclusive lock on `<cache>/locks/<name>.lock`, shared with every process using the
/// same cache (two runtimes, or a runtime and `remotemedia docker build`, building at
/// once); held until the file is dropped. Blocking.
fn cache_lock(cache: &Path, name: &str) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let dir = cache.join("locks");
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("{name}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    loop {
        // SAFETY: plain syscall on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(file);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
    }
}

/// The Debian archive the host's apt uses (its first non-security `URIs:`/`deb` entry).
fn debian_mirror() -> String {
    let mut texts = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        paths.sort();
        texts.extend(paths.iter().filter_map(|p| std::fs::read_to_string(p).ok()));
    }
    texts.extend(std::fs::read_to_string("/etc/apt/sources.list").ok());
    for text in &texts {
        for line in text.lines().map(str::trim) {
            let uri = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| w.contains("://"))
            } else {
                None
            };
            if let Some(uri) = uri.filter(|u| !u.contains("security")) {
                return uri.trim_end_matches('/').to_owned();
            }
        }
    }
    "http://deb.debian.org/debian".to_owned()
}

fn debian_arch() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "arm64",
        "x86" => "i386",
        "arm" => "armhf",
        _ => "amd64",
    }
}

/// apt, pointed at one Debian suite through a private configuration under the cache: the
/// host's own package state is neither read nor changed.
struct Apt {
    dir: PathBuf,
    suite: &'static str,
    /// The suite's lock: one apt run per suite at a time, across processes.
    _lock: std::fs::File,
}

impl Apt {
    fn new(cache: &Path, suite: &'static str) -> Result<Self, String> {
        let lock = cache_lock(cache, &format!("apt-{suite}"))?;
        let dir = cache.join("apt").join(suite);
        for sub in ["lists/partial", "cache/archives/partial", "debs"] {
            std::fs::create_dir_all(dir.join(sub))
                .map_err(|e| format!("cannot create {}: {e}", dir.join(sub).display()))?;
        }
        let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
        let signed = if Path::new(keyring).exists() {
            format!("[signed-by={keyring}] ")
        } else {
            String::new()
        };
        std::fs::write(
            dir.join("sources.list"),
            format!("deb {signed}{} {suite} main\n", debian_mirror()),
        )
        .and_then(|_| std::fs::write(dir.join("status"), ""))
        .map_err(|e| {
            format!(
                "cannot write the apt configuration in {}: {e}",
                dir.display()
            )
        })?;
        Ok(Self {
            dir,
            suite,
            _lock: lock,
        })
    }

    fn options(&self) -> Vec<String> {
        let d = self.dir.display();
        let arch = debian_arch();
        vec![
            format!("-oDir::Etc::SourceList={d}/sources.list"),
            "-oDir::Etc::SourceParts=/nonexistent".to_owned(),
            format!("-oDir::State::Lists={d}/lists"),
            format!("-oDir::Cache={d}/cache"),
            format!("-oDir::State::status={d}/status"),
            format!("-oAPT::Architecture={arch}"),
            format!("-oAPT::Architectures={arch}"),
            "-oDebug::NoLocking=1".to_owned(),
            "-oAPT::Sandbox::User=root".to_owned(),
            "-q".to_owned(),
        ]
    }

    /// When the package lists were last fetched, if that was less than a day ago (apt
    /// dates the lists by the archive's clock, so a stamp of our own records the fetch).
    fn lists_fetched(dir: &Path) -> Option<std::time::SystemTime> {
        std::fs::metadata(dir.join("lists.fetched"))
            .and_then(|m| m.modified())
            .ok()
            .filter(|t| t.elapsed().is_ok_and(|age| age.as_secs() < 24 * 3600))
    }

    /// Refreshes the package lists when they are missing or older than a day.
    fn update(&self) -> Result<(), String> {
        if Self::lists_fetched(&self.dir).is_some() {
            return Ok(());
        }
        run(
            Command::new("apt-get").args(self.options()).arg("update"),
            &format!("apt-get update for Debian {}", self.suite),
        )?;
        std::fs::write(self.dir.join("lists.fetched"), "")
            .map_err(|e| format!("cannot write in {}: {e}", self.dir.display()))
    }

    /// `packages` and everything they depend on (not recommends).
    fn closure(&self, packages: &[String]) -> Result<BTreeSet<String>, String> {
        for package in packages {
            let known = Command::new("apt-cache")
                .args(self.options())
                .args(["show", "--no-all-versions", package])
                .output()
                .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
            if !known {
                return Err(format!("Debian {} has no package '{package}'", self.suite));
            }
        }
        let out = run(
            Command::new("apt-cache")
                .args(self.options())
                .args([
                    "depends",
                    "--recurse",
                    "--no-recommends",
                    "--no-suggests",
                    "--no-conflicts",
                    "--no-breaks",
                    "--no-replaces",
                    "--no-enhances",
                ])
                .args(packages),
            &format!(
                "resolving the Debian {} packages {}",
                self.suite,
                packages.join(", ")
            ),
        )?;
        let found: BTreeSet<String> = out
            .lines()
            .filter(|l| !l.starts_with(' ') && !l.starts_with('<') && !l.is_empty())
            .map(str::to_owned)
            .collect();
        if let Some(missing) = packages.iter().find(|p| !found.contains(*p)) {
            return Err(format!("Debian {} has no package '{missing}'", self.suite));
        }
        Ok(found)
    }

    /// Downloads `packages` (those not already cached) and returns their files.
    fn download(&self, packages: &BTreeSet<String>) -> Result<Vec<PathBuf>, String> {
        let debs = self.dir.join("debs");
        let cached = |name: &str| -> Option<PathBuf> {
            std::fs::read_dir(&debs)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&format!("{name}_")) && n.ends_with(".deb"))
                })
        };
        let missing: Vec<&String> = packages.iter().filter(|p| cached(p).is_none()).collect();
        if !missing.is_empty() {
            run(
                Command::new("apt-get")
                    .current_dir(&debs)
                    .args(self.options())
                    .arg("download")
                    .args(&missing),
                &format!("downloading Debian {} packages", self.suite),
            )?;
        }
        packages
            .iter()
            .map(|p| cached(p).ok_or_else(|| format!("apt-get did not download '{p}'")))
            .collect()
    }
}

/// Unpacks `debs` into `root`.
fn unpack(debs: &[PathBuf], root: &Path) -> Result<(), String> {
    for deb in debs {
        run(
            Command::new("dpkg-deb").arg("-x").arg(deb).arg(root),
            &format!("unpacking {}", deb.display()),
        )?;
    }
    Ok(())
}

/// Makes an unpacked tree a root filesystem: merged-/usr links where the packages expect
/// them, `/bin/sh`, users, `/tmp`.
fn finish_rootfs(root: &Path) -> Result<(), String> {
    let io =
        |e: std::io::Error| format!("cannot prepare the root filesystem {}: {e}", root.display());
    for dir in ["bin", "sbin", "lib", "lib64"] {
        let top = root.join(dir);
        if std::fs::symlink_metadata(&top).is_err() && root.join("usr").join(dir).is_dir() {
            std::os::unix::fs::symlink(format!("usr/{dir}"), &top).map_err(io)?;
        }
    }
    let sh = root.join("usr/bin/sh");
    if std::fs::symlink_metadata(root.join("bin/sh")).is_err()
        && std::fs::symlink_metadata(&sh).is_err()
    {
        std::os::unix::fs::symlink("dash", &sh).map_err(io)?;
    }
    std::fs::create_dir_all(root.join("etc")).map_err(io)?;
    let (uid, gid) = crate::config::UNPRIVILEGED_USER;
    std::fs::write(
        root.join("etc/passwd"),
        format!("root:x:0:0:root:/root:/bin/sh\nremotemedia:x:{uid}:{gid}:remotemedia:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n"),
    )
    .map_err(io)?;
    std::fs::write(
        root.join("etc/group"),
        format!("root:x:0:\nremotemedia:x:{gid}:\nnogroup:x:65534:\n"),
    )
    .map_err(io)?;
    for dir in ["tmp", "domain", "opt/remotemedia/site"] {
        std::fs::create_dir_all(root.join(dir)).map_err(io)?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
        .map_err(io)?;
    Ok(())
}

/// Writes a build context (a tar of `dockerfile` and `dirs`) to `path`.
fn write_context(path: &Path, dockerfile: &str, dirs: &[(&str, &Path)]) -> Result<(), String> {
    let io = |e: std::io::Error| format!("cannot write the build context {}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(io)?;
    let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
    tar.follow_symlinks(false);
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .map_err(io)?;
    for (name, dir) in dirs {
        tar.append_dir_all(name, dir).map_err(io)?;
    }
    tar.into_inner()
        .map_err(io)?
        .into_inner()
        .map_err(|e| io(e.into_error()))?;
    Ok(())
}

/// A fresh directory under `parent` (removed first if a failed build left it).
fn fresh_dir(parent: &Path, name: &str) -> Result<PathBuf, String> {
    let dir = parent.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    Ok(dir)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("an image build step failed: {e}"))?
}

impl ImageBuilder {
    /// A builder talking to `docker`.
    pub fn new(docker: Docker, config: DockerConfig) -> Self {
        Self {
            docker,
            config,
            building: Mutex::new(HashMap::new()),
            host_packages: tokio::sync::OnceCell::new(),
        }
    }

    async fn host(&self) -> Result<HostPackages, String> {
        let python = self.config.host_python();
        self.host_packages
            .get_or_init(|| async move { blocking(move || host_packages(&python)).await })
            .await
            .clone()
    }

    async fn exists(&self, tag: &str) -> bool {
        self.docker.inspect_image(tag).await.is_ok()
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut building = self.building.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(building.entry(key.to_owned()).or_default())
    }

    /// The tag of the image for `recipe`, built first if it is not in the engine.
    pub async fn ensure(
        &self,
        recipe: &ImageRecipe,
        progress: &Progress,
    ) -> Result<String, String> {
        let host = self.host().await?;
        let python = recipe.python();
        let base = match &recipe.base_image {
            Some(name) => {
                let image = self.docker.inspect_image(name).await.map_err(|e| {
                    format!("the base image '{name}' is not in the local engine ({e}); no registry is reachable: build or load it first")
                })?;
                image.id.unwrap_or_else(|| name.clone())
            }
            None => self.ensure_base(python, progress).await?,
        };
        let recipe_json = serde_json::to_string(recipe).unwrap_or_default();
        let mut hasher = Sha256::new();
        for part in [LAYOUT_VERSION, &base, &recipe_json, &host.fingerprint] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
        let hash = hex(&hasher.finalize()[..8]);
        let tag = format!("remotemedia-node:{hash}");
        let lock = self.lock_for(&tag);
        let _building = lock.lock().await;
        // Another process (a second runtime, `remotemedia docker build`) may be building
        // the same image: one build, then the others find it.
        let _shared = {
            let cache = self.config.cache_dir.clone();
            let name = format!("node-{hash}");
            blocking(move || cache_lock(&cache, &name)).await?
        };
        if self.exists(&tag).await {
            return Ok(tag);
        }
        progress(&format!("building image {tag} (Python {})", python.version));
        tracing::info!(image = %tag, python = python.version, packages = ?recipe.python_packages,
            "building a node image");
        let work = self.config.cache_dir.join("work").join(&hash);
        let (site, sys) = {
            let work = work.clone();
            let recipe = recipe.clone();
            let cache = self.config.cache_dir.clone();
            let pip_python = self.config.host_python();
            let host = host.clone();
            let progress = Arc::clone(progress);
            let base_name = base.clone();
            blocking(move || {
                let site = fresh_dir(&work, "site")?;
                let sys = fresh_dir(&work, "sys")?;
                if !recipe.system_packages.is_empty() {
                    progress(&format!(
                        "adding Debian packages {}",
                        recipe.system_packages.join(", ")
                    ));
                    let apt = Apt::new(&cache, python.suite)?;
                    apt.update()?;
                    let wanted = apt.closure(&recipe.system_packages)?;
                    // What the built-in base already has stays out (a custom base: all).
                    let present = if recipe.base_image.is_none() {
                        apt.closure(&base_packages(python))?
                    } else {
                        BTreeSet::new()
                    };
                    let extra: BTreeSet<String> = wanted.difference(&present).cloned().collect();
                    unpack(&apt.download(&extra)?, &sys)?;
                }
                progress(&format!(
                    "installing Python packages for Python {}{}",
                    python.version,
                    if recipe.python_packages.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", recipe.python_packages.join(", "))
                    }
                ));
                pip_install(&pip_python, &cache, python, &recipe.python_packages, &site)?;
                for (source, rel) in &host.files {
                    let target = site.join(rel);
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
                    }
                    std::fs::copy(source, &target).map_err(|e| {
                        format!("cannot copy {} into the image: {e}", source.display())
                    })?;
                }
                let _ = base_name;
                Ok((site, sys))
            })
            .await?
        };
        let has_sys = !recipe.system_packages.is_empty();
        let dockerfile = format!(
            "FROM {base}\n{}COPY site/ {SITE_DIR}/\nENV PYTHONPATH={SITE_DIR} PYTHONDONTWRITEBYTECODE=1 HOME=/tmp\nLABEL {MANAGED_LABEL}=true {RECIPE_LABEL}={hash} io.remotemedia.version={}\n",
            if has_sys { "COPY sys/ /\n" } else { "" },
            host.version
        );
        let context = work.join("context.tar");
        {
            let context = context.clone();
            blocking(move || {
                let mut dirs: Vec<(&str, &Path)> = vec![("site", &site)];
                if has_sys {
                    dirs.push(("sys", &sys));
                }
                write_context(&context, &dockerfile, &dirs)
            })
            .await?;
        }
        self.build(&tag, &context, progress).await?;
        let _ = std::fs::remove_dir_all(&work);
        progress(&format!("built image {tag}"));
        Ok(tag)
    }

    /// The base image of `python`, built from Debian packages if missing.
    async fn ensure_base(
        &self,
        python: &'static PythonBuild,
        progress: &Progress,
    ) -> Result<String, String> {
        let lock = self.lock_for(python.version);
        let _building = lock.lock().await;
        let cache = self.config.cache_dir.clone();
        let _shared = {
            let cache = cache.clone();
            let name = format!("base-{}", python.package);
            blocking(move || cache_lock(&cache, &name)).await?
        };
        let rootfs_dir = cache.join("rootfs").join(python.package);
        // Resolving the package closure takes seconds: while the package lists it was
        // resolved from are current, the tag it gave stands.
        let memo = cache.join("rootfs").join(format!("{}.tag", python.package));
        let lists = Apt::lists_fetched(&cache.join("apt").join(python.suite));
        let memo_valid = std::fs::metadata(&memo)
            .and_then(|m| m.modified())
            .is_ok_and(|written| lists.is_some_and(|fetched| written >= fetched));
        if memo_valid {
            if let Ok(tag) = std::fs::read_to_string(&memo) {
                if self.exists(tag.trim()).await {
                    return Ok(tag.trim().to_owned());
                }
            }
        }
        // The package list fixes the tag: the same packages make the same image.
        let (debs, root) = {
            let progress = Arc::clone(progress);
            let rootfs_dir = rootfs_dir.clone();
            blocking(move || {
                let apt = Apt::new(&cache, python.suite)?;
                progress(&format!(
                    "fetching Python {} from Debian {} ({})",
                    python.version, python.debian, python.suite
                ));
                apt.update()?;
                let closure = apt.closure(&base_packages(python))?;
                let debs = apt.download(&closure)?;
                Ok((debs, rootfs_dir))
            })
            .await?
        };
        let mut hasher = Sha256::new();
        hasher.update(LAYOUT_VERSION.as_bytes());
        for deb in &debs {
            hasher.update(
                deb.file_name()
                    .map(|n| n.as_encoded_bytes())
                    .unwrap_or_default(),
            );
        }
        let tag = format!(
            "remotemedia-python:{}-{}",
            python.version,
            hex(&hasher.finalize()[..6])
        );
        let remember = |tag: &str| {
            if let Err(e) = std::fs::write(&memo, tag) {
                tracing::debug!(
                    "cannot remember the base image tag in {}: {e}",
                    memo.display()
                );
            }
        };
        if self.exists(&tag).await {
            remember(&tag);
            return Ok(tag);
        }
        progress(&format!("building base image {tag}"));
        let context = root.with_extension("tar");
        {
            let context = context.clone();
            blocking(move || {
                let parent = root.parent().unwrap_or(Path::new("/"));
                std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
                let tree = fresh_dir(parent, &format!("{}.new", python.package))?;
                unpack(&debs, &tree)?;
                finish_rootfs(&tree)?;
                let dockerfile = format!(
                    "FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8\nLABEL {MANAGED_LABEL}=true io.remotemedia.python={}\n",
                    python.version
                );
                write_context(&context, &dockerfile, &[("rootfs", &tree)])?;
                let _ = std::fs::remove_dir_all(&tree);
                Ok(())
            })
            .await?;
        }
        self.build(&tag, &context, progress).await?;
        let _ = std::fs::remove_file(&context);
        remember(&tag);
        Ok(tag)
    }

    /// Builds `context` (a tar) as `tag` in the engine, without network.
    async fn build(&self, tag: &str, context: &Path, progress: &Progress) -> Result<(), String> {
        let options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(tag)
            .rm(true)
            .forcerm(true)
            .networkmode("none")
            .build();
        let file = tokio::fs::File::open(context)
            .await
            .map_err(|e| format!("cannot read the build context {}: {e}", context.display()))?;
        let chunks = futures::stream::unfold(file, |mut file| async move {
            use tokio::io::AsyncReadExt;
            let mut buffer = vec![0u8; 1 << 20];
            match file.read(&mut buffer).await {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    buffer.truncate(n);
                    Some((bytes::Bytes::from(buffer), file))
                }
            }
        });
        let mut stream = self
            .docker
            .build_image(options, None, Some(bollard::body_stream(chunks)));
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail {
                        return Err(format!(
                            "the engine could not build {tag}: {}",
                            detail.message.unwrap_or_default()
                        ));
                    }
                    if let Some(line) = info
                        .stream
                        .as_deref()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                    {
                        tracing::debug!(image = %tag, "{line}");
                        if line.starts_with("Step ") {
                            progress(&format!("{tag}: {line}"));
                        }
                    }
                }
                Err(e) => return Err(format!("the engine could not build {tag}: {e}")),
            }
        }
        if !self.exists(tag).await {
            return Err(format!(
                "the engine finished building {tag} but has no such image"
            ));
        }
        Ok(())
    }
}

/// The packages of a base image: the interpreter, a shell, the C++ runtime (numpy and
/// most binary wheels link it).
fn base_packages(python: &PythonBuild) -> Vec<String> {
    vec![
        python.package.to_owned(),
        "libstdc++6".to_owned(),
        "dash".to_owned(),
    ]
}

/// Installs numpy and `packages` into `site` for `python`, binary wheels only.
fn pip_install(
    pip_python: &Path,
    cache: &Path,
    python: &PythonBuild,
    packages: &[String],
    site: &Path,
) -> Result<(), String> {
    // Every manylinux tag the image's glibc runs, newest first (pip takes only the tags
    // it is given).
    let arch = std::env::consts::ARCH;
    let newest: u32 = python
        .glibc
        .split_once('_')
        .and_then(|(_, minor)| minor.parse().ok())
        .unwrap_or(17);
    let mut platforms: Vec<String> = (17..=newest)
        .rev()
        .map(|minor| format!("manylinux_2_{minor}_{arch}"))
        .collect();
    platforms
        .extend(["manylinux2014", "manylinux2010", "manylinux1"].map(|t| format!("{t}_{arch}")));
    let mut command = Command::new(pip_python);
    command
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-script-location",
        ])
        .arg("--target")
        .arg(site)
        .arg("--cache-dir")
        .arg(cache.join("pip"))
        .args(["--python-version", python.version, "--implementation", "cp"])
        .args(["--abi", &python.abi()])
        .args(platforms.iter().flat_map(|p| ["--platform", p.as_str()]))
        .arg("--only-binary=:all:")
        .arg("numpy>=1.21")
        .args(packages);
    run(
        &mut command,
        &format!(
            "pip installing {} for Python {}",
            if packages.is_empty() {
                "numpy".to_owned()
            } else {
                packages.join(", ")
            },
            python.version
        ),
    )
    .map(|_| ())
}
