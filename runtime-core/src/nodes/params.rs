//! Typed node params: one struct per node type, from which its schema, its defaults and
//! its parsing all come.
//!
//! A node type's params are a struct that derives `Deserialize` and implements
//! [`Default`] (the one place its defaults are written) and [`NodeParams`] (its schema,
//! which reads the defaults from `Self::default()`). The registry validates a manifest's
//! params against the schema — types, ranges, unknown keys, snake_case normalization,
//! defaults filled in — and the factory then deserializes the normalized params into the
//! struct. A node built with [`ConfigurableNode::from_params`] therefore sees exactly what
//! the schema promised; there is no second fallback that could disagree with it.
//!
//! ```
//! use remotemedia_runtime_core::data::RuntimeData;
//! use remotemedia_runtime_core::nodes::params::{ConfigurableNode, NodeParams};
//! use remotemedia_runtime_core::nodes::registry::{FnNodeFactory, NodeRegistry};
//! use remotemedia_runtime_core::nodes::schema::ParamsSchema;
//! use remotemedia_runtime_core::nodes::{Node, Outputs};
//! use std::sync::Arc;
//!
//! #[derive(serde::Deserialize)]
//! #[serde(default, deny_unknown_fields)]
//! struct RepeatParams {
//!     times: u32,
//! }
//!
//! impl Default for RepeatParams {
//!     fn default() -> Self {
//!         Self { times: 2 }
//!     }
//! }
//!
//! impl NodeParams for RepeatParams {
//!     fn schema() -> ParamsSchema {
//!         let d = Self::default();
//!         ParamsSchema::new().integer("times", Some(d.times.into()), 1, 100, "copies of each item")
//!     }
//! }
//!
//! struct Repeat(u32);
//!
//! impl Node for Repeat {
//!     fn process(&mut self, input: RuntimeData, out: &mut Outputs) -> remotemedia_runtime_core::Result<()> {
//!         for _ in 1..self.0 {
//!             out.push(input.clone());
//!         }
//!         out.push(input);
//!         Ok(())
//!     }
//!     fn params_schema() -> Option<ParamsSchema> {
//!         Some(RepeatParams::schema())
//!     }
//! }
//!
//! impl ConfigurableNode for Repeat {
//!     type Params = RepeatParams;
//!     fn from_params(params: RepeatParams) -> remotemedia_runtime_core::Result<Self> {
//!         Ok(Repeat(params.times))
//!     }
//! }
//!
//! let mut registry = NodeRegistry::new();
//! registry.register_rust(Arc::new(FnNodeFactory::configurable::<Repeat>("Repeat")));
//! assert!(registry.contains("Repeat"));
//! ```

use super::schema::ParamsSchema;
use super::Node;
use crate::error::ParamProblem;
use crate::{Error, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A node type's params as one typed struct.
///
/// Implement [`Default`] with the defaults and build [`schema`](NodeParams::schema) from
/// `Self::default()`, so every default is written once.
pub trait NodeParams: Default + DeserializeOwned + Send + 'static {
    /// The params' schema (names, types, ranges, descriptions; defaults from `Default`).
    fn schema() -> ParamsSchema;

    /// Builds the params from a node's params as the schema normalized them.
    ///
    /// # Errors
    /// A param whose value the struct cannot hold, named with the node type.
    fn from_normalized(node_type: &str, params: &Value) -> Result<Self> {
        let value = match params {
            Value::Null => Value::Object(Default::default()),
            other => other.clone(),
        };
        serde_json::from_value(value).map_err(|e| Error::InvalidParam {
            node_id: String::new(),
            node_type: node_type.to_owned(),
            param: "params".to_owned(),
            problem: Box::new(ParamProblem::Invalid(e.to_string())),
        })
    }
}

/// Params of node types that take none.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

impl NodeParams for NoParams {
    fn schema() -> ParamsSchema {
        ParamsSchema::new()
    }
}

/// A native node built from its typed params; see the [module docs](self).
pub trait ConfigurableNode: Node + Sized {
    /// The node type's params.
    type Params: NodeParams;

    /// Builds a node from validated params.
    fn from_params(params: Self::Params) -> Result<Self>;
}
