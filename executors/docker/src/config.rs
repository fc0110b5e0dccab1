//! Settings of the backend ([`DockerConfig`]) and of one node (the manifest's `docker:`
//! block, [`DockerNodeSettings`]).

use remotemedia_multiprocess::NodeSettings;
use remotemedia_runtime_core::manifest::NodeManifest;
use remotemedia_runtime_core::nodes::schema::describe_value;
use remotemedia_runtime_core::{Error, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A Python version images can be built with, and the Debian release that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PythonBuild {
    /// `major.minor`, as written in `docker.python_version`.
    pub version: &'static str,
    /// The Debian suite whose packages the image is made of.
    pub suite: &'static str,
    /// The Debian release number, for messages.
    pub debian: &'static str,
    /// The interpreter's Debian package (and its file name in `/usr/bin`).
    pub package: &'static str,
    /// The release's glibc, `major_minor`: the newest manylinux wheels the image runs.
    pub glibc: &'static str,
}

impl PythonBuild {
    /// The interpreter inside the image.
    pub fn interpreter(&self) -> String {
        format!("/usr/bin/{}", self.package)
    }

    /// The CPython ABI tag (`cp311`).
    pub fn abi(&self) -> String {
        format!("cp{}", self.version.replace('.', ""))
    }
}

/// Every Python version this backend builds images for: those the Debian archive (the
/// one package source reachable without an image registry) has in Debian 12, 13 and 14
/// (testing). Left out: Debian 11's 3.9 (its glibc, 2.31, is older than the runtime's
/// extension needs, 2.34) and Debian 14's 3.15 (pip, resolving for it from a 3.11 host,
/// refuses numpy's wheels for it).
pub const PYTHONS: &[PythonBuild] = &[
    PythonBuild {
        version: "3.11",
        suite: "bookworm",
        debian: "12",
        package: "python3.11",
        glibc: "2_36",
    },
    PythonBuild {
        version: "3.13",
        suite: "trixie",
        debian: "13",
        package: "python3.13",
        glibc: "2_41",
    },
    // Debian's testing release: what it carries can change (a build then fails naming
    // the missing package).
    PythonBuild {
        version: "3.14",
        suite: "forky",
        debian: "14",
        package: "python3.14",
        glibc: "2_43",
    },
];

/// The version used when a block names none: the host's Debian release's.
pub const DEFAULT_PYTHON: &str = "3.11";

/// "3.11 (Debian 12 bookworm), 3.13 (Debian 13 trixie), ...".
pub fn available_pythons() -> String {
    PYTHONS
        .iter()
        .map(|p| format!("{} (Debian {} {})", p.version, p.debian, p.suite))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The build for `version`.
pub fn python_build(version: &str) -> Option<&'static PythonBuild> {
    PYTHONS.iter().find(|p| p.version == version)
}

/// Memory below which a worker cannot start (the interpreter, numpy and the runtime's
/// extension take about 40 MiB).
pub const MIN_MEMORY_MB: u64 = 64;
/// Fewest processes a container may be limited to (the agent, a spare interpreter, a
/// worker and its threads count).
pub const MIN_PIDS: u64 = 16;

/// The environment variable naming the Docker engine's socket (Docker's own).
pub const DOCKER_HOST_ENV: &str = "DOCKER_HOST";
/// The environment variable choosing the cache directory of image builds.
pub const CACHE_ENV: &str = "REMOTEMEDIA_DOCKER_CACHE";

/// Settings of a [`DockerBackend`](crate::DockerBackend).
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The engine's socket: `unix:///var/run/docker.sock` by default (or `$DOCKER_HOST`).
    pub socket: Option<String>,
    /// The interpreter whose installed `remotemedia` and `remotemedia-nodes` packages go
    /// into every image (and whose pip resolves `python_packages`); `None`:
    /// `$REMOTEMEDIA_PYTHON`, else `python3`.
    pub host_python: Option<PathBuf>,
    /// Where downloaded Debian packages, unpacked root filesystems and pip's downloads are
    /// kept between builds (default `$REMOTEMEDIA_DOCKER_CACHE`, else
    /// `~/.cache/remotemedia/docker`).
    pub cache_dir: PathBuf,
    /// Where each container's private directory (its iceoryx2 domain and the agent's
    /// socket) is made; on a tmpfs (default `/dev/shm/rm-docker`: short, since Unix socket
    /// paths in it are limited to 107 bytes).
    pub domains_dir: PathBuf,
    /// The uid and gid inside containers. `None`: the runtime's own, or
    /// [`UNPRIVILEGED_USER`] when the runtime runs as root (containers never run as root).
    pub container_user: Option<(u32, u32)>,
    /// How long a container whose last node ended is kept for the next session.
    pub grace_period: Duration,
    /// How often the runtime checks that each container still answers.
    pub health_interval: Duration,
    /// How long a container may take to answer a check before it counts as hung and is
    /// killed (with every session it serves ending with that error).
    pub health_timeout: Duration,
    /// Containers running at once.
    pub max_containers: usize,
    /// A node's memory limit when its block sets none, in MiB.
    pub default_memory_mb: u64,
    /// A node's process limit when its block sets none.
    pub default_pids: u64,
    /// Size of each container's `/tmp` (a tmpfs; the root filesystem is read-only), MiB.
    pub tmp_size_mb: u64,
    /// How long a worker may take to start (the container's start included, not an image
    /// build).
    pub init_timeout: Duration,
    /// How long one call may take (`None`: no limit).
    pub process_timeout: Option<Duration>,
    /// How long a worker may take to exit at session end.
    pub shutdown_timeout: Duration,
}

/// The container user when the runtime runs as root.
pub const UNPRIVILEGED_USER: (u32, u32) = (10001, 10001);

fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".cache/remotemedia/docker")
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            socket: None,
            host_python: None,
            cache_dir: default_cache_dir(),
            domains_dir: PathBuf::from("/dev/shm/rm-docker"),
            container_user: None,
            grace_period: Duration::from_secs(30),
            health_interval: Duration::from_secs(2),
            health_timeout: Duration::from_secs(10),
            max_containers: 32,
            default_memory_mb: 1024,
            default_pids: 256,
            tmp_size_mb: 64,
            init_timeout: Duration::from_secs(60),
            process_timeout: Some(Duration::from_secs(300)),
            shutdown_timeout: Duration::from_secs(5),
        }
    }
}

impl DockerConfig {
    /// The uid and gid containers run as.
    pub fn user(&self) -> (u32, u32) {
        self.container_user.unwrap_or_else(|| {
            // SAFETY: reading the process's ids.
            let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
            if uid == 0 {
                UNPRIVILEGED_USER
            } else {
                (uid, gid)
            }
        })
    }

    /// The interpreter whose packages go into images.
    pub fn host_python(&self) -> PathBuf {
        self.host_python.clone().unwrap_or_else(|| {
            std::env::var_os(remotemedia_multiprocess::PYTHON_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("python3"))
        })
    }
}

/// What goes into a node's image.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ImageRecipe {
    /// The interpreter's version.
    pub python_version: String,
    /// pip requirements, installed for that version.
    pub python_packages: Vec<String>,
    /// Debian packages (of the Python version's release), unpacked into the image.
    pub system_packages: Vec<String>,
    /// A local image to start from instead of the one built from Debian packages; it
    /// must have `/usr/bin/python<version>`.
    pub base_image: Option<String>,
}

impl ImageRecipe {
    /// The Python build of [`python_version`](Self::python_version).
    pub fn python(&self) -> &'static PythonBuild {
        python_build(&self.python_version).unwrap_or(&PYTHONS[0])
    }
}

/// A host directory mounted into the container.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Volume {
    /// Absolute host path (relative ones are relative to the manifest file).
    pub host: PathBuf,
    /// Absolute path in the container.
    pub container: String,
    /// Mounted read-only (the default; `:rw` opts out).
    pub read_only: bool,
}

/// The limits of a container.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Limits {
    /// Memory (and memory + swap: no swap), MiB.
    pub memory_mb: u64,
    /// CPUs (fractions allowed); `None`: no CPU quota.
    pub cpu_cores: Option<f64>,
    /// All GPUs of the host, through the engine's GPU device requests.
    pub gpu: bool,
    /// Processes and threads.
    pub pids: u64,
    /// Size of the container's own `/dev/shm`, MiB.
    pub shm_size_mb: u64,
}

/// The effective settings of one `docker` node.
#[derive(Debug, Clone)]
pub struct DockerNodeSettings {
    /// Its image.
    pub image: ImageRecipe,
    /// Its container's limits.
    pub limits: Limits,
    /// Environment variables of its container.
    pub env: BTreeMap<String, String>,
    /// Its container's mounts.
    pub volumes: Vec<Volume>,
    /// Start, call and exit limits, and the interpreter in the image.
    pub worker: NodeSettings,
}

impl DockerNodeSettings {
    /// Identifies the container this node can run in: nodes with equal keys share one.
    pub fn container_key(&self) -> String {
        let description = serde_json::json!({
            "image": self.image,
            "limits": self.limits,
            "env": self.env,
            "volumes": self.volumes,
        });
        let digest = Sha256::digest(description.to_string().as_bytes());
        hex(&digest[..8])
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Keys of the `docker:` block.
pub const BLOCK_KEYS: &[&str] = &[
    "python_version",
    "python_packages",
    "system_packages",
    "base_image",
    "resource_limits",
    "shm_size_mb",
    "env",
    "volumes",
    "modules",
    "python_path",
    "init_timeout_ms",
    "process_timeout_ms",
    "shutdown_timeout_ms",
];

/// Keys of `docker.resource_limits`.
pub const LIMIT_KEYS: &[&str] = &["memory_mb", "cpu_cores", "gpu", "pids"];

fn block_error(node: &NodeManifest, key: &str, problem: impl std::fmt::Display) -> Error {
    Error::InvalidManifest(format!(
        "node '{}' ({}): docker.{key}: {problem}",
        node.id, node.node_type
    ))
}

fn strings(node: &NodeManifest, key: &str, value: &Value) -> Result<Vec<String>> {
    let items = value.as_array().ok_or_else(|| {
        block_error(
            node,
            key,
            format!(
                "expected a list of strings, found {}",
                describe_value(value)
            ),
        )
    })?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item.as_str() {
            Some(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            _ => Err(block_error(
                node,
                &format!("{key}[{i}]"),
                format!(
                    "expected a non-empty string, found {}",
                    describe_value(item)
                ),
            )),
        })
        .collect()
}

fn number(node: &NodeManifest, key: &str, value: &Value, min: u64, max: u64) -> Result<u64> {
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Ok(n),
        Some(n) => Err(block_error(
            node,
            key,
            format!("{n} is out of range ({min} to {max})"),
        )),
        None => Err(block_error(
            node,
            key,
            format!("expected a whole number, found {}", describe_value(value)),
        )),
    }
}

/// A pip requirement as the block may write it: a name with optional extras, version
/// specifiers and markers — never an option (`--index-url ...`), a path or a URL.
fn check_requirement(node: &NodeManifest, key: &str, requirement: &str) -> Result<()> {
    let starts_like_a_name = requirement
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let forbidden = requirement.contains("://")
        || requirement.contains('@')
        || requirement.contains('/')
        || requirement.contains('\\')
        || requirement.contains(char::is_whitespace) && !requirement.contains(';');
    if !starts_like_a_name || forbidden {
        return Err(block_error(
            node,
            key,
            format!(
                "'{requirement}' is not a package requirement (write a name with an optional version, like \"numpy>=1.26\"; options, paths and URLs are not accepted)"
            ),
        ));
    }
    Ok(())
}

/// A Debian package name: lower-case letters, digits, `+ - .`.
fn check_debian_name(node: &NodeManifest, key: &str, name: &str) -> Result<()> {
    let valid = name.len() >= 2
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if !valid {
        return Err(block_error(
            node,
            key,
            format!("'{name}' is not a Debian package name"),
        ));
    }
    Ok(())
}

fn parse_volume(node: &NodeManifest, key: &str, text: &str) -> Result<Volume> {
    let parts: Vec<&str> = text.split(':').collect();
    let (host, container, mode) = match parts.as_slice() {
        [host, container] => (*host, *container, "ro"),
        [host, container, mode] => (*host, *container, *mode),
        _ => {
            return Err(block_error(
                node,
                key,
                format!("'{text}' is not HOST_PATH:CONTAINER_PATH[:ro|rw]"),
            ))
        }
    };
    let read_only = match mode {
        "ro" => true,
        "rw" => false,
        other => {
            return Err(block_error(
                node,
                key,
                format!("unknown mode '{other}' (ro or rw)"),
            ))
        }
    };
    if !container.starts_with('/') || container.split('/').any(|c| c == "..") {
        return Err(block_error(
            node,
            key,
            format!("the container path '{container}' must be absolute, without '..'"),
        ));
    }
    let reserved = [
        "/",
        "/domain",
        "/tmp",
        "/proc",
        "/sys",
        "/dev",
        "/usr",
        "/opt/remotemedia",
    ];
    let trimmed = container.trim_end_matches('/');
    if reserved
        .iter()
        .any(|r| trimmed == *r || (trimmed.is_empty() && *r == "/"))
        || trimmed.starts_with("/domain/")
        || trimmed.starts_with("/opt/remotemedia/")
    {
        return Err(block_error(
            node,
            key,
            format!("the container path '{container}' is reserved"),
        ));
    }
    let host_path = node.resolve_path(host);
    if !host_path.is_absolute() {
        return Err(block_error(
            node,
            key,
            format!(
                "the host path '{host}' must be absolute (relative paths need a manifest loaded from a file)"
            ),
        ));
    }
    if !host_path.exists() {
        return Err(block_error(
            node,
            key,
            format!("the host path {} does not exist", host_path.display()),
        ));
    }
    Ok(Volume {
        host: host_path,
        container: container.to_owned(),
        read_only,
    })
}

fn host_cpus() -> f64 {
    std::thread::available_parallelism()
        .map(|n| n.get() as f64)
        .unwrap_or(1.0)
}

impl DockerNodeSettings {
    /// Merges `config` with the node's `docker:` block, rejecting unknown keys, wrong types
    /// and impossible values with errors that name the node and the key.
    pub fn resolve(config: &DockerConfig, node: &NodeManifest) -> Result<Self> {
        let mut image = ImageRecipe {
            python_version: DEFAULT_PYTHON.to_owned(),
            python_packages: Vec::new(),
            system_packages: Vec::new(),
            base_image: None,
        };
        let mut limits = Limits {
            memory_mb: config.default_memory_mb,
            cpu_cores: None,
            gpu: false,
            pids: config.default_pids,
            shm_size_mb: 64,
        };
        let mut env = BTreeMap::new();
        let mut volumes = Vec::new();
        let mut modules = Vec::new();
        let mut python_path = Vec::new();
        let mut init_timeout = config.init_timeout;
        let mut process_timeout = config.process_timeout;
        let mut shutdown_timeout = config.shutdown_timeout;
        let empty = serde_json::Map::new();
        let block = match &node.docker {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(Error::InvalidManifest(format!(
                    "node '{}' ({}): the docker block must be a mapping, found {}",
                    node.id,
                    node.node_type,
                    describe_value(other)
                )))
            }
        };
        let millis = |key: &str, value: &Value, allow_zero: bool| -> Result<u64> {
            number(node, key, value, u64::from(!allow_zero), 24 * 3600 * 1000)
        };
        for (key, value) in block {
            match key.as_str() {
                "python_version" => {
                    let version = match value {
                        Value::String(s) => s.trim().to_owned(),
                        // `python_version: 3.11` in YAML is a number.
                        Value::Number(n) => n.to_string(),
                        other => {
                            return Err(block_error(
                                node,
                                key,
                                format!(
                                    "expected a version like \"3.11\", found {}",
                                    describe_value(other)
                                ),
                            ))
                        }
                    };
                    if python_build(&version).is_none() {
                        return Err(block_error(
                            node,
                            key,
                            format!(
                                "Python {version} cannot be built here (no image registry is used; the versions the Debian archive provides are: {})",
                                available_pythons()
                            ),
                        ));
                    }
                    image.python_version = version;
                }
                "python_packages" => {
                    let packages = strings(node, key, value)?;
                    for (i, p) in packages.iter().enumerate() {
                        check_requirement(node, &format!("{key}[{i}]"), p)?;
                    }
                    image.python_packages = packages;
                }
                "system_packages" => {
                    let packages = strings(node, key, value)?;
                    for (i, p) in packages.iter().enumerate() {
                        check_debian_name(node, &format!("{key}[{i}]"), p)?;
                    }
                    image.system_packages = packages;
                }
                "base_image" => {
                    let name = value.as_str().map(str::trim).filter(|s| {
                        !s.is_empty()
                            && !s.starts_with('-')
                            && s.chars()
                                .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
                    });
                    let Some(name) = name else {
                        return Err(block_error(
                            node,
                            key,
                            format!(
                                "expected a local image name like \"my/python:3.11\", found {}",
                                describe_value(value)
                            ),
                        ));
                    };
                    image.base_image = Some(name.to_owned());
                }
                "resource_limits" => {
                    let map = value.as_object().ok_or_else(|| {
                        block_error(
                            node,
                            key,
                            format!("expected a mapping, found {}", describe_value(value)),
                        )
                    })?;
                    for (limit, v) in map {
                        let name = format!("resource_limits.{limit}");
                        match limit.as_str() {
                            "memory_mb" => {
                                limits.memory_mb = match v.as_u64() {
                                    Some(mb) if mb < MIN_MEMORY_MB => {
                                        return Err(block_error(
                                            node,
                                            &name,
                                            format!("{mb} MiB is below what a Python worker needs ({MIN_MEMORY_MB} MiB at least)"),
                                        ))
                                    }
                                    _ => number(node, &name, v, MIN_MEMORY_MB, 1 << 30)?,
                                }
                            }
                            "cpu_cores" => {
                                let cpus = host_cpus();
                                match v.as_f64() {
                                    Some(c) if c >= 0.01 && c <= cpus => limits.cpu_cores = Some(c),
                                    Some(c) => {
                                        return Err(block_error(
                                            node,
                                            &name,
                                            format!("{c} is out of range (0.01 to {cpus}, the CPUs this machine has)"),
                                        ))
                                    }
                                    None => {
                                        return Err(block_error(
                                            node,
                                            &name,
                                            format!("expected a number of CPUs, found {}", describe_value(v)),
                                        ))
                                    }
                                }
                            }
                            "gpu" => {
                                limits.gpu = v.as_bool().ok_or_else(|| {
                                    block_error(node, &name, format!("expected true or false, found {}", describe_value(v)))
                                })?;
                            }
                            "pids" => limits.pids = number(node, &name, v, MIN_PIDS, 1 << 22)?,
                            other => {
                                return Err(block_error(
                                    node,
                                    &format!("resource_limits.{other}"),
                                    format!("unknown key (known keys: {})", LIMIT_KEYS.join(", ")),
                                ))
                            }
                        }
                    }
                }
                "shm_size_mb" => limits.shm_size_mb = number(node, key, value, 1, 1 << 20)?,
                "env" => {
                    let map = value.as_object().ok_or_else(|| {
                        block_error(
                            node,
                            key,
                            format!(
                                "expected a mapping of names to strings, found {}",
                                describe_value(value)
                            ),
                        )
                    })?;
                    for (name, v) in map {
                        let valid_name = !name.is_empty()
                            && !name.contains('=')
                            && !name.contains('\0')
                            && !name.chars().next().is_some_and(|c| c.is_ascii_digit());
                        if !valid_name {
                            return Err(block_error(
                                node,
                                &format!("env.{name}"),
                                "not a variable name",
                            ));
                        }
                        let text = match v {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            Value::Bool(b) => b.to_string(),
                            other => {
                                return Err(block_error(
                                    node,
                                    &format!("env.{name}"),
                                    format!("expected a string, found {}", describe_value(other)),
                                ))
                            }
                        };
                        env.insert(name.clone(), text);
                    }
                }
                "volumes" => {
                    for (i, text) in strings(node, key, value)?.iter().enumerate() {
                        volumes.push(parse_volume(node, &format!("{key}[{i}]"), text)?);
                    }
                }
                "modules" => {
                    for (i, module) in strings(node, key, value)?.into_iter().enumerate() {
                        let valid = module.split('.').all(|part| {
                            !part.is_empty()
                                && !part.starts_with(|c: char| c.is_ascii_digit())
                                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        });
                        if !valid {
                            return Err(block_error(
                                node,
                                &format!("{key}[{i}]"),
                                format!("'{module}' is not a module name"),
                            ));
                        }
                        modules.push(module);
                    }
                }
                "python_path" => {
                    for (i, path) in strings(node, key, value)?.into_iter().enumerate() {
                        if !path.starts_with('/') {
                            return Err(block_error(
                                node,
                                &format!("{key}[{i}]"),
                                format!("'{path}' must be an absolute path inside the container (mount host code with volumes)"),
                            ));
                        }
                        python_path.push(PathBuf::from(path));
                    }
                }
                "init_timeout_ms" => {
                    init_timeout = Duration::from_millis(millis(key, value, false)?)
                }
                "process_timeout_ms" => {
                    let ms = millis(key, value, true)?;
                    process_timeout = (ms > 0).then(|| Duration::from_millis(ms));
                }
                "shutdown_timeout_ms" => {
                    shutdown_timeout = Duration::from_millis(millis(key, value, false)?)
                }
                other => {
                    return Err(block_error(
                        node,
                        other,
                        format!("unknown key (known keys: {})", BLOCK_KEYS.join(", ")),
                    ))
                }
            }
        }
        let python = image.python().interpreter();
        Ok(Self {
            image,
            limits,
            env,
            volumes,
            worker: NodeSettings {
                python: PathBuf::from(python),
                own_python: true,
                env: BTreeMap::new(),
                python_path,
                modules,
                source: None,
                init_timeout,
                process_timeout,
                shutdown_timeout,
                // One instance per worker process (a container hosts several workers).
                share: Some(1),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(block: Value) -> NodeManifest {
        let mut node = NodeManifest::new("ml", "EchoNode");
        node.docker = Some(block);
        node
    }

    fn error(block: Value) -> String {
        DockerNodeSettings::resolve(&DockerConfig::default(), &node(block))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn the_readme_block_resolves() {
        let settings = DockerNodeSettings::resolve(
            &DockerConfig::default(),
            &node(json!({
                "python_version": "3.13",
                "python_packages": ["iceoryx2", "torch>=2.0"],
                "resource_limits": {"memory_mb": 4096, "cpu_cores": 1.5},
            })),
        )
        .expect("valid");
        assert_eq!(settings.image.python_version, "3.13");
        assert_eq!(settings.image.python_packages, ["iceoryx2", "torch>=2.0"]);
        assert_eq!(settings.limits.memory_mb, 4096);
        assert_eq!(settings.limits.cpu_cores, Some(1.5));
        assert_eq!(settings.worker.python, PathBuf::from("/usr/bin/python3.13"));
    }

    #[test]
    fn bad_blocks_name_node_and_key() {
        let err = error(json!({"python_version": "3.10"}));
        assert!(
            err.contains(
                "node 'ml' (EchoNode): docker.python_version: Python 3.10 cannot be built here"
            ),
            "{err}"
        );
        assert!(
            err.contains("3.11 (Debian 12 bookworm), 3.13 (Debian 13 trixie)"),
            "{err}"
        );
        let err = error(json!({"resource_limits": {"memory_mb": 16}}));
        assert!(
            err.contains(
                "docker.resource_limits.memory_mb: 16 MiB is below what a Python worker needs"
            ),
            "{err}"
        );
        let err = error(json!({"resource_limits": {"memory": 16}}));
        assert!(
            err.contains("docker.resource_limits.memory: unknown key (known keys: memory_mb"),
            "{err}"
        );
        let err = error(json!({"resource_limits": {"cpu_cores": 512}}));
        assert!(
            err.contains("docker.resource_limits.cpu_cores: 512 is out of range"),
            "{err}"
        );
        let err = error(json!({"python_pakages": ["x"]}));
        assert!(
            err.contains("docker.python_pakages: unknown key (known keys: python_version"),
            "{err}"
        );
        let err = error(json!({"python_packages": ["--index-url=http://evil/ x"]}));
        assert!(err.contains("docker.python_packages[0]: '--index-url=http://evil/ x' is not a package requirement"), "{err}");
        let err = error(json!({"python_packages": "numpy"}));
        assert!(
            err.contains("docker.python_packages: expected a list of strings, found string"),
            "{err}"
        );
        let err = error(json!({"system_packages": ["Bad Name"]}));
        assert!(
            err.contains("docker.system_packages[0]: 'Bad Name' is not a Debian package name"),
            "{err}"
        );
        let err = error(json!({"volumes": ["/definitely/not/here:/data"]}));
        assert!(
            err.contains("docker.volumes[0]: the host path /definitely/not/here does not exist"),
            "{err}"
        );
        let err = error(json!({"volumes": ["/tmp:/domain"]}));
        assert!(
            err.contains("docker.volumes[0]: the container path '/domain' is reserved"),
            "{err}"
        );
        let err = error(json!({"resource_limits": {"gpu": "yes"}}));
        assert!(
            err.contains("docker.resource_limits.gpu: expected true or false"),
            "{err}"
        );
        let err = error(json!("python3.11"));
        assert!(err.contains("the docker block must be a mapping"), "{err}");
    }

    #[test]
    fn volumes_are_read_only_unless_asked_and_relative_to_the_manifest() {
        let mut n = node(json!({"volumes": ["models:/models", "/tmp:/scratch:rw"]}));
        n.base_dir = Some(std::env::temp_dir());
        std::fs::create_dir_all(std::env::temp_dir().join("models")).expect("dir");
        let settings = DockerNodeSettings::resolve(&DockerConfig::default(), &n).expect("valid");
        assert_eq!(
            settings.volumes[0].host,
            std::env::temp_dir().join("models")
        );
        assert!(settings.volumes[0].read_only);
        assert!(!settings.volumes[1].read_only);
    }

    #[test]
    fn equal_blocks_share_a_container_and_different_limits_do_not() {
        let config = DockerConfig::default();
        let a = DockerNodeSettings::resolve(
            &config,
            &node(json!({"resource_limits": {"memory_mb": 256}})),
        )
        .expect("a");
        let b = DockerNodeSettings::resolve(
            &config,
            &node(json!({"resource_limits": {"memory_mb": 256}})),
        )
        .expect("b");
        let c = DockerNodeSettings::resolve(
            &config,
            &node(json!({"resource_limits": {"memory_mb": 512}})),
        )
        .expect("c");
        assert_eq!(a.container_key(), b.container_key());
        assert_ne!(a.container_key(), c.container_key());
    }
}
