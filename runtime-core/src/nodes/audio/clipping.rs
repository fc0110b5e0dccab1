//! `ClippingDetectorNode`: alerts on saturated chunks.

use super::dsp::{audio_view, round2};
use crate::data::RuntimeData;
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::Result;
use serde_json::json;

/// Params of [`ClippingDetectorNode`].
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClippingDetectorParams {
    /// A sample with |x| at or above this is saturated.
    pub saturation_threshold: f64,
    /// Alert when more than this percent of a chunk is saturated.
    pub saturation_ratio_threshold: f64,
}

impl Default for ClippingDetectorParams {
    fn default() -> Self {
        Self {
            saturation_threshold: 0.99,
            saturation_ratio_threshold: 1.0,
        }
    }
}

impl NodeParams for ClippingDetectorParams {
    fn schema() -> ParamsSchema {
        let d = Self::default();
        ParamsSchema::new()
            .number(
                "saturation_threshold",
                Some(d.saturation_threshold),
                0.0,
                1.0,
                "a sample with |x| at or above this is saturated",
            )
            .number(
                "saturation_ratio_threshold",
                Some(d.saturation_ratio_threshold),
                0.0,
                100.0,
                "alert when more than this percent of a chunk is saturated",
            )
    }
}

/// Emits Json `{"alert": "clipping", "saturated_ratio", "timestamp_ms"}` for every audio
/// chunk in which more than `saturation_ratio_threshold` percent of the samples have
/// `|x| >= saturation_threshold`; `saturated_ratio` is that share in percent. Chunks below
/// the threshold emit nothing. Other data types pass through.
#[derive(Debug, Clone)]
pub struct ClippingDetectorNode {
    saturation_threshold: f32,
    saturation_ratio_threshold: f64,
}

impl ClippingDetectorNode {
    /// A detector with the given sample threshold and ratio threshold (percent).
    pub fn new(saturation_threshold: f32, saturation_ratio_threshold: f64) -> Self {
        Self {
            saturation_threshold,
            saturation_ratio_threshold,
        }
    }
}

impl Default for ClippingDetectorNode {
    fn default() -> Self {
        let params = ClippingDetectorParams::default();
        Self::new(
            params.saturation_threshold as f32,
            params.saturation_ratio_threshold,
        )
    }
}

impl ConfigurableNode for ClippingDetectorNode {
    type Params = ClippingDetectorParams;
    fn from_params(params: ClippingDetectorParams) -> Result<Self> {
        Ok(Self::new(
            params.saturation_threshold as f32,
            params.saturation_ratio_threshold,
        ))
    }
}

impl Node for ClippingDetectorNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let Some(view) = audio_view(&input)? else {
            outputs.push(input);
            return Ok(());
        };
        if view.samples.is_empty() {
            return Ok(());
        }
        let threshold = self.saturation_threshold;
        let saturated = super::dsp::count_at_least(view.samples, threshold);
        let ratio = saturated as f64 * 100.0 / view.samples.len() as f64;
        if ratio > self.saturation_ratio_threshold {
            outputs.push(RuntimeData::Json(json!({
                "alert": "clipping",
                "saturated_ratio": round2(ratio),
                "timestamp_ms": view.timestamp_ms(),
            })));
        }
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(ClippingDetectorParams::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<ClippingDetectorNode>(
        "ClippingDetectorNode",
        &[],
        "alerts when too many samples of a chunk are saturated",
    )
}
