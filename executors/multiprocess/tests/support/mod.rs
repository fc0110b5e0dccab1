//! Shared set-up: real Python workers with the test nodes of `tests/python`, each harness
//! in its own iceoryx2 domain (root directory and file prefix) so leftovers can be counted.

#![allow(dead_code)]

use remotemedia_multiprocess::{register, MultiprocessBackend, MultiprocessConfig};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::nodes::registry::NodeRegistry;
use remotemedia_runtime_core::transport::{PipelineRunner, TransportData};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The interpreter under test: `$REMOTEMEDIA_PYTHON`, which must have the `remotemedia`
/// wheel and the `remotemedia-nodes` package installed.
pub fn python() -> PathBuf {
    match std::env::var_os("REMOTEMEDIA_PYTHON") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!(
            "these tests run real Python workers: set REMOTEMEDIA_PYTHON to an interpreter with \
             the remotemedia wheel and remotemedia-nodes installed (`cargo xtask python-env` \
             creates one and prints its path)"
        ),
    }
}

pub fn test_nodes_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python")
}

static HARNESS_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh iceoryx2 domain: (root directory, file prefix), unique to this harness.
pub fn new_domain() -> (PathBuf, String) {
    let n = HARNESS_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tag = format!("{}x{n}", std::process::id());
    // On the tmpfs, like the default root: the channels' data segments are files in it.
    let root = PathBuf::from(format!("/dev/shm/rm-iox-{tag}"));
    let _ = std::fs::remove_dir_all(&root);
    (root, format!("rmt{tag}_"))
}

pub struct Harness {
    pub runner: PipelineRunner,
    pub backend: Arc<MultiprocessBackend>,
    pub root: PathBuf,
    pub prefix: String,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(adjust: impl FnOnce(&mut MultiprocessConfig)) -> Self {
        let (root, prefix) = new_domain();
        Self::in_domain(root, prefix, adjust)
    }

    /// A harness in an existing domain (e.g. one a killed process used).
    pub fn in_domain(
        root: PathBuf,
        prefix: String,
        adjust: impl FnOnce(&mut MultiprocessConfig),
    ) -> Self {
        std::fs::create_dir_all(&root).expect("iceoryx2 root");
        let mut config = MultiprocessConfig {
            python_executable: Some(python()),
            python_path: vec![test_nodes_dir()],
            modules: vec!["rm_test_nodes".to_owned()],
            iceoryx2_root: format!("{}/", root.display()),
            iceoryx2_prefix: prefix,
            // A shared worker closes with its last instance (so leftovers can be counted
            // at once); the tests of lingering set their own.
            shared_linger: std::time::Duration::ZERO,
            ..MultiprocessConfig::default()
        };
        adjust(&mut config);
        let prefix = config.iceoryx2_prefix.clone();
        let mut registry = NodeRegistry::with_builtins();
        let backend = register(&mut registry, config);
        let runner = PipelineRunner::with_registry(registry).expect("runner");
        Self {
            runner,
            backend,
            root,
            prefix,
        }
    }

    /// Files this harness's iceoryx2 domain still has, in its root (and, from older
    /// versions' layout, directly in /dev/shm) —
    /// except the domain's one persistent node counter (`*.global_mgmt`), which iceoryx2
    /// keeps by design.
    pub fn leftovers(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if !path.to_string_lossy().ends_with(".global_mgmt") {
                    found.push(path.display().to_string());
                }
            }
        }
        for entry in std::fs::read_dir("/dev/shm")
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&self.prefix) && !name.ends_with(".global_mgmt") {
                found.push(format!("/dev/shm/{name}"));
            }
        }
        found
    }
}

impl Harness {
    /// Waits up to `seconds` for the domain to hold no files (a finished session's node
    /// tasks release their channels right after reporting the end), then returns what is
    /// left.
    pub fn leftovers_after(&self, seconds: f64) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
        loop {
            let left = self.leftovers();
            if left.is_empty() || std::time::Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Harness {
    /// Asserts that the domain holds no files once the sessions have wound down.
    pub fn assert_no_leftovers(&self) {
        let left = self.leftovers_after(5.0);
        assert!(left.is_empty(), "{left:?}");
    }
}

/// A one-node pipeline whose `WritesPid` worker writes its pid to `path` at start.
pub fn writes_pid_pipeline(path: &std::path::Path) -> Arc<Manifest> {
    manifest(&format!(
        "nodes: [{{id: w, node_type: WritesPid, executor: multiprocess, params: {{path: \"{}\"}}}}]",
        path.display()
    ))
}

impl Drop for Harness {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
        for entry in std::fs::read_dir("/dev/shm")
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&self.prefix)
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

impl Harness {
    /// Starts a session of `yaml`, which must start.
    pub async fn session(
        &self,
        yaml: &str,
    ) -> remotemedia_runtime_core::transport::PipelineSession {
        self.runner
            .create_stream_session(manifest(yaml))
            .await
            .expect("session")
    }

    /// Starts a session that must fail; returns the error text.
    pub async fn start_error(&self, yaml: &str) -> String {
        match self.runner.create_stream_session(manifest(yaml)).await {
            Ok(_) => panic!("the session started: {yaml}"),
            Err(e) => e.to_string(),
        }
    }
}

/// A scratch directory for files a test's Python nodes write (pids, markers).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("rm-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self(dir)
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }

    /// The pid a `WritesPid` node wrote to `file`.
    pub fn pid(&self, file: &str) -> u32 {
        std::fs::read_to_string(self.path(file))
            .expect("pid file")
            .trim()
            .parse()
            .expect("a pid")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn manifest(yaml: &str) -> Arc<Manifest> {
    Arc::new(Manifest::from_yaml(yaml).expect("valid manifest"))
}

pub fn item(data: RuntimeData) -> TransportData {
    TransportData::new(data)
}

pub fn text(s: &str) -> TransportData {
    TransportData::new(RuntimeData::Text(s.to_owned()))
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits up to `seconds` for `pid` to be gone.
pub fn gone_within(pid: u32, seconds: f64) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
    while std::time::Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    !alive(pid)
}

/// Pids of the live children of this process.
pub fn child_pids() -> Vec<u32> {
    let me = std::process::id().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let fields: Vec<&str> = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            if fields.get(1) == Some(&me.as_str()) && fields.first().is_some_and(|s| *s != "Z") {
                pids.push(pid);
            }
        }
    }
    pids
}
