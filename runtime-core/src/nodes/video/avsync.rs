//! `AVSyncNode`: how far video runs ahead of or behind audio.

use super::{frame_view, luma, round2};
use crate::data::RuntimeData;
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::Result;
use serde_json::json;

/// How [`AVSyncNode`] measures skew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AVSyncMethod {
    /// By arrival: each video frame against the middle of the audio item that arrived
    /// last. Measures how far the two tracks' timestamps are apart as they are delivered
    /// (transports that carry audio and video on separate paths).
    #[default]
    Arrival,
    /// By content: sync markers — a flash in the picture and a beep in the sound made at
    /// the same moment, as broadcast sync test signals carry — each flash against the
    /// nearest beep. Measures how far the source's timestamps put them apart.
    Markers,
}

impl AVSyncMethod {
    fn as_str(self) -> &'static str {
        match self {
            AVSyncMethod::Arrival => "arrival",
            AVSyncMethod::Markers => "markers",
        }
    }
}

/// Params of [`AVSyncNode`].
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AVSyncParams {
    /// One skew report per this much video media time.
    pub window_ms: u64,
    /// A window whose skew exceeds this (either way) also raises an alert.
    pub max_skew_ms: f64,
    /// `arrival` or `markers`.
    pub method: AVSyncMethod,
    /// Markers: a beep starts at the first sample at or above this level (dBFS) after
    /// `marker_gap_ms` below it.
    pub marker_level_db: f64,
    /// Markers: a flash starts at the first frame whose mean luma (0..1) is at or above
    /// this after `marker_gap_ms` of frames below it.
    pub marker_luma: f64,
    /// Markers: the quiet (dark) time that must precede a beep (flash).
    pub marker_gap_ms: u64,
    /// Markers: a flash and a beep further apart than this are not a pair.
    pub max_pair_ms: u64,
}

impl Default for AVSyncParams {
    fn default() -> Self {
        Self {
            window_ms: 1000,
            max_skew_ms: 80.0,
            method: AVSyncMethod::Arrival,
            marker_level_db: -20.0,
            marker_luma: 0.5,
            marker_gap_ms: 200,
            max_pair_ms: 500,
        }
    }
}

impl NodeParams for AVSyncParams {
    fn schema() -> ParamsSchema {
        let d = Self::default();
        ParamsSchema::new()
            .integer(
                "window_ms",
                Some(d.window_ms as i64),
                10,
                3_600_000,
                "one skew report per this much video media time",
            )
            .number(
                "max_skew_ms",
                Some(d.max_skew_ms),
                0.0,
                3_600_000.0,
                "a window whose skew exceeds this (either way) also raises an alert",
            )
            .choice(
                "method",
                Some(d.method.as_str()),
                &["arrival", "markers"],
                "arrival: video frames against the audio delivered with them; markers: flashes against beeps",
            )
            .number(
                "marker_level_db",
                Some(d.marker_level_db),
                -120.0,
                0.0,
                "markers: a beep starts at the first sample at or above this level (dBFS)",
            )
            .number(
                "marker_luma",
                Some(d.marker_luma),
                0.0,
                1.0,
                "markers: a flash starts at the first frame with at least this mean luma",
            )
            .integer(
                "marker_gap_ms",
                Some(d.marker_gap_ms as i64),
                1,
                60_000,
                "markers: the quiet (dark) time that must precede a beep (flash)",
            )
            .integer(
                "max_pair_ms",
                Some(d.max_pair_ms as i64),
                1,
                60_000,
                "markers: a flash and a beep further apart than this are not a pair",
            )
    }
}

/// Takes the audio and video of one source and reports how far apart their timestamps
/// put what belongs together, per `window_ms` of video media time:
/// `{"av_skew_ms": mean s, "window_start_ms", "frames"}` (`frames`: the measurements in
/// the window), and with it `{"alert": "av_skew", "av_skew_ms", "window_start_ms"}` when
/// |mean s| > `max_skew_ms`; a partial last window is reported at the end of the stream.
/// Positive s: the video is late.
///
/// - `arrival`: s = each video frame's media time − the middle of the audio item that
///   arrived last.
/// - `markers`: s = a flash's media time − the nearest beep's (within `max_pair_ms`); a
///   window with no pair reports nothing.
///
/// Audio and video are consumed; other data passes through.
#[derive(Debug)]
pub struct AVSyncNode {
    window_us: u64,
    max_skew_ms: f64,
    method: AVSyncMethod,
    last_audio_mid_us: Option<u64>,
    window_start_us: Option<u64>,
    skews_ms: Vec<f64>,
    markers: Markers,
}

/// Flash and beep onsets not yet paired.
#[derive(Debug)]
struct Markers {
    level: f32,
    luma: f64,
    gap_us: u64,
    max_pair_us: u64,
    last_loud_us: Option<u64>,
    last_bright_us: Option<u64>,
    audio_until_us: u64,
    beeps: std::collections::VecDeque<u64>,
    flashes: std::collections::VecDeque<u64>,
}

impl Markers {
    fn new(params: &AVSyncParams) -> Self {
        Self {
            level: 10f64.powf(params.marker_level_db / 20.0) as f32,
            luma: params.marker_luma,
            gap_us: params.marker_gap_ms * 1000,
            max_pair_us: params.max_pair_ms * 1000,
            last_loud_us: None,
            last_bright_us: None,
            audio_until_us: 0,
            beeps: Default::default(),
            flashes: Default::default(),
        }
    }

    /// Finds beep onsets in one audio item.
    fn audio(&mut self, samples: &[f32], rate: u32, channels: u16, timestamp_us: u64) {
        let channels = usize::from(channels.max(1));
        let rate = u64::from(rate.max(1));
        for (frame, values) in samples.chunks_exact(channels).enumerate() {
            if !values.iter().any(|v| v.abs() >= self.level) {
                continue;
            }
            let t = timestamp_us + frame as u64 * 1_000_000 / rate;
            let onset = self
                .last_loud_us
                .is_none_or(|last| t.saturating_sub(last) >= self.gap_us);
            if onset && self.beeps.len() < MAX_PENDING {
                self.beeps.push_back(t);
            }
            self.last_loud_us = Some(t);
        }
        let frames = (samples.len() / channels) as u64;
        self.audio_until_us = self
            .audio_until_us
            .max(timestamp_us + frames * 1_000_000 / rate);
    }

    /// Whether this frame starts a flash.
    fn video(&mut self, mean_luma: f64, timestamp_us: u64) {
        if mean_luma < self.luma {
            return;
        }
        let onset = self
            .last_bright_us
            .is_none_or(|last| timestamp_us.saturating_sub(last) >= self.gap_us);
        if onset && self.flashes.len() < MAX_PENDING {
            self.flashes.push_back(timestamp_us);
        }
        self.last_bright_us = Some(timestamp_us);
    }

    /// Pairs what can be paired: (flash time, skew in ms). A flash waits until the audio
    /// has gone `max_pair_ms` past it (a late beep may still come); onsets that can no
    /// longer pair are dropped.
    fn pairs(&mut self, at_end: bool) -> Vec<(u64, f64)> {
        let mut pairs = Vec::new();
        while let Some(&flash) = self.flashes.front() {
            let settled = at_end || self.audio_until_us >= flash + self.max_pair_us;
            if !settled {
                break;
            }
            self.flashes.pop_front();
            // Beeps too early for this flash are too early for every later one.
            while self
                .beeps
                .front()
                .is_some_and(|&b| b + self.max_pair_us < flash)
            {
                self.beeps.pop_front();
            }
            let nearest = self
                .beeps
                .iter()
                .enumerate()
                .filter(|(_, &b)| b.abs_diff(flash) <= self.max_pair_us)
                .min_by_key(|(_, &b)| b.abs_diff(flash))
                .map(|(i, &b)| (i, b));
            if let Some((index, beep)) = nearest {
                self.beeps.remove(index);
                pairs.push((flash, (flash as f64 - beep as f64) / 1000.0));
            }
        }
        pairs
    }
}

/// Onsets kept while waiting for their partner (a stream of clicks cannot grow memory).
const MAX_PENDING: usize = 256;

impl ConfigurableNode for AVSyncNode {
    type Params = AVSyncParams;
    fn from_params(params: AVSyncParams) -> Result<Self> {
        Ok(Self {
            window_us: params.window_ms * 1000,
            max_skew_ms: params.max_skew_ms,
            method: params.method,
            last_audio_mid_us: None,
            window_start_us: None,
            skews_ms: Vec::new(),
            markers: Markers::new(&params),
        })
    }
}

impl Default for AVSyncNode {
    fn default() -> Self {
        Self::from_params(AVSyncParams::default()).expect("the default params are valid")
    }
}

impl AVSyncNode {
    fn report(&mut self, outputs: &mut Outputs) {
        let Some(start) = self.window_start_us.take() else {
            return;
        };
        if self.skews_ms.is_empty() {
            return;
        }
        let mean = self.skews_ms.iter().sum::<f64>() / self.skews_ms.len() as f64;
        let start_ms = round2(start as f64 / 1000.0);
        outputs.push(RuntimeData::Json(json!({
            "av_skew_ms": round2(mean),
            "window_start_ms": start_ms,
            "frames": self.skews_ms.len(),
        })));
        if mean.abs() > self.max_skew_ms {
            outputs.push(RuntimeData::Json(json!({
                "alert": "av_skew",
                "av_skew_ms": round2(mean),
                "window_start_ms": start_ms,
            })));
        }
        self.skews_ms.clear();
    }

    /// Adds one measurement at video time `video_us`, closing the window it ends.
    fn measure(&mut self, video_us: u64, skew_ms: f64, outputs: &mut Outputs) {
        let start = *self.window_start_us.get_or_insert(video_us);
        if video_us >= start + self.window_us {
            self.report(outputs);
            // Windows stay aligned to the first one.
            let windows = (video_us - start) / self.window_us;
            self.window_start_us = Some(start + windows * self.window_us);
        }
        self.skews_ms.push(skew_ms);
    }

    fn measure_pairs(&mut self, at_end: bool, outputs: &mut Outputs) {
        for (flash, skew) in self.markers.pairs(at_end) {
            self.measure(flash, skew, outputs);
        }
    }
}

impl Node for AVSyncNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        match (&input, self.method) {
            (
                RuntimeData::Audio {
                    sample_rate,
                    timestamp_us,
                    ..
                },
                AVSyncMethod::Arrival,
            ) => {
                let frames = input.audio_frames().unwrap_or(0) as u64;
                let half_us = frames * 500_000 / u64::from((*sample_rate).max(1));
                self.last_audio_mid_us = Some(timestamp_us + half_us);
            }
            (
                RuntimeData::Audio {
                    samples,
                    sample_rate,
                    channels,
                    timestamp_us,
                    ..
                },
                AVSyncMethod::Markers,
            ) => {
                self.markers
                    .audio(samples, *sample_rate, *channels, *timestamp_us);
                self.measure_pairs(false, outputs);
            }
            (RuntimeData::Video { timestamp_us, .. }, AVSyncMethod::Arrival) => {
                // Nothing to compare with before the first audio.
                if let Some(audio) = self.last_audio_mid_us {
                    let video = *timestamp_us;
                    self.measure(video, (video as f64 - audio as f64) / 1000.0, outputs);
                }
            }
            (RuntimeData::Video { .. }, AVSyncMethod::Markers) => {
                let Some(frame) = frame_view(&input)? else {
                    return Ok(());
                };
                let luma = luma(&frame);
                let mean = if luma.is_empty() {
                    0.0
                } else {
                    luma.iter().map(|&y| u64::from(y)).sum::<u64>() as f64
                        / (luma.len() as f64 * 255.0)
                };
                self.markers.video(mean, frame.timestamp_us);
                self.measure_pairs(false, outputs);
            }
            _ => outputs.push(input),
        }
        Ok(())
    }

    fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        if self.method == AVSyncMethod::Markers {
            self.measure_pairs(true, outputs);
        }
        self.report(outputs);
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(AVSyncParams::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<AVSyncNode>(
        "AVSyncNode",
        &[],
        "reports the audio/video timestamp skew of one source per window, alerting past a limit",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::video::testing::{flat, json_outputs, pattern, FrameExt};

    /// 3 s of a source: 20 ms audio chunks and 25 fps video, each frame arriving in the
    /// middle of an audio chunk and stamped `offset_ms` late.
    fn source(offset_ms: i64) -> Vec<RuntimeData> {
        let mut items = Vec::new();
        for chunk in 0..150u64 {
            let ms = chunk * 20;
            items.push(audio_at(vec![0.0f32; 320], ms));
            if ms % 40 == 0 {
                items.push(pattern(8, 8, ms).with_time((ms as i64 + 10 + offset_ms).max(0) as u64));
            }
        }
        items
    }

    fn audio_at(samples: Vec<f32>, ms: u64) -> RuntimeData {
        let mut audio = RuntimeData::audio(samples, 16_000, 1);
        if let RuntimeData::Audio { timestamp_us, .. } = &mut audio {
            *timestamp_us = ms * 1000;
        }
        audio
    }

    /// 4 s of a sync test signal: a beep (1 kHz, -6 dBFS, 100 ms) and a white flash
    /// (two frames) every second, the picture's timestamps `video_offset_ms` late; audio in
    /// 20 ms chunks, frames at 25 fps, delivered in timestamp order.
    fn markers_source(video_offset_ms: u64) -> Vec<RuntimeData> {
        let mut items: Vec<(u64, RuntimeData)> = Vec::new();
        for chunk in 0..200u64 {
            let ms = chunk * 20;
            let samples: Vec<f32> = (0..320u64)
                .map(|i| {
                    let t = ms * 16 + i; // sample index at 16 kHz
                    if t % 16_000 < 1600 {
                        0.5 * (2.0 * std::f32::consts::PI * 1000.0 * t as f32 / 16_000.0).sin()
                    } else {
                        0.0
                    }
                })
                .collect();
            items.push((ms * 1000, audio_at(samples, ms)));
        }
        for frame in 0..100u64 {
            let ms = frame * 40;
            let bright = ms % 1000 < 80;
            let picture = if bright {
                flat(8, 8, ms, [255, 255, 255])
            } else {
                flat(8, 8, ms, [20, 20, 20])
            };
            let at = (ms + video_offset_ms) * 1000;
            items.push((at, picture.with_time(ms + video_offset_ms)));
        }
        items.sort_by_key(|(at, _)| *at);
        items.into_iter().map(|(_, item)| item).collect()
    }

    fn run(items: Vec<RuntimeData>) -> Vec<serde_json::Value> {
        run_with(AVSyncNode::default(), items)
    }

    fn run_with(mut node: AVSyncNode, items: Vec<RuntimeData>) -> Vec<serde_json::Value> {
        json_outputs(&mut node, items)
    }

    #[test]
    fn a_synced_source_has_no_skew() {
        let reports = run(source(0));
        assert_eq!(reports.len(), 3, "{reports:?}");
        for report in &reports {
            assert_eq!(report["av_skew_ms"], 0.0, "{report}");
            assert_eq!(report["frames"], 25);
        }
    }

    #[test]
    fn injected_skew_is_measured_and_alerted() {
        let reports = run(source(120));
        let skews: Vec<f64> = reports
            .iter()
            .filter(|r| r.get("alert").is_none())
            .map(|r| r["av_skew_ms"].as_f64().expect("skew"))
            .collect();
        assert!(
            skews.iter().all(|s| (s - 120.0).abs() < 0.01),
            "{reports:?}"
        );
        let alerts = reports.iter().filter(|r| r["alert"] == "av_skew").count();
        assert_eq!(
            alerts,
            skews.len(),
            "every window is over max_skew_ms: {reports:?}"
        );
        // Within the limit: reports, no alert.
        let reports = run(source(40));
        assert!(
            reports.iter().all(|r| r.get("alert").is_none()),
            "{reports:?}"
        );
    }

    fn markers_node() -> AVSyncNode {
        AVSyncNode::from_params(AVSyncParams {
            method: AVSyncMethod::Markers,
            ..AVSyncParams::default()
        })
        .expect("params")
    }

    #[test]
    fn markers_of_a_synced_source_pair_at_zero() {
        let reports = run_with(markers_node(), markers_source(0));
        assert_eq!(reports.len(), 4, "{reports:?}");
        for report in &reports {
            // The beep's first sample over -20 dBFS is its second (62.5 µs in).
            let skew = report["av_skew_ms"].as_f64().expect("skew");
            assert!(skew.abs() < 0.1, "{report}");
            assert_eq!(report["frames"], 1, "one flash per window: {report}");
        }
    }

    #[test]
    fn markers_measure_a_late_picture_and_alert() {
        let reports = run_with(markers_node(), markers_source(200));
        let skews: Vec<f64> = reports
            .iter()
            .filter(|r| r.get("alert").is_none())
            .map(|r| r["av_skew_ms"].as_f64().expect("skew"))
            .collect();
        assert_eq!(skews.len(), 4, "{reports:?}");
        assert!(skews.iter().all(|s| (s - 200.0).abs() < 0.1), "{reports:?}");
        assert_eq!(
            reports.iter().filter(|r| r["alert"] == "av_skew").count(),
            4,
            "{reports:?}"
        );
    }

    #[test]
    fn markers_without_a_partner_report_nothing() {
        // Flashes only (the sound is silent): no pair, no report, bounded memory.
        let silent: Vec<RuntimeData> = markers_source(0)
            .into_iter()
            .map(|item| match item {
                RuntimeData::Audio { timestamp_us, .. } => {
                    audio_at(vec![0.0; 320], timestamp_us / 1000)
                }
                other => other,
            })
            .collect();
        assert!(run_with(markers_node(), silent).is_empty());
    }
}
