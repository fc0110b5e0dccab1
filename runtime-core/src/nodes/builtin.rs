//! Registration of the built-in node catalog (see `docs/NODES.md`).

use super::registry::{NodeFactory, NodeRegistry};
use super::schema::ParamsSchema;
use super::{Node, NodeExecutor, RustNodeExecutor};
use crate::Result;
use serde_json::Value;
use std::sync::Arc;

/// A factory for a built-in native node: name, aliases, schema and a constructor taking
/// the validated, normalized params.
pub(crate) struct BuiltinFactory {
    pub(crate) name: &'static str,
    pub(crate) aliases: &'static [&'static str],
    pub(crate) description: &'static str,
    pub(crate) schema: fn() -> ParamsSchema,
    pub(crate) build: fn(&Value) -> Result<Box<dyn Node>>,
}

impl NodeFactory for BuiltinFactory {
    fn create(&self, params: Value) -> Result<Box<dyn NodeExecutor>> {
        let node = (self.build)(&params)?;
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
    ];
    for factory in utility.into_iter().chain(super::audio::factories()) {
        registry.register_rust(Arc::new(factory));
    }
}

/// Reads a validated integer param (schemas guarantee presence and range).
pub(crate) fn int_param(params: &Value, name: &str, default: i64) -> i64 {
    params.get(name).and_then(Value::as_i64).unwrap_or(default)
}

/// Reads a validated number param.
pub(crate) fn num_param(params: &Value, name: &str, default: f64) -> f64 {
    params.get(name).and_then(Value::as_f64).unwrap_or(default)
}

/// Reads a validated boolean param.
pub(crate) fn bool_param(params: &Value, name: &str, default: bool) -> bool {
    params.get(name).and_then(Value::as_bool).unwrap_or(default)
}

/// Reads an optional validated integer param.
pub(crate) fn opt_int_param(params: &Value, name: &str) -> Option<i64> {
    params.get(name).and_then(Value::as_i64)
}
