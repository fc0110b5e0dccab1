//! A peer's Opus RTP stream → `RuntimeData::Audio` at 48 kHz.
//!
//! [`Reorder`] puts packets back in sequence order and decides when a missing one is
//! lost; [`OpusIn`] decodes, concealing a lost frame from the next packet's in-band FEC
//! when it carries one and with Opus packet-loss concealment otherwise. Every frame's
//! `timestamp_us` comes from its RTP timestamp (unwrapped, from the stream's first
//! packet), so a gap longer than what is concealed — the peer paused sending, or a burst
//! of loss — stays visible as a jump in the timestamps.

use audiopus::coder::Decoder;
use audiopus::packet::Packet;
use audiopus::{Channels, MutSignals, SampleRate};
use remotemedia_runtime_core::data::RuntimeData;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The RTP clock of Opus (RFC 7587): always 48 kHz, whatever the encoder ran at.
pub const OPUS_RATE: u32 = 48_000;
/// Most audio one packet may describe (Opus' longest packet is 120 ms).
const MAX_PACKET_FRAMES: usize = 5_760;
/// Loss longer than this is not concealed: the gap shows in the timestamps instead.
const MAX_CONCEALED_FRAMES: u64 = 4_800;
/// Packets held while waiting for a missing one, at most.
const REORDER_DEPTH: usize = 8;

/// One packet out of [`Reorder`], in sequence order.
#[derive(Debug, PartialEq)]
pub enum Ordered {
    /// The next packet; `lost_before` packets before it never arrived.
    Packet {
        /// Its RTP timestamp.
        timestamp: u32,
        /// Its Opus payload.
        payload: bytes::Bytes,
        /// Packets missing just before it.
        lost_before: u16,
    },
}

/// Restores sequence order. A packet after a hole waits until the hole fills, until
/// [`REORDER_DEPTH`] packets wait, or until it has waited `hold` — then the hole counts as
/// lost. Packets older than what was already delivered (late or duplicated) are dropped.
#[derive(Debug)]
pub struct Reorder {
    hold: Duration,
    /// The sequence number expected next (extended to 64 bits), once the first came.
    next: Option<u64>,
    /// The highest extended sequence number seen.
    highest: u64,
    waiting: BTreeMap<u64, (u32, bytes::Bytes, Instant)>,
    /// Packets dropped because they came after their turn.
    pub late: u64,
}

impl Reorder {
    /// Holds a packet after a hole at most `hold`.
    pub fn new(hold: Duration) -> Self {
        Self {
            hold,
            next: None,
            highest: 0,
            waiting: BTreeMap::new(),
            late: 0,
        }
    }

    /// The 64-bit sequence number of `seq`, the one closest to the highest seen.
    fn extend(&self, seq: u16) -> u64 {
        if self.next.is_none() {
            return u64::from(seq) + (1 << 16);
        }
        let base = self.highest & !0xffff;
        let candidates = [
            base.wrapping_sub(1 << 16) | u64::from(seq),
            base | u64::from(seq),
            (base + (1 << 16)) | u64::from(seq),
        ];
        candidates
            .into_iter()
            .min_by_key(|c| c.abs_diff(self.highest))
            .unwrap_or(base | u64::from(seq))
    }

    /// Takes one packet; returns what is now ready, in order.
    pub fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        payload: bytes::Bytes,
        now: Instant,
    ) -> Vec<Ordered> {
        let ext = self.extend(seq);
        match self.next {
            None => {
                self.next = Some(ext);
                self.highest = ext;
            }
            Some(next) if ext < next => {
                self.late += 1;
                return Vec::new();
            }
            Some(_) => self.highest = self.highest.max(ext),
        }
        self.waiting.entry(ext).or_insert((timestamp, payload, now));
        self.release(now)
    }

    /// Releases packets whose hole has waited long enough; call it when time passes.
    pub fn poll(&mut self, now: Instant) -> Vec<Ordered> {
        self.release(now)
    }

    /// When [`poll`](Self::poll) could next release something.
    pub fn deadline(&self) -> Option<Instant> {
        self.waiting
            .values()
            .map(|(_, _, at)| *at + self.hold)
            .min()
    }

    fn release(&mut self, now: Instant) -> Vec<Ordered> {
        let mut out = Vec::new();
        let Some(mut next) = self.next else {
            return out;
        };
        while let Some((&first, (_, _, arrived))) = self.waiting.iter().next() {
            let give_up = first == next
                || self.waiting.len() >= REORDER_DEPTH
                || now.duration_since(*arrived) >= self.hold;
            if !give_up {
                break;
            }
            let (timestamp, payload, _) = self.waiting.remove(&first).expect("present");
            let lost = first - next;
            out.push(Ordered::Packet {
                timestamp,
                payload,
                lost_before: lost.min(u64::from(u16::MAX)) as u16,
            });
            next = first + 1;
        }
        self.next = Some(next);
        out
    }
}

/// Decodes one peer's Opus packets into 48 kHz audio with media timestamps.
pub struct OpusIn {
    decoder: Option<(Decoder, u16)>,
    /// The last packet's RTP timestamp, and its timestamp unwrapped (frames from the first).
    last_rtp: Option<u32>,
    last_ext: u64,
    /// Frames the last decoded packet held.
    last_frames: u64,
    stream_id: Arc<str>,
    pcm: Vec<f32>,
    /// Frames concealed so far (PLC or FEC).
    pub concealed_frames: u64,
}

impl std::fmt::Debug for OpusIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusIn")
            .field("channels", &self.decoder.as_ref().map(|d| d.1))
            .field("concealed_frames", &self.concealed_frames)
            .finish_non_exhaustive()
    }
}

impl OpusIn {
    /// A decoder whose outputs carry `stream_id`.
    pub fn new(stream_id: &str) -> Self {
        Self {
            decoder: None,
            last_rtp: None,
            last_ext: 0,
            last_frames: 0,
            stream_id: Arc::from(stream_id),
            pcm: vec![0.0; MAX_PACKET_FRAMES * 2],
            concealed_frames: 0,
        }
    }

    fn audio(&self, samples: Vec<f32>, channels: u16, ext_timestamp: u64) -> RuntimeData {
        RuntimeData::Audio {
            samples: samples.into(),
            sample_rate: OPUS_RATE,
            channels,
            stream_id: Some(Arc::clone(&self.stream_id)),
            timestamp_us: ext_timestamp * 1_000_000 / u64::from(OPUS_RATE),
        }
    }

    /// Decodes one ordered packet: the concealed audio of the packets lost before it (if
    /// short enough), then its own audio. An undecodable packet yields an error message
    /// and nothing else (the stream goes on).
    pub fn decode(&mut self, packet: Ordered, out: &mut Vec<RuntimeData>) -> Result<(), String> {
        let Ordered::Packet {
            timestamp,
            payload,
            lost_before,
        } = packet;
        if payload.is_empty() {
            // Padding (senders probe bandwidth with empty packets): no audio in it.
            return Ok(());
        }
        let packet = || Packet::try_from(&payload[..]).map_err(|e| format!("Opus packet: {e}"));
        // Unwrap the 32-bit timestamp: a signed step from the previous packet's.
        let ext = match self.last_rtp {
            None => 0,
            Some(last) => {
                let step = i64::from(timestamp.wrapping_sub(last) as i32);
                self.last_ext.saturating_add_signed(step)
            }
        };
        let (mut decoder, channels) = match self.decoder.take() {
            Some(d) => d,
            None => {
                let channels = match audiopus::packet::nb_channels(packet()?) {
                    Ok(Channels::Stereo) => 2,
                    _ => 1,
                };
                let layout = if channels == 2 {
                    Channels::Stereo
                } else {
                    Channels::Mono
                };
                let decoder = Decoder::new(SampleRate::Hz48000, layout)
                    .map_err(|e| format!("cannot start the Opus decoder: {e}"))?;
                (decoder, channels)
            }
        };
        let result = self.decode_with(&mut decoder, channels, ext, lost_before, &packet, out);
        self.decoder = Some((decoder, channels));
        let frames = result?;
        self.last_rtp = Some(timestamp);
        self.last_ext = ext;
        self.last_frames = frames as u64;
        Ok(())
    }

    fn decode_with<'p>(
        &mut self,
        decoder: &mut Decoder,
        channels: u16,
        ext: u64,
        lost_before: u16,
        packet: &dyn Fn() -> Result<Packet<'p>, String>,
        out: &mut Vec<RuntimeData>,
    ) -> Result<usize, String> {
        let ch = usize::from(channels);
        // Loss: conceal the gap between the previous packet's end and this one's start.
        let expected = self.last_ext + self.last_frames;
        if lost_before > 0 && ext > expected && self.last_frames > 0 {
            let gap = ext - expected;
            if gap <= MAX_CONCEALED_FRAMES {
                // The last lost frame from this packet's FEC copy, the ones before by PLC.
                let frame = self.last_frames.min(gap);
                let mut at = expected;
                let mut left = gap;
                while left > 0 {
                    let n = left.min(frame).min(MAX_PACKET_FRAMES as u64) as usize;
                    let fec = left == n as u64;
                    let buffer = &mut self.pcm[..n * ch];
                    let signals = MutSignals::try_from(&mut buffer[..])
                        .map_err(|e| format!("Opus output buffer: {e}"))?;
                    let mut decoded = if fec {
                        decoder.decode_float(Some(packet()?), signals, true)
                    } else {
                        decoder.decode_float(None, signals, false)
                    };
                    if decoded.is_err() && fec {
                        let signals = MutSignals::try_from(&mut buffer[..])
                            .map_err(|e| format!("Opus output buffer: {e}"))?;
                        decoded = decoder.decode_float(None, signals, false);
                    }
                    let decoded = decoded.map_err(|e| format!("Opus loss concealment: {e}"))?;
                    if decoded == 0 {
                        break;
                    }
                    let samples = self.pcm[..decoded * ch].to_vec();
                    out.push(self.audio(samples, channels, at));
                    self.concealed_frames += decoded as u64;
                    at += decoded as u64;
                    left = left.saturating_sub(decoded as u64);
                }
            }
        }
        let signals = MutSignals::try_from(&mut self.pcm[..])
            .map_err(|e| format!("Opus output buffer: {e}"))?;
        let frames = decoder
            .decode_float(Some(packet()?), signals, false)
            .map_err(|e| format!("undecodable Opus packet: {e}"))?;
        if frames > 0 {
            let samples = self.pcm[..frames * ch].to_vec();
            out.push(self.audio(samples, channels, ext));
        }
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use audiopus::coder::Encoder;
    use audiopus::Application;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn order(r: &mut Reorder, seq: u16, at: Instant) -> Vec<(u16, u16)> {
        r.push(
            seq,
            u32::from(seq) * 960,
            bytes::Bytes::from_static(b"x"),
            at,
        )
        .into_iter()
        .map(
            |Ordered::Packet {
                 timestamp,
                 lost_before,
                 ..
             }| ((timestamp / 960) as u16, lost_before),
        )
        .collect()
    }

    #[test]
    fn in_order_packets_pass_at_once() {
        let mut r = Reorder::new(ms(60));
        let t = Instant::now();
        assert_eq!(order(&mut r, 10, t), vec![(10, 0)]);
        assert_eq!(order(&mut r, 11, t), vec![(11, 0)]);
        assert_eq!(r.deadline(), None);
    }

    #[test]
    fn a_swapped_pair_is_put_back_in_order() {
        let mut r = Reorder::new(ms(60));
        let t = Instant::now();
        assert_eq!(order(&mut r, 1, t), vec![(1, 0)]);
        assert!(order(&mut r, 3, t).is_empty());
        assert_eq!(order(&mut r, 2, t), vec![(2, 0), (3, 0)]);
    }

    #[test]
    fn a_hole_is_given_up_after_the_hold_time() {
        let mut r = Reorder::new(ms(60));
        let t = Instant::now();
        order(&mut r, 1, t);
        assert!(order(&mut r, 4, t).is_empty());
        assert_eq!(r.deadline(), Some(t + ms(60)));
        assert!(r.poll(t + ms(59)).is_empty());
        let released: Vec<u16> = r
            .poll(t + ms(60))
            .into_iter()
            .map(|Ordered::Packet { lost_before, .. }| lost_before)
            .collect();
        assert_eq!(released, vec![2]);
        // The late packet is dropped, counted.
        assert!(order(&mut r, 2, t + ms(70)).is_empty());
        assert_eq!(r.late, 1);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut r = Reorder::new(ms(60));
        let t = Instant::now();
        order(&mut r, 65_534, t);
        assert_eq!(order(&mut r, 65_535, t), vec![(65_535, 0)]);
        assert_eq!(order(&mut r, 0, t), vec![(0, 0)]);
        assert_eq!(order(&mut r, 1, t), vec![(1, 0)]);
    }

    fn tone(frames: usize, start: usize) -> Vec<f32> {
        (start..start + frames)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 48_000.0).sin())
            .collect()
    }

    #[test]
    fn lost_packets_are_concealed_and_timestamps_follow_rtp() {
        let mut enc = Encoder::new(SampleRate::Hz48000, Channels::Mono, Application::Voip).unwrap();
        enc.set_inband_fec(true).unwrap();
        enc.set_packet_loss_perc(20).unwrap();
        let mut packets = Vec::new();
        for i in 0..10 {
            let mut buf = vec![0u8; 1500];
            let n = enc.encode_float(&tone(960, i * 960), &mut buf).unwrap();
            buf.truncate(n);
            packets.push(bytes::Bytes::from(buf));
        }
        let mut dec = OpusIn::new("audio:0");
        let mut out = Vec::new();
        let base = 4_000_000_000u32; // wraps during the stream
        for (i, p) in packets.iter().enumerate() {
            if i == 4 || i == 5 {
                continue; // lost
            }
            let lost = if i == 6 { 2 } else { 0 };
            let ts = base.wrapping_add((i * 960) as u32);
            dec.decode(
                Ordered::Packet {
                    timestamp: ts,
                    payload: p.clone(),
                    lost_before: lost,
                },
                &mut out,
            )
            .unwrap();
        }
        let stamps: Vec<u64> = out
            .iter()
            .map(|d| match d {
                RuntimeData::Audio { timestamp_us, .. } => *timestamp_us,
                _ => unreachable!(),
            })
            .collect();
        // Ten 20 ms frames: two of them concealed, the media time continuous.
        assert_eq!(stamps, (0..10).map(|i| i * 20_000).collect::<Vec<_>>());
        assert_eq!(dec.concealed_frames, 1_920);
        let total: usize = out.iter().filter_map(|d| d.audio_frames()).sum();
        assert_eq!(total, 9_600);
    }

    #[test]
    fn a_long_pause_shows_as_a_gap() {
        let enc = Encoder::new(SampleRate::Hz48000, Channels::Stereo, Application::Voip).unwrap();
        let mut dec = OpusIn::new("audio:0");
        let mut out = Vec::new();
        for (i, frame) in [0u32, 1, 200].into_iter().enumerate() {
            let mut buf = vec![0u8; 1500];
            let stereo: Vec<f32> = tone(960, 0).into_iter().flat_map(|s| [s, s]).collect();
            let n = enc.encode_float(&stereo, &mut buf).unwrap();
            buf.truncate(n);
            let lost = if i == 2 { 5 } else { 0 };
            dec.decode(
                Ordered::Packet {
                    timestamp: frame * 960,
                    payload: buf.into(),
                    lost_before: lost,
                },
                &mut out,
            )
            .unwrap();
        }
        let stamps: Vec<(u64, u16)> = out
            .iter()
            .map(|d| match d {
                RuntimeData::Audio {
                    timestamp_us,
                    channels,
                    ..
                } => (*timestamp_us, *channels),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(stamps, vec![(0, 2), (20_000, 2), (4_000_000, 2)]);
        assert_eq!(dec.concealed_frames, 0);
    }
}
