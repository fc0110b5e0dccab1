//! [`MultiprocessBackend`]: the executor backend that creates [`PythonNode`]s.

use crate::config::{MultiprocessConfig, NodeSettings};
use crate::node::PythonNode;
use crate::process::{Launch, WorkerProcess};
use async_trait::async_trait;
use remotemedia_ipc::{ChannelSpec, Endpoint};
use remotemedia_runtime_core::manifest::NodeManifest;
use remotemedia_runtime_core::nodes::registry::{BackendSettings, ExecutorBackend, NodeSpec};
use remotemedia_runtime_core::nodes::NodeExecutor;
use remotemedia_runtime_core::{Error, Result};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The name manifests use: `executor: multiprocess`.
pub const BACKEND_NAME: &str = "multiprocess";

/// Runs Python nodes in worker processes, one per node instance, talking over iceoryx2
/// shared memory. See the [crate docs](crate).
#[derive(Debug)]
pub struct MultiprocessBackend {
    config: MultiprocessConfig,
    pool: Mutex<Vec<WorkerProcess>>,
    /// Workers assigned to nodes and still alive, and how many may be.
    running: Arc<AtomicUsize>,
    max_running: usize,
}

/// Holds one worker's place under the backend's limit; the node drops it with the worker.
#[derive(Debug)]
pub(crate) struct WorkerSlot(Arc<AtomicUsize>);

impl Drop for WorkerSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

static CHANNEL_COUNTER: AtomicU64 = AtomicU64::new(1);

/// A service name no other channel on this machine uses: process id, a counter, and the
/// clock (a reused pid cannot collide with files a dead process left behind).
fn unique_channel_name() -> String {
    let n = CHANNEL_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!("remotemedia/{}/{n}-{nanos:x}", std::process::id())
}

impl MultiprocessBackend {
    /// A backend with `config`; starts `config.warm_workers` interpreters right away.
    pub fn new(config: MultiprocessConfig) -> Self {
        let max_running = config.worker_limit();
        let backend = Self {
            config,
            pool: Mutex::new(Vec::new()),
            running: Arc::new(AtomicUsize::new(0)),
            max_running,
        };
        backend.refill_pool();
        backend
    }

    /// The backend's settings.
    pub fn config(&self) -> &MultiprocessConfig {
        &self.config
    }

    fn pool_launch(&self) -> Launch {
        Launch {
            python: self.config.default_python(),
            env: self
                .config
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            label: "pool".to_owned(),
        }
    }

    /// Starts interpreters until the pool holds `warm_workers` running ones.
    fn refill_pool(&self) {
        if self.config.warm_workers == 0 {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.retain_mut(WorkerProcess::is_running);
        while pool.len() < self.config.warm_workers {
            match WorkerProcess::spawn(&self.pool_launch()) {
                Ok(worker) => pool.push(worker),
                Err(e) => {
                    tracing::warn!(python = %self.config.default_python().display(), error = %e,
                        "cannot start a warm Python worker");
                    break;
                }
            }
        }
    }

    /// A warm worker, if the pool has one that fits `settings`.
    fn take_warm(&self, settings: &NodeSettings) -> Option<WorkerProcess> {
        let fits = !settings.own_python && settings.env == self.config.env;
        if !fits || self.config.warm_workers == 0 {
            return None;
        }
        let worker = {
            let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
            let mut found = None;
            while let Some(mut worker) = pool.pop() {
                if worker.is_running() {
                    found = Some(worker);
                    break;
                }
            }
            found
        };
        self.refill_pool();
        worker
    }

    /// Number of warm workers waiting.
    pub fn warm_count(&self) -> usize {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        pool.retain_mut(WorkerProcess::is_running);
        pool.len()
    }

    /// A place for one more worker, or the error saying there is none.
    fn take_slot(&self, node: &NodeManifest) -> Result<WorkerSlot> {
        let running = self.running.fetch_add(1, Ordering::AcqRel);
        let slot = WorkerSlot(Arc::clone(&self.running));
        if running >= self.max_running {
            return Err(Error::AtCapacity {
                what: format!(
                    "cannot start a Python worker for node '{}' ({}): {running} workers are running",
                    node.id, node.node_type
                ),
                limit: format!(
                    "{} workers (MultiprocessConfig::max_workers; by default what the descriptor limit backs, {} descriptors each)",
                    self.max_running,
                    crate::config::DESCRIPTORS_PER_WORKER
                ),
            });
        }
        Ok(slot)
    }

    /// Workers assigned to nodes and running now.
    pub fn running_workers(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    fn start_error(node: &NodeManifest, message: String) -> Error {
        Error::NodeInit {
            node_id: node.id.clone(),
            node_type: node.node_type.clone(),
            message,
        }
    }
}

#[async_trait]
impl ExecutorBackend for MultiprocessBackend {
    fn name(&self) -> &str {
        BACKEND_NAME
    }

    fn validate_node(&self, node: &NodeManifest) -> Result<Option<BackendSettings>> {
        let settings = NodeSettings::resolve(&self.config, node)?;
        Ok(Some(Arc::new(settings)))
    }

    async fn create_node(&self, spec: NodeSpec) -> Result<Box<dyn NodeExecutor>> {
        let node = &spec.node;
        // Resolved once when the manifest was validated; a spec built by hand is resolved
        // here.
        let settings = match spec.settings::<NodeSettings>() {
            Some(settings) => settings.clone(),
            None => NodeSettings::resolve(&self.config, node)?,
        };
        let slot = self.take_slot(node)?;
        let channel = ChannelSpec {
            name: unique_channel_name(),
            root: self.config.iceoryx2_root.clone(),
            prefix: self.config.iceoryx2_prefix.clone(),
            owner: None,
        };
        let endpoint = Endpoint::host(&channel).map_err(|e| {
            Self::start_error(
                node,
                format!("cannot set up shared memory for the worker: {e}"),
            )
        })?;
        let started = Instant::now();
        let mut worker = match self.take_warm(&settings) {
            Some(worker) => worker,
            None => {
                let launch = Launch {
                    python: settings.python.clone(),
                    env: settings
                        .env
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    label: node.id.clone(),
                };
                WorkerProcess::spawn(&launch).map_err(|e| {
                    Self::start_error(
                        node,
                        format!(
                            "cannot start the Python interpreter '{}': {e} (set python_executable in the node's multiprocess block, or {})",
                            settings.python.display(),
                            crate::config::PYTHON_ENV
                        ),
                    )
                })?
            }
        };
        let assignment = serde_json::json!({
            "channel": channel,
            "session_id": spec.session_id,
            "node_id": node.id,
            "node_type": node.node_type,
            "params": node.params,
            "modules": settings.modules,
            "python_path": settings.python_path,
            "env": settings.env,
        });
        if let Err(e) = worker.assign(&assignment) {
            let tail = worker.output_tail();
            return Err(Self::start_error(
                node,
                format!(
                    "the Python worker (pid {}) did not take its assignment: {e}\n{tail}",
                    worker.pid()
                ),
            ));
        }
        tracing::debug!(node_id = %node.id, node_type = %node.node_type, pid = worker.pid(),
            channel = %channel.name, "Python worker assigned");
        Ok(Box::new(PythonNode::new(
            node.id.clone(),
            node.node_type.clone(),
            settings,
            endpoint,
            Box::new(worker),
            started,
            Box::new(slot),
        )))
    }
}
