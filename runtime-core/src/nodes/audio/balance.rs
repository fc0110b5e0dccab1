//! `ChannelBalanceNode`: stereo channel health.

use super::dsp::{audio_view, channel_rms, round2, to_db};
use crate::data::RuntimeData;
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::Result;
use serde_json::json;

/// Params of [`ChannelBalanceNode`].
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelBalanceParams {
    /// Alert when channel levels differ by more than this (dB).
    pub imbalance_threshold_db: f64,
    /// A channel below this rms (dBFS) is dead.
    pub dead_channel_threshold_db: f64,
}

impl Default for ChannelBalanceParams {
    fn default() -> Self {
        Self {
            imbalance_threshold_db: 10.0,
            dead_channel_threshold_db: -60.0,
        }
    }
}

impl NodeParams for ChannelBalanceParams {
    fn schema() -> ParamsSchema {
        let d = Self::default();
        ParamsSchema::new()
            .number(
                "imbalance_threshold_db",
                Some(d.imbalance_threshold_db),
                0.0,
                120.0,
                "alert when channel levels differ by more than this (dB)",
            )
            .number(
                "dead_channel_threshold_db",
                Some(d.dead_channel_threshold_db),
                -120.0,
                0.0,
                "a channel below this rms (dBFS) is dead",
            )
    }
}

/// For each stereo chunk: Json `{"alert": "dead_channel", "channel", "timestamp_ms"}` when
/// one channel's rms is below `dead_channel_threshold_db` while the other's is not (channel
/// 0 = left, 1 = right); otherwise `{"alert": "channel_imbalance", "difference_db",
/// "timestamp_ms"}` when the channels' rms differ by more than `imbalance_threshold_db`
/// (difference = left − right). Balanced chunks, silent chunks and non-stereo audio emit
/// nothing. Other data types pass through.
#[derive(Debug, Clone)]
pub struct ChannelBalanceNode {
    imbalance_threshold_db: f64,
    dead_channel_threshold_db: f64,
}

impl ChannelBalanceNode {
    /// A checker with the given thresholds (dB).
    pub fn new(imbalance_threshold_db: f64, dead_channel_threshold_db: f64) -> Self {
        Self {
            imbalance_threshold_db,
            dead_channel_threshold_db,
        }
    }
}

impl Default for ChannelBalanceNode {
    fn default() -> Self {
        let params = ChannelBalanceParams::default();
        Self::new(
            params.imbalance_threshold_db,
            params.dead_channel_threshold_db,
        )
    }
}

impl ConfigurableNode for ChannelBalanceNode {
    type Params = ChannelBalanceParams;
    fn from_params(params: ChannelBalanceParams) -> Result<Self> {
        Ok(Self::new(
            params.imbalance_threshold_db,
            params.dead_channel_threshold_db,
        ))
    }
}

impl Node for ChannelBalanceNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let Some(view) = audio_view(&input)? else {
            outputs.push(input);
            return Ok(());
        };
        if view.channels != 2 || view.samples.is_empty() {
            return Ok(());
        }
        let levels = channel_rms(view.samples, 2);
        let (left, right) = (to_db(levels[0]), to_db(levels[1]));
        let dead = self.dead_channel_threshold_db;
        let alert = match (left < dead, right < dead) {
            (true, false) => Some(json!({"alert": "dead_channel", "channel": 0})),
            (false, true) => Some(json!({"alert": "dead_channel", "channel": 1})),
            (true, true) => None,
            (false, false) if (left - right).abs() > self.imbalance_threshold_db => {
                Some(json!({"alert": "channel_imbalance", "difference_db": round2(left - right)}))
            }
            (false, false) => None,
        };
        if let Some(mut alert) = alert {
            alert["timestamp_ms"] = json!(view.timestamp_ms());
            outputs.push(RuntimeData::Json(alert));
        }
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(ChannelBalanceParams::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<ChannelBalanceNode>(
        "ChannelBalanceNode",
        &[],
        "alerts on a dead or much quieter stereo channel",
    )
}
