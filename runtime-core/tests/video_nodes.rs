//! The video nodes through real pipelines, and their params validation.

mod support;

use bytes::Bytes;
use remotemedia_runtime_core::data::{PixelFormat, RuntimeData};
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::nodes::registry::NodeRegistry;
use support::*;

/// A 64x48 NV12 frame at `ms`: a moving ramp, or a flat grey when `still`.
fn nv12(ms: u64, still: bool) -> RuntimeData {
    let (w, h) = (64usize, 48usize);
    let mut pixels = Vec::with_capacity(w * h * 3 / 2);
    for y in 0..h {
        for x in 0..w {
            pixels.push(if still {
                120
            } else {
                ((x * 4 + y + ms as usize / 10) % 256) as u8
            });
        }
    }
    pixels.resize(w * h * 3 / 2, 128);
    RuntimeData::Video {
        pixel_data: Bytes::from(pixels),
        width: w as u32,
        height: h as u32,
        format: PixelFormat::Nv12,
        codec: None,
        frame_number: ms / 40,
        timestamp_us: ms * 1000,
        is_keyframe: false,
        stream_id: Some("video:0".into()),
    }
}

#[tokio::test]
async fn a_monitor_pipeline_converts_scales_and_reports_a_freeze() {
    // 3 s at 25 fps, still from 1 s to 2 s.
    let frames: Vec<RuntimeData> = (0..75u64)
        .map(|i| {
            let ms = i * 40;
            nv12(ms, (1000..2000).contains(&ms))
        })
        .collect();
    let outputs = run_stream(
        "nodes:\n  - {id: small, node_type: VideoFormatConverterNode, params: {pixel_format: rgb24, width: 32}}\n  - {id: freeze, node_type: VideoFreezeDetectorNode}\n",
        frames,
    )
    .await;
    let events: Vec<serde_json::Value> = outputs
        .iter()
        .map(|o| o.data.as_json().expect("json events").clone())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["state"], "start");
    assert_eq!(events[0]["start_ms"], 1000.0);
    assert_eq!(events[0]["stream_id"], "video:0");
    assert_eq!(events[1]["duration_ms"], 1000.0);
}

#[test]
fn video_params_are_checked_at_validation() {
    let reject = |yaml: &str| {
        NodeRegistry::with_builtins()
            .validate(&Manifest::from_yaml(yaml).expect("structure"))
            .expect_err("rejected")
            .to_string()
    };
    let err = reject(
        "nodes: [{id: v, node_type: VideoFormatConverterNode, params: {pixel_format: bgr}}]",
    );
    assert!(
        err.contains("node 'v'") && err.contains("pixel_format"),
        "{err}"
    );
    let err = reject("nodes: [{id: v, node_type: VideoFormatConverterNode, params: {width: 0}}]");
    assert!(err.contains("'width'") || err.contains("width"), "{err}");
    let err =
        reject("nodes: [{id: f, node_type: VideoFreezeDetectorNode, params: {threshold: 2}}]");
    assert!(
        err.contains("node 'f'") && err.contains("threshold"),
        "{err}"
    );
    let err =
        reject("nodes: [{id: b, node_type: BlackFrameDetectorNode, params: {pixel_ratio: -1}}]");
    assert!(err.contains("pixel_ratio"), "{err}");
    let err = reject("nodes: [{id: s, node_type: AVSyncNode, params: {window: 5}}]");
    assert!(err.contains("window"), "{err}");
}
