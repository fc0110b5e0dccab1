//! `SilenceDetectorNode`: sustained silence and dropout alerts.

use super::dsp::{audio_view, downmix_to_mono, rms, round2, to_db};
use super::streams::PerStream;
use crate::data::RuntimeData;
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::Result;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::Arc;

/// Length of one analysis window.
const WINDOW_MS: f64 = 10.0;
/// A silent run shorter than this is a glitch, not a dropout.
const MIN_DROPOUT_MS: f64 = 20.0;

/// Params of [`SilenceDetectorNode`].
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SilenceDetectorParams {
    /// A 10 ms window below this rms (dBFS) is silent.
    pub silence_threshold_db: f64,
    /// Silence this long raises a silence alert.
    pub sustained_silence_ms: u64,
    /// This many dropouts within the window raise a dropouts alert.
    pub dropout_count_threshold: usize,
    /// The window dropouts are counted in.
    pub dropout_window_ms: u64,
}

impl Default for SilenceDetectorParams {
    fn default() -> Self {
        Self {
            silence_threshold_db: -50.0,
            sustained_silence_ms: 500,
            dropout_count_threshold: 3,
            dropout_window_ms: 5000,
        }
    }
}

impl NodeParams for SilenceDetectorParams {
    fn schema() -> ParamsSchema {
        let d = Self::default();
        ParamsSchema::new()
            .number(
                "silence_threshold_db",
                Some(d.silence_threshold_db),
                -120.0,
                0.0,
                "a 10 ms window below this rms (dBFS) is silent",
            )
            .integer(
                "sustained_silence_ms",
                Some(d.sustained_silence_ms as i64),
                10,
                3_600_000,
                "silence this long raises a silence alert",
            )
            .integer(
                "dropout_count_threshold",
                Some(d.dropout_count_threshold as i64),
                1,
                10_000,
                "this many dropouts within the window raise a dropouts alert",
            )
            .integer(
                "dropout_window_ms",
                Some(d.dropout_window_ms as i64),
                10,
                3_600_000,
                "the window dropouts are counted in",
            )
    }
}

/// Watches audio level in 10 ms windows (all channels mixed).
///
/// - Once a silent run (window rms below `silence_threshold_db`) has lasted
///   `sustained_silence_ms`, emits Json `{"alert": "silence", "state": "start", "start_ms"}`;
///   when sound returns (or the stream ends, or its rate changes), closes it with
///   `{"alert": "silence", "state": "end", "start_ms", "end_ms", "duration_ms"}` — the
///   real length of the silence.
/// - A silent run of at least 20 ms that ends before `sustained_silence_ms` is a dropout.
///   When `dropout_count_threshold` dropouts start within `dropout_window_ms`, emits
///   `{"alert": "dropouts", "count", "window_ms", "timestamp_ms"}` and starts counting anew.
///
/// Times are media milliseconds from the audio's timestamps. Each audio track
/// (`stream_id`) is watched on its own, and its alerts carry its `stream_id`. Nothing is
/// emitted for normal audio; other data types pass through.
#[derive(Debug, Clone)]
pub struct SilenceDetectorNode {
    settings: SilenceSettings,
    streams: PerStream<StreamState>,
}

#[derive(Debug, Clone)]
struct SilenceSettings {
    silence_threshold_db: f64,
    sustained_silence_ms: f64,
    dropout_count_threshold: usize,
    dropout_window_ms: f64,
}

#[derive(Debug, Clone)]
struct StreamState {
    stream_id: Option<Arc<str>>,
    sample_rate: u32,
    /// Mono samples not yet forming a whole window.
    carry: Vec<f32>,
    /// Media time of the first carried sample.
    carry_start_ms: f64,
    silence_start_ms: Option<f64>,
    /// Media time of the end of the last silent window.
    silence_end_ms: f64,
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
            settings: SilenceSettings {
                silence_threshold_db,
                sustained_silence_ms,
                dropout_count_threshold: dropout_count_threshold.max(1),
                dropout_window_ms,
            },
            streams: PerStream::default(),
        }
    }

    fn window(
        settings: &SilenceSettings,
        state: &mut StreamState,
        samples: &[f32],
        start_ms: f64,
        outputs: &mut Outputs,
    ) {
        let silent = to_db(rms(samples)) < settings.silence_threshold_db;
        let end_ms = start_ms + samples.len() as f64 * 1000.0 / f64::from(state.sample_rate);
        if silent {
            let run_start = *state.silence_start_ms.get_or_insert(start_ms);
            let duration = end_ms - run_start;
            if !state.silence_alerted && duration >= settings.sustained_silence_ms {
                state.silence_alerted = true;
                outputs.push(state.alert(json!({
                    "alert": "silence",
                    "state": "start",
                    "start_ms": round2(run_start),
                })));
            }
            state.silence_end_ms = end_ms;
            return;
        }
        if state.silence_alerted {
            state.end_silence(start_ms, outputs);
            return;
        }
        if let Some(run_start) = state.silence_start_ms.take() {
            let duration = start_ms - run_start;
            if !state.silence_alerted && duration >= MIN_DROPOUT_MS {
                state.dropout_starts.push_back(run_start);
                while state
                    .dropout_starts
                    .front()
                    .is_some_and(|&t| t < start_ms - settings.dropout_window_ms)
                {
                    state.dropout_starts.pop_front();
                }
                if state.dropout_starts.len() >= settings.dropout_count_threshold {
                    let alert = json!({
                        "alert": "dropouts",
                        "count": state.dropout_starts.len(),
                        "window_ms": settings.dropout_window_ms,
                        "timestamp_ms": round2(start_ms),
                    });
                    outputs.push(state.alert(alert));
                    state.dropout_starts.clear();
                }
            }
            state.silence_alerted = false;
        }
    }
}

impl StreamState {
    fn new(stream_id: Option<Arc<str>>, sample_rate: u32, timestamp_ms: f64) -> Self {
        Self {
            stream_id,
            sample_rate,
            carry: Vec::new(),
            carry_start_ms: timestamp_ms,
            silence_start_ms: None,
            silence_end_ms: timestamp_ms,
            silence_alerted: false,
            dropout_starts: VecDeque::new(),
        }
    }

    /// Closes an alerted silent run at `end_ms`: the event with its real length.
    fn end_silence(&mut self, end_ms: f64, outputs: &mut Outputs) {
        let Some(start_ms) = self.silence_start_ms.take() else {
            return;
        };
        self.silence_alerted = false;
        outputs.push(self.alert(json!({
            "alert": "silence",
            "state": "end",
            "start_ms": round2(start_ms),
            "end_ms": round2(end_ms),
            "duration_ms": round2(end_ms - start_ms),
        })));
    }

    /// An alert of this track: tagged with its `stream_id`, when it has one.
    fn alert(&self, mut alert: serde_json::Value) -> RuntimeData {
        if let Some(stream_id) = &self.stream_id {
            alert["stream_id"] = json!(&**stream_id);
        }
        RuntimeData::Json(alert)
    }
}

impl Default for SilenceDetectorNode {
    fn default() -> Self {
        let params = SilenceDetectorParams::default();
        Self::new(
            params.silence_threshold_db,
            params.sustained_silence_ms as f64,
            params.dropout_count_threshold,
            params.dropout_window_ms as f64,
        )
    }
}

impl ConfigurableNode for SilenceDetectorNode {
    type Params = SilenceDetectorParams;
    fn from_params(params: SilenceDetectorParams) -> Result<Self> {
        Ok(Self::new(
            params.silence_threshold_db,
            params.sustained_silence_ms as f64,
            params.dropout_count_threshold,
            params.dropout_window_ms as f64,
        ))
    }
}

impl Node for SilenceDetectorNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let Some(view) = audio_view(&input)? else {
            outputs.push(input);
            return Ok(());
        };
        let mono = downmix_to_mono(view.samples, usize::from(view.channels));
        let timestamp_ms = view.timestamp_ms();
        let state = self.streams.get_or_insert_with(view.stream_id, || {
            Ok(StreamState::new(
                view.stream_id.clone(),
                view.sample_rate,
                timestamp_ms,
            ))
        })?;
        if state.sample_rate != view.sample_rate {
            if state.silence_alerted {
                let end_ms = state.silence_end_ms;
                state.end_silence(end_ms, outputs);
            }
            *state = StreamState::new(view.stream_id.clone(), view.sample_rate, timestamp_ms);
        }
        let window_len = ((f64::from(view.sample_rate) * WINDOW_MS / 1000.0) as usize).max(1);
        let ms_per_sample = 1000.0 / f64::from(view.sample_rate);
        if state.carry.is_empty() {
            state.carry_start_ms = timestamp_ms;
        }
        let mut carry = std::mem::take(&mut state.carry);
        let carry_start = state.carry_start_ms;
        carry.extend_from_slice(&mono);
        let mut offset = 0;
        while carry.len() - offset >= window_len {
            let start_ms = carry_start + offset as f64 * ms_per_sample;
            Self::window(
                &self.settings,
                state,
                &carry[offset..offset + window_len],
                start_ms,
                outputs,
            );
            offset += window_len;
        }
        state.carry_start_ms = carry_start + offset as f64 * ms_per_sample;
        carry.drain(..offset);
        state.carry = carry;
        Ok(())
    }

    /// A silence still running at the end of the stream is closed there.
    fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        for (_, mut state) in self.streams.take_all() {
            if state.silence_alerted {
                let end_ms = state.silence_end_ms;
                state.end_silence(end_ms, outputs);
            }
        }
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(SilenceDetectorParams::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<SilenceDetectorNode>(
        "SilenceDetectorNode",
        &[],
        "alerts on sustained silence and on repeated short dropouts",
    )
}
