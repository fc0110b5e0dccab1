//! A Python node's `multiprocess:` block, read once for every executor of Python nodes.
//!
//! The native multiprocess executor (worker processes) and the WASM engine's Python
//! executor (Pyodide in the page) take the same block, so a manifest reads the same
//! wherever it runs; each executor then decides what the settings mean on its platform
//! (a browser has no interpreter to choose, for one).
//!
//! ```yaml
//! - id: gate
//!   node_type: NoiseGate
//!   multiprocess:
//!     python_path: [./python]      # where modules are looked up (relative to the manifest)
//!     modules: [noise_gate]        # imported before the class is looked up
//!     source: |                    # or: the module's code, inline
//!       import remotemedia
//!       ...
//!     share: true                  # one worker for many sessions
//! ```

use super::NodeManifest;
use crate::nodes::schema::describe_value;
use crate::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

/// The most instances one worker may host (`share: true`).
pub const MAX_SHARE: usize = 64;

/// Every key of the `multiprocess:` block.
pub const PYTHON_BLOCK_KEYS: &[&str] = &[
    "python_executable",
    "env",
    "python_path",
    "modules",
    "source",
    "init_timeout_ms",
    "process_timeout_ms",
    "shutdown_timeout_ms",
    "share",
];

/// A node's `multiprocess:` block as written, checked key by key. Paths are kept as
/// written: each executor resolves them against the node's
/// [`base_dir`](NodeManifest::base_dir).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PythonBlock {
    /// `python_executable`: the interpreter to run (a path, or a name looked up on `PATH`).
    pub python_executable: Option<String>,
    /// `env`: environment variables for the worker (numbers and booleans as text).
    pub env: BTreeMap<String, String>,
    /// `python_path`: directories put in front of `sys.path`, in order.
    pub python_path: Vec<String>,
    /// `modules`: modules imported before the node class is looked up.
    pub modules: Vec<String>,
    /// `source`: the code of a module, given inline, run before the class is looked up
    /// (it defines the class with `@remotemedia.node`).
    pub source: Option<String>,
    /// `init_timeout_ms`: how long starting may take.
    pub init_timeout: Option<Duration>,
    /// `process_timeout_ms`: how long one call may take; `Some(None)` is no limit (0).
    pub process_timeout: Option<Option<Duration>>,
    /// `shutdown_timeout_ms`: how long cleaning up may take.
    pub shutdown_timeout: Option<Duration>,
    /// `share`: instances one worker may host (`true` is [`MAX_SHARE`], `false` is 1).
    pub share: Option<usize>,
}

/// An error about `multiprocess.<key>` of `node`.
pub fn python_block_error(
    node: &NodeManifest,
    key: &str,
    problem: impl std::fmt::Display,
) -> Error {
    Error::InvalidManifest(format!(
        "node '{}' ({}): multiprocess.{key}: {problem}",
        node.id, node.node_type
    ))
}

fn string_list(node: &NodeManifest, key: &str, value: &Value) -> Result<Vec<String>> {
    let items = value.as_array().ok_or_else(|| {
        python_block_error(
            node,
            key,
            format!(
                "expected a list of strings, found {}",
                describe_value(value)
            ),
        )
    })?;
    items
        .iter()
        .map(|item| {
            item.as_str()
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    python_block_error(
                        node,
                        key,
                        format!(
                            "expected a list of non-empty strings, found {}",
                            describe_value(item)
                        ),
                    )
                })
        })
        .collect()
}

fn millis(node: &NodeManifest, key: &str, value: &Value, allow_zero: bool) -> Result<u64> {
    match value.as_u64() {
        Some(ms) if ms > 0 || allow_zero => Ok(ms),
        _ => Err(python_block_error(
            node,
            key,
            format!(
                "expected a {} number of milliseconds, found {}",
                if allow_zero {
                    "non-negative"
                } else {
                    "positive"
                },
                describe_value(value)
            ),
        )),
    }
}

/// A dotted module name: identifiers joined by dots.
fn is_module_name(name: &str) -> bool {
    name.split('.').all(|part| {
        let mut chars = part.chars();
        chars.next().is_some_and(|c| c == '_' || c.is_alphabetic())
            && chars.all(|c| c == '_' || c.is_alphanumeric())
    })
}

impl PythonBlock {
    /// Reads `node`'s `multiprocess:` block (an absent or null block is the default),
    /// rejecting unknown keys and wrong types with errors that name the node and the key.
    pub fn parse(node: &NodeManifest) -> Result<Self> {
        let mut block = PythonBlock::default();
        let map = match &node.multiprocess {
            None | Some(Value::Null) => return Ok(block),
            Some(Value::Object(map)) => map,
            Some(other) => {
                return Err(Error::InvalidManifest(format!(
                    "node '{}' ({}): the multiprocess block must be a mapping, found {}",
                    node.id,
                    node.node_type,
                    describe_value(other)
                )))
            }
        };
        for (key, value) in map {
            match key.as_str() {
                "python_executable" => {
                    let path = value.as_str().filter(|s| !s.is_empty()).ok_or_else(|| {
                        python_block_error(
                            node,
                            key,
                            format!("expected a path, found {}", describe_value(value)),
                        )
                    })?;
                    block.python_executable = Some(path.to_owned());
                }
                "env" => {
                    let vars = value.as_object().ok_or_else(|| {
                        python_block_error(
                            node,
                            key,
                            format!(
                                "expected a mapping of names to strings, found {}",
                                describe_value(value)
                            ),
                        )
                    })?;
                    for (name, v) in vars {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            Value::Number(n) => n.to_string(),
                            Value::Bool(b) => b.to_string(),
                            other => {
                                return Err(python_block_error(
                                    node,
                                    &format!("env.{name}"),
                                    format!("expected a string, found {}", describe_value(other)),
                                ))
                            }
                        };
                        block.env.insert(name.clone(), text);
                    }
                }
                "python_path" => block.python_path = string_list(node, key, value)?,
                "modules" => {
                    block.modules = string_list(node, key, value)?;
                    if let Some(bad) = block.modules.iter().find(|m| !is_module_name(m)) {
                        return Err(python_block_error(
                            node,
                            key,
                            format!(
                                "{bad:?} is not a module name (names like my_nodes or pkg.nodes)"
                            ),
                        ));
                    }
                }
                "source" => {
                    let source =
                        value
                            .as_str()
                            .filter(|s| !s.trim().is_empty())
                            .ok_or_else(|| {
                                python_block_error(
                                    node,
                                    key,
                                    format!(
                                        "expected the Python code of a module, found {}",
                                        describe_value(value)
                                    ),
                                )
                            })?;
                    block.source = Some(source.to_owned());
                }
                "init_timeout_ms" => {
                    block.init_timeout =
                        Some(Duration::from_millis(millis(node, key, value, false)?));
                }
                "process_timeout_ms" => {
                    let ms = millis(node, key, value, true)?;
                    block.process_timeout = Some((ms > 0).then(|| Duration::from_millis(ms)));
                }
                "shutdown_timeout_ms" => {
                    block.shutdown_timeout =
                        Some(Duration::from_millis(millis(node, key, value, false)?));
                }
                "share" => {
                    block.share = Some(match value {
                        Value::Bool(true) => MAX_SHARE,
                        Value::Bool(false) => 1,
                        Value::Number(n) => match n.as_u64() {
                            Some(n @ 1..) if n as usize <= MAX_SHARE => n as usize,
                            _ => {
                                return Err(python_block_error(
                                    node,
                                    key,
                                    format!("{n} is out of range 1..={MAX_SHARE}"),
                                ))
                            }
                        },
                        other => {
                            return Err(python_block_error(
                                node,
                                key,
                                format!(
                                    "expected true, false or a number of instances per process, found {}",
                                    describe_value(other)
                                ),
                            ))
                        }
                    });
                }
                other => {
                    return Err(python_block_error(
                        node,
                        other,
                        format!("unknown key (known keys: {})", PYTHON_BLOCK_KEYS.join(", ")),
                    ))
                }
            }
        }
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(block: Value) -> NodeManifest {
        let mut node = NodeManifest::new("gate", "NoiseGate");
        node.multiprocess = Some(block);
        node
    }

    #[test]
    fn every_key_is_read_as_written() {
        let block = PythonBlock::parse(&node(json!({
            "python_executable": "venv/bin/python",
            "env": {"A": "1", "B": 2, "C": true},
            "python_path": ["./python", "/abs"],
            "modules": ["noise_gate", "pkg.nodes"],
            "source": "import remotemedia\n",
            "init_timeout_ms": 1500,
            "process_timeout_ms": 0,
            "shutdown_timeout_ms": 700,
            "share": true,
        })))
        .expect("a valid block");
        assert_eq!(block.python_executable.as_deref(), Some("venv/bin/python"));
        assert_eq!(block.env["B"], "2");
        assert_eq!(block.env["C"], "true");
        assert_eq!(block.python_path, ["./python", "/abs"]);
        assert_eq!(block.modules, ["noise_gate", "pkg.nodes"]);
        assert_eq!(block.source.as_deref(), Some("import remotemedia\n"));
        assert_eq!(block.init_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(block.process_timeout, Some(None));
        assert_eq!(block.shutdown_timeout, Some(Duration::from_millis(700)));
        assert_eq!(block.share, Some(MAX_SHARE));
        let absent = PythonBlock::parse(&NodeManifest::new("a", "B")).expect("no block");
        assert_eq!(absent, PythonBlock::default());
    }

    #[test]
    fn bad_keys_and_values_name_the_node_and_the_key() {
        let cases = [
            (json!({"pyhton_path": []}), "multiprocess.pyhton_path: unknown key (known keys: python_executable, env, python_path, modules, source,"),
            (json!({"modules": ["../x"]}), "multiprocess.modules: \"../x\" is not a module name"),
            (json!({"modules": "x"}), "multiprocess.modules: expected a list of strings, found string \"x\""),
            (json!({"source": ""}), "multiprocess.source: expected the Python code of a module, found string \"\""),
            (json!({"source": 3}), "multiprocess.source: expected the Python code of a module, found number 3"),
            (json!({"share": 65}), "multiprocess.share: 65 is out of range 1..=64"),
            (json!({"env": {"A": [1]}}), "multiprocess.env.A: expected a string"),
            (json!({"init_timeout_ms": "soon"}), "multiprocess.init_timeout_ms: expected a positive number of milliseconds, found string \"soon\""),
            (json!([1]), "the multiprocess block must be a mapping"),
        ];
        for (block, expected) in cases {
            let err = PythonBlock::parse(&node(block.clone()))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("invalid manifest: node 'gate' (NoiseGate): ")
                    && err.contains(expected),
                "{block}: {err}"
            );
        }
    }
}
