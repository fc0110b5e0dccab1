//! `remotemedia-docker`: Python nodes in isolated, resource-limited Docker containers,
//! shared across sessions, over the same worker protocol and iceoryx2 data plane as the
//! multiprocess executor.
//!
//! Register the backend, and a manifest node with a `docker:` block (or
//! `executor: docker`) runs in a container:
//!
//! ```no_run
//! use remotemedia_docker::{register, DockerConfig};
//! use remotemedia_runtime_core::manifest::Manifest;
//! use remotemedia_runtime_core::nodes::registry::NodeRegistry;
//! use remotemedia_runtime_core::transport::PipelineRunner;
//! use std::sync::Arc;
//!
//! # async fn run() -> remotemedia_runtime_core::Result<()> {
//! let mut registry = NodeRegistry::with_builtins();
//! remotemedia_multiprocess::register(&mut registry, Default::default()); // the Python node catalog
//! register(&mut registry, DockerConfig::default());
//! let runner = PipelineRunner::with_registry(registry)?;
//! let manifest = Arc::new(Manifest::from_yaml(r#"
//! nodes:
//!   - id: echo
//!     node_type: EchoNode
//!     docker:
//!       python_version: "3.13"
//!       resource_limits: { memory_mb: 512, cpu_cores: 1.0 }
//! "#)?);
//! let session = runner.create_stream_session(manifest).await?;
//! # Ok(()) }
//! ```
//!
//! # How a node runs
//!
//! - **Image**: built locally from Debian packages and pip wheels, tagged by a content
//!   hash of everything in it, reused while the hash holds (see [`image`]).
//! - **Container**: shared by every node instance whose image and limits are equal, each
//!   instance a separate worker process inside it; reference counted, stopped a grace
//!   period after its last node ends (see [`container`]). Started with no network, every
//!   capability dropped, `no-new-privileges`, a read-only root with a small `/tmp`
//!   tmpfs, a non-root user, memory (no swap), CPU and process limits, a private IPC
//!   namespace, and one host directory: its own, mounted at `/domain`.
//! - **Data plane**: the worker protocol of [`remotemedia_ipc`] over iceoryx2, whose
//!   files all live in that directory (on the host's tmpfs), so both sides map the same
//!   memory. A runtime running as root creates and opens those files as the container's
//!   user (per-thread filesystem ids), since iceoryx2 makes them owner-only.
//! - **Failure**: a worker that raises, crashes or hangs ends its session like a
//!   multiprocess worker; a container that is OOM-killed, exits or stops answering its
//!   health checks ends every session using it with an error naming the node and the
//!   cause; other containers and sessions keep running.

#![warn(missing_docs)]

mod backend;
pub mod config;
pub mod container;
pub mod image;
mod tools;
mod worker;

pub use backend::{DockerBackend, BACKEND_NAME};
pub use config::{DockerConfig, DockerNodeSettings};
pub use tools::{Listed, Listing};
pub use worker::DockerWorker;

use remotemedia_runtime_core::nodes::registry::NodeRegistry;
use std::sync::Arc;

/// Registers the backend (as `docker`) in `registry`; returns it. The Python node
/// catalog comes with the multiprocess backend's registration.
pub fn register(registry: &mut NodeRegistry, config: DockerConfig) -> Arc<DockerBackend> {
    let backend = Arc::new(DockerBackend::new(config));
    registry.register_backend(backend.clone());
    backend
}
