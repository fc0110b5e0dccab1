//! Bounds on manifest text: what parsing costs is capped before and while parsing.
//!
//! A manifest is data from whoever wrote it — over the network, a client. Three things a
//! small manifest can make a parser do are refused here, each in time and memory linear
//! in the text:
//!
//! - **size**: more than [`ManifestLimits::max_bytes`];
//! - **depth**: nesting deeper than [`ManifestLimits::max_depth`], measured by a linear scan
//!   of the text *before* the parser sees it (a YAML parser's time can grow with the
//!   square of the depth);
//! - **expansion**: YAML aliases let a few hundred kilobytes stand for gigabytes of values.
//!   A first pass walks the document without building it, counting every value an alias
//!   expands to, and stops at [`ManifestLimits::max_values`] (at most four values per byte
//!   of text beyond the first thousand), before anything is allocated.
//!
//! The same pass rejects what the typed parse would silently accept: a key given twice in
//! a mapping (the last would win) and numbers that are not finite (`.inf`, `.nan`, which
//! would become `null` and so the param's default). Node and connection counts are capped
//! once the manifest is parsed, before its graph is built.

use crate::{Error, Result};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;

/// Bounds on a manifest; every parse applies them ([`ManifestLimits::default`] unless the
/// caller gives others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestLimits {
    /// Largest manifest text, in bytes (default 1 MiB).
    pub max_bytes: usize,
    /// Deepest nesting of mappings and lists (default 32).
    pub max_depth: usize,
    /// Most values the document may stand for, YAML aliases expanded (default 500 000).
    pub max_values: usize,
    /// Most nodes (default 1024).
    pub max_nodes: usize,
    /// Most connections (default 8192).
    pub max_connections: usize,
}

impl Default for ManifestLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1024 * 1024,
            max_depth: 32,
            max_values: 500_000,
            max_nodes: 1024,
            max_connections: 8192,
        }
    }
}

impl ManifestLimits {
    /// Values a text of `bytes` bytes may stand for.
    fn value_budget(&self, bytes: usize) -> usize {
        self.max_values
            .min(bytes.saturating_mul(4).saturating_add(1000))
    }

    /// Checks the text's size and nesting depth, before any parser runs.
    pub(crate) fn check_text(&self, text: &str, yaml: bool) -> Result<()> {
        if text.len() > self.max_bytes {
            return Err(Error::ManifestLimit {
                what: format!("the manifest is {} bytes", text.len()),
                limit: format!("{} bytes", self.max_bytes),
            });
        }
        let depth = nesting_depth(text, yaml);
        if depth > self.max_depth {
            return Err(Error::ManifestLimit {
                what: format!("the manifest nests {depth} levels deep"),
                limit: format!("{} levels", self.max_depth),
            });
        }
        Ok(())
    }

    /// Checks the node and connection counts of a parsed manifest.
    pub(crate) fn check_counts(&self, nodes: usize, connections: usize) -> Result<()> {
        if nodes > self.max_nodes {
            return Err(Error::ManifestLimit {
                what: format!("the manifest has {nodes} nodes"),
                limit: format!("{} nodes", self.max_nodes),
            });
        }
        if connections > self.max_connections {
            return Err(Error::ManifestLimit {
                what: format!("the manifest has {connections} connections"),
                limit: format!("{} connections", self.max_connections),
            });
        }
        Ok(())
    }
}

/// How deep the text nests, counted without parsing: flow brackets (`[` `{`) outside
/// quoted strings and comments, plus, for YAML, the block levels that indentation and
/// `- ` markers open. An upper bound of what a parser would see, in one pass.
pub(crate) fn nesting_depth(text: &str, yaml: bool) -> usize {
    let mut deepest = 0usize;
    let mut brackets = 0usize;
    // Indentation of the open block levels (YAML).
    let mut blocks: Vec<usize> = Vec::new();
    for line in text.lines() {
        let bytes = line.as_bytes();
        let mut i = 0;
        if yaml && brackets == 0 {
            let indent = bytes.iter().take_while(|&&b| b == b' ').count();
            let rest = &line[indent..];
            if !rest.is_empty() && !rest.starts_with('#') {
                while blocks.last().is_some_and(|&open| open >= indent) {
                    blocks.pop();
                }
                blocks.push(indent);
                // `- - - x` opens a level per marker on one line.
                let mut column = indent;
                let mut markers = &bytes[indent..];
                while markers.starts_with(b"- ") || markers == b"-" {
                    column += 2;
                    blocks.push(column);
                    markers = markers.get(2..).unwrap_or(&[]);
                    let spaces = markers.iter().take_while(|&&b| b == b' ').count();
                    column += spaces;
                    markers = &markers[spaces..];
                }
                deepest = deepest.max(blocks.len());
            }
        }
        let mut quote: Option<u8> = None;
        while i < bytes.len() {
            let b = bytes[i];
            match quote {
                Some(b'"') if b == b'\\' => i += 1,
                Some(q) if b == q => quote = None,
                Some(_) => {}
                None => match b {
                    b'"' | b'\'' => quote = Some(b),
                    b'#' if yaml && (i == 0 || bytes[i - 1] == b' ') => break,
                    b'[' | b'{' => {
                        brackets += 1;
                        deepest = deepest.max(brackets + blocks.len());
                    }
                    b']' | b'}' => brackets = brackets.saturating_sub(1),
                    _ => {}
                },
            }
            i += 1;
        }
    }
    deepest
}

/// What the scan found wrong, and where (a path like `nodes[2].params.chunk_size`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanProblem {
    pub(crate) path: Vec<PathSegment>,
    pub(crate) kind: ScanProblemKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathSegment {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanProblemKind {
    TooManyValues {
        /// The budget of this text.
        limit: usize,
        /// The configured most ([`ManifestLimits::max_values`]).
        max: usize,
    },
    DuplicateKey(String),
    NotFinite(String),
}

impl fmt::Display for ScanProblem {
    /// The problem in words; where it is, the parser adds (line, and for YAML the path).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ScanProblemKind::TooManyValues { limit, .. } => write!(
                f,
                "the manifest has more than {limit} values, counting each YAML alias as the values it repeats"
            ),
            ScanProblemKind::DuplicateKey(key) => {
                write!(f, "key '{key}' is given twice in one mapping")
            }
            ScanProblemKind::NotFinite(value) => {
                write!(f, "{value} is not a finite number")
            }
        }
    }
}

pub(crate) fn path_text(path: &[PathSegment]) -> String {
    let mut text = String::new();
    for segment in path {
        match segment {
            PathSegment::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            PathSegment::Index(i) => text.push_str(&format!("[{i}]")),
        }
    }
    text
}

/// The walk's shared state: values left, the path, the first problem.
struct Scan {
    left: Cell<usize>,
    limit: usize,
    max: usize,
    path: RefCell<Vec<PathSegment>>,
    problem: RefCell<Option<ScanProblem>>,
}

impl Scan {
    fn fail<E: serde::de::Error>(&self, kind: ScanProblemKind) -> E {
        let problem = ScanProblem {
            path: self.path.borrow().clone(),
            kind,
        };
        let message = problem.to_string();
        self.problem.borrow_mut().get_or_insert(problem);
        E::custom(message)
    }

    fn count<E: serde::de::Error>(&self) -> std::result::Result<(), E> {
        match self.left.get().checked_sub(1) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(self.fail(ScanProblemKind::TooManyValues {
                limit: self.limit,
                max: self.max,
            })),
        }
    }
}

/// One value of the walk.
#[derive(Clone, Copy)]
struct ScanValue<'s>(&'s Scan);

impl<'de> DeserializeSeed<'de> for ScanValue<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ScanValue<'_> {
    /// A scalar's text (to compare keys), `None` for collections.
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a manifest value")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<Self::Value, E> {
        self.0.count()?;
        Ok(Some(v.to_string()))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
        self.0.count()?;
        Ok(Some(v.to_string()))
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
        self.0.count()?;
        Ok(Some(v.to_string()))
    }

    fn visit_i128<E: serde::de::Error>(self, v: i128) -> std::result::Result<Self::Value, E> {
        self.0.count()?;
        Ok(Some(v.to_string()))
    }

    fn visit_u128<E: serde::de::Error>(self, v: u128) -> std::result::Result<Self::Value, E> {
        self.0.count()?;
        Ok(Some(v.to_string()))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
        self.0.count()?;
        if !v.is_finite() {
            let text = if v.is_nan() {
                ".nan"
            } else if v > 0.0 {
                ".inf"
            } else {
                "-.inf"
            };
            return Err(self.0.fail(ScanProblemKind::NotFinite(text.to_owned())));
        }
        Ok(Some(v.to_string()))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        self.0.count()?;
        Ok(Some(v.to_owned()))
    }

    fn visit_bytes<E: serde::de::Error>(self, _v: &[u8]) -> std::result::Result<Self::Value, E> {
        self.0.count()?;
        Ok(None)
    }

    fn visit_unit<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
        self.0.count()?;
        Ok(Some(String::new()))
    }

    fn visit_none<E: serde::de::Error>(self) -> std::result::Result<Self::Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        self.0.count()?;
        let mut index = 0;
        loop {
            self.0.path.borrow_mut().push(PathSegment::Index(index));
            let element = seq.next_element_seed(self)?;
            self.0.path.borrow_mut().pop();
            if element.is_none() {
                return Ok(None);
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        self.0.count()?;
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key_seed(self)? {
            let key = key.unwrap_or_default();
            if !seen.insert(key.clone()) {
                return Err(self.0.fail(ScanProblemKind::DuplicateKey(key)));
            }
            self.0.path.borrow_mut().push(PathSegment::Key(key));
            map.next_value_seed(self)?;
            self.0.path.borrow_mut().pop();
        }
        Ok(None)
    }
}

/// Walks a whole document with `deserializer` under the value budget for `bytes` of
/// text. On failure returns the parser's error (with its location) and the problem found,
/// when the walk itself found one (otherwise the text is malformed and the typed parse
/// reports it).
pub(crate) fn scan<'de, D: Deserializer<'de>>(
    deserializer: D,
    limits: &ManifestLimits,
    bytes: usize,
) -> std::result::Result<(), (D::Error, Option<ScanProblem>)> {
    let limit = limits.value_budget(bytes);
    let state = Scan {
        left: Cell::new(limit),
        limit,
        max: limits.max_values,
        path: RefCell::new(Vec::new()),
        problem: RefCell::new(None),
    };
    match ScanValue(&state).deserialize(deserializer) {
        Ok(_) => Ok(()),
        Err(e) => Err((e, state.problem.into_inner())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_brackets_count_outside_quotes_and_comments() {
        assert_eq!(nesting_depth(r#"{"a": [[1], "[[["]}"#, false), 3);
        assert_eq!(nesting_depth("a: [1, 2] # [[[[\n", true), 2);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(nesting_depth(&deep, true), 100_001);
    }

    #[test]
    fn yaml_block_levels_count_by_indentation_and_markers() {
        let text = "nodes:\n  - id: a\n    params:\n      x: 1\n  - id: b\n";
        assert_eq!(nesting_depth(text, true), 4);
        assert_eq!(nesting_depth("- - - - x\n", true), 5);
    }
}
