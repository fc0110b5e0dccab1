//! Params schemas: what params a node takes, their types, ranges and defaults.
//!
//! A schema validates a manifest node's params before any session starts and returns them
//! normalized: keys in snake_case (manifests may write `chunkSize` or `chunk_size`), enum
//! values in their canonical spelling, defaults filled in.
//!
//! ```
//! use remotemedia_runtime_core::nodes::schema::ParamsSchema;
//! use serde_json::json;
//!
//! let schema = ParamsSchema::new()
//!     .integer("chunk_size", Some(512), 1, 1_048_576, "frames per chunk")
//!     .choice("quality", Some("Medium"), &["Low", "Medium", "High"], "resampler quality");
//! let params = schema.validate("chunker", "AudioChunkerNode", &json!({"chunkSize": 320})).unwrap();
//! assert_eq!(params["chunk_size"], 320);
//! assert_eq!(params["quality"], "Medium");
//!
//! let err = schema.validate("chunker", "AudioChunkerNode", &json!({"chunk_size": -1})).unwrap_err();
//! assert!(err.to_string().contains("param 'chunk_size'"));
//! ```

use crate::error::ParamProblem;
use crate::{Error, Result};
use serde_json::{json, Map, Value};

/// The type and constraints of one param.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ParamKind {
    /// A whole number within `min..=max`.
    Integer {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
    },
    /// Any number within `min..=max`.
    Number {
        /// Smallest allowed value.
        min: f64,
        /// Largest allowed value.
        max: f64,
    },
    /// `true` or `false`.
    Bool,
    /// Any string.
    String,
    /// One of a fixed set of strings (matched case-insensitively, normalized to the
    /// spelling given here).
    Choice(Vec<String>),
    /// A whole number within `min..=max`, or one of a fixed set of strings
    /// (e.g. a sample rate or `"auto"`).
    IntegerOrChoice {
        /// Smallest allowed value.
        min: i64,
        /// Largest allowed value.
        max: i64,
        /// The allowed strings.
        choices: Vec<String>,
    },
    /// Any JSON value.
    Any,
}

/// One param of a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamSpec {
    /// snake_case name.
    pub name: String,
    /// Type and constraints.
    pub kind: ParamKind,
    /// Value used when the manifest omits the param; `None` means optional with no value.
    pub default: Option<Value>,
    /// Whether the manifest must give a value.
    pub required: bool,
    /// One-line description shown by `remotemedia nodes`.
    pub description: String,
}

/// The params a node accepts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamsSchema {
    params: Vec<ParamSpec>,
}

impl ParamsSchema {
    /// A schema with no params (any key is then rejected).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a param.
    pub fn param(mut self, spec: ParamSpec) -> Self {
        self.params.push(spec);
        self
    }

    fn add(self, name: &str, kind: ParamKind, default: Option<Value>, description: &str) -> Self {
        self.param(ParamSpec {
            name: name.to_owned(),
            kind,
            default,
            required: false,
            description: description.to_owned(),
        })
    }

    /// Adds an integer param in `min..=max`.
    pub fn integer(
        self,
        name: &str,
        default: Option<i64>,
        min: i64,
        max: i64,
        description: &str,
    ) -> Self {
        self.add(
            name,
            ParamKind::Integer { min, max },
            default.map(Value::from),
            description,
        )
    }

    /// Adds a number param in `min..=max`.
    pub fn number(
        self,
        name: &str,
        default: Option<f64>,
        min: f64,
        max: f64,
        description: &str,
    ) -> Self {
        self.add(
            name,
            ParamKind::Number { min, max },
            default.map(Value::from),
            description,
        )
    }

    /// Adds a boolean param.
    pub fn boolean(self, name: &str, default: Option<bool>, description: &str) -> Self {
        self.add(name, ParamKind::Bool, default.map(Value::from), description)
    }

    /// Adds a free string param.
    pub fn string(self, name: &str, default: Option<&str>, description: &str) -> Self {
        self.add(
            name,
            ParamKind::String,
            default.map(Value::from),
            description,
        )
    }

    /// Adds a param that takes one of `choices`.
    pub fn choice(
        self,
        name: &str,
        default: Option<&str>,
        choices: &[&str],
        description: &str,
    ) -> Self {
        self.add(
            name,
            ParamKind::Choice(choices.iter().map(|c| (*c).to_owned()).collect()),
            default.map(Value::from),
            description,
        )
    }

    /// Adds a param that takes an integer in `min..=max` or one of `choices`.
    pub fn integer_or_choice(
        self,
        name: &str,
        default: Option<Value>,
        min: i64,
        max: i64,
        choices: &[&str],
        description: &str,
    ) -> Self {
        self.add(
            name,
            ParamKind::IntegerOrChoice {
                min,
                max,
                choices: choices.iter().map(|c| (*c).to_owned()).collect(),
            },
            default,
            description,
        )
    }

    /// Adds a param of any JSON type.
    pub fn any(self, name: &str, description: &str) -> Self {
        self.add(name, ParamKind::Any, None, description)
    }

    /// Marks the most recently added param as required.
    pub fn required(mut self) -> Self {
        if let Some(last) = self.params.last_mut() {
            last.required = true;
        }
        self
    }

    /// The params, in declaration order.
    pub fn params(&self) -> &[ParamSpec] {
        &self.params
    }

    /// Validates `params` (an object or null) and returns them normalized: snake_case keys,
    /// canonical choice spelling, defaults filled in. Errors name the node and the param.
    pub fn validate(&self, node_id: &str, node_type: &str, params: &Value) -> Result<Value> {
        let err = |param: &str, problem: ParamProblem| Error::InvalidParam {
            node_id: node_id.to_owned(),
            node_type: node_type.to_owned(),
            param: param.to_owned(),
            problem: Box::new(problem),
        };
        let empty = Map::new();
        let given = match params {
            Value::Null => &empty,
            Value::Object(map) => map,
            other => {
                return Err(err(
                    "params",
                    ParamProblem::WrongType {
                        expected: "a mapping of param names to values".to_owned(),
                        found: describe_value(other),
                    },
                ))
            }
        };
        let mut out = Map::new();
        for (key, value) in given {
            let name = to_snake_case(key);
            let Some(spec) = self.params.iter().find(|p| p.name == name) else {
                return Err(err(
                    key,
                    ParamProblem::UnknownKey {
                        known: self.params.iter().map(|p| p.name.clone()).collect(),
                    },
                ));
            };
            if out.contains_key(&name) {
                return Err(err(
                    key,
                    ParamProblem::Invalid(format!("given twice (as '{name}' and '{key}')")),
                ));
            }
            if value.is_null() && !spec.required {
                // An explicit null means "use the default".
                continue;
            }
            let normalized = check_value(&spec.kind, value).map_err(|p| err(key, p))?;
            out.insert(name, normalized);
        }
        for spec in &self.params {
            if out.contains_key(&spec.name) {
                continue;
            }
            if spec.required {
                return Err(err(&spec.name, ParamProblem::Missing));
            }
            if let Some(default) = &spec.default {
                out.insert(spec.name.clone(), default.clone());
            }
        }
        Ok(Value::Object(out))
    }

    /// The schema as JSON Schema (draft 2020-12 subset), for listings and remote clients.
    pub fn to_json_schema(&self) -> Value {
        let mut properties = Map::new();
        for p in &self.params {
            let mut prop = match &p.kind {
                ParamKind::Integer { min, max } => {
                    json!({"type": "integer", "minimum": min, "maximum": max})
                }
                ParamKind::Number { min, max } => {
                    json!({"type": "number", "minimum": min, "maximum": max})
                }
                ParamKind::Bool => json!({"type": "boolean"}),
                ParamKind::String => json!({"type": "string"}),
                ParamKind::Choice(choices) => json!({"type": "string", "enum": choices}),
                ParamKind::IntegerOrChoice { min, max, choices } => json!({"oneOf": [
                    {"type": "integer", "minimum": min, "maximum": max},
                    {"type": "string", "enum": choices},
                ]}),
                ParamKind::Any => json!({}),
            };
            if let Value::Object(obj) = &mut prop {
                if let Some(d) = &p.default {
                    obj.insert("default".to_owned(), d.clone());
                }
                if !p.description.is_empty() {
                    obj.insert("description".to_owned(), p.description.clone().into());
                }
            }
            properties.insert(p.name.clone(), prop);
        }
        let required: Vec<&str> = self
            .params
            .iter()
            .filter(|p| p.required)
            .map(|p| p.name.as_str())
            .collect();
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }
}

fn check_value(kind: &ParamKind, value: &Value) -> std::result::Result<Value, ParamProblem> {
    let wrong = |expected: &str| ParamProblem::WrongType {
        expected: expected.to_owned(),
        found: describe_value(value),
    };
    match kind {
        ParamKind::Any => Ok(value.clone()),
        ParamKind::Bool => value
            .as_bool()
            .map(Value::from)
            .ok_or_else(|| wrong("boolean")),
        ParamKind::String => value
            .as_str()
            .map(Value::from)
            .ok_or_else(|| wrong("string")),
        ParamKind::Integer { min, max } => {
            let n = as_integer(value).ok_or_else(|| wrong("integer"))?;
            check_int_range(n, *min, *max)
        }
        ParamKind::Number { min, max } => {
            let n = value.as_f64().ok_or_else(|| wrong("number"))?;
            if !n.is_finite() || n < *min || n > *max {
                return Err(ParamProblem::OutOfRange {
                    value: n.to_string(),
                    range: format!("{min}..={max}"),
                });
            }
            Ok(value.clone())
        }
        ParamKind::Choice(choices) => {
            let s = value.as_str().ok_or_else(|| wrong("string"))?;
            match_choice(s, choices)
        }
        ParamKind::IntegerOrChoice { min, max, choices } => {
            if let Some(s) = value.as_str() {
                return match_choice(s, choices);
            }
            let n = as_integer(value)
                .ok_or_else(|| wrong(&format!("integer or one of {}", choices.join(", "))))?;
            check_int_range(n, *min, *max)
        }
    }
}

/// Integers, and floats with no fractional part (YAML `16000.0`), are integers.
fn as_integer(value: &Value) -> Option<i128> {
    if let Some(i) = value.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = value.as_u64() {
        return Some(i128::from(u));
    }
    match value.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i128),
        _ => None,
    }
}

fn check_int_range(n: i128, min: i64, max: i64) -> std::result::Result<Value, ParamProblem> {
    if n < i128::from(min) || n > i128::from(max) {
        return Err(ParamProblem::OutOfRange {
            value: n.to_string(),
            range: format!("{min}..={max}"),
        });
    }
    Ok(Value::from(n as i64))
}

fn match_choice(s: &str, choices: &[String]) -> std::result::Result<Value, ParamProblem> {
    choices
        .iter()
        .find(|c| c.eq_ignore_ascii_case(s))
        .map(|c| Value::from(c.as_str()))
        .ok_or_else(|| ParamProblem::NotOneOf {
            value: format!("\"{s}\""),
            allowed: choices.to_vec(),
        })
}

/// `chunkSize` → `chunk_size`; snake_case stays as it is.
pub fn to_snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for (i, ch) in key.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// A short description of a JSON value for error messages: `string "abc"`, `number -3`.
pub fn describe_value(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > 40 {
        text.truncate(37);
        text.push_str("...");
    }
    let kind = match value {
        Value::Null => return "null".to_owned(),
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    };
    format!("{kind} {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> ParamsSchema {
        ParamsSchema::new()
            .integer("chunk_size", Some(512), 1, 1_048_576, "")
            .number("gain_db", Some(0.0), -120.0, 120.0, "")
            .boolean("clip", Some(true), "")
            .integer_or_choice("source_rate", None, 1, 768_000, &["auto"], "")
    }

    #[test]
    fn camel_case_keys_are_normalized_and_defaults_filled() {
        let v = schema()
            .validate("n", "T", &json!({"chunkSize": 64, "sourceRate": "AUTO"}))
            .expect("valid");
        assert_eq!(
            v,
            json!({"chunk_size": 64, "source_rate": "auto", "gain_db": 0.0, "clip": true})
        );
    }

    #[test]
    fn wrong_type_names_expected_and_found() {
        let e = schema()
            .validate("n", "T", &json!({"clip": "yes"}))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "node 'n' (T): param 'clip': wrong type: expected boolean, found string \"yes\""
        );
    }

    #[test]
    fn unknown_key_lists_known_params() {
        let e = schema()
            .validate("n", "T", &json!({"size": 1}))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("param 'size': unknown param (known params: chunk_size, gain_db"),
            "{e}"
        );
    }

    #[test]
    fn out_of_range_shows_the_range() {
        let e = schema()
            .validate("n", "T", &json!({"chunk_size": 0}))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("value 0 is out of range 1..=1048576"),
            "{e}"
        );
    }

    #[test]
    fn integral_floats_count_as_integers() {
        let v = schema()
            .validate("n", "T", &json!({"chunk_size": 256.0}))
            .expect("valid");
        assert_eq!(v["chunk_size"], json!(256));
    }
}
