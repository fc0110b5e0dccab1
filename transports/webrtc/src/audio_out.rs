//! The pipeline's audio outputs → 20 ms Opus packets for the peer's outgoing track.
//!
//! Audio at 48 kHz is queued as it is; audio at any other rate goes through the runtime's
//! own resampler ([`FastResampleNode`]) first. The encoder takes the channel count of the
//! first audio (mono, or stereo for two or more channels) and later audio is mixed to it.
//! The queue is drained by the peer's pacer one frame per 20 ms (see `peer.rs`); barge-in
//! empties it.

use audiopus::coder::Encoder;
use audiopus::{Application, Bitrate, Channels, SampleRate};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::nodes::audio::{FastResampleNode, ResampleQuality};
use remotemedia_runtime_core::nodes::{Node, Outputs};
use std::collections::VecDeque;

/// Frames in one outgoing packet: 20 ms at 48 kHz.
pub const FRAME: usize = 960;
/// The RTP clock rate of Opus.
pub const RATE: u32 = 48_000;
/// Most audio queued for the peer, in frames (60 s): past it the oldest is dropped, counted.
pub const MAX_QUEUED_FRAMES: usize = 60 * RATE as usize;

/// Encodes and queues a session's outgoing audio.
pub struct OpusOut {
    encoder: Option<(Encoder, u16)>,
    resampler: FastResampleNode,
    resampled: Outputs,
    /// Interleaved samples at 48 kHz in the encoder's channels.
    queue: VecDeque<f32>,
    packet: Vec<u8>,
    frame: Vec<f32>,
    /// Frames dropped because the queue was full.
    pub overflow_frames: u64,
}

impl std::fmt::Debug for OpusOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusOut")
            .field("channels", &self.channels())
            .field("queued_frames", &self.queued_frames())
            .finish_non_exhaustive()
    }
}

impl Default for OpusOut {
    fn default() -> Self {
        Self::new()
    }
}

impl OpusOut {
    /// An empty queue; the encoder starts with the first audio.
    pub fn new() -> Self {
        Self {
            encoder: None,
            resampler: FastResampleNode::new(RATE, ResampleQuality::Medium),
            resampled: Outputs::new(),
            queue: VecDeque::new(),
            packet: vec![0; 4000],
            frame: Vec::with_capacity(FRAME * 2),
            overflow_frames: 0,
        }
    }

    fn channels(&self) -> u16 {
        self.encoder.as_ref().map_or(1, |e| e.1)
    }

    /// Frames waiting to be sent.
    pub fn queued_frames(&self) -> usize {
        self.queue.len() / usize::from(self.channels())
    }

    /// Queues one audio output (other data is ignored). Errors name what is wrong with it.
    pub fn push(&mut self, data: RuntimeData) -> Result<(), String> {
        let RuntimeData::Audio {
            sample_rate,
            channels,
            ..
        } = &data
        else {
            return Ok(());
        };
        let (sample_rate, channels) = (*sample_rate, *channels);
        if channels == 0 {
            return Err("audio with 0 channels".to_owned());
        }
        if self.encoder.is_none() {
            let (layout, count) = if channels >= 2 {
                (Channels::Stereo, 2)
            } else {
                (Channels::Mono, 1)
            };
            let mut encoder = Encoder::new(SampleRate::Hz48000, layout, Application::Voip)
                .map_err(|e| format!("cannot start the Opus encoder: {e}"))?;
            let bitrate = if count == 2 { 64_000 } else { 32_000 };
            encoder
                .set_bitrate(Bitrate::BitsPerSecond(bitrate))
                .map_err(|e| format!("Opus encoder bitrate: {e}"))?;
            encoder
                .set_inband_fec(true)
                .and_then(|_| encoder.set_packet_loss_perc(5))
                .map_err(|e| format!("Opus encoder FEC: {e}"))?;
            self.encoder = Some((encoder, count));
        }
        if sample_rate == RATE {
            self.queue_samples(&data);
        } else {
            self.resampler
                .process(data, &mut self.resampled)
                .map_err(|e| format!("resampling the audio to 48 kHz: {e}"))?;
            self.drain_resampled();
        }
        Ok(())
    }

    /// Emits what the resampler still holds (call it when the queue runs dry: the audio
    /// paused, so its tail is due).
    pub fn flush_resampler(&mut self) {
        if self.resampler.flush(&mut self.resampled).is_ok() {
            self.drain_resampled();
        }
    }

    fn drain_resampled(&mut self) {
        let items: Vec<RuntimeData> = self.resampled.drain().collect();
        for item in items {
            self.queue_samples(&item);
        }
    }

    fn queue_samples(&mut self, data: &RuntimeData) {
        let RuntimeData::Audio {
            samples, channels, ..
        } = data
        else {
            return;
        };
        let from = usize::from(*channels);
        let to = usize::from(self.channels());
        if from == to {
            self.queue.extend(samples.iter().copied());
        } else {
            for frame in samples.chunks_exact(from) {
                let mono = frame.iter().sum::<f32>() / from as f32;
                if to == 1 {
                    self.queue.push_back(mono);
                } else if from == 1 {
                    self.queue.extend([mono, mono]);
                } else {
                    self.queue.extend([frame[0], frame[1]]);
                }
            }
        }
        let excess = self.queued_frames().saturating_sub(MAX_QUEUED_FRAMES);
        if excess > 0 {
            self.queue.drain(..excess * to);
            self.overflow_frames += excess as u64;
        }
    }

    /// Empties the queue (barge-in); returns the frames dropped.
    pub fn clear(&mut self) -> usize {
        let frames = self.queued_frames();
        self.queue.clear();
        self.resampler = FastResampleNode::new(RATE, ResampleQuality::Medium);
        self.resampled = Outputs::new();
        frames
    }

    /// The next 20 ms Opus packet: a full frame from the queue, or with `pad` whatever is
    /// left padded with silence. `None` when there is nothing (enough) to send.
    pub fn next_packet(&mut self, pad: bool) -> Result<Option<bytes::Bytes>, String> {
        let ch = usize::from(self.channels());
        let queued = self.queued_frames();
        if queued == 0 || (queued < FRAME && !pad) {
            return Ok(None);
        }
        let Some((encoder, _)) = &self.encoder else {
            return Ok(None);
        };
        let take = queued.min(FRAME) * ch;
        self.frame.clear();
        self.frame.extend(self.queue.drain(..take));
        self.frame.resize(FRAME * ch, 0.0);
        let n = encoder
            .encode_float(&self.frame, &mut self.packet)
            .map_err(|e| format!("Opus encoding: {e}"))?;
        Ok(Some(bytes::Bytes::copy_from_slice(&self.packet[..n])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_framed_in_20_ms_packets_and_the_tail_is_padded() {
        let mut out = OpusOut::new();
        out.push(RuntimeData::audio(vec![0.1f32; 2_500], 48_000, 1))
            .unwrap();
        assert_eq!(out.queued_frames(), 2_500);
        assert!(out.next_packet(false).unwrap().is_some());
        assert!(out.next_packet(false).unwrap().is_some());
        assert_eq!(out.queued_frames(), 580);
        assert!(out.next_packet(false).unwrap().is_none());
        assert!(out.next_packet(true).unwrap().is_some());
        assert_eq!(out.queued_frames(), 0);
        assert!(out.next_packet(true).unwrap().is_none());
    }

    #[test]
    fn other_rates_are_resampled_and_channels_mixed() {
        let mut out = OpusOut::new();
        out.push(RuntimeData::audio(vec![0.0f32; 2 * 960], 48_000, 2))
            .unwrap();
        assert_eq!(out.queued_frames(), 960);
        // 1 s of mono 22.05 kHz becomes 1 s of stereo at 48 kHz (after the flush).
        out.push(RuntimeData::audio(vec![0.2f32; 22_050], 22_050, 1))
            .unwrap();
        out.flush_resampler();
        let frames = out.queued_frames() - 960;
        assert!((47_760..=48_240).contains(&frames), "{frames}");
        assert_eq!(out.clear(), 960 + frames);
        assert_eq!(out.queued_frames(), 0);
    }
}
