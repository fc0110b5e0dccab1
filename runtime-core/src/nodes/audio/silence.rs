//! `SilenceDetectorNode`: sustained silence and dropout alerts.

use super::dsp::{audio_view, downmix_to_mono, rms, round2, to_db};
use crate::data::RuntimeData;
use crate::nodes::builtin::{int_param, num_param, BuiltinFactory};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::Result;
use serde_json::json;
use std::collections::VecDeque;

/// Length of one analysis window.
const WINDOW_MS: f64 = 10.0;
/// A silent run shorter than this is a glitch, not a dropout.
const MIN_DROPOUT_MS: f64 = 20.0;

/// Watches audio level in 10 ms windows (all channels mixed).
///
/// - Once a silent run (window rms below `silence_threshold_db`) has lasted
///   `sustained_silence_ms`, emits Json `{"alert": "silence", "start_ms", "duration_ms"}`
///   — once per run.
/// - A silent run of at least 20 ms that ends before `sustained_silence_ms` is a dropout.
///   When `dropout_count_threshold` dropouts start within `dropout_window_ms`, emits
///   `{"alert": "dropouts", "count", "window_ms", "timestamp_ms"}` and starts counting anew.
///
/// Times are media milliseconds from the audio's timestamps. Nothing is emitted for normal
/// audio; other data types pass through.
#[derive(Debug, Clone)]
pub struct SilenceDetectorNode {
    silence_threshold_db: f64,
    sustained_silence_ms: f64,
    dropout_count_threshold: usize,
    dropout_window_ms: f64,
    state: Option<StreamState>,
}

#[derive(Debug, Clone)]
struct StreamState {
    sample_rate: u32,
    /// Mono samples not yet forming a whole window.
    carry: Vec<f32>,
    /// Media time of the first carried sample.
    carry_start_ms: f64,
    silence_start_ms: Option<f64>,
    silence_alerted: bool,
    dropout_starts: VecDeque<f64>,
}

impl SilenceDetectorNode {
    /// A detector with the given thresholds.
    pub fn new(
        silence_threshold_db: f64,
        sustained_silence_ms: f64,
        dropout_count_threshold: usize,
        dropout_window_ms: f64,
    ) -> Self {
        Self {
            silence_threshold_db,
            sustained_silence_ms,
            dropout_count_threshold: dropout_count_threshold.max(1),
            dropout_window_ms,
            state: None,
        }
    }

    fn schema() -> ParamsSchema {
        ParamsSchema::new()
            .number(
                "silence_threshold_db",
                Some(-50.0),
                -120.0,
                0.0,
                "a 10 ms window below this rms (dBFS) is silent",
            )
            .integer(
                "sustained_silence_ms",
                Some(500),
                10,
                3_600_000,
                "silence this long raises a silence alert",
            )
            .integer(
                "dropout_count_threshold",
                Some(3),
                1,
                10_000,
                "this many dropouts within the window raise a dropouts alert",
            )
            .integer(
                "dropout_window_ms",
                Some(5000),
                10,
                3_600_000,
                "the window dropouts are counted in",
            )
    }

    fn window(&mut self, samples: &[f32], start_ms: f64, outputs: &mut Outputs) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        let silent = to_db(rms(samples)) < self.silence_threshold_db;
        let end_ms = start_ms + samples.len() as f64 * 1000.0 / f64::from(state.sample_rate);
        if silent {
            let run_start = *state.silence_start_ms.get_or_insert(start_ms);
            let duration = end_ms - run_start;
            if !state.silence_alerted && duration >= self.sustained_silence_ms {
                state.silence_alerted = true;
                outputs.push(RuntimeData::Json(json!({
                    "alert": "silence",
                    "start_ms": round2(run_start),
                    "duration_ms": round2(duration),
                })));
            }
            return;
        }
        if let Some(run_start) = state.silence_start_ms.take() {
            let duration = start_ms - run_start;
            if !state.silence_alerted && duration >= MIN_DROPOUT_MS {
                state.dropout_starts.push_back(run_start);
                while state
                    .dropout_starts
                    .front()
                    .is_some_and(|&t| t < start_ms - self.dropout_window_ms)
                {
                    state.dropout_starts.pop_front();
                }
                if state.dropout_starts.len() >= self.dropout_count_threshold {
                    outputs.push(RuntimeData::Json(json!({
                        "alert": "dropouts",
                        "count": state.dropout_starts.len(),
                        "window_ms": self.dropout_window_ms,
                        "timestamp_ms": round2(start_ms),
                    })));
                    state.dropout_starts.clear();
                }
            }
            state.silence_alerted = false;
        }
    }
}

impl Default for SilenceDetectorNode {
    fn default() -> Self {
        Self::new(-50.0, 500.0, 3, 5000.0)
    }
}

impl Node for SilenceDetectorNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let Some(view) = audio_view(&input)? else {
            outputs.push(input);
            return Ok(());
        };
        let mono = downmix_to_mono(view.samples, usize::from(view.channels));
        let restart = self
            .state
            .as_ref()
            .is_none_or(|s| s.sample_rate != view.sample_rate);
        if restart {
            self.state = Some(StreamState {
                sample_rate: view.sample_rate,
                carry: Vec::new(),
                carry_start_ms: view.timestamp_ms(),
                silence_start_ms: None,
                silence_alerted: false,
                dropout_starts: VecDeque::new(),
            });
        }
        let window_len = ((f64::from(view.sample_rate) * WINDOW_MS / 1000.0) as usize).max(1);
        let ms_per_sample = 1000.0 / f64::from(view.sample_rate);
        let (mut carry, carry_start) = match self.state.as_mut() {
            Some(state) => {
                if state.carry.is_empty() {
                    state.carry_start_ms = view.timestamp_ms();
                }
                (std::mem::take(&mut state.carry), state.carry_start_ms)
            }
            None => return Ok(()),
        };
        carry.extend_from_slice(&mono);
        let mut offset = 0;
        while carry.len() - offset >= window_len {
            let start_ms = carry_start + offset as f64 * ms_per_sample;
            self.window(&carry[offset..offset + window_len], start_ms, outputs);
            offset += window_len;
        }
        if let Some(state) = self.state.as_mut() {
            state.carry_start_ms = carry_start + offset as f64 * ms_per_sample;
            carry.drain(..offset);
            state.carry = carry;
        }
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(Self::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory {
        name: "SilenceDetectorNode",
        aliases: &[],
        description: "alerts on sustained silence and on repeated short dropouts",
        schema: SilenceDetectorNode::schema,
        build: |params| {
            Ok(Box::new(SilenceDetectorNode::new(
                num_param(params, "silence_threshold_db", -50.0),
                int_param(params, "sustained_silence_ms", 500) as f64,
                int_param(params, "dropout_count_threshold", 3) as usize,
                int_param(params, "dropout_window_ms", 5000) as f64,
            )))
        },
    }
}
