//! [`DockerBackend`]: the executor backend that runs Python nodes in containers.

use crate::config::{DockerConfig, DockerNodeSettings, DOCKER_HOST_ENV};
use crate::container::{Containers, DOMAIN_IN_CONTAINER};
use crate::image::{ImageBuilder, Progress};
use crate::worker::DockerWorker;
use async_trait::async_trait;
use bollard::Docker;
use remotemedia_ipc::{ChannelSpec, Endpoint};
use remotemedia_multiprocess::{CloseWhenEmpty, Host, PythonNode};
use remotemedia_runtime_core::manifest::{Manifest, NodeManifest};
use remotemedia_runtime_core::nodes::registry::{BackendSettings, ExecutorBackend, NodeSpec};
use remotemedia_runtime_core::nodes::NodeExecutor;
use remotemedia_runtime_core::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The name manifests use: `executor: docker` (a `docker:` block implies it).
pub const BACKEND_NAME: &str = "docker";

/// The engine connection and what hangs off it, made on first use.
#[derive(Debug)]
struct Engine {
    docker: Docker,
    images: ImageBuilder,
    containers: Containers,
}

/// Runs Python nodes in containers; see the [crate docs](crate).
#[derive(Debug)]
pub struct DockerBackend {
    config: DockerConfig,
    engine: tokio::sync::OnceCell<Engine>,
}

static CHANNEL_COUNTER: AtomicU64 = AtomicU64::new(1);

fn start_error(node: &NodeManifest, message: impl std::fmt::Display) -> Error {
    Error::NodeInit {
        node_id: node.id.clone(),
        node_type: node.node_type.clone(),
        message: message.to_string(),
    }
}

/// Where the engine is, for messages.
fn engine_address(config: &DockerConfig) -> String {
    config
        .socket
        .clone()
        .or_else(|| {
            std::env::var(DOCKER_HOST_ENV)
                .ok()
                .filter(|v| !v.is_empty())
        })
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned())
}

impl DockerBackend {
    /// A backend with `config`. Nothing is contacted until a node needs it.
    pub fn new(config: DockerConfig) -> Self {
        Self {
            config,
            engine: tokio::sync::OnceCell::new(),
        }
    }

    /// The backend's settings.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    async fn engine(&self) -> std::result::Result<&Engine, String> {
        self.engine
            .get_or_try_init(|| async {
                let address = engine_address(&self.config);
                let hint = format!(
                    "cannot reach the Docker engine at {address}: is it running? (start it with `dockerd`, or point {DOCKER_HOST_ENV} at a running engine)"
                );
                let docker = match &self.config.socket {
                    Some(socket) => Docker::connect_with_unix(socket.trim_start_matches("unix://"), 120, bollard::API_DEFAULT_VERSION),
                    None => Docker::connect_with_local_defaults(),
                }
                .map_err(|e| format!("{hint}: {e}"))?;
                let docker = docker.negotiate_version().await.map_err(|e| format!("{hint}: {e}"))?;
                docker.ping().await.map_err(|e| format!("{hint}: {e}"))?;
                let containers = Containers::new(docker.clone(), self.config.clone());
                match containers.remove_stale().await {
                    Ok(removed) if !removed.is_empty() => {
                        tracing::info!(?removed, "removed containers that stopped runtimes left")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("cannot look for stale containers: {e}"),
                }
                Ok(Engine {
                    images: ImageBuilder::new(docker.clone(), self.config.clone()),
                    containers,
                    docker,
                })
            })
            .await
    }

    /// The engine client, connected (for tools: `remotemedia docker ls`).
    pub async fn docker(&self) -> std::result::Result<Docker, String> {
        Ok(self.engine().await?.docker.clone())
    }

    /// The containers of this runtime, if the engine was contacted yet.
    pub(crate) fn containers_if_connected(&self) -> std::result::Result<Containers, String> {
        self.engine
            .get()
            .map(|e| e.containers.clone())
            .ok_or_else(|| "not connected".to_owned())
    }

    /// The running containers of this runtime.
    pub async fn containers(&self) -> std::result::Result<Containers, String> {
        Ok(self.engine().await?.containers.clone())
    }

    /// Builds (or finds) the image of every `docker` node of `manifest`, reporting
    /// progress; returns `(node id, image tag)` pairs. Sessions then start without a build.
    pub async fn prepare(
        &self,
        manifest: &Manifest,
        progress: Progress,
    ) -> Result<Vec<(String, String)>> {
        let mut images = Vec::new();
        for node in &manifest.nodes {
            if node.requested_executor() != Some(BACKEND_NAME) {
                continue;
            }
            let settings = DockerNodeSettings::resolve(&self.config, node)?;
            let engine = self.engine().await.map_err(|e| start_error(node, e))?;
            let tag = engine
                .images
                .ensure(&settings.image, &progress)
                .await
                .map_err(|e| start_error(node, format!("cannot build its image: {e}")))?;
            images.push((node.id.clone(), tag));
        }
        Ok(images)
    }
}

impl Drop for DockerBackend {
    /// Removes this runtime's containers when the backend goes away with the process's
    /// runtime still able to reach the engine (at exit the lifelines would stop them
    /// anyway; this also removes them and their directories).
    fn drop(&mut self) {
        let Some(engine) = self.engine.get() else {
            return;
        };
        let leftovers: Vec<(String, std::path::PathBuf)> = engine
            .containers
            .running()
            .iter()
            .map(|c| (c.id.clone(), c.domain.clone()))
            .collect();
        if leftovers.is_empty() {
            return;
        }
        let config = self.config.clone();
        // The engine client belongs to the async runtime that made it, which may be
        // shutting down: remove with a client and a runtime of our own.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let docker = match &config.socket {
                    Some(socket) => Docker::connect_with_unix(
                        socket.trim_start_matches("unix://"),
                        30,
                        bollard::API_DEFAULT_VERSION,
                    ),
                    None => Docker::connect_with_local_defaults(),
                };
                let Ok(docker) = docker else { return };
                for (id, domain) in leftovers {
                    let options =
                        bollard::query_parameters::RemoveContainerOptionsBuilder::default()
                            .force(true)
                            .build();
                    let _ = docker.remove_container(&id, Some(options)).await;
                    if domain.starts_with(&config.domains_dir) {
                        let _ = std::fs::remove_dir_all(&domain);
                    }
                }
            });
        });
        let _ = cleanup.join();
    }
}

#[async_trait]
impl ExecutorBackend for DockerBackend {
    fn name(&self) -> &str {
        BACKEND_NAME
    }

    fn validate_node(&self, node: &NodeManifest) -> Result<Option<BackendSettings>> {
        let settings = DockerNodeSettings::resolve(&self.config, node)?;
        Ok(Some(Arc::new(settings)))
    }

    async fn create_node(&self, spec: NodeSpec) -> Result<Box<dyn NodeExecutor>> {
        let node = &spec.node;
        let settings = match spec.settings::<DockerNodeSettings>() {
            Some(settings) => settings.clone(),
            None => DockerNodeSettings::resolve(&self.config, node)?,
        };
        let engine = self.engine().await.map_err(|e| start_error(node, e))?;
        let node_id = node.id.clone();
        let progress: Progress = Arc::new(move |step: &str| {
            tracing::info!(node_id = %node_id, "{step}");
        });
        let image = engine
            .images
            .ensure(&settings.image, &progress)
            .await
            .map_err(|e| start_error(node, format!("cannot build its image: {e}")))?;
        let lease = engine
            .containers
            .acquire(&settings, &image)
            .await
            .map_err(|e| start_error(node, e))?;
        let container = Arc::clone(&lease.container);
        let started = Instant::now();
        let name = format!(
            "rm/{}/{}",
            std::process::id(),
            CHANNEL_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        // SAFETY: reading the process's effective uid.
        let root = unsafe { libc::geteuid() } == 0;
        let host_channel = ChannelSpec {
            name: name.clone(),
            root: format!("{}/", container.domain.display()),
            prefix: "rm_".to_owned(),
            // The container's user owns the domain's files; a root runtime acts as it.
            owner: root.then(|| self.config.user()),
        };
        let endpoint = Endpoint::host(&host_channel).map_err(|e| {
            start_error(
                node,
                format!(
                    "cannot set up shared memory with container {}: {e}",
                    container.name
                ),
            )
        })?;
        let worker_channel = ChannelSpec {
            root: format!("{DOMAIN_IN_CONTAINER}/"),
            owner: None,
            ..host_channel
        };
        let assignment = serde_json::json!({
            "channel": worker_channel,
            "node_type": node.node_type,
            "modules": settings.worker.modules,
            "python_path": settings.worker.python_path,
            "env": {},
        });
        let label = node.id.clone();
        let worker =
            tokio::task::spawn_blocking(move || DockerWorker::start(container, &assignment, label))
                .await
                .map_err(|e| start_error(node, e))?
                .map_err(|e| start_error(node, e))?;
        tracing::debug!(node_id = %node.id, container = %worker.container().name, pid = %remotemedia_multiprocess::Worker::pid(&worker),
            "Python worker assigned in a container");
        // One instance per worker: a container already hosts the workers of every node
        // instance with its image and limits.
        let worker_settings = settings.worker.clone();
        let host = Host::connect(
            Box::new(worker),
            endpoint,
            &worker_settings,
            started,
            Box::new(lease),
        )
        .await
        .map_err(|e| start_error(node, e))?;
        let python = PythonNode::open(
            host,
            node,
            &spec.session_id,
            worker_settings,
            started,
            Arc::new(CloseWhenEmpty),
        )
        .map_err(|e| start_error(node, e))?;
        Ok(Box::new(python))
    }
}
