//! `VADNode`: native voice activity detection.

use super::dsp::{audio_view, downmix_to_mono, rms, to_db};
use crate::data::RuntimeData;
use crate::nodes::builtin::{int_param, num_param, BuiltinFactory};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::Result;
use serde_json::json;

/// Analysis frame length.
const FRAME_MS: f64 = 10.0;
/// Below this level (dBFS) a frame is never speech, however quiet the background is.
const ABSOLUTE_FLOOR_DB: f64 = -50.0;
/// A frame this far (dB) above the tracked noise floor scores 0.5.
const SNR_MIDPOINT_DB: f64 = 12.0;
/// Leaving speech needs the probability to fall this far below `threshold`.
const HYSTERESIS: f64 = 0.15;

/// Voice activity detection on audio (any rate; 16 kHz mono is typical; channels are
/// mixed for analysis).
///
/// Every 10 ms frame gets a speech probability from its level above an adaptive noise
/// floor (which falls fast and rises at 1 dB/s), gated by an absolute level (frames
/// below about -50 dBFS are not speech — digital silence and -60 dBFS noise never are)
/// and lowered for noise-like frames (high zero-crossing rate). Hysteresis: speech starts
/// after `min_speech_duration_ms` of frames at or above `threshold` (dips of up to
/// `min(min_silence_duration_ms, 100)` ms inside the onset do not restart the count); it
/// ends after `min_silence_duration_ms + speech_pad_ms` of frames below `threshold - 0.15`.
///
/// For each audio input, emits Json
/// `{"has_speech", "speech_probability", "is_speech_start", "is_speech_end", "timestamp_ms"}`
/// (`has_speech`: in speech at any point of the input; `speech_probability`: the highest
/// frame probability of the input, 0..1) and then the audio itself, unchanged. A start event
/// also carries `speech_start_ms` (media time of the run's first speech frame) and an end
/// event `speech_end_ms` (first frame of the closing silence). Other data types pass
/// through.
#[derive(Debug, Clone)]
pub struct VADNode {
    threshold: f64,
    min_speech_ms: f64,
    min_silence_ms: f64,
    speech_pad_ms: f64,
    state: Option<VadState>,
}

#[derive(Debug, Clone)]
struct VadState {
    sample_rate: u32,
    carry: Vec<f32>,
    noise_floor_db: f64,
    in_speech: bool,
    /// Speech frames counted towards a start.
    speech_run_ms: f64,
    /// Media time of the first speech frame of the current run.
    run_start_ms: f64,
    /// Consecutive non-speech frames inside a run (a run survives short dips).
    dip_ms: f64,
    /// Consecutive non-speech frames while in speech.
    silence_run_ms: f64,
    /// Media time of the first frame of the current silence run.
    silence_start_ms: f64,
    /// Media time of the next frame to analyse.
    next_frame_ms: f64,
}

/// What one input's frames amounted to.
#[derive(Debug, Default)]
struct ChunkDecision {
    max_probability: f64,
    started: Option<f64>,
    ended: Option<f64>,
    any_speech: bool,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn zero_crossing_rate(frame: &[f32]) -> f64 {
    let crossings = frame
        .windows(2)
        .filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0))
        .count();
    crossings as f64 / frame.len().max(1) as f64
}

impl VADNode {
    /// A detector with the given threshold and durations (ms).
    pub fn new(
        threshold: f64,
        min_speech_ms: f64,
        min_silence_ms: f64,
        speech_pad_ms: f64,
    ) -> Self {
        Self {
            threshold,
            min_speech_ms,
            min_silence_ms,
            speech_pad_ms,
            state: None,
        }
    }

    fn schema() -> ParamsSchema {
        ParamsSchema::new()
            .number(
                "threshold",
                Some(0.5),
                0.0,
                1.0,
                "speech probability threshold",
            )
            .integer(
                "min_speech_duration_ms",
                Some(250),
                0,
                60_000,
                "speech must last this long before it starts",
            )
            .integer(
                "min_silence_duration_ms",
                Some(100),
                0,
                60_000,
                "silence must last this long (plus speech_pad_ms) to end speech",
            )
            .integer(
                "speech_pad_ms",
                Some(30),
                0,
                10_000,
                "extra silence kept inside speech before it ends",
            )
    }

    /// Speech probability of one frame, updating the noise floor.
    fn frame_probability(state: &mut VadState, frame: &[f32]) -> f64 {
        let level = to_db(rms(frame));
        if level < state.noise_floor_db {
            state.noise_floor_db = 0.6 * state.noise_floor_db + 0.4 * level;
        } else {
            state.noise_floor_db += (FRAME_MS / 1000.0).min(level - state.noise_floor_db);
        }
        state.noise_floor_db = state.noise_floor_db.max(-100.0);
        let snr = level - state.noise_floor_db;
        let above_noise = sigmoid((snr - SNR_MIDPOINT_DB) / 3.0);
        let loud_enough = sigmoid((level - ABSOLUTE_FLOOR_DB) / 2.5);
        let noise_likeness = ((zero_crossing_rate(frame) - 0.35) / 0.3).clamp(0.0, 1.0);
        above_noise * loud_enough * (1.0 - 0.5 * noise_likeness)
    }

    fn analyse(&mut self, mono: &[f32], sample_rate: u32, timestamp_ms: f64) -> ChunkDecision {
        let restart = self
            .state
            .as_ref()
            .is_none_or(|s| s.sample_rate != sample_rate);
        if restart {
            self.state = Some(VadState {
                sample_rate,
                carry: Vec::new(),
                noise_floor_db: -60.0,
                in_speech: false,
                speech_run_ms: 0.0,
                run_start_ms: 0.0,
                dip_ms: 0.0,
                silence_run_ms: 0.0,
                silence_start_ms: 0.0,
                next_frame_ms: timestamp_ms,
            });
        }
        let mut decision = ChunkDecision::default();
        let Some(state) = self.state.as_mut() else {
            return decision;
        };
        decision.any_speech = state.in_speech;
        // A dip shorter than this inside speech onset does not restart the count.
        let max_dip_ms = self.min_silence_ms.clamp(FRAME_MS, 100.0);
        let frame_len = ((f64::from(sample_rate) * FRAME_MS / 1000.0) as usize).max(1);
        let mut samples = std::mem::take(&mut state.carry);
        samples.extend_from_slice(mono);
        let mut frames = samples.chunks_exact(frame_len);
        for frame in frames.by_ref() {
            let frame_ms = state.next_frame_ms;
            state.next_frame_ms += FRAME_MS;
            let p = Self::frame_probability(state, frame);
            decision.max_probability = decision.max_probability.max(p);
            if state.in_speech {
                if p < (self.threshold - HYSTERESIS).max(0.0) {
                    if state.silence_run_ms == 0.0 {
                        state.silence_start_ms = frame_ms;
                    }
                    state.silence_run_ms += FRAME_MS;
                    if state.silence_run_ms >= self.min_silence_ms + self.speech_pad_ms {
                        state.in_speech = false;
                        state.speech_run_ms = 0.0;
                        state.dip_ms = 0.0;
                        decision.ended = Some(state.silence_start_ms);
                    }
                } else {
                    state.silence_run_ms = 0.0;
                }
            } else if p >= self.threshold {
                if state.speech_run_ms == 0.0 {
                    state.run_start_ms = frame_ms;
                }
                state.dip_ms = 0.0;
                state.speech_run_ms += FRAME_MS;
                if state.speech_run_ms >= self.min_speech_ms.max(FRAME_MS) {
                    state.in_speech = true;
                    state.silence_run_ms = 0.0;
                    decision.started = Some(state.run_start_ms);
                    decision.any_speech = true;
                }
            } else if state.speech_run_ms > 0.0 {
                state.dip_ms += FRAME_MS;
                if state.dip_ms > max_dip_ms {
                    state.speech_run_ms = 0.0;
                    state.dip_ms = 0.0;
                }
            }
        }
        state.carry = frames.remainder().to_vec();
        decision
    }
}

impl Default for VADNode {
    fn default() -> Self {
        Self::new(0.5, 250.0, 100.0, 30.0)
    }
}

impl Node for VADNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let Some(view) = audio_view(&input)? else {
            outputs.push(input);
            return Ok(());
        };
        let mono = downmix_to_mono(view.samples, usize::from(view.channels));
        let timestamp_ms = view.timestamp_ms();
        let decision = self.analyse(&mono, view.sample_rate, timestamp_ms);
        let mut event = json!({
            "has_speech": decision.any_speech,
            "speech_probability": (decision.max_probability * 1000.0).round() / 1000.0,
            "is_speech_start": decision.started.is_some(),
            "is_speech_end": decision.ended.is_some(),
            "timestamp_ms": timestamp_ms,
        });
        if let Some(start) = decision.started {
            event["speech_start_ms"] = json!(start);
        }
        if let Some(end) = decision.ended {
            event["speech_end_ms"] = json!(end);
        }
        outputs.push(RuntimeData::Json(event));
        outputs.push(input);
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(Self::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory {
        name: "VADNode",
        aliases: &[],
        description: "voice activity events (Json) followed by the unchanged audio",
        schema: VADNode::schema,
        build: |params| {
            Ok(Box::new(VADNode::new(
                num_param(params, "threshold", 0.5),
                int_param(params, "min_speech_duration_ms", 250) as f64,
                int_param(params, "min_silence_duration_ms", 100) as f64,
                int_param(params, "speech_pad_ms", 30) as f64,
            )))
        },
    }
}
