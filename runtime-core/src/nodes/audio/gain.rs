//! `AudioGainNode`: scales audio by a gain in dB.

use super::dsp::{audio, audio_view};
use crate::data::RuntimeData;
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::Result;

/// Params of [`AudioGainNode`].
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioGainParams {
    /// Gain in decibels.
    pub gain_db: f64,
    /// Hard-clip the result to [-1, 1].
    pub clip: bool,
}

impl Default for AudioGainParams {
    fn default() -> Self {
        Self {
            gain_db: 0.0,
            clip: true,
        }
    }
}

impl NodeParams for AudioGainParams {
    fn schema() -> ParamsSchema {
        let d = Self::default();
        ParamsSchema::new()
            .number(
                "gain_db",
                Some(d.gain_db),
                -120.0,
                120.0,
                "gain in decibels",
            )
            .boolean("clip", Some(d.clip), "hard-clip the result to [-1, 1]")
    }
}

/// Multiplies audio by `10^(gain_db/20)`; with `clip` (default) the result is hard-clipped
/// to [-1, 1]. Audio that needs no change (0 dB, nothing to clip) passes through without
/// a copy. Other data types pass through.
#[derive(Debug, Clone)]
pub struct AudioGainNode {
    factor: f32,
    clip: bool,
}

impl AudioGainNode {
    /// A gain of `gain_db` decibels, optionally clipping to [-1, 1].
    pub fn new(gain_db: f64, clip: bool) -> Self {
        Self {
            factor: 10f64.powf(gain_db / 20.0) as f32,
            clip,
        }
    }
}

impl Default for AudioGainNode {
    fn default() -> Self {
        let d = AudioGainParams::default();
        Self::new(d.gain_db, d.clip)
    }
}

impl ConfigurableNode for AudioGainNode {
    type Params = AudioGainParams;
    fn from_params(params: AudioGainParams) -> Result<Self> {
        Ok(Self::new(params.gain_db, params.clip))
    }
}

impl Node for AudioGainNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let Some(view) = audio_view(&input)? else {
            outputs.push(input);
            return Ok(());
        };
        let unchanged = self.factor == 1.0
            && (!self.clip || view.samples.iter().all(|s| (-1.0..=1.0).contains(s)));
        if unchanged {
            outputs.push(input);
            return Ok(());
        }
        let factor = self.factor;
        let scaled: Vec<f32> = if self.clip {
            view.samples
                .iter()
                .map(|&s| (s * factor).clamp(-1.0, 1.0))
                .collect()
        } else {
            view.samples.iter().map(|&s| s * factor).collect()
        };
        outputs.push(audio(
            scaled,
            view.sample_rate,
            view.channels,
            view.stream_id.clone(),
            view.timestamp_us,
        ));
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(AudioGainParams::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<AudioGainNode>(
        "AudioGainNode",
        &[],
        "multiplies audio by 10^(gain_db/20), optionally clipping",
    )
}
