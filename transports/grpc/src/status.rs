//! Runtime errors → gRPC status codes.
//!
//! | error | code |
//! |---|---|
//! | unknown node type | NOT_FOUND |
//! | a setting or node type the execution policy does not allow clients | PERMISSION_DENIED |
//! | a manifest over the manifest limits (size, depth, values, nodes, connections) | RESOURCE_EXHAUSTED |
//! | any other manifest error (syntax, ids, edges, cycle, params, executor) | INVALID_ARGUMENT |
//! | bad input data (shape, encoding) | INVALID_ARGUMENT |
//! | a node failed or panicked while running | ABORTED |
//! | a node could not start | INTERNAL |
//! | input after the session was closed | FAILED_PRECONDITION |
//! | session, message-size, idle-timeout, open-timeout or output limits, a session's work budget, no room for another Python worker | RESOURCE_EXHAUSTED |
//! | missing or wrong bearer token | UNAUTHENTICATED |
//! | server shutting down | UNAVAILABLE |
//!
//! Whenever a node is involved its id travels in the `x-remotemedia-node-id` metadata
//! entry (and in the message).

use remotemedia_runtime_core::Error;
use tonic::{Code, Status};

/// Metadata key carrying the failing node's id.
pub const NODE_ID_METADATA: &str = "x-remotemedia-node-id";

/// Maps a runtime error to a status.
pub fn status_from_error(error: &Error) -> Status {
    let code = match error {
        Error::UnknownNodeType { .. } => Code::NotFound,
        Error::PermissionDenied { .. } => Code::PermissionDenied,
        Error::ManifestLimit { .. } => Code::ResourceExhausted,
        e if e.is_manifest_error() => Code::InvalidArgument,
        Error::WorkBudget { .. } | Error::AtCapacity { .. } => Code::ResourceExhausted,
        Error::NodeFailed { .. } => Code::Aborted,
        Error::NodeInit { .. } => Code::Internal,
        Error::InvalidData(_) | Error::Ingest { .. } => Code::InvalidArgument,
        Error::SessionClosed { .. } => Code::FailedPrecondition,
        _ => Code::Internal,
    };
    let mut status = Status::new(code, error.to_string());
    if let Some(node_id) = error.node_id() {
        if let Ok(value) = node_id.parse() {
            status.metadata_mut().insert(NODE_ID_METADATA, value);
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use remotemedia_runtime_core::manifest::Manifest;
    use remotemedia_runtime_core::nodes::registry::NodeRegistry;

    fn manifest_error(yaml: &str) -> Error {
        let manifest = Manifest::from_yaml(yaml);
        match manifest {
            Err(e) => e,
            Ok(m) => NodeRegistry::with_builtins()
                .validate(&m)
                .expect_err("invalid"),
        }
    }

    #[test]
    fn unknown_node_is_not_found_with_the_node_id() {
        let status = status_from_error(&manifest_error("nodes: [{id: x, node_type: Nope}]"));
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(
            status
                .metadata()
                .get(NODE_ID_METADATA)
                .and_then(|v| v.to_str().ok()),
            Some("x")
        );
    }

    #[test]
    fn bad_param_is_invalid_argument() {
        let status = status_from_error(&manifest_error(
            "nodes: [{id: c, node_type: AudioChunkerNode, params: {chunk_size: 0}}]",
        ));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("param 'chunk_size'"));
    }

    #[test]
    fn node_failure_is_aborted() {
        let status = status_from_error(&Error::NodeFailed {
            node_id: "calc".into(),
            node_type: "CalculatorNode".into(),
            message: "division by zero".into(),
            panicked: false,
        });
        assert_eq!(status.code(), Code::Aborted);
        assert_eq!(
            status
                .metadata()
                .get(NODE_ID_METADATA)
                .and_then(|v| v.to_str().ok()),
            Some("calc")
        );
    }
}
