//! The data channel's messages: one JSON object per message, told apart by `type`
//! (documented in docs/WEBRTC.md).

use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::transport::TransportData;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;

/// What a peer may send.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PeerMessage {
    /// A text input.
    Text {
        /// The text.
        text: String,
        /// Optional sequence number, returned on the outputs it produces.
        #[serde(default)]
        sequence: Option<u64>,
        /// Optional metadata, returned on the outputs it produces.
        #[serde(default)]
        metadata: HashMap<String, String>,
    },
    /// A JSON input.
    Json {
        /// The value.
        data: Value,
        /// Optional sequence number.
        #[serde(default)]
        sequence: Option<u64>,
        /// Optional metadata.
        #[serde(default)]
        metadata: HashMap<String, String>,
    },
    /// Drop the audio queued for the peer (the user talks over the reply).
    BargeIn,
    /// Asks for a `pong` with the same `id` (round-trip time).
    Ping {
        /// Anything; echoed back.
        #[serde(default)]
        id: Value,
    },
    /// Ends the input: nodes flush, the remaining outputs arrive, then `end`.
    End,
}

impl PeerMessage {
    /// Parses one data-channel message.
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not a valid message: {e}"))
    }
}

/// The session input a text or JSON message stands for.
pub fn input(message: PeerMessage) -> Option<TransportData> {
    let (data, sequence, metadata) = match message {
        PeerMessage::Text {
            text,
            sequence,
            metadata,
        } => (RuntimeData::Text(text), sequence, metadata),
        PeerMessage::Json {
            data,
            sequence,
            metadata,
        } => (RuntimeData::Json(data), sequence, metadata),
        _ => return None,
    };
    let mut input = TransportData::new(data).with_metadata_map(metadata);
    input.sequence = sequence;
    Some(input)
}

/// Whether a pipeline output asks for barge-in: a JSON object `{"control": "barge_in"}`.
pub fn is_barge_in(data: &RuntimeData) -> bool {
    matches!(data, RuntimeData::Json(v) if v.get("control").and_then(Value::as_str) == Some("barge_in"))
}

/// An `output` message: what node produced what.
pub fn output(out: &TransportData) -> Value {
    let mut message = json!({
        "type": "output",
        "node_id": out.node_id(),
        "sequence": out.sequence,
        "data": out.data.summary_json(),
    });
    if let Some(input_sequence) = out.input_sequence {
        message["input_sequence"] = json!(input_sequence);
    }
    if !out.metadata.is_empty() {
        message["metadata"] = json!(out.metadata);
    }
    message
}

/// An `error` message; `node_id` when a node failed.
pub fn error(code: &str, message: &str, node_id: Option<&str>) -> Value {
    json!({"type": "error", "code": code, "message": message, "node_id": node_id})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_parse_and_map_to_inputs() {
        let m = PeerMessage::parse(r#"{"type":"text","text":"hi","sequence":4}"#).unwrap();
        let text = input(m).unwrap();
        assert_eq!(text.data, RuntimeData::Text("hi".into()));
        assert_eq!(text.sequence, Some(4));
        let m =
            PeerMessage::parse(r#"{"type":"json","data":{"a":1},"metadata":{"k":"v"}}"#).unwrap();
        let value = input(m).unwrap();
        assert_eq!(value.data, RuntimeData::Json(json!({"a": 1})));
        assert_eq!(value.metadata["k"], "v");
        assert_eq!(
            PeerMessage::parse(r#"{"type":"barge_in"}"#).unwrap(),
            PeerMessage::BargeIn
        );
        assert_eq!(
            PeerMessage::parse(r#"{"type":"end"}"#).unwrap(),
            PeerMessage::End
        );
    }

    #[test]
    fn bad_messages_say_why() {
        let e = PeerMessage::parse(r#"{"type":"shout"}"#).unwrap_err();
        assert!(e.contains("unknown variant `shout`"), "{e}");
        let e = PeerMessage::parse(r#"{"type":"text"}"#).unwrap_err();
        assert!(e.contains("missing field `text`"), "{e}");
        let e = PeerMessage::parse("hello").unwrap_err();
        assert!(e.starts_with("not a valid message"), "{e}");
        let e = PeerMessage::parse(r#"{"type":"text","text":"x","extra":1}"#).unwrap_err();
        assert!(e.contains("unknown field `extra`"), "{e}");
    }

    #[test]
    fn pipeline_barge_in_is_recognized() {
        assert!(is_barge_in(&RuntimeData::Json(
            json!({"control": "barge_in"})
        )));
        assert!(!is_barge_in(&RuntimeData::Json(
            json!({"control": "other"})
        )));
        assert!(!is_barge_in(&RuntimeData::Text("barge_in".into())));
    }
}
