//! `VADNode`: native voice activity detection.

use super::dsp::{audio_view, downmix_to_mono, rms, to_db};
use super::streams::PerStream;
use crate::data::RuntimeData;
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
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

/// Params of [`VADNode`].
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VadParams {
    /// Speech probability threshold.
    pub threshold: f64,
    /// Speech must last this long before it starts.
    pub min_speech_duration_ms: u64,
    /// Silence must last this long (plus `speech_pad_ms`) to end speech.
    pub min_silence_duration_ms: u64,
    /// Extra silence kept inside speech before it ends.
    pub speech_pad_ms: u64,
}

impl Default for VadParams {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            min_speech_duration_ms: 250,
            min_silence_duration_ms: 100,
            speech_pad_ms: 30,
        }
    }
}

impl NodeParams for VadParams {
    fn schema() -> ParamsSchema {
        let d = Self::default();
        ParamsSchema::new()
            .number(
                "threshold",
                Some(d.threshold),
                0.0,
                1.0,
                "speech probability threshold",
            )
            .integer(
                "min_speech_duration_ms",
                Some(d.min_speech_duration_ms as i64),
                0,
                60_000,
                "speech must last this long before it starts",
            )
            .integer(
                "min_silence_duration_ms",
                Some(d.min_silence_duration_ms as i64),
                0,
                60_000,
                "silence must last this long (plus speech_pad_ms) to end speech",
            )
            .integer(
                "speech_pad_ms",
                Some(d.speech_pad_ms as i64),
                0,
                10_000,
                "extra silence kept inside speech before it ends",
            )
    }
}

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
    settings: VadSettings,
    /// One detector per audio track.
    streams: PerStream<VadState>,
}

#[derive(Debug, Clone, Copy)]
struct VadSettings {
    threshold: f64,
    min_speech_ms: f64,
    min_silence_ms: f64,
    speech_pad_ms: f64,
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
            settings: VadSettings {
                threshold,
                min_speech_ms,
                min_silence_ms,
                speech_pad_ms,
            },
            streams: PerStream::default(),
        }
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

    fn analyse(
        settings: &VadSettings,
        state: &mut VadState,
        mono: &[f32],
        sample_rate: u32,
    ) -> ChunkDecision {
        let mut decision = ChunkDecision {
            any_speech: state.in_speech,
            ..ChunkDecision::default()
        };
        // A dip shorter than this inside speech onset does not restart the count.
        let max_dip_ms = settings.min_silence_ms.clamp(FRAME_MS, 100.0);
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
                if p < (settings.threshold - HYSTERESIS).max(0.0) {
                    if state.silence_run_ms == 0.0 {
                        state.silence_start_ms = frame_ms;
                    }
                    state.silence_run_ms += FRAME_MS;
                    if state.silence_run_ms >= settings.min_silence_ms + settings.speech_pad_ms {
                        state.in_speech = false;
                        state.speech_run_ms = 0.0;
                        state.dip_ms = 0.0;
                        decision.ended = Some(state.silence_start_ms);
                    }
                } else {
                    state.silence_run_ms = 0.0;
                }
            } else if p >= settings.threshold {
                if state.speech_run_ms == 0.0 {
                    state.run_start_ms = frame_ms;
                }
                state.dip_ms = 0.0;
                state.speech_run_ms += FRAME_MS;
                if state.speech_run_ms >= settings.min_speech_ms.max(FRAME_MS) {
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

impl VadState {
    fn new(sample_rate: u32, timestamp_ms: f64) -> Self {
        Self {
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
        }
    }
}

impl Default for VADNode {
    fn default() -> Self {
        let params = VadParams::default();
        Self::new(
            params.threshold,
            params.min_speech_duration_ms as f64,
            params.min_silence_duration_ms as f64,
            params.speech_pad_ms as f64,
        )
    }
}

impl ConfigurableNode for VADNode {
    type Params = VadParams;
    fn from_params(params: VadParams) -> Result<Self> {
        Ok(Self::new(
            params.threshold,
            params.min_speech_duration_ms as f64,
            params.min_silence_duration_ms as f64,
            params.speech_pad_ms as f64,
        ))
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
        let state = self.streams.get_or_insert_with(view.stream_id, || {
            Ok(VadState::new(view.sample_rate, timestamp_ms))
        })?;
        if state.sample_rate != view.sample_rate {
            // Another rate is another signal: the detector starts over.
            *state = VadState::new(view.sample_rate, timestamp_ms);
        }
        let decision = Self::analyse(&self.settings, state, &mono, view.sample_rate);
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
        if let Some(stream_id) = view.stream_id {
            event["stream_id"] = json!(&**stream_id);
        }
        outputs.push(RuntimeData::Json(event));
        outputs.push(input);
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(VadParams::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<VADNode>(
        "VADNode",
        &[],
        "voice activity events (Json) followed by the unchanged audio",
    )
}
