//! `remotemedia-executors`: what a RemoteMedia binary runs pipelines with — the built-in
//! native nodes plus every executor backend the project ships, with their node catalogs —
//! set up in one call.
//!
//! The `remotemedia` command, the gRPC server and the Python package all build their
//! runner here, so a manifest that runs in one runs in the others.
//!
//! ```no_run
//! use remotemedia_executors::RuntimeSetup;
//!
//! let mut setup = RuntimeSetup::default();
//! setup.multiprocess.python_executable = Some("/opt/venv/bin/python".into());
//! let runner = setup.runner()?;
//! assert!(runner.registry().contains("SpeechRecognitionNode"));
//! # Ok::<(), remotemedia_runtime_core::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use remotemedia_docker::{DockerBackend, DockerConfig};
pub use remotemedia_multiprocess::{workers_for_descriptors, MultiprocessConfig, PYTHON_ENV};
use remotemedia_runtime_core::nodes::registry::NodeRegistry;
use remotemedia_runtime_core::transport::PipelineRunner;
use remotemedia_runtime_core::Result;
use std::sync::Arc;

/// Settings of every executor backend a binary ships.
#[derive(Debug, Clone, Default)]
pub struct RuntimeSetup {
    /// The `multiprocess` backend: Python nodes in worker processes.
    pub multiprocess: MultiprocessConfig,
    /// The `docker` backend: Python nodes in containers. Its images get the runtime's
    /// Python packages from [`multiprocess`](Self::multiprocess)'s interpreter unless it
    /// names its own.
    pub docker: DockerConfig,
}

impl RuntimeSetup {
    /// The registry: built-in nodes, the `multiprocess` and `docker` backends and the
    /// Python node catalog.
    pub fn registry(&self) -> NodeRegistry {
        self.registry_and_docker().0
    }

    fn registry_and_docker(&self) -> (NodeRegistry, Arc<DockerBackend>) {
        let mut registry = NodeRegistry::with_builtins();
        remotemedia_multiprocess::register(&mut registry, self.multiprocess.clone());
        let mut docker = self.docker.clone();
        if docker.host_python.is_none() {
            docker.host_python = Some(self.multiprocess.default_python());
        }
        let backend = remotemedia_docker::register(&mut registry, docker);
        (registry, backend)
    }

    /// A runner over [`registry`](Self::registry).
    pub fn runner(&self) -> Result<PipelineRunner> {
        PipelineRunner::with_registry(self.registry())
    }

    /// A runner, and the `docker` backend registered in it (to prebuild images, list and
    /// stop containers).
    pub fn runner_and_docker(&self) -> Result<(PipelineRunner, Arc<DockerBackend>)> {
        let (registry, docker) = self.registry_and_docker();
        Ok((PipelineRunner::with_registry(registry)?, docker))
    }
}
