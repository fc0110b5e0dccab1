//! Settings of the backend, and of one node (the manifest's `multiprocess:` block).

use remotemedia_runtime_core::manifest::{NodeManifest, PythonBlock};
use remotemedia_runtime_core::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The environment variable naming the default Python interpreter.
pub const PYTHON_ENV: &str = "REMOTEMEDIA_PYTHON";

/// The environment variable choosing the iceoryx2 root directory, where every file of
/// every channel lives (default `/dev/shm/remotemedia/`; keep it on a tmpfs): runtimes
/// with different roots never see each other's files.
pub const IPC_ROOT_ENV: &str = "REMOTEMEDIA_IPC_ROOT";
/// The environment variable choosing the prefix of iceoryx2's files (default
/// `remotemedia_`).
pub const IPC_PREFIX_ENV: &str = "REMOTEMEDIA_IPC_PREFIX";

fn env_or(name: &str, default: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => {
            if name == IPC_ROOT_ENV && !value.ends_with('/') {
                format!("{value}/")
            } else {
                value
            }
        }
        _ => default.to_owned(),
    }
}

/// Descriptors one running worker holds in the runtime's process (its pipes, pidfd,
/// iceoryx2 service, port and event files), measured: 32.
pub const DESCRIPTORS_PER_WORKER: usize = 32;

/// Workers the process's current descriptor limit can back, keeping `reserve` descriptors
/// for everything else.
pub fn workers_for_descriptors(reserve: usize) -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscall on a valid, writable rlimit.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    (soft.saturating_sub(reserve) / DESCRIPTORS_PER_WORKER).max(1)
}

/// Settings of a [`MultiprocessBackend`](crate::MultiprocessBackend); every node may
/// override the per-node ones in its manifest `multiprocess:` block.
#[derive(Debug, Clone)]
pub struct MultiprocessConfig {
    /// The Python interpreter workers run. `None`: `$REMOTEMEDIA_PYTHON`, else `python3`
    /// on `PATH`. It must have the `remotemedia` package installed.
    pub python_executable: Option<PathBuf>,
    /// Environment variables set in every worker.
    pub env: BTreeMap<String, String>,
    /// Directories put in front of every worker's `sys.path`.
    pub python_path: Vec<PathBuf>,
    /// Modules every worker imports before looking up its node class (they register
    /// classes with `@remotemedia.node`).
    pub modules: Vec<String>,
    /// How long a worker may take to start and initialize its node.
    pub init_timeout: Duration,
    /// How long one `process` or `flush` call may take before the worker counts as hung
    /// and is killed; `None` waits forever.
    pub process_timeout: Option<Duration>,
    /// How long a worker may take to clean up and exit at session end before it is killed.
    pub shutdown_timeout: Duration,
    /// How long a shared worker process (one hosting several sessions' instances of a
    /// node that shares) stays once no instance is left, for the next session — its models
    /// stay loaded (default 30 s; zero closes it with its last instance).
    pub shared_linger: Duration,
    /// Interpreters kept started and waiting for a node, so sessions start without paying
    /// for interpreter start-up (0 disables the pool).
    pub warm_workers: usize,
    /// Workers running at once (over all sessions); a node beyond it fails to start with
    /// [`Error::AtCapacity`](remotemedia_runtime_core::Error::AtCapacity). `None`: what the
    /// process's descriptor limit can back, at [`DESCRIPTORS_PER_WORKER`] each, keeping 256
    /// descriptors for everything else.
    pub max_workers: Option<usize>,
    /// Directory of every channel's files (default `$REMOTEMEDIA_IPC_ROOT`, else
    /// `/dev/shm/remotemedia/`).
    pub iceoryx2_root: String,
    /// Prefix of every iceoryx2 file in the root (default
    /// `$REMOTEMEDIA_IPC_PREFIX`, else `remotemedia_`).
    pub iceoryx2_prefix: String,
}

impl Default for MultiprocessConfig {
    fn default() -> Self {
        Self {
            python_executable: None,
            env: BTreeMap::new(),
            python_path: Vec::new(),
            modules: Vec::new(),
            init_timeout: Duration::from_secs(60),
            process_timeout: Some(Duration::from_secs(300)),
            shutdown_timeout: Duration::from_secs(5),
            shared_linger: crate::backend::SHARED_LINGER,
            warm_workers: 0,
            max_workers: None,
            iceoryx2_root: env_or(IPC_ROOT_ENV, crate::ipc::DEFAULT_ROOT),
            iceoryx2_prefix: env_or(IPC_PREFIX_ENV, crate::ipc::DEFAULT_PREFIX),
        }
    }
}

impl MultiprocessConfig {
    /// [`max_workers`](Self::max_workers), or what the descriptor limit backs.
    pub fn worker_limit(&self) -> usize {
        self.max_workers
            .unwrap_or_else(|| workers_for_descriptors(256))
            .max(1)
    }

    /// The interpreter used when neither the config nor a node names one.
    pub fn default_python(&self) -> PathBuf {
        self.python_executable.clone().unwrap_or_else(|| {
            std::env::var_os(PYTHON_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("python3"))
        })
    }
}

/// The effective settings of one node: the backend's config with the node's overrides.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// The interpreter.
    pub python: PathBuf,
    /// Whether the node named its own interpreter (then no warm worker can serve it).
    pub own_python: bool,
    /// Environment variables for the worker.
    pub env: BTreeMap<String, String>,
    /// `sys.path` additions.
    pub python_path: Vec<PathBuf>,
    /// Modules to import first.
    pub modules: Vec<String>,
    /// The code of a module given inline in the manifest, run before the class is looked
    /// up.
    pub source: Option<String>,
    /// Start-up limit.
    pub init_timeout: Duration,
    /// Per-call limit.
    pub process_timeout: Option<Duration>,
    /// Exit limit.
    pub shutdown_timeout: Duration,
    /// Instances of this node (same type and configuration, any session) one worker
    /// process may host: the manifest's `share`; `None`: what the node class declares.
    pub share: Option<usize>,
}

/// The most instances one worker process may host (`share: true`).
pub use remotemedia_runtime_core::manifest::MAX_SHARE;

impl NodeSettings {
    /// Merges `config` with the node's `multiprocess:` block (read by the core's
    /// [`PythonBlock`], which rejects unknown keys and wrong types with errors that name
    /// the node and the key); relative paths are relative to the manifest file.
    pub fn resolve(config: &MultiprocessConfig, node: &NodeManifest) -> Result<Self> {
        let block = PythonBlock::parse(node)?;
        let mut env = config.env.clone();
        env.extend(block.env);
        let mut python_path = config.python_path.clone();
        python_path.extend(block.python_path.iter().map(|path| node.resolve_path(path)));
        let mut modules = config.modules.clone();
        modules.extend(block.modules);
        // A bare interpreter name (`python3`) is looked up on PATH; a path with a
        // directory in it is relative to the manifest file.
        let python = block.python_executable.as_ref().map(|path| {
            if path.contains('/') {
                node.resolve_path(path)
            } else {
                PathBuf::from(path)
            }
        });
        Ok(NodeSettings {
            own_python: python.is_some(),
            python: python.unwrap_or_else(|| config.default_python()),
            env,
            python_path,
            modules,
            source: block.source,
            init_timeout: block.init_timeout.unwrap_or(config.init_timeout),
            process_timeout: block.process_timeout.unwrap_or(config.process_timeout),
            shutdown_timeout: block.shutdown_timeout.unwrap_or(config.shutdown_timeout),
            share: block.share,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn node(block: Value) -> NodeManifest {
        let mut node = NodeManifest::new("asr", "SpeechRecognitionNode");
        node.multiprocess = Some(block);
        node
    }

    #[test]
    fn relative_paths_are_relative_to_the_manifest_file() {
        let mut from_file = node(json!({
            "python_path": ["nodes", "/abs/lib"],
            "python_executable": "venv/bin/python",
        }));
        from_file.base_dir = Some(PathBuf::from("/srv/pipelines"));
        let settings =
            NodeSettings::resolve(&MultiprocessConfig::default(), &from_file).expect("valid block");
        assert_eq!(
            settings.python_path,
            vec![
                PathBuf::from("/srv/pipelines/nodes"),
                PathBuf::from("/abs/lib")
            ]
        );
        assert_eq!(
            settings.python,
            PathBuf::from("/srv/pipelines/venv/bin/python")
        );
        // A bare interpreter name is looked up on PATH; text manifests keep paths as given.
        let mut bare = node(json!({"python_executable": "python3", "python_path": ["nodes"]}));
        bare.base_dir = Some(PathBuf::from("/srv/pipelines"));
        let settings =
            NodeSettings::resolve(&MultiprocessConfig::default(), &bare).expect("valid block");
        assert_eq!(settings.python, PathBuf::from("python3"));
        let text = node(json!({"python_path": ["nodes"]}));
        let settings =
            NodeSettings::resolve(&MultiprocessConfig::default(), &text).expect("valid block");
        assert_eq!(settings.python_path, vec![PathBuf::from("nodes")]);
    }

    #[test]
    fn block_overrides_the_backend_defaults() {
        let config = MultiprocessConfig {
            python_executable: Some("/usr/bin/python3".into()),
            ..Default::default()
        };
        let settings = NodeSettings::resolve(
            &config,
            &node(json!({"python_executable": "/opt/py/bin/python", "env": {"A": "1", "B": 2},
                         "init_timeout_ms": 1500, "process_timeout_ms": 0, "modules": ["my.nodes"]})),
        )
        .expect("valid block");
        assert_eq!(settings.python, PathBuf::from("/opt/py/bin/python"));
        assert!(settings.own_python);
        assert_eq!(settings.env["B"], "2");
        assert_eq!(settings.init_timeout, Duration::from_millis(1500));
        assert_eq!(settings.process_timeout, None);
        assert_eq!(settings.modules, vec!["my.nodes".to_owned()]);
    }

    #[test]
    fn unknown_keys_and_wrong_types_name_node_and_key() {
        let config = MultiprocessConfig::default();
        let err = NodeSettings::resolve(&config, &node(json!({"pyhton_executable": "x"})))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "node 'asr' (SpeechRecognitionNode): multiprocess.pyhton_executable: unknown key"
            ),
            "{err}"
        );
        let err = NodeSettings::resolve(&config, &node(json!({"init_timeout_ms": "soon"})))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("multiprocess.init_timeout_ms: expected a positive number of milliseconds, found string \"soon\""),
            "{err}"
        );
        let err = NodeSettings::resolve(&config, &node(json!({"env": {"A": [1]}})))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("multiprocess.env.A: expected a string"),
            "{err}"
        );
    }
}
