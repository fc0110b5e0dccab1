//! `AudioBufferAccumulatorNode`: turns VAD events and audio into one Audio per utterance.

use super::dsp::{audio, audio_view, frames_to_us};
use super::streams::PerStream;
use crate::data::RuntimeData;
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::Result;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;

/// Audio kept beyond `pre_roll_ms` during silence, so that a speech start the VAD confirms
/// late (it reports when the speech began) still gets its full pre-roll.
const ONSET_ALLOWANCE_MS: u64 = 2000;

/// Params of [`AudioBufferAccumulatorNode`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudioBufferAccumulatorParams {
    /// Shorter utterances are discarded.
    pub min_utterance_duration_ms: u64,
    /// Longer utterances are split.
    pub max_utterance_duration_ms: u64,
    /// Audio kept from before speech starts.
    pub pre_roll_ms: u64,
}

impl Default for AudioBufferAccumulatorParams {
    fn default() -> Self {
        Self {
            min_utterance_duration_ms: 250,
            max_utterance_duration_ms: 30_000,
            pre_roll_ms: 300,
        }
    }
}

impl NodeParams for AudioBufferAccumulatorParams {
    fn schema() -> ParamsSchema {
        let d = Self::default();
        ParamsSchema::new()
            .integer(
                "min_utterance_duration_ms",
                Some(d.min_utterance_duration_ms as i64),
                0,
                3_600_000,
                "shorter utterances are discarded",
            )
            .integer(
                "max_utterance_duration_ms",
                Some(d.max_utterance_duration_ms as i64),
                1,
                3_600_000,
                "longer utterances are split",
            )
            .integer(
                "pre_roll_ms",
                Some(d.pre_roll_ms as i64),
                0,
                60_000,
                "audio kept from before speech starts",
            )
    }
}

/// Collects speech into utterances, driven by VAD events (`VADNode`, `SileroVADNode`:
/// Json with `is_speech_start` / `is_speech_end`, each followed by the audio it describes).
///
/// - During silence it keeps recent audio (`pre_roll_ms` plus 2 s).
/// - On a speech start it opens an utterance beginning `pre_roll_ms` before the speech
///   (the event's `speech_start_ms`, or the event itself when it has none).
/// - On a speech end it takes the audio that follows the event, then emits the utterance
///   as one Audio item (timestamp = media time of its first frame).
/// - An utterance reaching `max_utterance_duration_ms` is emitted and a new one continues.
/// - At end of stream an open utterance is emitted.
/// - Utterances whose speech part (without pre-roll) is shorter than
///   `min_utterance_duration_ms` are discarded. Nothing is emitted during silence.
///
/// Each audio track (`stream_id`) is collected on its own. A VAD event applies to the
/// track its `stream_id` field names (the native `VADNode` and `SileroVADNode` set it for
/// tagged audio); an event without one applies to the track of the next audio item.
///
/// VAD events are consumed; other Json, text and the like pass through.
#[derive(Debug, Clone)]
pub struct AudioBufferAccumulatorNode {
    settings: Settings,
    tracks: PerStream<Track>,
    /// VAD events naming no track, waiting for the audio they describe.
    unrouted: Vec<Value>,
}

#[derive(Debug, Clone, Copy)]
struct Settings {
    min_utterance_ms: u64,
    max_utterance_ms: u64,
    pre_roll_ms: u64,
}

/// Events without a `stream_id` kept at most before the audio they describe arrives.
const MAX_UNROUTED_EVENTS: usize = 16;

/// What the node keeps for one track.
#[derive(Debug, Clone, Default)]
struct Track {
    /// Recent silent audio.
    pre_roll: VecDeque<Segment>,
    utterance: Option<Utterance>,
    /// A speech end was announced; it applies after the next audio item.
    end_pending: bool,
}

#[derive(Debug, Clone)]
struct Segment {
    samples: Vec<f32>,
    format: Format,
}

/// Format and start time of a run of audio.
#[derive(Debug, Clone, PartialEq)]
struct Format {
    sample_rate: u32,
    channels: u16,
    stream_id: Option<Arc<str>>,
    timestamp_us: u64,
}

impl Format {
    fn same_layout(&self, other: &Format) -> bool {
        self.sample_rate == other.sample_rate && self.channels == other.channels
    }

    fn frames(&self, samples: &[f32]) -> u64 {
        (samples.len() / usize::from(self.channels.max(1))) as u64
    }

    fn duration_us(&self, samples: &[f32]) -> u64 {
        frames_to_us(self.frames(samples), self.sample_rate)
    }
}

/// An utterance being collected; `format` is set by its first audio.
#[derive(Debug, Clone, Default)]
struct Utterance {
    samples: Vec<f32>,
    format: Option<Format>,
    pre_roll_frames: u64,
}

impl Utterance {
    fn starting_with(segment: Segment) -> Self {
        Self {
            samples: segment.samples,
            format: Some(segment.format),
            pre_roll_frames: 0,
        }
    }

    fn duration_us(&self) -> u64 {
        self.format
            .as_ref()
            .map_or(0, |f| f.duration_us(&self.samples))
    }

    fn speech_ms(&self) -> u64 {
        let Some(format) = &self.format else {
            return 0;
        };
        let frames = format
            .frames(&self.samples)
            .saturating_sub(self.pre_roll_frames);
        frames_to_us(frames, format.sample_rate) / 1000
    }
}

impl AudioBufferAccumulatorNode {
    /// An accumulator with the given durations (ms).
    pub fn new(min_utterance_ms: u64, max_utterance_ms: u64, pre_roll_ms: u64) -> Self {
        Self {
            settings: Settings {
                min_utterance_ms,
                max_utterance_ms: max_utterance_ms.max(1),
                pre_roll_ms,
            },
            tracks: PerStream::default(),
            unrouted: Vec::new(),
        }
    }
}

impl Track {
    /// A new utterance holding the pre-roll: audio from `pre_roll_ms` before the speech
    /// start the VAD reported (or the last `pre_roll_ms`, when it reported none). Segments
    /// of another layout than the newest are dropped.
    fn utterance_from_pre_roll(
        &mut self,
        settings: &Settings,
        speech_start_us: Option<u64>,
    ) -> Utterance {
        let segments = std::mem::take(&mut self.pre_roll);
        let Some(last) = segments.back() else {
            return Utterance::default();
        };
        let end_us = last.format.timestamp_us + last.format.duration_us(&last.samples);
        let pre_roll_us = settings.pre_roll_ms * 1000;
        let keep_from_us = match speech_start_us {
            Some(start) => start.saturating_sub(pre_roll_us),
            None => end_us.saturating_sub(pre_roll_us),
        };
        let speech_from_us = speech_start_us.unwrap_or(end_us);
        let layout = last.format.clone();
        let mut utterance = Utterance::default();
        for mut segment in segments {
            if !segment.format.same_layout(&layout) {
                continue;
            }
            let ch = usize::from(segment.format.channels.max(1));
            let drop = frames_before(&segment, keep_from_us);
            segment.samples.drain(..drop * ch);
            segment.format.timestamp_us += frames_to_us(drop as u64, segment.format.sample_rate);
            if segment.samples.is_empty() {
                continue;
            }
            let pre_frames = frames_before(&segment, speech_from_us) as u64;
            if utterance.format.is_none() {
                utterance = Utterance::starting_with(segment);
            } else {
                utterance.samples.extend_from_slice(&segment.samples);
            }
            utterance.pre_roll_frames += pre_frames;
        }
        utterance
    }

    fn emit(&mut self, settings: &Settings, outputs: &mut Outputs) {
        let Some(u) = self.utterance.take() else {
            return;
        };
        let Some(format) = u.format.clone() else {
            return;
        };
        if u.speech_ms() >= settings.min_utterance_ms && !u.samples.is_empty() {
            outputs.push(audio(
                u.samples,
                format.sample_rate,
                format.channels,
                format.stream_id,
                format.timestamp_us,
            ));
        }
    }

    fn on_event(&mut self, settings: &Settings, event: &Value) {
        let flag = |key: &str| event.get(key).and_then(Value::as_bool).unwrap_or(false);
        if flag("is_speech_start") && self.utterance.is_none() {
            self.end_pending = false;
            let speech_start_us = event
                .get("speech_start_ms")
                .and_then(Value::as_f64)
                .map(|ms| (ms.max(0.0) * 1000.0) as u64);
            let utterance = self.utterance_from_pre_roll(settings, speech_start_us);
            self.utterance = Some(utterance);
        }
        if flag("is_speech_end") && self.utterance.is_some() {
            self.end_pending = true;
        }
    }

    fn on_audio(&mut self, settings: &Settings, segment: Segment, outputs: &mut Outputs) {
        let Some(utterance) = self.utterance.as_mut() else {
            self.pre_roll.push_back(segment);
            self.trim_pre_roll(settings);
            return;
        };
        match &utterance.format {
            None => {
                *utterance = Utterance {
                    pre_roll_frames: 0,
                    ..Utterance::starting_with(segment)
                }
            }
            Some(f) if f.same_layout(&segment.format) => {
                utterance.samples.extend_from_slice(&segment.samples);
            }
            Some(_) => {
                // The format changed mid-utterance: close it and continue with a new one.
                self.emit(settings, outputs);
                self.utterance = Some(Utterance::starting_with(segment));
            }
        }
        if self.end_pending {
            self.end_pending = false;
            self.emit(settings, outputs);
            return;
        }
        let too_long = self
            .utterance
            .as_ref()
            .is_some_and(|u| u.duration_us() / 1000 >= settings.max_utterance_ms);
        if too_long {
            // Split: emit what we have; the same speech continues in a new utterance.
            let next = self.utterance.as_ref().and_then(|u| {
                u.format.as_ref().map(|f| Format {
                    timestamp_us: f.timestamp_us + u.duration_us(),
                    ..f.clone()
                })
            });
            self.emit(settings, outputs);
            self.utterance = Some(Utterance {
                samples: Vec::new(),
                format: next,
                pre_roll_frames: 0,
            });
        }
    }

    fn trim_pre_roll(&mut self, settings: &Settings) {
        // Keep enough to reach back from a late-confirmed speech start.
        let keep_us = (settings.pre_roll_ms + ONSET_ALLOWANCE_MS) * 1000;
        let mut total: u64 = self
            .pre_roll
            .iter()
            .map(|s| s.format.duration_us(&s.samples))
            .sum();
        while total > keep_us {
            let excess_us = total - keep_us;
            let Some(front) = self.pre_roll.front_mut() else {
                return;
            };
            let front_us = front.format.duration_us(&front.samples);
            if front_us <= excess_us {
                total -= front_us;
                self.pre_roll.pop_front();
                continue;
            }
            let ch = usize::from(front.format.channels.max(1));
            let drop_frames = (u128::from(excess_us) * u128::from(front.format.sample_rate))
                .div_ceil(1_000_000) as usize;
            let drop_frames = drop_frames.min(front.samples.len() / ch);
            front.samples.drain(..drop_frames * ch);
            front.format.timestamp_us += frames_to_us(drop_frames as u64, front.format.sample_rate);
            return;
        }
    }
}

impl Default for AudioBufferAccumulatorNode {
    fn default() -> Self {
        let params = AudioBufferAccumulatorParams::default();
        Self::new(
            params.min_utterance_duration_ms,
            params.max_utterance_duration_ms,
            params.pre_roll_ms,
        )
    }
}

impl ConfigurableNode for AudioBufferAccumulatorNode {
    type Params = AudioBufferAccumulatorParams;
    fn from_params(params: AudioBufferAccumulatorParams) -> Result<Self> {
        Ok(Self::new(
            params.min_utterance_duration_ms,
            params.max_utterance_duration_ms,
            params.pre_roll_ms,
        ))
    }
}

/// Frames of `segment` that lie before media time `t_us`.
fn frames_before(segment: &Segment, t_us: u64) -> usize {
    let ch = usize::from(segment.format.channels.max(1));
    let offset = t_us.saturating_sub(segment.format.timestamp_us);
    ((u128::from(offset) * u128::from(segment.format.sample_rate)).div_ceil(1_000_000) as usize)
        .min(segment.samples.len() / ch)
}

fn is_vad_event(value: &Value) -> bool {
    value.get("is_speech_start").is_some() || value.get("is_speech_end").is_some()
}

impl Node for AudioBufferAccumulatorNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        if let RuntimeData::Json(event) = &input {
            if is_vad_event(event) {
                match event.get("stream_id").and_then(Value::as_str) {
                    Some(stream_id) => {
                        let track = self
                            .tracks
                            .get_or_insert_with(&Some(Arc::from(stream_id)), || {
                                Ok(Track::default())
                            })?;
                        track.on_event(&self.settings, event);
                    }
                    None => {
                        if self.unrouted.len() == MAX_UNROUTED_EVENTS {
                            self.unrouted.remove(0);
                        }
                        self.unrouted.push(event.clone());
                    }
                }
                return Ok(());
            }
        }
        let Some(view) = audio_view(&input)? else {
            outputs.push(input);
            return Ok(());
        };
        let segment = Segment {
            samples: view.samples.to_vec(),
            format: Format {
                sample_rate: view.sample_rate,
                channels: view.channels,
                stream_id: view.stream_id.clone(),
                timestamp_us: view.timestamp_us,
            },
        };
        let track = self
            .tracks
            .get_or_insert_with(view.stream_id, || Ok(Track::default()))?;
        for event in self.unrouted.drain(..) {
            track.on_event(&self.settings, &event);
        }
        track.on_audio(&self.settings, segment, outputs);
        Ok(())
    }

    fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        for (_, mut track) in self.tracks.take_all() {
            track.emit(&self.settings, outputs);
        }
        self.unrouted.clear();
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(AudioBufferAccumulatorParams::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<AudioBufferAccumulatorNode>(
        "AudioBufferAccumulatorNode",
        &[],
        "one Audio per utterance from VAD events and audio, with pre-roll",
    )
}
