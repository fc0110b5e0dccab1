//! `VideoFormatConverterNode`: pixel format conversion and scaling.

use super::{frame_view, luma_of, FrameView};
use crate::data::{PixelFormat, RuntimeData};
use crate::error::ParamProblem;
use crate::nodes::builtin::BuiltinFactory;
use crate::nodes::params::{ConfigurableNode, NodeParams};
use crate::nodes::schema::ParamsSchema;
use crate::nodes::{Node, Outputs};
use crate::{Error, Result};

/// Largest output width or height.
const MAX_SIDE: u32 = 8192;

/// Params of [`VideoFormatConverterNode`].
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoFormatConverterParams {
    /// The output pixel format (`None`: the input's).
    pub pixel_format: Option<String>,
    /// The output width (`None`: from `height` and the aspect ratio, or the input's).
    pub width: Option<u32>,
    /// The output height (`None`: from `width` and the aspect ratio, or the input's).
    pub height: Option<u32>,
}

const FORMATS: &[&str] = &["rgb24", "rgba32", "yuv420p", "nv12", "gray8"];

impl NodeParams for VideoFormatConverterParams {
    fn schema() -> ParamsSchema {
        ParamsSchema::new()
            .choice(
                "pixel_format",
                None,
                FORMATS,
                "the output pixel format (default: the input's)",
            )
            .integer(
                "width",
                None,
                1,
                MAX_SIDE as i64,
                "the output width (default: from height and the aspect ratio, or the input's)",
            )
            .integer(
                "height",
                None,
                1,
                MAX_SIDE as i64,
                "the output height (default: from width and the aspect ratio, or the input's)",
            )
    }
}

fn is_yuv(format: PixelFormat) -> bool {
    matches!(format, PixelFormat::Yuv420p | PixelFormat::Nv12)
}

/// Converts raw frames to `pixel_format` and scales them (bilinear) to `width` x
/// `height`. With one of `width`/`height` the other follows the aspect ratio; YUV 4:2:0
/// outputs get even sizes (a computed size is rounded to even, a given odd one is an
/// error). Colour conversion is BT.601 full range. A frame already in the wanted format
/// and size passes through untouched; other data passes through.
#[derive(Debug, Clone, Default)]
pub struct VideoFormatConverterNode {
    format: Option<PixelFormat>,
    width: Option<u32>,
    height: Option<u32>,
}

impl ConfigurableNode for VideoFormatConverterNode {
    type Params = VideoFormatConverterParams;
    fn from_params(params: VideoFormatConverterParams) -> Result<Self> {
        let format = match params.pixel_format.as_deref() {
            Some(name) => Some(PixelFormat::parse_named(name)?),
            None => None,
        };
        if let Some(f) = format.filter(|f| is_yuv(*f)) {
            for (name, side) in [("width", params.width), ("height", params.height)] {
                if side.is_some_and(|s| s % 2 == 1) {
                    return Err(Error::InvalidParam {
                        node_id: String::new(),
                        node_type: "VideoFormatConverterNode".to_owned(),
                        param: name.to_owned(),
                        problem: Box::new(ParamProblem::Invalid(format!(
                            "{} needs even sizes, got {}",
                            f.as_str(),
                            side.unwrap_or(0)
                        ))),
                    });
                }
            }
        }
        Ok(Self {
            format,
            width: params.width,
            height: params.height,
        })
    }
}

impl VideoFormatConverterNode {
    fn output_size(&self, width: u32, height: u32, format: PixelFormat) -> (u32, u32) {
        let even = |n: u32| if is_yuv(format) { (n + 1) & !1 } else { n }.max(1);
        let scaled = |given: u32, from: u32, to: u32| -> u32 {
            ((u64::from(given) * u64::from(to) + u64::from(from) / 2) / u64::from(from.max(1)))
                as u32
        };
        match (self.width, self.height) {
            (Some(w), Some(h)) => (w, h),
            (Some(w), None) => (w, even(scaled(w, width, height).min(MAX_SIDE))),
            (None, Some(h)) => (even(scaled(h, height, width).min(MAX_SIDE)), h),
            (None, None) => (even(width), even(height)),
        }
    }
}

/// The frame as packed RGB, 3 bytes a pixel.
fn to_rgb(frame: &FrameView<'_>) -> Vec<u8> {
    let (w, h) = (frame.width, frame.height);
    let p = frame.pixels;
    let mut out = Vec::with_capacity(w * h * 3);
    match frame.format {
        PixelFormat::Rgb24 => out.extend_from_slice(&p[..w * h * 3]),
        PixelFormat::Rgba32 => {
            for px in p.chunks_exact(4).take(w * h) {
                out.extend_from_slice(&px[..3]);
            }
        }
        PixelFormat::Gray8 => {
            for &y in &p[..w * h] {
                out.extend_from_slice(&[y, y, y]);
            }
        }
        PixelFormat::Yuv420p | PixelFormat::Nv12 => {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let luma = &p[..w * h];
            let chroma = &p[w * h..];
            for y in 0..h {
                for x in 0..w {
                    let c = (y / 2) * cw + x / 2;
                    let (u, v) = if frame.format == PixelFormat::Yuv420p {
                        (chroma[c], chroma[cw * ch + c])
                    } else {
                        (chroma[2 * c], chroma[2 * c + 1])
                    };
                    out.extend_from_slice(&yuv_to_rgb(luma[y * w + x], u, v));
                }
            }
        }
        PixelFormat::Encoded => {}
    }
    out
}

fn clamp(x: f32) -> u8 {
    x.round().clamp(0.0, 255.0) as u8
}

fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let (y, u, v) = (f32::from(y), f32::from(u) - 128.0, f32::from(v) - 128.0);
    [
        clamp(y + 1.402 * v),
        clamp(y - 0.344_136 * u - 0.714_136 * v),
        clamp(y + 1.772 * u),
    ]
}

/// Bilinear scaling of packed RGB (pixel centres aligned).
fn scale_rgb(rgb: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> Vec<u8> {
    if (w, h) == (ow, oh) {
        return rgb.to_vec();
    }
    let mut out = vec![0u8; ow * oh * 3];
    let sx = w as f32 / ow as f32;
    let sy = h as f32 / oh as f32;
    for oy in 0..oh {
        let fy = ((oy as f32 + 0.5) * sy - 0.5).clamp(0.0, (h - 1) as f32);
        let (y0, ty) = (fy.floor() as usize, fy.fract());
        let y1 = (y0 + 1).min(h - 1);
        for ox in 0..ow {
            let fx = ((ox as f32 + 0.5) * sx - 0.5).clamp(0.0, (w - 1) as f32);
            let (x0, tx) = (fx.floor() as usize, fx.fract());
            let x1 = (x0 + 1).min(w - 1);
            for c in 0..3 {
                let at = |x: usize, y: usize| f32::from(rgb[(y * w + x) * 3 + c]);
                let top = at(x0, y0) * (1.0 - tx) + at(x1, y0) * tx;
                let bottom = at(x0, y1) * (1.0 - tx) + at(x1, y1) * tx;
                out[(oy * ow + ox) * 3 + c] = clamp(top * (1.0 - ty) + bottom * ty);
            }
        }
    }
    out
}

/// Packed RGB to `format`.
fn from_rgb(rgb: &[u8], w: usize, h: usize, format: PixelFormat) -> Vec<u8> {
    match format {
        PixelFormat::Rgb24 => rgb.to_vec(),
        PixelFormat::Rgba32 => rgb
            .chunks_exact(3)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect(),
        PixelFormat::Gray8 => rgb
            .chunks_exact(3)
            .map(|p| luma_of(p[0], p[1], p[2]))
            .collect(),
        PixelFormat::Yuv420p | PixelFormat::Nv12 => {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let mut out = Vec::with_capacity(w * h + 2 * cw * ch);
            out.extend(rgb.chunks_exact(3).map(|p| luma_of(p[0], p[1], p[2])));
            let mut us = Vec::with_capacity(cw * ch);
            let mut vs = Vec::with_capacity(cw * ch);
            for cy in 0..ch {
                for cx in 0..cw {
                    // The mean of each 2x2 block (fewer at odd edges).
                    let (mut r, mut g, mut b, mut n) = (0f32, 0f32, 0f32, 0f32);
                    for y in (2 * cy)..(2 * cy + 2).min(h) {
                        for x in (2 * cx)..(2 * cx + 2).min(w) {
                            let p = &rgb[(y * w + x) * 3..];
                            r += f32::from(p[0]);
                            g += f32::from(p[1]);
                            b += f32::from(p[2]);
                            n += 1.0;
                        }
                    }
                    let (r, g, b) = (r / n, g / n, b / n);
                    us.push(clamp(-0.168_736 * r - 0.331_264 * g + 0.5 * b + 128.0));
                    vs.push(clamp(0.5 * r - 0.418_688 * g - 0.081_312 * b + 128.0));
                }
            }
            if format == PixelFormat::Yuv420p {
                out.extend_from_slice(&us);
                out.extend_from_slice(&vs);
            } else {
                out.extend(us.iter().zip(&vs).flat_map(|(u, v)| [*u, *v]));
            }
            out
        }
        PixelFormat::Encoded => Vec::new(),
    }
}

impl Node for VideoFormatConverterNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let Some(frame) = frame_view(&input)? else {
            outputs.push(input);
            return Ok(());
        };
        let format = self.format.unwrap_or(frame.format);
        let (ow, oh) = self.output_size(frame.width as u32, frame.height as u32, format);
        if format == frame.format && (ow as usize, oh as usize) == (frame.width, frame.height) {
            outputs.push(input);
            return Ok(());
        }
        let rgb = to_rgb(&frame);
        let scaled = scale_rgb(&rgb, frame.width, frame.height, ow as usize, oh as usize);
        let pixels = from_rgb(&scaled, ow as usize, oh as usize, format);
        let RuntimeData::Video {
            frame_number,
            timestamp_us,
            is_keyframe,
            stream_id,
            ..
        } = input
        else {
            return Ok(());
        };
        outputs.push(RuntimeData::Video {
            pixel_data: pixels.into(),
            width: ow,
            height: oh,
            format,
            codec: None,
            frame_number,
            timestamp_us,
            is_keyframe,
            stream_id,
        });
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(VideoFormatConverterParams::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<VideoFormatConverterNode>(
        "VideoFormatConverterNode",
        &[],
        "converts raw video frames between rgb24, rgba32, yuv420p, nv12 and gray8, and scales them",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nodes::video::testing::{flat, pattern};

    fn convert(node: &mut VideoFormatConverterNode, frame: RuntimeData) -> RuntimeData {
        let mut outputs = Outputs::new();
        node.process(frame, &mut outputs).expect("convert");
        let mut out: Vec<RuntimeData> = outputs.drain().collect();
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    fn node(params: serde_json::Value) -> VideoFormatConverterNode {
        VideoFormatConverterNode::from_params(serde_json::from_value(params).expect("params"))
            .expect("node")
    }

    fn pixels(frame: &RuntimeData) -> (&[u8], u32, u32, PixelFormat) {
        match frame {
            RuntimeData::Video {
                pixel_data,
                width,
                height,
                format,
                ..
            } => (pixel_data, *width, *height, *format),
            other => panic!("not video: {other:?}"),
        }
    }

    #[test]
    fn colours_survive_a_round_trip_through_every_format() {
        for colour in [
            [255u8, 0, 0],
            [0, 255, 0],
            [0, 0, 255],
            [128, 128, 128],
            [30, 200, 90],
        ] {
            let original = flat(16, 8, 0, colour);
            for format in ["yuv420p", "nv12", "rgba32", "rgb24"] {
                let there = convert(
                    &mut node(serde_json::json!({"pixel_format": format})),
                    original.clone(),
                );
                assert_eq!(pixels(&there).3.as_str(), format);
                let (bytes, w, h, f) = pixels(&there);
                assert_eq!(Some(bytes.len()), f.frame_len(w, h), "{format}");
                let back = convert(
                    &mut node(serde_json::json!({"pixel_format": "rgb24"})),
                    there.clone(),
                );
                for px in pixels(&back).0.chunks_exact(3) {
                    for c in 0..3 {
                        assert!(
                            px[c].abs_diff(colour[c]) <= 2,
                            "{colour:?} via {format}: {px:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn scaling_keeps_the_aspect_ratio_and_the_picture() {
        let original = pattern(64, 48, 0);
        let half = convert(
            &mut node(serde_json::json!({"width": 32})),
            original.clone(),
        );
        let (bytes, w, h, f) = pixels(&half);
        assert_eq!((w, h, f), (32, 24, PixelFormat::Rgb24));
        // Each output pixel is the mean of the 2x2 block under it.
        let (src, ..) = pixels(&original);
        let at = |x: usize, y: usize, c: usize| f32::from(src[(y * 64 + x) * 3 + c]);
        for (ox, oy) in [(0usize, 0usize), (10, 5), (31, 23)] {
            for c in 0..3 {
                let mean = (at(2 * ox, 2 * oy, c)
                    + at(2 * ox + 1, 2 * oy, c)
                    + at(2 * ox, 2 * oy + 1, c)
                    + at(2 * ox + 1, 2 * oy + 1, c))
                    / 4.0;
                let got = f32::from(bytes[(oy * 32 + ox) * 3 + c]);
                assert!(
                    (got - mean).abs() <= 1.0,
                    "({ox}, {oy}) channel {c}: {got} vs {mean}"
                );
            }
        }
        // A YUV output with a computed odd size is rounded to even.
        let odd = convert(
            &mut node(serde_json::json!({"pixel_format": "yuv420p", "height": 30})),
            pattern(50, 42, 0),
        );
        let (_, w, h, _) = pixels(&odd);
        assert_eq!((w, h), (36, 30));
    }

    #[test]
    fn nothing_to_do_passes_the_frame_and_bad_params_are_refused() {
        let original = pattern(8, 8, 0);
        let same = convert(
            &mut node(serde_json::json!({"pixel_format": "rgb24"})),
            original.clone(),
        );
        assert_eq!(same, original);
        let err = VideoFormatConverterNode::from_params(
            serde_json::from_value(serde_json::json!({"pixel_format": "nv12", "width": 33}))
                .expect("params"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("nv12 needs even sizes, got 33"), "{err}");
    }
}
