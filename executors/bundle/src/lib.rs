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

pub use remotemedia_multiprocess::{workers_for_descriptors, MultiprocessConfig, PYTHON_ENV};
use remotemedia_runtime_core::nodes::registry::NodeRegistry;
use remotemedia_runtime_core::transport::PipelineRunner;
use remotemedia_runtime_core::Result;

/// Settings of every executor backend a binary ships.
#[derive(Debug, Clone, Default)]
pub struct RuntimeSetup {
    /// The `multiprocess` backend: Python nodes in worker processes.
    pub multiprocess: MultiprocessConfig,
}

impl RuntimeSetup {
    /// The registry: built-in nodes, the `multiprocess` backend and the Python node
    /// catalog.
    pub fn registry(&self) -> NodeRegistry {
        let mut registry = NodeRegistry::with_builtins();
        remotemedia_multiprocess::register(&mut registry, self.multiprocess.clone());
        registry
    }

    /// A runner over [`registry`](Self::registry).
    pub fn runner(&self) -> Result<PipelineRunner> {
        PipelineRunner::with_registry(self.registry())
    }
}
