//! Registration of the built-in node catalog (see `docs/NODES.md`).

use super::params::{ConfigurableNode, NodeParams};
use super::registry::{NodeFactory, NodeRegistry};
use super::schema::ParamsSchema;
use super::{Node, NodeExecutor, RustNodeExecutor};
use crate::Result;
use serde_json::Value;
use std::sync::Arc;

/// A factory for a built-in native node: name, aliases, description, and the schema and
/// constructor of its typed params.
pub(crate) struct BuiltinFactory {
    name: &'static str,
    aliases: &'static [&'static str],
    description: &'static str,
    schema: fn() -> ParamsSchema,
    build: fn(&str, &Value) -> Result<Box<dyn Node>>,
}

impl BuiltinFactory {
    /// The factory of `N`, built from its params.
    pub(crate) fn of<N: ConfigurableNode>(
        name: &'static str,
        aliases: &'static [&'static str],
        description: &'static str,
    ) -> Self {
        Self {
            name,
            aliases,
            description,
            schema: <N::Params as NodeParams>::schema,
            build: build_node::<N>,
        }
    }
}

fn build_node<N: ConfigurableNode>(node_type: &str, params: &Value) -> Result<Box<dyn Node>> {
    let params = N::Params::from_normalized(node_type, params)?;
    Ok(Box::new(N::from_params(params)?))
}

impl NodeFactory for BuiltinFactory {
    fn create(&self, params: Value) -> Result<Box<dyn NodeExecutor>> {
        let node = (self.build)(self.name, &params)?;
        Ok(Box::new(RustNodeExecutor::new(self.name, node)))
    }
    fn node_type(&self) -> &str {
        self.name
    }
    fn aliases(&self) -> &[&str] {
        self.aliases
    }
    fn params_schema(&self) -> Option<ParamsSchema> {
        Some((self.schema)())
    }
    fn description(&self) -> &str {
        self.description
    }
}

/// Registers every built-in node into `registry`.
pub(crate) fn register_builtins(registry: &mut NodeRegistry) {
    let utility = [
        super::passthrough::factory(),
        super::calculator::factory(),
        super::text_collector::factory(),
        super::filter::factory(),
    ];
    for factory in utility
        .into_iter()
        .chain(super::audio::factories())
        .chain(super::video::factories())
    {
        registry.register_rust(Arc::new(factory));
    }
}
