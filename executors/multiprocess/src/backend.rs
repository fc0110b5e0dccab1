//! [`MultiprocessBackend`]: the executor backend that creates [`PythonNode`]s.

use crate::config::{MultiprocessConfig, NodeSettings};
use crate::host::Host;
use crate::node::{CloseWhenEmpty, PythonNode, Release};
use crate::process::{Launch, WorkerProcess};
use async_trait::async_trait;
use remotemedia_ipc::{ChannelSpec, Endpoint};
use remotemedia_runtime_core::manifest::NodeManifest;
use remotemedia_runtime_core::nodes::registry::{BackendSettings, ExecutorBackend, NodeSpec};
use remotemedia_runtime_core::nodes::NodeExecutor;
use remotemedia_runtime_core::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The name manifests use: `executor: multiprocess`.
pub const BACKEND_NAME: &str = "multiprocess";

/// Runs Python nodes in worker processes talking over iceoryx2 shared memory; a process
/// hosts one node instance, or several of one type and configuration when the node
/// shares. See the [crate docs](crate).
#[derive(Debug)]
pub struct MultiprocessBackend {
    config: MultiprocessConfig,
    pool: Mutex<Vec<WorkerProcess>>,
    /// Workers assigned to nodes and still alive, and how many may be.
    running: Arc<AtomicUsize>,
    max_running: usize,
    shared: Arc<Shared>,
}

/// The processes that host instances of a shared node, by what they run.
#[derive(Debug, Default)]
struct Shared {
    hosts: Mutex<HashMap<String, Vec<Arc<Host>>>>,
    /// One start of a shared process at a time per key, so that concurrent sessions join
    /// it instead of each starting their own.
    starting: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// What the node class declared (instances per process), once a worker said so; by
    /// class (type and worker settings, not params), so it grows with configurations only.
    declared: Mutex<HashMap<String, usize>>,
    linger: Duration,
}

/// How long a shared process with no instance left stays for the next session (its
/// models stay loaded).
pub const SHARED_LINGER: Duration = Duration::from_secs(30);

impl Shared {
    fn starting_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(starting.entry(key.to_owned()).or_default())
    }

    /// Lets go of `key`'s start lock, and of its entry when no other session waits on it
    /// (the map holds only the keys being started: params from clients cannot grow it).
    fn forget_start(&self, key: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut starting = self.starting.lock().unwrap_or_else(|p| p.into_inner());
        let unused = starting
            .get(key)
            .is_some_and(|held| Arc::ptr_eq(held, &lock) && Arc::strong_count(held) == 2);
        if unused {
            starting.remove(key);
        }
    }

    /// A running shared process for `key` with a place free.
    fn find(&self, key: &str) -> Option<Arc<Host>> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let list = hosts.get_mut(key)?;
        list.retain(|host| host.is_running());
        list.iter().find(|host| host.has_room()).cloned()
    }

    fn add(&self, key: &str, host: &Arc<Host>) {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .entry(key.to_owned())
            .or_default()
            .push(Arc::clone(host));
    }

    /// Takes `host` out if it is still empty; whether it did.
    fn remove_if_empty(&self, key: &str, host: &Arc<Host>) -> bool {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let Some(list) = hosts.get_mut(key) else {
            return false;
        };
        if host.active() > 0 {
            return false;
        }
        let before = list.len();
        list.retain(|h| !Arc::ptr_eq(h, host));
        let removed = list.len() < before;
        if list.is_empty() {
            hosts.remove(key);
        }
        if removed {
            host.close_to_new();
        }
        removed
    }

    /// Process ids of the shared processes running now.
    fn pids(&self) -> Vec<u32> {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .values()
            .flatten()
            .filter(|h| h.is_running())
            .map(|h| h.pid())
            .collect()
    }

    /// Shared processes running now, and the instances they host.
    fn count(&self) -> (usize, usize) {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .values()
            .flatten()
            .filter(|h| h.is_running())
            .fold((0, 0), |(p, i), h| (p + 1, i + h.active()))
    }
}

/// Where a shared instance's process goes when the instance leaves: it stays for
/// [`SHARED_LINGER`] with no instance, for the next session, then closes.
struct Placement {
    shared: Arc<Shared>,
    key: String,
    shutdown_timeout: Duration,
}

impl Release for Placement {
    fn released(&self, host: &Arc<Host>, left: usize) -> bool {
        if left > 0 {
            return false;
        }
        if !host.is_running() {
            self.shared.remove_if_empty(&self.key, host);
            return false;
        }
        if self.shared.linger.is_zero() {
            return self.shared.remove_if_empty(&self.key, host);
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to wait on: close it now.
            return self.shared.remove_if_empty(&self.key, host);
        };
        let shared = Arc::clone(&self.shared);
        let key = self.key.clone();
        let host = Arc::clone(host);
        let timeout = self.shutdown_timeout;
        let linger = shared.linger;
        runtime.spawn(async move {
            tokio::time::sleep(linger).await;
            if shared.remove_if_empty(&key, &host) {
                tracing::debug!(pid = host.pid(), "closing an idle shared Python worker");
                host.close(timeout).await;
            }
        });
        false
    }
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
        let linger = config.shared_linger;
        let backend = Self {
            config,
            pool: Mutex::new(Vec::new()),
            running: Arc::new(AtomicUsize::new(0)),
            max_running,
            shared: Arc::new(Shared {
                linger,
                ..Shared::default()
            }),
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

    /// Shared worker processes running now, and the node instances they host.
    pub fn shared_workers(&self) -> (usize, usize) {
        self.shared.count()
    }

    /// Process ids of the shared worker processes running now.
    pub fn shared_worker_pids(&self) -> Vec<u32> {
        self.shared.pids()
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
        let started = Instant::now();
        let class = class_key(node, &settings);
        let declared = self
            .shared
            .declared
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&class)
            .copied();
        if settings.share.or(declared) == Some(1) {
            // A process of its own.
            let host = self.start_host(node, &settings, started).await?;
            return self.open(host, &spec, settings, started, Arc::new(CloseWhenEmpty));
        }
        let key = share_key(&class, node, &settings);
        let starting = self.shared.starting_lock(&key);
        let opened = {
            // Held until the instance is counted in its process, so concurrent sessions
            // never overfill one.
            let _one_start = starting.lock().await;
            let placed = match self.shared.find(&key) {
                Some(host) => Ok(host),
                None => self
                    .start_host(node, &settings, started)
                    .await
                    .inspect(|host| {
                        if settings.share.is_none() {
                            self.shared
                                .declared
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(class, host.capacity());
                        }
                        if host.capacity() > 1 {
                            self.shared.add(&key, host);
                        }
                    }),
            };
            placed.and_then(|host| {
                let release: Arc<dyn Release> = if host.capacity() == 1 {
                    Arc::new(CloseWhenEmpty)
                } else {
                    Arc::new(Placement {
                        shared: Arc::clone(&self.shared),
                        key: key.clone(),
                        shutdown_timeout: settings.shutdown_timeout,
                    })
                };
                self.open(host, &spec, settings, started, release)
            })
        };
        self.shared.forget_start(&key, starting);
        opened
    }
}

/// Which class a worker finds: node type and every setting of the worker (what the class
/// declares depends on nothing else).
fn class_key(node: &NodeManifest, settings: &NodeSettings) -> String {
    serde_json::json!({
        "node_type": node.node_type,
        "python": settings.python,
        "env": settings.env,
        "modules": settings.modules,
        "python_path": settings.python_path,
        "source": settings.source,
    })
    .to_string()
}

/// What a shared process runs: the class, its params and the manifest's `share`. Equal
/// keys may share a process.
fn share_key(class: &str, node: &NodeManifest, settings: &NodeSettings) -> String {
    serde_json::json!({
        "class": class,
        "params": node.params,
        "share": settings.share,
    })
    .to_string()
}

impl MultiprocessBackend {
    /// Starts a worker process for `node`'s type and waits until it found the class.
    async fn start_host(
        &self,
        node: &NodeManifest,
        settings: &NodeSettings,
        started: Instant,
    ) -> Result<Arc<Host>> {
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
        let mut worker = match self.take_warm(settings) {
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
            "node_type": node.node_type,
            "modules": settings.modules,
            "python_path": settings.python_path,
            "source": settings.source,
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
        Host::connect(
            Box::new(worker),
            endpoint,
            settings,
            started,
            Box::new(slot),
        )
        .await
        .map_err(|e| Self::start_error(node, e.to_string()))
    }

    fn open(
        &self,
        host: Arc<Host>,
        spec: &NodeSpec,
        settings: NodeSettings,
        started: Instant,
        release: Arc<dyn Release>,
    ) -> Result<Box<dyn NodeExecutor>> {
        let node = &spec.node;
        let python = PythonNode::open(host, node, &spec.session_id, settings, started, release)
            .map_err(|e| Self::start_error(node, e.to_string()))?;
        Ok(Box::new(python))
    }
}
