//! `AVSyncNode`: how far video runs ahead of or behind audio.

use super::round2;
use crate::data::RuntimeData;
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::Result;
use serde_json::json;

/// Params of [`AVSyncNode`].
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AVSyncParams {
    /// One skew report per this much video media time.
    pub window_ms: u64,
    /// A window whose skew exceeds this (either way) also raises an alert.
    pub max_skew_ms: f64,
}

impl Default for AVSyncParams {
    fn default() -> Self {
        Self {
            window_ms: 1000,
            max_skew_ms: 80.0,
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
    }
}

/// Takes the audio and video of one source. Each video frame is compared with the audio
/// item that arrived last: `s` = the frame's media time − that audio item's media time
/// (positive: video is late). Per `window_ms` of video media time it emits
/// `{"av_skew_ms": mean s, "window_start_ms", "frames"}`, and with it
/// `{"alert": "av_skew", "av_skew_ms", "window_start_ms"}` when |mean s| > `max_skew_ms`;
/// a partial last window is reported at the end of the stream. Audio and video are
/// consumed; other data passes through.
#[derive(Debug)]
pub struct AVSyncNode {
    window_us: u64,
    max_skew_ms: f64,
    last_audio_us: Option<u64>,
    window_start_us: Option<u64>,
    skews_ms: Vec<f64>,
}

impl ConfigurableNode for AVSyncNode {
    type Params = AVSyncParams;
    fn from_params(params: AVSyncParams) -> Result<Self> {
        Ok(Self {
            window_us: params.window_ms * 1000,
            max_skew_ms: params.max_skew_ms,
            last_audio_us: None,
            window_start_us: None,
            skews_ms: Vec::new(),
        })
    }
}

impl Default for AVSyncNode {
    fn default() -> Self {
        Self {
            window_us: 1_000_000,
            max_skew_ms: 80.0,
            last_audio_us: None,
            window_start_us: None,
            skews_ms: Vec::new(),
        }
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
}

impl Node for AVSyncNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        match &input {
            RuntimeData::Audio { timestamp_us, .. } => {
                self.last_audio_us = Some(*timestamp_us);
            }
            RuntimeData::Video { timestamp_us, .. } => {
                let Some(audio) = self.last_audio_us else {
                    return Ok(()); // nothing to compare with yet
                };
                let video = *timestamp_us;
                let start = *self.window_start_us.get_or_insert(video);
                if video >= start + self.window_us {
                    self.report(outputs);
                    self.window_start_us = Some(video);
                }
                self.skews_ms.push((video as f64 - audio as f64) / 1000.0);
            }
            _ => outputs.push(input),
        }
        Ok(())
    }

    fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
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
    use crate::nodes::video::testing::{pattern, FrameExt};

    /// 3 s of a source: 20 ms audio chunks and 25 fps video, the video stamped
    /// `offset_ms` late, interleaved as they arrive.
    fn source(offset_ms: i64) -> Vec<RuntimeData> {
        let mut items = Vec::new();
        for chunk in 0..150u64 {
            let ms = chunk * 20;
            let mut audio = RuntimeData::audio(vec![0.0f32; 320], 16_000, 1);
            if let RuntimeData::Audio { timestamp_us, .. } = &mut audio {
                *timestamp_us = ms * 1000;
            }
            items.push(audio);
            if ms % 40 == 0 {
                items.push(pattern(8, 8, ms).with_time((ms as i64 + offset_ms).max(0) as u64));
            }
        }
        items
    }

    fn run(items: Vec<RuntimeData>) -> Vec<serde_json::Value> {
        let mut node = AVSyncNode::default();
        let mut outputs = Outputs::new();
        for item in items {
            node.process(item, &mut outputs).expect("process");
        }
        node.flush(&mut outputs).expect("flush");
        outputs
            .drain()
            .map(|o| o.as_json().expect("json").clone())
            .collect()
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
}
