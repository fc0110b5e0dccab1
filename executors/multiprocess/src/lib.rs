//! `remotemedia-multiprocess`: Python nodes in child processes, over iceoryx2 shared memory.
//!
//! This crate is an executor backend of the runtime core. Register it, and a manifest can
//! mix native and Python nodes freely; Python node types run here by default
//! (`executor: multiprocess` names it explicitly):
//!
//! ```no_run
//! use remotemedia_multiprocess::{register, MultiprocessConfig};
//! use remotemedia_runtime_core::manifest::Manifest;
//! use remotemedia_runtime_core::nodes::registry::NodeRegistry;
//! use remotemedia_runtime_core::transport::PipelineRunner;
//! use std::sync::Arc;
//!
//! # async fn run() -> remotemedia_runtime_core::Result<()> {
//! let mut registry = NodeRegistry::with_builtins();
//! register(&mut registry, MultiprocessConfig::default()); // + EchoNode, SileroVADNode, ...
//! let runner = PipelineRunner::with_registry(registry)?;
//! let manifest = Arc::new(Manifest::from_yaml(r#"
//! nodes:
//!   - { id: resample, node_type: FastResampleNode, params: { target_rate: 16000 } }
//!   - { id: asr, node_type: SpeechRecognitionNode }
//! "#)?);
//! let session = runner.create_stream_session(manifest).await?;
//! # Ok(()) }
//! ```
//!
//! # How a Python node runs
//!
//! A node instance runs in a worker process: `python -m remotemedia.worker` (the
//! `remotemedia` wheel, built from `transports/ffi`). The worker imports the runtime,
//! receives its assignment (node type, the shared-memory channel) on stdin, finds the node
//! class — registered with `@remotemedia.node` by a module it was told to import, or
//! published by an installed package under the `remotemedia.nodes` entry-point group —
//! and answers READY; then each instance it hosts is opened (params), initialized and
//! answers READY. A class that shares (`@remotemedia.node("T", share=True)`, or the
//! manifest's `multiprocess: {share: N}`) lets one worker host many sessions' instances of
//! one configuration, each with its own state, its model loaded once per process; others
//! get a worker per instance. Then every input item crosses as one frame of the
//! runtime's frame codec written into shared memory — the worker protocol of
//! [`remotemedia_ipc`], which the worker loop in the wheel shares; audio reaches Python as
//! a numpy array viewing that memory. Wake-ups are iceoryx2 events, so an idle worker
//! sleeps.
//!
//! # Failure
//!
//! A worker that raises, crashes, hangs (`process_timeout`) or fails to start
//! (`init_timeout`, import errors) ends *its* session with an error naming the node and
//! carrying the Python traceback or the worker's last output lines; other sessions are
//! untouched. Workers die with the runtime (`PR_SET_PDEATHSIG`), are killed with their
//! whole process group at session end, and leave no shared-memory files behind.
//!
//! # Settings
//!
//! [`MultiprocessConfig`] holds the defaults (interpreter: `$REMOTEMEDIA_PYTHON`, else
//! `python3`); a node may override them in its manifest entry:
//!
//! ```yaml
//! - id: asr
//!   node_type: SpeechRecognitionNode
//!   multiprocess:
//!     python_executable: /opt/venv/bin/python
//!     env: { OMP_NUM_THREADS: "1" }
//!     modules: [my_nodes]          # imported before the class is looked up
//!     python_path: [./nodes]       # put in front of sys.path
//!     init_timeout_ms: 30000
//!     process_timeout_ms: 60000    # 0: no limit
//!     shutdown_timeout_ms: 5000
//!     share: true                  # one worker for many sessions (false: one each)
//! ```

#![warn(missing_docs)]

mod backend;
pub mod catalog;
mod config;
mod host;
mod node;
pub mod process;
mod worker;

pub use backend::{MultiprocessBackend, BACKEND_NAME, SHARED_LINGER};
pub use config::{
    workers_for_descriptors, MultiprocessConfig, NodeSettings, DESCRIPTORS_PER_WORKER,
    IPC_PREFIX_ENV, IPC_ROOT_ENV, MAX_SHARE, PYTHON_ENV,
};
pub use host::Host;
pub use node::{CloseWhenEmpty, PythonNode, Release};
pub use worker::{Ended, Worker};

/// The user guide's Rust snippets, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/MULTIPROCESS.md")]
pub struct UserGuide;
/// The worker protocol this executor speaks (the `remotemedia-ipc` crate).
pub use remotemedia_ipc as ipc;

use remotemedia_runtime_core::nodes::registry::NodeRegistry;
use std::sync::Arc;

/// Registers the backend (as `multiprocess`) and the Python node catalog in `registry`;
/// returns the backend.
pub fn register(
    registry: &mut NodeRegistry,
    config: MultiprocessConfig,
) -> Arc<MultiprocessBackend> {
    let backend = Arc::new(MultiprocessBackend::new(config));
    registry.register_backend(backend.clone());
    catalog::register_catalog(registry);
    backend
}
