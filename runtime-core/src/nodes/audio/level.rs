//! `AudioLevelNode`: per-chunk level meter.

use super::dsp::{audio_view, round2, stats, to_db};
use crate::data::RuntimeData;
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::Result;
use serde_json::{json, Value};

/// Samples at or above this magnitude count as clipped for the health score.
const CLIP_LEVEL: f32 = 0.99;

/// Params of [`AudioLevelNode`].
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioLevelParams {
    /// rms below this (dBFS) is low volume.
    pub low_volume_threshold_db: f64,
    /// rms below this (dBFS) is silence.
    pub silence_threshold_db: f64,
}

impl Default for AudioLevelParams {
    fn default() -> Self {
        Self {
            low_volume_threshold_db: -20.0,
            silence_threshold_db: -60.0,
        }
    }
}

impl NodeParams for AudioLevelParams {
    fn schema() -> ParamsSchema {
        let d = Self::default();
        ParamsSchema::new()
            .number(
                "low_volume_threshold_db",
                Some(d.low_volume_threshold_db),
                -120.0,
                0.0,
                "rms below this (dBFS) is low volume",
            )
            .number(
                "silence_threshold_db",
                Some(d.silence_threshold_db),
                -120.0,
                0.0,
                "rms below this (dBFS) is silence",
            )
    }
}

/// For each audio chunk emits Json
/// `{"rms_db", "peak_db", "is_silence", "is_low_volume", "health", "timestamp_ms"}`.
///
/// Levels are dBFS rounded to 0.01 dB, floored at -120 (a full-scale sine reads rms -3.01,
/// peak 0). `is_silence`: rms below `silence_threshold_db`. `is_low_volume`: rms below
/// `low_volume_threshold_db` but not silence. `health` in [0, 1]: 1 for a level at or above
/// the low-volume threshold, falling linearly to 0 at the silence threshold, reduced by the
/// share of clipped samples (10 % clipped → 0). Other data types pass through.
#[derive(Debug, Clone)]
pub struct AudioLevelNode {
    low_volume_threshold_db: f64,
    silence_threshold_db: f64,
}

impl AudioLevelNode {
    /// A meter with the given thresholds (dBFS).
    pub fn new(low_volume_threshold_db: f64, silence_threshold_db: f64) -> Self {
        Self {
            low_volume_threshold_db,
            silence_threshold_db,
        }
    }

    /// The level report of one chunk of samples.
    pub fn measure(&self, samples: &[f32]) -> Value {
        let (sum_sq, peak, clipped) = stats(samples, CLIP_LEVEL);
        let rms = (sum_sq / samples.len().max(1) as f64).sqrt();
        let rms_db = to_db(rms);
        let peak_db = to_db(f64::from(peak));
        let is_silence = rms_db < self.silence_threshold_db;
        let is_low_volume = !is_silence && rms_db < self.low_volume_threshold_db;
        let span = (self.low_volume_threshold_db - self.silence_threshold_db).max(1e-9);
        let level_score = ((rms_db - self.silence_threshold_db) / span).clamp(0.0, 1.0);
        let clip_ratio = clipped as f64 / samples.len().max(1) as f64;
        let health = level_score * (1.0 - (clip_ratio * 10.0).min(1.0));
        json!({
            "rms_db": round2(rms_db),
            "peak_db": round2(peak_db),
            "is_silence": is_silence,
            "is_low_volume": is_low_volume,
            "health": round2(health),
        })
    }
}

impl Default for AudioLevelNode {
    fn default() -> Self {
        let d = AudioLevelParams::default();
        Self::new(d.low_volume_threshold_db, d.silence_threshold_db)
    }
}

impl ConfigurableNode for AudioLevelNode {
    type Params = AudioLevelParams;
    fn from_params(params: AudioLevelParams) -> Result<Self> {
        Ok(Self::new(
            params.low_volume_threshold_db,
            params.silence_threshold_db,
        ))
    }
}

impl Node for AudioLevelNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let Some(view) = audio_view(&input)? else {
            outputs.push(input);
            return Ok(());
        };
        let mut report = self.measure(view.samples);
        report["timestamp_ms"] = json!(view.timestamp_ms());
        outputs.push(RuntimeData::Json(report));
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(AudioLevelParams::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<AudioLevelNode>(
        "AudioLevelNode",
        &[],
        "per-chunk rms/peak level, silence and low-volume flags, health score",
    )
}
