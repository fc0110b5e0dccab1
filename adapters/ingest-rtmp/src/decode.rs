//! Decoding the selected tracks of one opened input into [`RuntimeData`].

use crate::clock::Clock;
use ffmpeg::format::{Pixel, Sample};
use ffmpeg::media::Type as Medium;
use ffmpeg_next as ffmpeg;
use remotemedia_runtime_core::data::{Bytes, PixelFormat, RuntimeData};
use remotemedia_runtime_core::ingestion::{AudioConversion, IngestConfig, TrackInfo};
use serde_json::json;
use std::sync::Arc;

/// Tracks decoded at once (a stream can declare many).
pub(crate) const MAX_TRACKS: usize = 32;
/// Largest picture side decoded (a larger picture is an error naming the track).
pub const MAX_SIDE: u32 = 8192;
/// Most pixels in one picture (8K UHD).
pub const MAX_PIXELS: u64 = 7680 * 4320;
/// Longest subtitle text delivered, in bytes; longer text is cut.
const MAX_SUBTITLE_BYTES: usize = 16 * 1024;
/// Decoding errors in a row after which the input counts as broken.
const MAX_ERRORS_IN_A_ROW: u32 = 200;

/// One selected track.
enum Decoder {
    Audio(AudioTrack),
    Video(VideoTrack),
    Subtitle(SubtitleTrack),
}

/// The decoders of one connection, by FFmpeg stream index.
pub(crate) struct Tracks {
    decoders: Vec<Option<(Arc<str>, Decoder)>>,
    errors_in_a_row: u32,
}

/// What a track found, for [`MediaInfo`](remotemedia_runtime_core::ingestion::MediaInfo).
pub(crate) struct Found {
    pub(crate) tracks: Vec<TrackInfo>,
    pub(crate) format: String,
}

/// State kept across connections, per track tag: audio conversion and timestamps go on
/// where the last connection left them.
#[derive(Default)]
pub(crate) struct Carry {
    audio: Vec<(Arc<str>, AudioCarry)>,
    video: Vec<(Arc<str>, VideoCarry)>,
}

struct AudioCarry {
    conversion: AudioConversion,
    next_us: Option<u64>,
}

#[derive(Default)]
struct VideoCarry {
    last_us: Option<u64>,
    last_kept_us: Option<u64>,
    frames: u64,
}

impl Carry {
    fn audio(&mut self, tag: &Arc<str>) -> Option<&mut AudioCarry> {
        self.audio
            .iter_mut()
            .find(|(t, _)| t == tag)
            .map(|(_, c)| c)
    }

    fn video(&mut self, tag: &Arc<str>) -> &mut VideoCarry {
        let index = match self.video.iter().position(|(t, _)| t == tag) {
            Some(i) => i,
            None => {
                self.video.push((Arc::clone(tag), VideoCarry::default()));
                self.video.len() - 1
            }
        };
        &mut self.video[index].1
    }

    /// The converted audio still held back, at the end of the input.
    pub(crate) fn finish(&mut self) -> Result<Vec<RuntimeData>, String> {
        let mut out = Vec::new();
        for (tag, carry) in &mut self.audio {
            out.extend(
                carry
                    .conversion
                    .finish()
                    .map_err(|e| format!("converting {tag}: {e}"))?,
            );
        }
        Ok(out)
    }
}

impl Tracks {
    /// Opens a decoder for every selected track of `input`.
    pub(crate) fn open(
        input: &ffmpeg::format::context::Input,
        config: &IngestConfig,
    ) -> Result<(Self, Found), String> {
        let mut decoders = Vec::new();
        let mut tracks = Vec::new();
        let mut counts = [0usize; 3];
        let mut selected = 0usize;
        for stream in input.streams() {
            let parameters = stream.parameters();
            let (kind, slot) = match parameters.medium() {
                Medium::Audio => ("audio", 0),
                Medium::Video => ("video", 1),
                Medium::Subtitle => ("subtitle", 2),
                _ => {
                    decoders.push(None);
                    continue;
                }
            };
            // Cover art in a file is a "video" stream of one picture: not a track.
            if stream
                .disposition()
                .contains(ffmpeg::format::stream::Disposition::ATTACHED_PIC)
            {
                decoders.push(None);
                continue;
            }
            let index = counts[slot];
            counts[slot] += 1;
            let tag = format!("{kind}:{index}");
            let language = stream.metadata().get("language").map(str::to_owned);
            let is_selected =
                config
                    .track_selection
                    .selects_track(&tag, index, language.as_deref());
            let codec = parameters.id().name().to_owned();
            let time_base = stream.time_base();
            let duration_us = (stream.duration() > 0)
                .then(|| rescale_us(stream.duration(), time_base))
                .flatten()
                .map(|us| us.max(0) as u64);
            let mut info = TrackInfo {
                stream_id: tag.clone(),
                codec: codec.clone(),
                sample_rate: None,
                channels: None,
                duration_us,
                selected: is_selected,
                language,
                width: None,
                height: None,
            };
            if !is_selected {
                tracks.push(info);
                decoders.push(None);
                continue;
            }
            selected += 1;
            if selected > MAX_TRACKS {
                return Err(format!(
                    "the selection takes more than {MAX_TRACKS} tracks; select fewer"
                ));
            }
            let cannot = |e: ffmpeg::Error| format!("cannot decode {tag} (codec {codec}): {e}");
            let mut context =
                ffmpeg::codec::Context::from_parameters(parameters).map_err(cannot)?;
            // Slice threads add no delay; frame threads would hold frames back.
            context.set_threading(ffmpeg::codec::threading::Config {
                kind: ffmpeg::codec::threading::Type::Slice,
                ..Default::default()
            });
            let mut decoder = context.decoder();
            decoder.set_packet_time_base(time_base);
            let tag: Arc<str> = Arc::from(tag.as_str());
            let track = match kind {
                "audio" => {
                    let decoder = decoder.audio().map_err(cannot)?;
                    let rate = decoder.rate();
                    let channels = decoder.channels();
                    info.sample_rate = config.audio_sample_rate.or((rate > 0).then_some(rate));
                    info.channels = config.audio_channels.or((channels > 0).then_some(channels));
                    Decoder::Audio(AudioTrack {
                        decoder,
                        frame: ffmpeg::frame::Audio::empty(),
                        time_base,
                    })
                }
                "video" => {
                    let decoder = decoder.video().map_err(cannot)?;
                    let (width, height) = output_size(config, decoder.width(), decoder.height());
                    info.width = (width > 0).then_some(width);
                    info.height = (height > 0).then_some(height);
                    Decoder::Video(VideoTrack {
                        decoder,
                        frame: ffmpeg::frame::Video::empty(),
                        scaled: ffmpeg::frame::Video::empty(),
                        scaler: None,
                        time_base,
                        format: config.video_pixel_format.unwrap_or(PixelFormat::Yuv420p),
                        min_interval_us: config.video_max_fps.map(|fps| (1e6 / fps * 0.98) as u64),
                    })
                }
                _ => Decoder::Subtitle(SubtitleTrack {
                    decoder: decoder.subtitle().map_err(cannot)?,
                    time_base,
                }),
            };
            tracks.push(info);
            decoders.push(Some((tag, track)));
        }
        if selected == 0 {
            let found: Vec<&str> = tracks.iter().map(|t| t.stream_id.as_str()).collect();
            return Err(if found.is_empty() {
                "the input holds no audio, video or subtitle track".to_owned()
            } else {
                format!(
                    "no track matches the selection {:?} (tracks: {})",
                    config.track_selection,
                    found.join(", ")
                )
            });
        }
        let format = input.format().name().to_owned();
        Ok((
            Tracks {
                decoders,
                errors_in_a_row: 0,
            },
            Found { tracks, format },
        ))
    }

    /// Decodes one packet; the items are appended to `out`.
    pub(crate) fn decode(
        &mut self,
        packet: &ffmpeg::Packet,
        config: &IngestConfig,
        clock: &mut Clock,
        carry: &mut Carry,
        out: &mut Vec<RuntimeData>,
    ) -> Result<(), String> {
        let Some(Some((tag, decoder))) = self.decoders.get_mut(packet.stream()) else {
            return Ok(());
        };
        let result = match decoder {
            Decoder::Audio(track) => track.decode(Some(packet), tag, config, clock, carry, out),
            Decoder::Video(track) => track.decode(Some(packet), tag, config, clock, carry, out),
            Decoder::Subtitle(track) => track.decode(packet, tag, clock, out),
        };
        match result {
            Ok(()) => {
                self.errors_in_a_row = 0;
                Ok(())
            }
            Err(Failure::Packet(why)) => {
                // A damaged packet on a live stream is skipped; a stream of them is not.
                self.errors_in_a_row += 1;
                if self.errors_in_a_row >= MAX_ERRORS_IN_A_ROW {
                    return Err(format!(
                        "{} packets in a row failed to decode (last, on {tag}: {why})",
                        self.errors_in_a_row
                    ));
                }
                tracing::debug!(track = %tag, "skipped a packet that does not decode: {why}");
                Ok(())
            }
            Err(Failure::Fatal(why)) => Err(why),
        }
    }

    /// Drains the decoders at the end of a connection.
    pub(crate) fn drain(
        &mut self,
        config: &IngestConfig,
        clock: &mut Clock,
        carry: &mut Carry,
        out: &mut Vec<RuntimeData>,
    ) -> Result<(), String> {
        for (tag, decoder) in self.decoders.iter_mut().flatten() {
            let result = match decoder {
                Decoder::Audio(track) => track.decode(None, tag, config, clock, carry, out),
                Decoder::Video(track) => track.decode(None, tag, config, clock, carry, out),
                Decoder::Subtitle(_) => Ok(()),
            };
            match result {
                Ok(()) | Err(Failure::Packet(_)) => {}
                Err(Failure::Fatal(why)) => return Err(why),
            }
        }
        Ok(())
    }
}

enum Failure {
    /// This packet did not decode; the stream may go on.
    Packet(String),
    /// The input cannot be delivered.
    Fatal(String),
}

fn is_again(e: &ffmpeg::Error) -> bool {
    matches!(e, ffmpeg::Error::Other { errno } if *errno == ffmpeg::util::error::EAGAIN)
}

/// Sends `packet` (or the end of input) to a decoder.
fn send(
    decoder: &mut ffmpeg::decoder::Opened,
    packet: Option<&ffmpeg::Packet>,
) -> Result<(), Failure> {
    let sent = match packet {
        Some(packet) => decoder.send_packet(packet),
        None => decoder.send_eof(),
    };
    match sent {
        Ok(()) => Ok(()),
        Err(ffmpeg::Error::Eof) => Ok(()),
        Err(e) if is_again(&e) => Ok(()),
        Err(e) => Err(Failure::Packet(e.to_string())),
    }
}

/// Takes the decoder's next frame; false when it needs more input (or is drained).
fn next_frame(
    decoder: &mut ffmpeg::decoder::Opened,
    frame: &mut ffmpeg::Frame,
) -> Result<bool, Failure> {
    match decoder.receive_frame(frame) {
        Ok(()) => Ok(true),
        Err(e) if is_again(&e) || e == ffmpeg::Error::Eof => Ok(false),
        Err(e) => Err(Failure::Packet(e.to_string())),
    }
}

/// `value` in `time_base` units as µs.
pub(crate) fn rescale_us(value: i64, time_base: ffmpeg::Rational) -> Option<i64> {
    if time_base.denominator() == 0 {
        return None;
    }
    let us = i128::from(value) * i128::from(time_base.numerator()) * 1_000_000
        / i128::from(time_base.denominator());
    i64::try_from(us).ok()
}

struct AudioTrack {
    decoder: ffmpeg::decoder::Audio,
    frame: ffmpeg::frame::Audio,
    time_base: ffmpeg::Rational,
}

impl AudioTrack {
    fn decode(
        &mut self,
        packet: Option<&ffmpeg::Packet>,
        tag: &Arc<str>,
        config: &IngestConfig,
        clock: &mut Clock,
        carry: &mut Carry,
        out: &mut Vec<RuntimeData>,
    ) -> Result<(), Failure> {
        send(&mut self.decoder, packet)?;
        while next_frame(&mut self.decoder, &mut self.frame)? {
            let rate = self.frame.rate();
            let channels = self.frame.channels();
            if rate == 0 || rate > 768_000 || channels == 0 || channels > 64 {
                return Err(Failure::Fatal(format!(
                    "{tag} decodes to {channels} channel(s) at {rate} Hz, outside 1..=64 channels at 1..=768000 Hz"
                )));
            }
            let samples = interleaved_f32(&self.frame).ok_or_else(|| {
                Failure::Fatal(format!(
                    "{tag}: the decoder's sample format is not one the adapter converts"
                ))
            })?;
            if samples.is_empty() {
                continue;
            }
            let frames = (samples.len() / usize::from(channels)) as u64;
            let raw_us = self
                .frame
                .timestamp()
                .and_then(|ts| rescale_us(ts, self.time_base));
            // A new format (or the first audio): a new conversion, after the old one's tail.
            let reuse = carry
                .audio(tag)
                .is_some_and(|c| c.conversion.source_format() == (rate, channels));
            if !reuse {
                if let Some(index) = carry.audio.iter().position(|(t, _)| t == tag) {
                    let (_, mut old) = carry.audio.remove(index);
                    out.extend(
                        old.conversion
                            .finish()
                            .map_err(|e| Failure::Fatal(e.to_string()))?,
                    );
                }
                carry.audio.push((
                    Arc::clone(tag),
                    AudioCarry {
                        conversion: AudioConversion::new(config, tag, rate, channels),
                        next_us: None,
                    },
                ));
            }
            let Some(state) = carry.audio(tag) else {
                continue;
            };
            let mapped = raw_us.map(|raw| clock.map(raw));
            let timestamp_us = match (mapped, state.next_us) {
                // Contiguous (within the container's rounding) or overlapping: go on from
                // where the last block ended, so timestamps count samples.
                (Some(t), Some(next)) if t <= next + 2_000 => next,
                (Some(t), _) => t,
                (None, Some(next)) => next,
                (None, None) => clock.map_unknown(),
            };
            let end_us = timestamp_us + frames * 1_000_000 / u64::from(rate);
            state.next_us = Some(end_us);
            clock.delivered(end_us);
            let items = state
                .conversion
                .convert(samples, timestamp_us)
                .map_err(|e| Failure::Fatal(e.to_string()))?;
            out.extend(items);
        }
        Ok(())
    }
}

/// The frame's samples as interleaved f32.
fn interleaved_f32(frame: &ffmpeg::frame::Audio) -> Option<Vec<f32>> {
    let channels = usize::from(frame.channels());
    let samples = frame.samples();
    let format = frame.format();
    let width = format.bytes();
    let read: fn(&[u8]) -> f32 = match format {
        Sample::U8(_) => |b| (f32::from(b[0]) - 128.0) / 128.0,
        Sample::I16(_) => |b| f32::from(i16::from_ne_bytes([b[0], b[1]])) / 32768.0,
        Sample::I32(_) => |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
        Sample::I64(_) => |b| {
            i64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                / 9_223_372_036_854_775_808.0
        },
        Sample::F32(_) => |b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        Sample::F64(_) => {
            |b| f64::from_ne_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
        }
        Sample::None => return None,
    };
    let mut out = Vec::with_capacity(samples * channels);
    if format.is_planar() {
        let planes: Vec<&[u8]> = (0..channels).map(|c| frame.data(c)).collect();
        if planes.iter().any(|p| p.len() < samples * width) {
            return None;
        }
        for i in 0..samples {
            for plane in &planes {
                out.push(read(&plane[i * width..]));
            }
        }
    } else {
        let data = frame.data(0);
        let len = samples * channels * width;
        if data.len() < len {
            return None;
        }
        out.extend(data[..len].chunks_exact(width).map(read));
    }
    Some(out)
}

/// The delivered size for a decoded `width` x `height` picture.
pub(crate) fn output_size(config: &IngestConfig, width: u32, height: u32) -> (u32, u32) {
    let even = |v: u32| v.max(2).div_ceil(2) * 2;
    let format = config.video_pixel_format.unwrap_or(PixelFormat::Yuv420p);
    let subsampled = matches!(format, PixelFormat::Yuv420p | PixelFormat::Nv12);
    let fit = |v: f64| {
        let v = v.round().clamp(1.0, f64::from(MAX_SIDE)) as u32;
        if subsampled {
            even(v)
        } else {
            v
        }
    };
    match (config.video_width, config.video_height) {
        (Some(w), Some(h)) => (w, h),
        (Some(w), None) if width > 0 => {
            (w, fit(f64::from(height) * f64::from(w) / f64::from(width)))
        }
        (None, Some(h)) if height > 0 => {
            (fit(f64::from(width) * f64::from(h) / f64::from(height)), h)
        }
        _ => (width, height),
    }
}

fn pixel_of(format: PixelFormat) -> Pixel {
    match format {
        PixelFormat::Nv12 => Pixel::NV12,
        PixelFormat::Rgb24 => Pixel::RGB24,
        PixelFormat::Rgba32 => Pixel::RGBA,
        PixelFormat::Gray8 => Pixel::GRAY8,
        // Validation refuses `encoded`; everything else is YUV 4:2:0.
        _ => Pixel::YUV420P,
    }
}

struct VideoTrack {
    decoder: ffmpeg::decoder::Video,
    frame: ffmpeg::frame::Video,
    scaled: ffmpeg::frame::Video,
    scaler: Option<(ffmpeg::software::scaling::Context, (Pixel, u32, u32))>,
    time_base: ffmpeg::Rational,
    format: PixelFormat,
    min_interval_us: Option<u64>,
}

impl VideoTrack {
    fn decode(
        &mut self,
        packet: Option<&ffmpeg::Packet>,
        tag: &Arc<str>,
        config: &IngestConfig,
        clock: &mut Clock,
        carry: &mut Carry,
        out: &mut Vec<RuntimeData>,
    ) -> Result<(), Failure> {
        send(&mut self.decoder, packet)?;
        while next_frame(&mut self.decoder, &mut self.frame)? {
            let (width, height) = (self.frame.width(), self.frame.height());
            if width == 0
                || height == 0
                || width > MAX_SIDE
                || height > MAX_SIDE
                || u64::from(width) * u64::from(height) > MAX_PIXELS
            {
                return Err(Failure::Fatal(format!(
                    "{tag} decodes to {width}x{height} pictures; the adapter takes up to {MAX_SIDE} pixels a side and {MAX_PIXELS} in all"
                )));
            }
            let raw_us = self
                .frame
                .timestamp()
                .and_then(|ts| rescale_us(ts, self.time_base));
            let state = carry.video(tag);
            let mapped = match raw_us {
                Some(raw) => clock.map(raw),
                None => clock.map_unknown(),
            };
            // Monotonic per track: a frame stamped at or before the last one follows it.
            let timestamp_us = match state.last_us {
                Some(last) if mapped <= last => last + 1,
                _ => mapped,
            };
            state.last_us = Some(timestamp_us);
            clock.delivered(timestamp_us);
            if let (Some(interval), Some(kept)) = (self.min_interval_us, state.last_kept_us) {
                if timestamp_us < kept + interval {
                    continue;
                }
            }
            state.last_kept_us = Some(timestamp_us);
            let frame_number = state.frames;
            state.frames += 1;
            let (out_w, out_h) = output_size(config, width, height);
            let source = (self.frame.format(), width, height);
            let target = pixel_of(self.format);
            if self.scaler.as_ref().is_none_or(|(_, key)| *key != source) {
                let scaler = ffmpeg::software::scaling::Context::get(
                    source.0,
                    width,
                    height,
                    target,
                    out_w,
                    out_h,
                    ffmpeg::software::scaling::Flags::BILINEAR,
                )
                .map_err(|e| {
                    Failure::Fatal(format!(
                        "{tag}: cannot convert {:?} {width}x{height} to {} {out_w}x{out_h}: {e}",
                        source.0,
                        self.format.as_str()
                    ))
                })?;
                self.scaler = Some((scaler, source));
                self.scaled = ffmpeg::frame::Video::empty();
            }
            let Some((scaler, _)) = self.scaler.as_mut() else {
                continue;
            };
            scaler
                .run(&self.frame, &mut self.scaled)
                .map_err(|e| Failure::Packet(format!("scaling failed: {e}")))?;
            let pixels = packed_planes(&self.scaled, self.format, out_w, out_h);
            out.push(RuntimeData::Video {
                pixel_data: Bytes::from(pixels),
                width: out_w,
                height: out_h,
                format: self.format,
                codec: None,
                frame_number,
                timestamp_us,
                is_keyframe: self.frame.is_key(),
                stream_id: Some(Arc::clone(tag)),
            });
        }
        Ok(())
    }
}

/// The picture's planes without row padding, in the layout `PixelFormat` describes.
fn packed_planes(
    frame: &ffmpeg::frame::Video,
    format: PixelFormat,
    width: u32,
    height: u32,
) -> Vec<u8> {
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let planes: Vec<(usize, usize)> = match format {
        PixelFormat::Yuv420p => vec![(w, h), (cw, ch), (cw, ch)],
        PixelFormat::Nv12 => vec![(w, h), (cw * 2, ch)],
        PixelFormat::Rgb24 => vec![(w * 3, h)],
        PixelFormat::Rgba32 => vec![(w * 4, h)],
        _ => vec![(w, h)],
    };
    let mut out = Vec::with_capacity(planes.iter().map(|(rb, rows)| rb * rows).sum());
    for (index, (row_bytes, rows)) in planes.into_iter().enumerate() {
        let stride = frame.stride(index);
        let data = frame.data(index);
        for row in 0..rows {
            let start = row * stride;
            out.extend_from_slice(&data[start..start + row_bytes]);
        }
    }
    out
}

struct SubtitleTrack {
    decoder: ffmpeg::decoder::Subtitle,
    time_base: ffmpeg::Rational,
}

impl SubtitleTrack {
    fn decode(
        &mut self,
        packet: &ffmpeg::Packet,
        tag: &Arc<str>,
        clock: &mut Clock,
        out: &mut Vec<RuntimeData>,
    ) -> Result<(), Failure> {
        let mut subtitle = ffmpeg::Subtitle::new();
        let got = self
            .decoder
            .decode(packet, &mut subtitle)
            .map_err(|e| Failure::Packet(e.to_string()))?;
        if !got {
            return Ok(());
        }
        let mut text = String::new();
        for rect in subtitle.rects() {
            let line = match rect {
                ffmpeg::codec::subtitle::Rect::Text(t) => t.get().to_owned(),
                ffmpeg::codec::subtitle::Rect::Ass(a) => ass_text(a.get()),
                _ => continue,
            };
            if !text.is_empty() && !line.is_empty() {
                text.push('\n');
            }
            text.push_str(line.trim_end());
        }
        if text.is_empty() {
            return Ok(());
        }
        if text.len() > MAX_SUBTITLE_BYTES {
            let mut cut = MAX_SUBTITLE_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        let raw_us = packet.pts().and_then(|ts| rescale_us(ts, self.time_base));
        let start_us = match raw_us {
            Some(raw) => clock.map(raw),
            None => clock.map_unknown(),
        };
        let shown_us = if subtitle.end() > 0 {
            u64::from(subtitle.end()) * 1000
        } else {
            rescale_us(packet.duration(), self.time_base).map_or(0, |d| d.max(0) as u64)
        };
        out.push(RuntimeData::Json(json!({
            "stream_id": tag.as_ref(),
            "text": text,
            "start_ms": start_us as f64 / 1000.0,
            "end_ms": (start_us + shown_us) as f64 / 1000.0,
        })));
        Ok(())
    }
}

/// The text of an ASS event as FFmpeg gives it
/// (`ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text`), without override
/// tags; `\N` becomes a line break.
fn ass_text(event: &str) -> String {
    let text = event.splitn(9, ',').nth(8).unwrap_or(event);
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match (c, in_tag) {
            ('{', _) => in_tag = true,
            ('}', true) => in_tag = false,
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    out.replace("\\N", "\n")
        .replace("\\n", "\n")
        .replace("\\h", " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ass_events_lose_their_fields_and_tags() {
        assert_eq!(
            ass_text("0,0,Default,,0,0,0,,Hello {\\i1}there{\\i0}\\Nfriend"),
            "Hello there\nfriend"
        );
        assert_eq!(ass_text("plain"), "plain");
    }

    #[test]
    fn one_side_scales_the_other_keeping_the_aspect() {
        let config = |w, h| IngestConfig {
            video_width: w,
            video_height: h,
            ..IngestConfig::from_url("x")
        };
        assert_eq!(output_size(&config(Some(640), None), 1280, 720), (640, 360));
        assert_eq!(output_size(&config(None, Some(101)), 1280, 720), (180, 101));
        assert_eq!(output_size(&config(None, None), 1280, 720), (1280, 720));
    }
}
