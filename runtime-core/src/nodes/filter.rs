//! `TypeFilterNode`: keeps the data of some types (and tracks), drops the rest.

use super::builtin::BuiltinFactory;
use super::params::{ConfigurableNode, NodeParams};
use super::schema::ParamsSchema;
use super::{Node, Outputs};
use crate::data::RuntimeData;
use crate::{Error, Result};

/// The data type names [`TypeFilterNode`] knows.
const TYPES: [&str; 6] = ["audio", "video", "text", "json", "binary", "tensor"];

/// Params of [`TypeFilterNode`].
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TypeFilterParams {
    /// The data types kept (`audio`, `video`, `text`, `json`, `binary`, `tensor`).
    pub types: Vec<String>,
    /// When set, audio and video are kept only from these tracks (`audio:0`, `video:1`).
    pub stream_ids: Option<Vec<String>>,
}

impl NodeParams for TypeFilterParams {
    fn schema() -> ParamsSchema {
        ParamsSchema::new()
            .any(
                "types",
                "the data types kept: a list of audio, video, text, json, binary, tensor",
            )
            .required()
            .any(
                "stream_ids",
                "audio and video are kept only from these tracks (e.g. [\"audio:0\"])",
            )
    }
}

/// Emits the inputs whose type is in `types` (and, with `stream_ids`, whose audio or video
/// track is listed); the others are dropped. Splits a source's tracks between branches of
/// a pipeline: a `video` filter in front of the video nodes, an `audio` one in front of
/// the audio nodes.
#[derive(Debug)]
pub struct TypeFilterNode {
    types: Vec<&'static str>,
    stream_ids: Option<Vec<String>>,
}

impl ConfigurableNode for TypeFilterNode {
    type Params = TypeFilterParams;
    fn from_params(params: TypeFilterParams) -> Result<Self> {
        if params.types.is_empty() {
            return Err(Error::InvalidData(format!(
                "param 'types' lists no type (known: {})",
                TYPES.join(", ")
            )));
        }
        let mut types = Vec::new();
        for name in &params.types {
            let Some(known) = TYPES.iter().find(|t| t.eq_ignore_ascii_case(name)) else {
                return Err(Error::InvalidData(format!(
                    "param 'types': unknown data type '{name}' (known: {})",
                    TYPES.join(", ")
                )));
            };
            types.push(*known);
        }
        Ok(Self {
            types,
            stream_ids: params.stream_ids,
        })
    }
}

impl Node for TypeFilterNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        if !self.types.contains(&input.type_name()) {
            return Ok(());
        }
        let track = match &input {
            RuntimeData::Audio { stream_id, .. } | RuntimeData::Video { stream_id, .. } => {
                Some(stream_id.as_deref())
            }
            _ => None,
        };
        if let (Some(track), Some(wanted)) = (track, &self.stream_ids) {
            if !track.is_some_and(|t| wanted.iter().any(|w| w == t)) {
                return Ok(());
            }
        }
        outputs.push(input);
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(TypeFilterParams::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<TypeFilterNode>(
        "TypeFilterNode",
        &[],
        "keeps the inputs of the listed data types (and tracks), drops the rest",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::video::testing::{pattern, FrameExt};

    fn filter(types: &[&str], stream_ids: Option<&[&str]>) -> Result<TypeFilterNode> {
        TypeFilterNode::from_params(TypeFilterParams {
            types: types.iter().map(|t| (*t).to_owned()).collect(),
            stream_ids: stream_ids.map(|s| s.iter().map(|t| (*t).to_owned()).collect()),
        })
    }

    fn kept(node: &mut TypeFilterNode, items: Vec<RuntimeData>) -> Vec<RuntimeData> {
        let mut outputs = Outputs::new();
        for item in items {
            node.process(item, &mut outputs).expect("process");
        }
        outputs.drain().collect()
    }

    #[test]
    fn keeps_the_listed_types_and_tracks() {
        let audio = RuntimeData::Audio {
            samples: vec![0.0f32; 4].into(),
            sample_rate: 16_000,
            channels: 1,
            stream_id: Some("audio:1".into()),
            timestamp_us: 0,
        };
        let video = pattern(4, 4, 0).with_stream("video:0");
        let items = vec![audio.clone(), video.clone(), RuntimeData::Text("t".into())];
        let mut only_video = filter(&["video"], None).expect("params");
        assert_eq!(kept(&mut only_video, items.clone()), vec![video.clone()]);
        let mut media = filter(&["Audio", "video"], Some(&["audio:0", "video:0"])).expect("params");
        assert_eq!(kept(&mut media, items), vec![video]);
    }

    #[test]
    fn an_unknown_or_missing_type_is_refused() {
        let err = filter(&["pictures"], None).unwrap_err();
        assert!(
            err.to_string().contains("unknown data type 'pictures'"),
            "{err}"
        );
        assert!(filter(&[], None).is_err());
    }
}
