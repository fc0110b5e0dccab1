//! [`ExecutionPolicy`]: what a manifest from a client may ask the runtime to do.
//!
//! A manifest can start programs: a `multiprocess:` block names the interpreter, its
//! environment, the modules it imports and the paths it imports them from; a `docker:`
//! block chooses images, packages and mounts. Manifests the operator loads (the command
//! line, a server's configured pipelines) are trusted. Manifests that arrive over a network
//! are checked against a policy first, by every network transport:
//!
//! - By default a client may use every registered node type with its params, and no
//!   executor setting — no key of a `multiprocess:` or `docker:` block — except those the
//!   backend declares harmless ([`ExecutorBackend::client_settings`]).
//! - The operator opens settings by name (`multiprocess.env`), by block
//!   (`multiprocess.*`) or all at once (`*`), and may restrict node types to a list.
//!
//! A refused setting is [`Error::PermissionDenied`] naming the node and the key, before
//! anything is resolved or started.
//!
//! ```
//! use remotemedia_runtime_core::manifest::Manifest;
//! use remotemedia_runtime_core::policy::ExecutionPolicy;
//! use remotemedia_runtime_core::nodes::registry::NodeRegistry;
//!
//! let registry = NodeRegistry::with_builtins();
//! let manifest = Manifest::from_yaml(
//!     "nodes: [{id: asr, node_type: Whisper, multiprocess: {python_executable: /bin/bash}}]",
//! )?;
//! let err = ExecutionPolicy::default().check(&manifest, &registry).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "node 'asr' (Whisper): multiprocess.python_executable is not allowed in manifests from clients (the server's operator can allow it)"
//! );
//! let open = ExecutionPolicy::default().allow_setting("multiprocess.*");
//! assert!(open.check(&manifest, &registry).is_ok());
//! # Ok::<(), remotemedia_runtime_core::Error>(())
//! ```
//!
//! [`ExecutorBackend::client_settings`]: crate::nodes::registry::ExecutorBackend::client_settings

use crate::manifest::{Manifest, NodeManifest};
use crate::nodes::registry::NodeRegistry;
use crate::{Error, Result};
use serde_json::Value;
use std::collections::BTreeSet;

/// What client manifests may use; see the [module docs](self).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionPolicy {
    node_types: Option<BTreeSet<String>>,
    settings: BTreeSet<String>,
}

/// The executor blocks of a manifest node, by the name their keys are written with.
fn blocks(node: &NodeManifest) -> [(&'static str, Option<&Value>); 2] {
    [
        ("multiprocess", node.multiprocess.as_ref()),
        ("docker", node.docker.as_ref()),
    ]
}

impl ExecutionPolicy {
    /// The policy for trusted manifests: everything is allowed.
    pub fn trusted() -> Self {
        Self::default().allow_setting("*")
    }

    /// Allows a setting for client manifests: `block.key` (`multiprocess.env`), `block.*`
    /// (every key of a block) or `*` (every setting of every block).
    pub fn allow_setting(mut self, setting: impl Into<String>) -> Self {
        self.settings.insert(setting.into());
        self
    }

    /// Restricts client manifests to `node_type` and the other types allowed this way
    /// (without a call, every registered type is allowed).
    pub fn allow_node_type(mut self, node_type: impl Into<String>) -> Self {
        self.node_types
            .get_or_insert_with(BTreeSet::new)
            .insert(node_type.into());
        self
    }

    /// The settings opened with [`allow_setting`](Self::allow_setting).
    pub fn allowed_settings(&self) -> impl Iterator<Item = &str> {
        self.settings.iter().map(String::as_str)
    }

    /// The node types a client may use, when restricted.
    pub fn allowed_node_types(&self) -> Option<impl Iterator<Item = &str>> {
        self.node_types
            .as_ref()
            .map(|types| types.iter().map(String::as_str))
    }

    fn allows(&self, block: &str, key: &str) -> bool {
        self.settings.contains("*")
            || self.settings.contains(&format!("{block}.*"))
            || self.settings.contains(&format!("{block}.{key}"))
    }

    /// Checks a client's manifest: node types (when restricted) and every key of every
    /// executor block. The first refusal names the node and the key.
    pub fn check(&self, manifest: &Manifest, registry: &NodeRegistry) -> Result<()> {
        for node in &manifest.nodes {
            if let Some(types) = &self.node_types {
                let canonical = registry
                    .rust_factory(&node.node_type)
                    .map(|f| f.node_type().to_owned());
                let allowed = types.contains(&node.node_type)
                    || canonical.is_some_and(|name| types.contains(&name));
                if !allowed {
                    return Err(Error::PermissionDenied {
                        node_id: node.id.clone(),
                        node_type: node.node_type.clone(),
                        what: format!(
                            "node type '{}' is not one of the types this server allows clients to use",
                            node.node_type
                        ),
                    });
                }
            }
            for (block, value) in blocks(node) {
                let Some(value) = value else {
                    continue;
                };
                let harmless: &[&str] = match registry.backend(block) {
                    Some(backend) => backend.client_settings(),
                    None => &[],
                };
                let keys: Vec<&str> = match value {
                    Value::Object(map) => map.keys().map(String::as_str).collect(),
                    Value::Null => Vec::new(),
                    // Not a mapping: validation rejects it; the block as a whole is the key.
                    _ => vec!["*"],
                };
                if let Some(key) = keys
                    .into_iter()
                    .find(|key| !harmless.contains(key) && !self.allows(block, key))
                {
                    return Err(Error::PermissionDenied {
                        node_id: node.id.clone(),
                        node_type: node.node_type.clone(),
                        what: format!(
                            "{block}.{key} is not allowed in manifests from clients (the server's operator can allow it)"
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}
