//! The crate's error type.
//!
//! Every error names *what* went wrong and *where*: the node id, the param, the manifest
//! line, the session. Errors are `Clone` so a session that failed can report the same
//! failure to every caller that asks afterwards.

/// Result alias used throughout the crate. The error type defaults to [`Error`] but can be
/// overridden, so both `Result<T>` and `Result<T, Error>` read naturally.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a param was rejected by a node's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamProblem {
    /// The key is not part of the node's schema.
    UnknownKey {
        /// The keys the node accepts.
        known: Vec<String>,
    },
    /// The value has the wrong JSON type.
    WrongType {
        /// What the schema expects, e.g. `"integer"`.
        expected: String,
        /// What the manifest gave, e.g. `"string \"abc\""`.
        found: String,
    },
    /// A number outside the allowed range.
    OutOfRange {
        /// The offending value.
        value: String,
        /// The allowed range, e.g. `"1..=1048576"`.
        range: String,
    },
    /// A string that is not one of the allowed choices.
    NotOneOf {
        /// The offending value.
        value: String,
        /// The allowed choices.
        allowed: Vec<String>,
    },
    /// A required param is absent.
    Missing,
    /// Anything else, explained in words.
    Invalid(String),
}

impl std::fmt::Display for ParamProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParamProblem::UnknownKey { known } if known.is_empty() => {
                write!(f, "unknown param (this node takes no params)")
            }
            ParamProblem::UnknownKey { known } => {
                write!(f, "unknown param (known params: {})", known.join(", "))
            }
            ParamProblem::WrongType { expected, found } => {
                write!(f, "wrong type: expected {expected}, found {found}")
            }
            ParamProblem::OutOfRange { value, range } => {
                write!(f, "value {value} is out of range {range}")
            }
            ParamProblem::NotOneOf { value, allowed } => {
                write!(f, "value {value} is not one of {}", allowed.join(", "))
            }
            ParamProblem::Missing => write!(f, "required param is missing"),
            ParamProblem::Invalid(why) => write!(f, "{why}"),
        }
    }
}

/// Everything that can go wrong in the runtime.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The manifest text is not valid JSON/YAML or does not have the manifest's shape.
    #[error("manifest is not valid {format}{}: {message}", location(*line, *column))]
    ManifestParse {
        /// `"JSON"` or `"YAML"`.
        format: &'static str,
        /// 1-based line of the problem, when the parser knows it.
        line: Option<usize>,
        /// 1-based column of the problem, when the parser knows it.
        column: Option<usize>,
        /// The parser's explanation.
        message: String,
    },

    /// The manifest parsed but is not a valid pipeline (empty, bad version, bad executor...).
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),

    /// The manifest is over one of the limits parsing applies
    /// ([`ManifestLimits`](crate::manifest::ManifestLimits)): size, depth, values, nodes,
    /// connections.
    #[error("manifest refused: {what}, over the limit of {limit}")]
    ManifestLimit {
        /// What the manifest has, e.g. `the manifest has 13500 nodes`.
        what: String,
        /// The limit, e.g. `1024 nodes`.
        limit: String,
    },

    /// Two nodes share an id.
    #[error("invalid manifest: duplicate node id '{id}' (nodes[{first}] and nodes[{second}])")]
    DuplicateNodeId {
        /// The repeated id.
        id: String,
        /// Index of the first node with that id.
        first: usize,
        /// Index of the second node with that id.
        second: usize,
    },

    /// A connection names a node that does not exist.
    #[error(
        "invalid manifest: connections[{index}].{end} refers to unknown node '{node_id}' (known nodes: {known})"
    )]
    UnknownEdgeEndpoint {
        /// Index of the connection in `connections`.
        index: usize,
        /// `"from"` or `"to"`.
        end: &'static str,
        /// The unknown id.
        node_id: String,
        /// Comma-separated list of the ids that exist.
        known: String,
    },

    /// The connections form a cycle.
    #[error("invalid manifest: connections form a cycle: {}", cycle_text(path))]
    Cycle {
        /// The nodes on the cycle, first node repeated at the end.
        path: Vec<String>,
    },

    /// A node's type is not registered.
    #[error(
        "node '{node_id}': unknown node type '{node_type}'{}",
        suggestion_text(suggestion)
    )]
    UnknownNodeType {
        /// The node's id.
        node_id: String,
        /// The unknown type.
        node_type: String,
        /// The closest registered type, if one is close.
        suggestion: Option<String>,
    },

    /// A param does not fit the node's schema.
    #[error("node '{node_id}' ({node_type}): param '{param}': {problem}")]
    InvalidParam {
        /// The node's id (empty when a node is built outside a manifest).
        node_id: String,
        /// The node's type.
        node_type: String,
        /// The param's name as written in the manifest.
        param: String,
        /// What is wrong with it.
        problem: Box<ParamProblem>,
    },

    /// A node needs an out-of-process executor that this program does not have.
    #[error(
        "node '{node_id}' ({node_type}) needs the '{executor}' executor, which is not available here (available: {available})"
    )]
    NoExecutorBackend {
        /// The node's id.
        node_id: String,
        /// The node's type.
        node_type: String,
        /// The executor the node asked for.
        executor: String,
        /// The executors there are: `native` and the registered backends' names.
        available: String,
    },

    /// A client's manifest asks for something the server's
    /// [`ExecutionPolicy`](crate::policy::ExecutionPolicy) does not allow.
    #[error("node '{node_id}' ({node_type}): {what}")]
    PermissionDenied {
        /// The node's id.
        node_id: String,
        /// The node's type.
        node_type: String,
        /// What is refused, naming the setting.
        what: String,
    },

    /// A node could not be created or initialized.
    #[error("node '{node_id}' ({node_type}) failed to start: {message}")]
    NodeInit {
        /// The node's id.
        node_id: String,
        /// The node's type.
        node_type: String,
        /// Why.
        message: String,
    },

    /// A node returned an error or panicked while processing; the session has ended.
    #[error("node '{node_id}' ({node_type}) failed{}: {message}", if *panicked { " (panicked)" } else { "" })]
    NodeFailed {
        /// The node's id.
        node_id: String,
        /// The node's type.
        node_type: String,
        /// The node's error message (or panic payload).
        message: String,
        /// Whether the node panicked rather than returning an error.
        panicked: bool,
    },

    /// A session's nodes produced more items than its work budget allows
    /// ([`ExecutorConfig::max_items_per_input`](crate::transport::ExecutorConfig)); the
    /// session has ended.
    #[error(
        "node '{node_id}' ({node_type}) exceeded the session's work budget: the pipeline produced more than {limit} items per input"
    )]
    WorkBudget {
        /// The node whose output went over the budget.
        node_id: String,
        /// Its type.
        node_type: String,
        /// Items allowed per input.
        limit: u64,
    },

    /// The runtime cannot take more of something right now (Python workers, say): a limit
    /// that protects the process, reached. Retrying later may succeed.
    #[error("{what}; the limit is {limit}")]
    AtCapacity {
        /// What could not be had, e.g. `cannot start another Python worker for node 'asr'`.
        what: String,
        /// The limit and where it comes from.
        limit: String,
    },

    /// An error raised by node code itself; the executor wraps it into [`Error::NodeFailed`].
    #[error("{0}")]
    Node(String),

    /// `send_input` after `close()` or after the session ended.
    #[error("session {session_id} is closed: {reason}")]
    SessionClosed {
        /// The session's id.
        session_id: String,
        /// Why it is closed.
        reason: String,
    },

    /// `execute_unary` ran to completion but the pipeline emitted nothing.
    #[error("pipeline produced no output for the input")]
    NoOutput,

    /// `execute_unary` expects exactly one output; the pipeline emitted several.
    #[error(
        "pipeline produced {count} outputs (from nodes: {nodes}); execute_unary returns exactly one, use execute_unary_collect to receive all of them"
    )]
    MultipleOutputs {
        /// How many outputs the pipeline emitted.
        count: usize,
        /// Comma-separated ids of the producing nodes.
        nodes: String,
    },

    /// The runtime cannot spawn tasks (no spawner configured on this target).
    #[error("no task spawner: {0}")]
    NoSpawner(String),

    /// An I/O failure (reading a manifest file, ...), with the path or resource it concerns.
    #[error("{context}: {message}")]
    Io {
        /// What was being accessed, e.g. the file path.
        context: String,
        /// The OS error text.
        message: String,
    },

    /// A media source could not be opened, decoded or read.
    #[error("cannot ingest {source_url}: {message}")]
    Ingest {
        /// The URL or path of the source.
        source_url: String,
        /// What went wrong.
        message: String,
    },

    /// Data of the wrong shape handed to a node or a transport.
    #[error("invalid data: {0}")]
    InvalidData(String),

    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The id of the node this error is about, if any.
    pub fn node_id(&self) -> Option<&str> {
        match self {
            Error::UnknownNodeType { node_id, .. }
            | Error::InvalidParam { node_id, .. }
            | Error::NoExecutorBackend { node_id, .. }
            | Error::PermissionDenied { node_id, .. }
            | Error::WorkBudget { node_id, .. }
            | Error::NodeInit { node_id, .. }
            | Error::NodeFailed { node_id, .. } => Some(node_id),
            _ => None,
        }
    }

    /// True for errors found while validating a manifest, before anything ran.
    pub fn is_manifest_error(&self) -> bool {
        matches!(
            self,
            Error::ManifestParse { .. }
                | Error::InvalidManifest(_)
                | Error::ManifestLimit { .. }
                | Error::DuplicateNodeId { .. }
                | Error::UnknownEdgeEndpoint { .. }
                | Error::Cycle { .. }
                | Error::UnknownNodeType { .. }
                | Error::InvalidParam { .. }
                | Error::NoExecutorBackend { .. }
                | Error::PermissionDenied { .. }
        )
    }

    /// Shorthand for [`Error::Node`], the error node implementations return.
    pub fn node(message: impl Into<String>) -> Self {
        Error::Node(message.into())
    }
}

/// Ids shown at most in a message about a cycle or a list of nodes.
const MAX_IDS_SHOWN: usize = 8;

fn cycle_text(path: &[String]) -> String {
    if path.len() <= MAX_IDS_SHOWN {
        return path.join(" -> ");
    }
    let head = path[..MAX_IDS_SHOWN / 2].join(" -> ");
    let tail = path[path.len() - 2..].join(" -> ");
    format!(
        "{head} -> ... -> {tail} ({} nodes on the cycle)",
        path.len() - 1
    )
}

/// A comma-separated list of at most a few ids, saying how many were left out.
pub(crate) fn id_list<'a>(ids: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = ids.len();
    let shown: Vec<&str> = ids.take(MAX_IDS_SHOWN).collect();
    if total > shown.len() {
        format!("{}, ... ({total} in all)", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean '{s}'?)"),
        None => String::new(),
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::InvalidData(e.to_string())
    }
}
