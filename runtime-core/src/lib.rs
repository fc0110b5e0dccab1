//! # remotemedia-runtime-core
//!
//! The transport-agnostic execution engine of RemoteMedia: pipeline manifests, the node
//! registry and built-in nodes, the executor and its streaming sessions, and the traits
//! transports implement. It depends on no transport or executor crate (no tonic, prost,
//! pyo3, webrtc, iceoryx2, ...): those plug in from sibling crates.
//!
//! ```
//! use remotemedia_runtime_core::data::RuntimeData;
//! use remotemedia_runtime_core::manifest::Manifest;
//! use remotemedia_runtime_core::transport::{PipelineRunner, TransportData};
//! use std::sync::Arc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> remotemedia_runtime_core::Result<()> {
//! let runner = PipelineRunner::new()?;
//! let manifest = Arc::new(Manifest::from_json(
//!     r#"{"version": "v1", "nodes": [{"id": "echo", "node_type": "PassThrough"}]}"#,
//! )?);
//! let output = runner
//!     .execute_unary(manifest, TransportData::new(RuntimeData::Text("hello".into())))
//!     .await?;
//! assert_eq!(output.data, RuntimeData::Text("hello".into()));
//! # Ok(())
//! # }
//! ```
//!
//! Modules: [`data`] (the data types), [`ingestion`] (media sources: files, stdin, plugins),
//! [`manifest`] (parsing and validation), [`pipeline`] (a manifest validated against a
//! registry), [`policy`] (what client manifests may ask for), [`nodes`]
//! (node traits, registry, built-in catalog), [`transport`] (runner, sessions, transport
//! traits), [`runtime`] (task spawning and clock, for non-native hosts).

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod data;
mod error;
mod executor;
pub mod ingestion;
pub mod manifest;
pub mod nodes;
pub mod pipeline;
pub mod policy;
pub mod runtime;
pub mod transport;

pub use error::{Error, ParamProblem, Result};
/// JSON values, as used for params and `RuntimeData::Json`.
pub use serde_json::Value;
