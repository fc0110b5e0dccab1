//! Pipeline manifests: the JSON/YAML description of nodes and the edges between them.
//!
//! ```yaml
//! version: v1
//! metadata:
//!   name: resample-and-chunk
//! nodes:
//!   - id: resample
//!     node_type: FastResampleNode
//!     params: { target_rate: 16000 }
//!   - id: chunk
//!     node_type: AudioChunkerNode
//!     params: { chunk_size: 320 }
//! connections:
//!   - { from: resample, to: chunk }
//! ```
//!
//! Rules:
//! - `version` is `v1` (may be omitted).
//! - Node ids are unique and non-empty; `node_type` names a registered node.
//! - `executor` picks where a node runs: `native` (in process), `multiprocess`, `docker`,
//!   or the name of any registered executor backend. A `docker:` block implies `docker`,
//!   a `multiprocess:` block (interpreter, environment, timeouts of a Python node)
//!   implies `multiprocess`; the backend checks the block's contents.
//! - Inputs sent to the pipeline go to every node without incoming connections; outputs
//!   come from every node without outgoing connections.
//! - With no `connections` at all, the nodes form a chain in the order they are listed.
//! - Unknown keys are rejected (a misspelt `conections` must not silently change the graph).
//!
//! Parsing ([`Manifest::from_json`], [`Manifest::from_yaml`], [`Manifest::from_file`])
//! checks the structure: duplicate ids, edges to unknown nodes, cycles. Checking node types
//! and params needs a node registry: see
//! [`NodeRegistry::validate`](crate::nodes::registry::NodeRegistry::validate).
//!
//! Every parse is bounded ([`ManifestLimits`]: size, nesting depth, values with YAML
//! aliases expanded, nodes, connections) in time and memory linear in the text, and
//! rejects a key given twice and numbers that are not finite. The `*_with_limits` forms
//! take other bounds, e.g. a server's flags.

mod graph;
mod limits;
mod python_block;

pub use graph::PipelineGraph;
pub use limits::ManifestLimits;
pub use python_block::{python_block_error, PythonBlock, MAX_SHARE, PYTHON_BLOCK_KEYS};

use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Node-level keys older manifests carry that the runtime accepts and ignores.
const LEGACY_NODE_KEYS: &[&str] = &[
    "is_streaming",
    "runtime_hint",
    "capabilities",
    "input_types",
    "output_types",
    "metadata",
];

/// A parsed, structurally valid pipeline description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version; `v1`.
    #[serde(default = "default_version")]
    pub version: String,
    /// Name and free-form information about the pipeline.
    #[serde(default)]
    pub metadata: ManifestMetadata,
    /// The pipeline's nodes.
    pub nodes: Vec<NodeManifest>,
    /// Directed edges between nodes; empty means "chain the nodes in order".
    #[serde(default)]
    pub connections: Vec<Connection>,
}

/// Free-form pipeline information.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManifestMetadata {
    /// The pipeline's name.
    #[serde(default)]
    pub name: String,
    /// What the pipeline does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Any other keys, kept as written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One node of a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeManifest {
    /// Unique id within the manifest.
    pub id: String,
    /// The registered node type (`AudioChunkerNode`, a Python class name, ...).
    pub node_type: String,
    /// The node's params: an object (or absent).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub params: Value,
    /// Where the node runs: `native`, `multiprocess`, `docker`, or another backend's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<String>,
    /// Container settings for `docker` nodes; implies `executor: docker`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<Value>,
    /// Child-process settings for `multiprocess` nodes (interpreter, environment,
    /// timeouts); implies `executor: multiprocess`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiprocess: Option<Value>,
    /// Legacy keys kept for round-tripping; unknown keys are rejected at parse time.
    #[serde(flatten, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
    /// The directory relative paths in this node's blocks (e.g. `multiprocess.python_path`)
    /// are resolved against: the manifest file's directory when the manifest was read by
    /// [`Manifest::from_file`]; `None` (the current directory) for manifests given as text.
    /// In the WASM engine it holds the URL the manifest is relative to (the page's, or the
    /// one the caller gives), which the engine's Python executor resolves module URLs
    /// against.
    #[serde(skip)]
    pub base_dir: Option<std::path::PathBuf>,
}

impl NodeManifest {
    /// A node with the given id and type and no params.
    pub fn new(id: impl Into<String>, node_type: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            node_type: node_type.into(),
            params: Value::Null,
            executor: None,
            docker: None,
            multiprocess: None,
            extra: Map::new(),
            base_dir: None,
        }
    }

    /// `path` as written in this node's blocks, resolved against
    /// [`base_dir`](Self::base_dir) when it is relative.
    pub fn resolve_path(&self, path: impl AsRef<std::path::Path>) -> std::path::PathBuf {
        let path = path.as_ref();
        match &self.base_dir {
            Some(base) if path.is_relative() => base.join(path),
            _ => path.to_path_buf(),
        }
    }

    /// Sets the params (builder style).
    pub fn with_params(mut self, params: Value) -> Self {
        self.params = params;
        self
    }

    /// The executor this node asks for: its `executor` field, `docker` when a `docker:`
    /// block is present, `multiprocess` when a `multiprocess:` block is, or `None` (the
    /// registry's default for the node type).
    pub fn requested_executor(&self) -> Option<&str> {
        match (&self.executor, &self.docker, &self.multiprocess) {
            (Some(e), _, _) => Some(e.as_str()),
            (None, Some(_), _) => Some("docker"),
            (None, None, Some(_)) => Some("multiprocess"),
            (None, None, None) => None,
        }
    }
}

/// A directed edge: every output of `from` becomes an input of `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// Producing node id.
    pub from: String,
    /// Consuming node id.
    pub to: String,
}

fn default_version() -> String {
    "v1".to_owned()
}

impl Manifest {
    /// Parses and structurally validates a JSON manifest, within the default
    /// [`ManifestLimits`]. Syntax errors carry the line and column.
    pub fn from_json(text: &str) -> Result<Self> {
        Self::from_json_with_limits(text, &ManifestLimits::default())
    }

    /// [`from_json`](Self::from_json) within `limits`.
    pub fn from_json_with_limits(text: &str, limits: &ManifestLimits) -> Result<Self> {
        limits.check_text(text, false)?;
        let json_error = |e: serde_json::Error| Error::ManifestParse {
            format: "JSON",
            line: Some(e.line()),
            column: Some(e.column()),
            message: strip_location(&e.to_string()),
        };
        let scanned = limits::scan(
            &mut serde_json::Deserializer::from_str(text),
            limits,
            text.len(),
        );
        let typed = || serde_json::from_str::<Manifest>(text);
        if let Err((e, problem)) = scanned {
            return Err(scan_error(json_error(e), problem, || typed().ok()));
        }
        let manifest = typed().map_err(json_error)?;
        manifest.check_parsed(limits)
    }

    /// Parses and structurally validates a YAML manifest, within the default
    /// [`ManifestLimits`].
    pub fn from_yaml(text: &str) -> Result<Self> {
        Self::from_yaml_with_limits(text, &ManifestLimits::default())
    }

    /// [`from_yaml`](Self::from_yaml) within `limits`.
    pub fn from_yaml_with_limits(text: &str, limits: &ManifestLimits) -> Result<Self> {
        limits.check_text(text, true)?;
        let yaml_error = |e: serde_norway::Error| {
            let loc = e.location();
            Error::ManifestParse {
                format: "YAML",
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                message: strip_location(&e.to_string()),
            }
        };
        let scanned = limits::scan(
            serde_norway::Deserializer::from_str(text),
            limits,
            text.len(),
        );
        let typed = || serde_norway::from_str::<Manifest>(text);
        if let Err((e, problem)) = scanned {
            return Err(scan_error(yaml_error(e), problem, || typed().ok()));
        }
        let manifest = typed().map_err(yaml_error)?;
        manifest.check_parsed(limits)
    }

    /// Parses a manifest whose format is sniffed: JSON when the text starts with `{`,
    /// YAML otherwise.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_with_limits(text, &ManifestLimits::default())
    }

    /// [`parse`](Self::parse) within `limits`.
    pub fn parse_with_limits(text: &str, limits: &ManifestLimits) -> Result<Self> {
        if text.trim_start().starts_with('{') {
            Self::from_json_with_limits(text, limits)
        } else {
            Self::from_yaml_with_limits(text, limits)
        }
    }

    /// The counts' limits, then the structure.
    fn check_parsed(self, limits: &ManifestLimits) -> Result<Self> {
        limits.check_counts(self.nodes.len(), self.connections.len())?;
        self.validate_structure()?;
        Ok(self)
    }

    /// Reads and parses a manifest file (`.json`, `.yaml`/`.yml`, or sniffed).
    #[cfg(feature = "native")]
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
            context: format!("cannot read manifest {}", path.display()),
            message: e.to_string(),
        })?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        let parsed = match ext {
            "json" => Self::from_json(&text),
            "yaml" | "yml" => Self::from_yaml(&text),
            _ => Self::parse(&text),
        };
        // Paths written in the file are relative to the file, not to the current directory.
        let base_dir = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(std::path::Path::to_path_buf));
        parsed
            .map(|mut manifest| {
                for node in &mut manifest.nodes {
                    node.base_dir.clone_from(&base_dir);
                }
                manifest
            })
            .map_err(|e| match e {
                Error::ManifestParse {
                    format,
                    line,
                    column,
                    message,
                } => Error::ManifestParse {
                    format,
                    line,
                    column,
                    message: format!("{message} (in {})", path.display()),
                },
                other => other,
            })
    }

    /// Serializes the manifest as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// Looks up a node by id.
    pub fn node(&self, id: &str) -> Option<&NodeManifest> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// Checks what can be checked without a node registry — version, ids, node-level
    /// keys, params shape, edges and cycles — and returns the resolved graph.
    pub fn validate_structure(&self) -> Result<PipelineGraph> {
        if self.version != "v1" {
            return Err(Error::InvalidManifest(format!(
                "unsupported version '{}' (expected 'v1')",
                self.version
            )));
        }
        if self.nodes.is_empty() {
            return Err(Error::InvalidManifest(
                "the manifest has no nodes".to_owned(),
            ));
        }
        for (index, node) in self.nodes.iter().enumerate() {
            if node.id.trim().is_empty() {
                return Err(Error::InvalidManifest(format!(
                    "nodes[{index}] ({}) has an empty id",
                    node.node_type
                )));
            }
            if node.node_type.trim().is_empty() {
                return Err(Error::InvalidManifest(format!(
                    "node '{}' has an empty node_type",
                    node.id
                )));
            }
            if !(node.params.is_null() || node.params.is_object()) {
                return Err(Error::InvalidManifest(format!(
                    "node '{}': params must be a mapping of names to values, found {}",
                    node.id,
                    crate::nodes::schema::describe_value(&node.params)
                )));
            }
            if let Some(key) = node
                .extra
                .keys()
                .find(|k| !LEGACY_NODE_KEYS.contains(&k.as_str()))
            {
                return Err(Error::InvalidManifest(format!(
                    "node '{}': unknown key '{key}' (node keys: id, node_type, params, executor, docker, multiprocess)",
                    node.id
                )));
            }
            if let Some(executor) = &node.executor {
                if executor.trim().is_empty() {
                    return Err(Error::InvalidManifest(format!(
                        "node '{}': executor is empty",
                        node.id
                    )));
                }
                if node.docker.is_some() && executor != "docker" {
                    return Err(Error::InvalidManifest(format!(
                        "node '{}': has a docker block but executor is '{executor}'",
                        node.id
                    )));
                }
                if node.multiprocess.is_some() && executor != "multiprocess" {
                    return Err(Error::InvalidManifest(format!(
                        "node '{}': has a multiprocess block but executor is '{executor}'",
                        node.id
                    )));
                }
            }
            if node.docker.is_some() && node.multiprocess.is_some() {
                return Err(Error::InvalidManifest(format!(
                    "node '{}': has both a docker and a multiprocess block; a node runs in one place",
                    node.id
                )));
            }
        }
        PipelineGraph::build(self)
    }
}

/// The error of a scan that failed. A key given twice or a number that is not finite
/// inside a node's params is reported as that param's error, naming the node (from
/// `parsed`, the typed parse — run only then: the document is known to be within its
/// value budget); anything else as the parser's error, with its location.
fn scan_error(
    parse: Error,
    problem: Option<limits::ScanProblem>,
    parsed: impl FnOnce() -> Option<Manifest>,
) -> Error {
    use limits::{PathSegment, ScanProblemKind};
    let Some(problem) = problem else {
        return parse;
    };
    if let ScanProblemKind::TooManyValues { limit, max } = problem.kind {
        let limit = if limit < max {
            format!("{limit} values (four per byte of text plus 1000, at most {max})")
        } else {
            format!("{limit} values")
        };
        return Error::ManifestLimit {
            what: "the manifest has more values, counting each YAML alias as the values it repeats"
                .to_owned(),
            limit,
        };
    }
    // The parser's location is that of the mapping (YAML) or of the value (JSON).
    let at = match &parse {
        Error::ManifestParse {
            format: "YAML",
            line: Some(line),
            ..
        } => format!(" (in the mapping at line {line})"),
        Error::ManifestParse {
            line: Some(line), ..
        } => format!(" (line {line})"),
        _ => String::new(),
    };
    if let [PathSegment::Key(nodes), PathSegment::Index(index), PathSegment::Key(params), rest @ ..] =
        problem.path.as_slice()
    {
        let manifest = (nodes == "nodes" && params == "params")
            .then(parsed)
            .flatten();
        if let Some(manifest) = manifest {
            if let Some(node) = manifest.nodes.get(*index) {
                let (param, why) = match (&problem.kind, rest) {
                    (ScanProblemKind::DuplicateKey(key), []) => {
                        (key.clone(), format!("given twice{at}"))
                    }
                    (ScanProblemKind::NotFinite(value), [PathSegment::Key(key), ..]) => {
                        (key.clone(), format!("{value} is not a finite number{at}"))
                    }
                    _ => (limits::path_text(rest), format!("{problem}{at}")),
                };
                return Error::InvalidParam {
                    node_id: node.id.clone(),
                    node_type: node.node_type.clone(),
                    param,
                    problem: Box::new(crate::ParamProblem::Invalid(why)),
                };
            }
        }
    }
    parse
}

/// serde's messages end with " at line X column Y"; we report the location separately.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(pos) => message[..pos].to_owned(),
        None => message.to_owned(),
    }
}

impl std::str::FromStr for Manifest {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        Self::parse(text)
    }
}
