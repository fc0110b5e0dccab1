//! The node registry: which node types exist and how to build them.
//!
//! One registry serves validation, listing and execution. It holds
//! - native factories ([`NodeFactory`]), registered with
//!   [`register_rust`](NodeRegistry::register_rust) or the macros
//!   [`register_rust_node!`](crate::register_rust_node) and
//!   [`register_rust_node_default!`](crate::register_rust_node_default);
//! - Python node type names, registered with
//!   [`register_python`](NodeRegistry::register_python) or
//!   [`register_python_node!`](crate::register_python_node) /
//!   [`register_python_nodes!`](crate::register_python_nodes), which run through an
//!   executor backend;
//! - executor backends ([`ExecutorBackend`]), implemented by sibling crates, which create
//!   out-of-process node instances.
//!
//! [`NodeRegistry::new`] is empty; [`NodeRegistry::with_builtins`] holds the built-in
//! catalog. Registering a type that exists replaces it.

use super::params::{ConfigurableNode, NodeParams};
use super::schema::ParamsSchema;
use super::{Node, NodeExecutor, RustNodeExecutor};
use crate::error::ParamProblem;
use crate::manifest::{Manifest, NodeManifest};
use crate::pipeline::ValidatedPipeline;
use crate::{Error, Result};
use async_trait::async_trait;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Builds native node instances of one type from params.
///
/// ```
/// use remotemedia_runtime_core::nodes::registry::{NodeFactory, NodeRegistry};
/// use remotemedia_runtime_core::nodes::{NodeExecutor, PassThroughNode, RustNodeExecutor};
/// use remotemedia_runtime_core::Result;
/// use serde_json::Value;
/// use std::sync::Arc;
///
/// struct EchoFactory;
/// impl NodeFactory for EchoFactory {
///     fn create(&self, _params: Value) -> Result<Box<dyn NodeExecutor>> {
///         Ok(Box::new(RustNodeExecutor::new("Echo", Box::new(PassThroughNode))))
///     }
///     fn node_type(&self) -> &str { "Echo" }
/// }
///
/// let mut registry = NodeRegistry::new();
/// registry.register_rust(Arc::new(EchoFactory));
/// assert!(registry.contains("Echo"));
/// ```
pub trait NodeFactory: Send + Sync {
    /// Creates one instance. `params` are the manifest's params, already validated and
    /// normalized when [`params_schema`](NodeFactory::params_schema) returns a schema.
    fn create(&self, params: Value) -> Result<Box<dyn NodeExecutor>>;

    /// The type name manifests use.
    fn node_type(&self) -> &str;

    /// Other names that resolve to this type.
    fn aliases(&self) -> &[&str] {
        &[]
    }

    /// The params schema; `None` accepts any params unchecked.
    fn params_schema(&self) -> Option<ParamsSchema> {
        None
    }

    /// One-line description for listings.
    fn description(&self) -> &str {
        ""
    }
}

/// What a backend made of a node's executor settings (its `multiprocess:` or `docker:`
/// block) when it validated them; handed back in [`NodeSpec::settings`] so the block is
/// parsed once.
pub type BackendSettings = Arc<dyn std::any::Any + Send + Sync>;

/// What an executor backend needs to create one out-of-process node instance.
#[derive(Clone)]
pub struct NodeSpec {
    /// The session the instance belongs to.
    pub session_id: String,
    /// The node's manifest entry (id, type, executor blocks), with its params validated
    /// and normalized.
    pub node: NodeManifest,
    /// What [`ExecutorBackend::validate_node`] returned for this node.
    pub settings: Option<BackendSettings>,
}

impl std::fmt::Debug for NodeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSpec")
            .field("session_id", &self.session_id)
            .field("node", &self.node)
            .field("settings", &self.settings.is_some())
            .finish()
    }
}

impl NodeSpec {
    /// A spec for one instance of `node` in `session_id`, without settings from
    /// validation (the backend resolves the node's block itself).
    pub fn new(session_id: impl Into<String>, node: NodeManifest) -> Self {
        Self {
            session_id: session_id.into(),
            node,
            settings: None,
        }
    }

    /// The settings [`ExecutorBackend::validate_node`] returned, as the backend's type.
    pub fn settings<T: std::any::Any + Send + Sync>(&self) -> Option<&T> {
        self.settings.as_ref()?.downcast_ref::<T>()
    }
}

/// Creates node instances outside the runtime's process: Python child processes,
/// containers, remote workers.
///
/// A backend registers under a name (`"multiprocess"`, `"docker"`, ...); manifest nodes
/// reach it with `executor: <name>` (a `docker:` block implies `docker`), and Python node
/// types registered without an explicit executor use `"multiprocess"`. The instance it
/// returns is driven like any other [`NodeExecutor`]; a backend reports failures as errors
/// (the executor names the node).
///
/// # Overriding default impls
///
/// [`validate_node`](Self::validate_node) accepts every node by default. Override it to
/// check the node's executor block before any session starts and return what you parsed:
/// validation runs once per manifest, and [`create_node`](Self::create_node) receives the
/// result in [`NodeSpec::settings`] for every session started from it.
#[async_trait]
pub trait ExecutorBackend: Send + Sync {
    /// The name manifests use in `executor:`.
    fn name(&self) -> &str;

    /// Checks a manifest node before any session starts (e.g. its `docker:` block) and
    /// returns the settings it parsed, if any.
    fn validate_node(&self, node: &NodeManifest) -> Result<Option<BackendSettings>> {
        let _ = node;
        Ok(None)
    }

    /// Keys of this backend's block (the block named like the backend) that a manifest from
    /// a client may set without the operator opening them: settings that choose no program,
    /// path, environment, mount or image and cannot make a node cost unbounded resources.
    /// None by default; see [`ExecutionPolicy`](crate::policy::ExecutionPolicy).
    fn client_settings(&self) -> &[&str] {
        &[]
    }

    /// Creates one node instance for a session.
    async fn create_node(&self, spec: NodeSpec) -> Result<Box<dyn NodeExecutor>>;
}

/// A [`NodeFactory`] built from a closure; what the registration macros produce.
pub struct FnNodeFactory {
    node_type: String,
    schema: Option<ParamsSchema>,
    build: Box<dyn Fn(Value) -> Result<Box<dyn NodeExecutor>> + Send + Sync>,
}

impl FnNodeFactory {
    /// A factory for `node_type` (a Rust path like `my::MyNode` is cut to `MyNode`).
    pub fn new<F>(node_type: &str, schema: Option<ParamsSchema>, build: F) -> Self
    where
        F: Fn(Value) -> Result<Box<dyn NodeExecutor>> + Send + Sync + 'static,
    {
        Self {
            node_type: short_type_name(node_type),
            schema,
            build: Box::new(build),
        }
    }

    /// A factory for a [`ConfigurableNode`]: its schema comes from its params type, and
    /// each instance is built from the validated params deserialized into that type.
    pub fn configurable<N: ConfigurableNode>(node_type: &str) -> Self {
        let name = short_type_name(node_type);
        let type_name = name.clone();
        Self::new(&name, Some(N::Params::schema()), move |params| {
            let params = N::Params::from_normalized(&type_name, &params)?;
            Ok(Box::new(RustNodeExecutor::new(
                type_name.clone(),
                Box::new(N::from_params(params)?),
            )) as Box<dyn NodeExecutor>)
        })
    }

    /// A factory for a native [`Node`] type built by `build`; used by the macros.
    pub fn for_node<N, F>(node_type: &str, build: F) -> Self
    where
        N: Node,
        F: Fn(Value) -> Option<Result<N>> + Send + Sync + 'static,
    {
        let name = short_type_name(node_type);
        let type_name = name.clone();
        Self::new(&name, N::params_schema(), move |params| {
            match build(params) {
                Some(Ok(node)) => Ok(Box::new(RustNodeExecutor::new(
                    type_name.clone(),
                    Box::new(node),
                )) as Box<dyn NodeExecutor>),
                Some(Err(e)) => Err(e),
                None => Err(Error::InvalidParam {
                    node_id: String::new(),
                    node_type: type_name.clone(),
                    param: "params".to_owned(),
                    problem: Box::new(ParamProblem::Invalid(
                        "a param the node needs is missing or has the wrong type".to_owned(),
                    )),
                }),
            }
        })
    }
}

/// A Rust path like `my::MyNode` as the type name manifests use: `MyNode`.
fn short_type_name(node_type: &str) -> String {
    node_type
        .rsplit("::")
        .next()
        .unwrap_or(node_type)
        .trim()
        .to_owned()
}

impl std::fmt::Debug for FnNodeFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnNodeFactory")
            .field("node_type", &self.node_type)
            .finish_non_exhaustive()
    }
}

impl NodeFactory for FnNodeFactory {
    fn create(&self, params: Value) -> Result<Box<dyn NodeExecutor>> {
        (self.build)(params)
    }
    fn node_type(&self) -> &str {
        &self.node_type
    }
    fn params_schema(&self) -> Option<ParamsSchema> {
        self.schema.clone()
    }
}

/// Where a node type runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// Native Rust, in process.
    Rust,
    /// Python, through an executor backend.
    Python,
}

/// A registered node type, as listed by [`NodeRegistry::node_types`].
#[derive(Debug, Clone)]
pub struct NodeTypeInfo {
    /// The type name.
    pub node_type: String,
    /// Other names for it.
    pub aliases: Vec<String>,
    /// Native or Python.
    pub kind: NodeKind,
    /// The params schema, when the type declares one.
    pub schema: Option<ParamsSchema>,
    /// One-line description.
    pub description: String,
}

impl NodeTypeInfo {
    /// The entry as JSON: `{node_type, aliases, kind, description, params}` where `params`
    /// is a JSON Schema (or null).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "node_type": self.node_type,
            "aliases": self.aliases,
            "kind": self.kind,
            "description": self.description,
            "params": self.schema.as_ref().map(ParamsSchema::to_json_schema),
        })
    }
}

/// How a manifest node will be instantiated; see [`NodeRegistry::resolve`].
#[derive(Clone)]
pub enum ResolvedNode {
    /// In process, from a native factory, with validated params.
    Rust {
        /// The factory.
        factory: Arc<dyn NodeFactory>,
        /// Params after schema validation and normalization.
        params: Value,
    },
    /// Through an executor backend.
    Backend {
        /// The backend.
        backend: Arc<dyn ExecutorBackend>,
        /// Params after schema validation when the type declares a schema (see
        /// [`NodeRegistry::register_python_type`]), as written otherwise.
        params: Value,
        /// What the backend's [`validate_node`](ExecutorBackend::validate_node) returned.
        settings: Option<BackendSettings>,
    },
}

impl ResolvedNode {
    /// The node's params, validated and normalized.
    pub fn params(&self) -> &Value {
        match self {
            ResolvedNode::Rust { params, .. } | ResolvedNode::Backend { params, .. } => params,
        }
    }
}

impl std::fmt::Debug for ResolvedNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResolvedNode::Rust { factory, params } => f
                .debug_struct("Rust")
                .field("node_type", &factory.node_type())
                .field("params", params)
                .finish(),
            ResolvedNode::Backend {
                backend, params, ..
            } => f
                .debug_struct("Backend")
                .field("backend", &backend.name())
                .field("params", params)
                .finish_non_exhaustive(),
        }
    }
}

/// What the registry knows of a Python node type: its name and, optionally, the params it
/// takes (checked before any process starts) and a description for listings.
#[derive(Debug, Clone, Default)]
pub struct PythonNodeType {
    /// The class name manifests use.
    pub node_type: String,
    /// The params schema; `None` passes params to the node unchecked.
    pub schema: Option<ParamsSchema>,
    /// One-line description for listings.
    pub description: String,
}

impl PythonNodeType {
    /// A type known by name only (params unchecked).
    pub fn new(node_type: impl Into<String>) -> Self {
        Self {
            node_type: node_type.into(),
            ..Self::default()
        }
    }

    /// Sets the params schema (builder style).
    pub fn with_schema(mut self, schema: ParamsSchema) -> Self {
        self.schema = Some(schema);
        self
    }

    /// Sets the description (builder style).
    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }
}

/// The executor Python node types use when the manifest does not pick one.
pub const DEFAULT_PYTHON_EXECUTOR: &str = "multiprocess";

/// Node types and executor backends; see the [module docs](self).
#[derive(Default, Clone)]
pub struct NodeRegistry {
    /// Canonical name → factory.
    rust: BTreeMap<String, Arc<dyn NodeFactory>>,
    /// Alias → canonical name.
    aliases: HashMap<String, String>,
    python: BTreeMap<String, PythonNodeType>,
    backends: BTreeMap<String, Arc<dyn ExecutorBackend>>,
}

impl std::fmt::Debug for NodeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRegistry")
            .field("rust", &self.rust.keys().collect::<Vec<_>>())
            .field("python", &self.python.keys().collect::<Vec<_>>())
            .field("backends", &self.backends.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl NodeRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry holding every built-in node of the catalog.
    pub fn with_builtins() -> Self {
        let mut registry = Self::new();
        super::builtin::register_builtins(&mut registry);
        registry
    }

    /// Registers (or replaces) a native node type and its aliases.
    pub fn register_rust(&mut self, factory: Arc<dyn NodeFactory>) {
        let name = factory.node_type().to_owned();
        for alias in factory.aliases() {
            self.aliases.insert((*alias).to_owned(), name.clone());
        }
        self.aliases.remove(&name);
        self.python.remove(&name);
        self.rust.insert(name, factory);
    }

    /// Registers (or replaces) a Python node type by class name. Instances are created by
    /// the executor backend the manifest names (default: `multiprocess`).
    pub fn register_python(&mut self, node_type: impl Into<String>) {
        self.register_python_type(PythonNodeType::new(node_type));
    }

    /// Registers (or replaces) a Python node type with its params schema and description,
    /// so manifests are checked before any process starts.
    pub fn register_python_type(&mut self, node: PythonNodeType) {
        let name = node.node_type.clone();
        self.rust.remove(&name);
        self.aliases.remove(&name);
        self.python.insert(name, node);
    }

    /// The registered Python node type named `node_type`.
    pub fn python_type(&self, node_type: &str) -> Option<&PythonNodeType> {
        self.python.get(node_type)
    }

    /// Registers (or replaces) an executor backend under its [`name`](ExecutorBackend::name).
    pub fn register_backend(&mut self, backend: Arc<dyn ExecutorBackend>) {
        self.backends.insert(backend.name().to_owned(), backend);
    }

    /// The backend registered under `name`.
    pub fn backend(&self, name: &str) -> Option<&Arc<dyn ExecutorBackend>> {
        self.backends.get(name)
    }

    /// Whether `node_type` (or an alias of it) is registered.
    pub fn contains(&self, node_type: &str) -> bool {
        self.rust_factory(node_type).is_some() || self.python.contains_key(node_type)
    }

    /// The native factory for a type name or alias.
    pub fn rust_factory(&self, node_type: &str) -> Option<&Arc<dyn NodeFactory>> {
        self.rust.get(node_type).or_else(|| {
            self.aliases
                .get(node_type)
                .and_then(|canonical| self.rust.get(canonical))
        })
    }

    /// Every registered type, native first, sorted by name.
    pub fn node_types(&self) -> Vec<NodeTypeInfo> {
        let mut out: Vec<NodeTypeInfo> = self
            .rust
            .iter()
            .map(|(name, factory)| NodeTypeInfo {
                node_type: name.clone(),
                aliases: factory.aliases().iter().map(|a| (*a).to_owned()).collect(),
                kind: NodeKind::Rust,
                schema: factory.params_schema(),
                description: factory.description().to_owned(),
            })
            .collect();
        out.extend(self.python.iter().map(|(name, python)| NodeTypeInfo {
            node_type: name.clone(),
            aliases: Vec::new(),
            kind: NodeKind::Python,
            schema: python.schema.clone(),
            description: python.description.clone(),
        }));
        out
    }

    /// Decides how a manifest node runs and validates its params, with errors naming the
    /// node: unknown type (with a suggestion), bad params, missing backend.
    pub fn resolve(&self, node: &NodeManifest) -> Result<ResolvedNode> {
        match node.requested_executor() {
            None | Some("native") => {
                if let Some(factory) = self.rust_factory(&node.node_type) {
                    let params = match factory.params_schema() {
                        Some(schema) => schema.validate(&node.id, &node.node_type, &node.params)?,
                        None if node.params.is_null() => Value::Object(Default::default()),
                        None => node.params.clone(),
                    };
                    return Ok(ResolvedNode::Rust {
                        factory: Arc::clone(factory),
                        params,
                    });
                }
                if node.requested_executor().is_none() && self.python.contains_key(&node.node_type)
                {
                    return self.resolve_backend(node, DEFAULT_PYTHON_EXECUTOR);
                }
                Err(Error::UnknownNodeType {
                    node_id: node.id.clone(),
                    node_type: node.node_type.clone(),
                    suggestion: self.suggest(&node.node_type),
                })
            }
            Some(executor) => self.resolve_backend(node, executor),
        }
    }

    fn resolve_backend(&self, node: &NodeManifest, executor: &str) -> Result<ResolvedNode> {
        let backend = self
            .backends
            .get(executor)
            .ok_or_else(|| Error::NoExecutorBackend {
                node_id: node.id.clone(),
                node_type: node.node_type.clone(),
                executor: executor.to_owned(),
                available: std::iter::once("native")
                    .chain(self.backends.keys().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let params = match self
            .python
            .get(&node.node_type)
            .and_then(|p| p.schema.as_ref())
        {
            Some(schema) => schema.validate(&node.id, &node.node_type, &node.params)?,
            None if node.params.is_null() => Value::Object(Default::default()),
            None => node.params.clone(),
        };
        let settings = backend.validate_node(node)?;
        Ok(ResolvedNode::Backend {
            backend: Arc::clone(backend),
            params,
            settings,
        })
    }

    /// Validates a whole manifest — structure, then every node's type, params and executor
    /// — into a pipeline sessions start from without checking again.
    pub fn validate(&self, manifest: &Manifest) -> Result<ValidatedPipeline> {
        self.validate_arc(Arc::new(manifest.clone()))
    }

    /// [`validate`](Self::validate) for a manifest already behind an `Arc` (not copied).
    pub fn validate_arc(&self, manifest: Arc<Manifest>) -> Result<ValidatedPipeline> {
        let graph = manifest.validate_structure()?;
        let nodes = manifest
            .nodes
            .iter()
            .map(|node| self.resolve(node))
            .collect::<Result<Vec<_>>>()?;
        Ok(ValidatedPipeline::new(manifest, graph, nodes))
    }

    fn suggest(&self, unknown: &str) -> Option<String> {
        let lower = unknown.to_ascii_lowercase();
        self.rust
            .keys()
            .chain(self.aliases.keys())
            .chain(self.python.keys())
            .map(|name| (edit_distance(&lower, &name.to_ascii_lowercase()), name))
            .filter(|(d, name)| *d <= 3.max(name.len() / 4))
            .min_by_key(|(d, _)| *d)
            .map(|(_, name)| name.clone())
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Registers a native node type that implements `Default` under its type name.
///
/// ```
/// use remotemedia_runtime_core::nodes::registry::NodeRegistry;
/// use remotemedia_runtime_core::nodes::PassThroughNode;
/// use remotemedia_runtime_core::register_rust_node_default;
///
/// let mut registry = NodeRegistry::new();
/// register_rust_node_default!(registry, PassThroughNode);
/// assert!(registry.contains("PassThroughNode"));
/// ```
#[macro_export]
macro_rules! register_rust_node_default {
    ($registry:expr, $node:ty) => {
        $registry.register_rust(::std::sync::Arc::new(
            $crate::nodes::registry::FnNodeFactory::for_node::<$node, _>(
                stringify!($node),
                |_params: $crate::Value| {
                    ::std::option::Option::Some(::std::result::Result::Ok(
                        <$node as ::std::default::Default>::default(),
                    ))
                },
            ),
        ))
    };
}

/// Registers a native node type built by a closure from its params.
///
/// The closure body may apply `?` to `Option`s (a missing or mistyped param) and ends in
/// `Ok(node)`; a `None` becomes an "invalid param" error naming the node.
///
/// ```
/// use remotemedia_runtime_core::nodes::registry::NodeRegistry;
/// use remotemedia_runtime_core::nodes::AudioChunkerNode;
/// use remotemedia_runtime_core::register_rust_node;
/// use serde_json::Value;
///
/// let mut registry = NodeRegistry::new();
/// register_rust_node!(registry, AudioChunkerNode, |params: Value| {
///     let chunk_size = params.get("chunk_size")?.as_u64()? as usize;
///     Ok(AudioChunkerNode::new(chunk_size))
/// });
/// assert!(registry.contains("AudioChunkerNode"));
/// ```
#[macro_export]
macro_rules! register_rust_node {
    ($registry:expr, $node:ty, |$params:ident : $params_ty:ty| $body:expr) => {
        $registry.register_rust(::std::sync::Arc::new(
            $crate::nodes::registry::FnNodeFactory::for_node::<$node, _>(
                stringify!($node),
                |$params: $params_ty| -> ::std::option::Option<$crate::Result<$node>> {
                    ::std::option::Option::Some($body)
                },
            ),
        ))
    };
    ($registry:expr, $node:ty, |$params:ident| $body:expr) => {
        $crate::register_rust_node!($registry, $node, |$params: $crate::Value| $body)
    };
}

/// Registers a Python node type by class name (run through an executor backend).
///
/// ```
/// use remotemedia_runtime_core::nodes::registry::NodeRegistry;
/// use remotemedia_runtime_core::register_python_node;
///
/// let mut registry = NodeRegistry::new();
/// register_python_node!(registry, "OmniASRNode");
/// assert!(registry.contains("OmniASRNode"));
/// ```
#[macro_export]
macro_rules! register_python_node {
    ($registry:expr, $node_type:expr) => {
        $registry.register_python($node_type)
    };
}

/// Registers several Python node types at once.
///
/// ```
/// use remotemedia_runtime_core::nodes::registry::NodeRegistry;
/// use remotemedia_runtime_core::register_python_nodes;
///
/// let mut registry = NodeRegistry::new();
/// register_python_nodes!(registry, ["KokoroTTSNode", "SimplePyTorchNode"]);
/// assert!(registry.contains("KokoroTTSNode"));
/// ```
#[macro_export]
macro_rules! register_python_nodes {
    ($registry:expr, [$($node_type:expr),* $(,)?]) => {
        $( $registry.register_python($node_type); )*
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_type_suggests_the_closest_name() {
        let registry = NodeRegistry::with_builtins();
        let node = NodeManifest::new("c", "AudioChunker");
        let err = registry.resolve(&node).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node 'c': unknown node type 'AudioChunker' (did you mean 'AudioChunkerNode'?)"
        );
    }

    #[test]
    fn python_type_without_backend_is_a_clear_error() {
        let mut registry = NodeRegistry::new();
        registry.register_python("WhisperNode");
        let err = registry
            .resolve(&NodeManifest::new("asr", "WhisperNode"))
            .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "node 'asr' (WhisperNode) needs the 'multiprocess' executor, which is not available here (available: native)"
            ),
            "{err}"
        );
    }

    /// A backend that is never asked to create anything in these tests.
    struct UnusedBackend;

    #[async_trait]
    impl ExecutorBackend for UnusedBackend {
        fn name(&self) -> &str {
            DEFAULT_PYTHON_EXECUTOR
        }
        async fn create_node(&self, _spec: NodeSpec) -> Result<Box<dyn NodeExecutor>> {
            Err(Error::Node("not used in this test".to_owned()))
        }
    }

    #[test]
    fn python_type_params_are_checked_against_its_schema_and_normalized() {
        let mut registry = NodeRegistry::new();
        registry.register_backend(Arc::new(UnusedBackend));
        registry.register_python_type(
            PythonNodeType::new("Asr")
                .with_schema(ParamsSchema::new().string(
                    "language",
                    Some("en-us"),
                    "model language",
                ))
                .with_description("speech to text"),
        );
        let bad =
            NodeManifest::new("asr", "Asr").with_params(serde_json::json!({"langauge": "de"}));
        let err = registry.resolve(&bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            "node 'asr' (Asr): param 'langauge': unknown param (known params: language)"
        );
        let good = NodeManifest::new("asr", "Asr");
        match registry.resolve(&good).expect("valid") {
            ResolvedNode::Backend { params, .. } => {
                assert_eq!(params, serde_json::json!({"language": "en-us"}));
            }
            other => panic!("expected a backend node, got {other:?}"),
        }
        let listed = registry.node_types();
        assert_eq!(listed[0].kind, NodeKind::Python);
        assert_eq!(listed[0].description, "speech to text");
        assert!(listed[0].schema.is_some());
    }

    #[test]
    fn aliases_resolve_to_the_canonical_factory() {
        let registry = NodeRegistry::with_builtins();
        assert!(registry.contains("PassThroughNode"));
        assert!(registry.contains("PassThrough"));
        assert_eq!(
            registry
                .rust_factory("PassThroughNode")
                .map(|f| f.node_type().to_owned()),
            Some("PassThrough".to_owned())
        );
    }
}
