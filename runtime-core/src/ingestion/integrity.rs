//! Whether a file holds all it claims: checks the decoder does not make.
//!
//! - **WAV**: a header declaring 0 channels or a rate of 0 Hz (the decoder would divide by
//!   it) is refused before decoding.
//! - **MP3** has no overall length: a file cut between two frames is a shorter MP3, but one
//!   cut inside a frame is truncated, and the decoder drops that last partial frame without
//!   a word. Walking the frame headers (4 bytes each, jumping over the payloads) tells.
//! - **OGG**: the last page of a complete stream carries the end-of-stream flag, and every
//!   page is whole.
//!
//! Each check reads only headers, in one pass.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// What is wrong with a WAV header, if anything.
pub(super) fn wav_header_problem(head: &[u8]) -> Option<String> {
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return None;
    }
    let mut at = 12;
    while at + 8 <= head.len() {
        let id = &head[at..at + 4];
        let size = u32::from_le_bytes([head[at + 4], head[at + 5], head[at + 6], head[at + 7]]);
        if id == b"fmt " && at + 16 <= head.len() {
            let channels = u16::from_le_bytes([head[at + 10], head[at + 11]]);
            let rate =
                u32::from_le_bytes([head[at + 12], head[at + 13], head[at + 14], head[at + 15]]);
            if channels == 0 {
                return Some("the WAV header declares 0 channels".to_owned());
            }
            if rate == 0 {
                return Some("the WAV header declares a sample rate of 0 Hz".to_owned());
            }
            return None;
        }
        at = at
            .saturating_add(8)
            .saturating_add(size as usize + (size as usize & 1));
    }
    None
}

/// The length of the MPEG audio frame whose header is `h`, if it is one.
fn mpeg_frame_len(h: [u8; 4]) -> Option<usize> {
    if h[0] != 0xFF || h[1] & 0xE0 != 0xE0 {
        return None;
    }
    let version = (h[1] >> 3) & 0x3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
    let layer = (h[1] >> 1) & 0x3; // 1: layer III, 2: II, 3: I
    let bitrate_index = (h[2] >> 4) as usize;
    let rate_index = ((h[2] >> 2) & 0x3) as usize;
    let padding = usize::from((h[2] >> 1) & 1);
    if version == 1 || layer == 0 || bitrate_index == 0 || bitrate_index == 15 || rate_index == 3 {
        return None;
    }
    const MPEG1: [[u32; 15]; 3] = [
        [
            0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448,
        ],
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384,
        ],
        [
            0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320,
        ],
    ];
    const MPEG2: [[u32; 15]; 2] = [
        [
            0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256,
        ],
        [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
    ];
    let rates = match version {
        3 => [44_100, 48_000, 32_000],
        2 => [22_050, 24_000, 16_000],
        _ => [11_025, 12_000, 8_000],
    };
    let rate = rates[rate_index];
    let layer_number = 4 - layer; // 1, 2 or 3
    let kbps = if version == 3 {
        MPEG1[usize::from(layer_number - 1)][bitrate_index]
    } else {
        MPEG2[usize::from(layer_number != 1)][bitrate_index]
    };
    let bits = kbps * 1000;
    Some(match (layer_number, version) {
        (1, _) => ((12 * bits / rate) as usize + padding) * 4,
        (3, 2 | 0) => (72 * bits / rate) as usize + padding,
        _ => (144 * bits / rate) as usize + padding,
    })
}

/// Offset of the Xing/Info tag in the first frame, after the side information.
fn xing_offset(h: [u8; 4]) -> usize {
    let mpeg1 = (h[1] >> 3) & 0x3 == 3;
    let mono = h[3] >> 6 == 3;
    4 + match (mpeg1, mono) {
        (true, false) => 32,
        (true, true) | (false, false) => 17,
        (false, true) => 9,
    }
}

/// For an MP3 file: why it is truncated, or `None` when it is whole. Cut inside a frame, or
/// shorter than the byte count its Info/Xing header announces (encoders write one in the
/// first frame); a file without that header, cut between two frames, is a shorter MP3.
pub(super) fn mp3_truncation(path: &Path) -> std::io::Result<Option<String>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if let Some((present, frame)) = mp3_cut_frame(path)? {
        return Ok(Some(format!(
            "the MP3 stream ends inside a frame ({present} of its {frame} bytes are there)"
        )));
    }
    let Some((start, header)) = first_mpeg_frame(&mut file, len)? else {
        return Ok(None);
    };
    let mut tag = [0u8; 16];
    file.seek(SeekFrom::Start(start + xing_offset(header) as u64))?;
    if file.read_exact(&mut tag).is_err() || !(&tag[0..4] == b"Xing" || &tag[0..4] == b"Info") {
        return Ok(None);
    }
    let flags = u32::from_be_bytes([tag[4], tag[5], tag[6], tag[7]]);
    let field = |i: usize| {
        u64::from(u32::from_be_bytes([
            tag[i],
            tag[i + 1],
            tag[i + 2],
            tag[i + 3],
        ]))
    };
    // Flags: 1 = frame count present, 2 = byte count present (after the frame count).
    let bytes = match (flags & 1 != 0, flags & 2 != 0) {
        (true, true) => Some(field(12)),
        (false, true) => Some(field(8)),
        _ => None,
    };
    match bytes {
        Some(announced) if start + announced > len => Ok(Some(format!(
            "the MP3 header announces {announced} bytes of audio, the file holds {}",
            len - start
        ))),
        _ => Ok(None),
    }
}

/// Where the first MPEG audio frame starts (after an ID3v2 tag), with its header.
fn first_mpeg_frame(file: &mut std::fs::File, len: u64) -> std::io::Result<Option<(u64, [u8; 4])>> {
    let mut head = [0u8; 10];
    let mut at = 0u64;
    file.seek(SeekFrom::Start(0))?;
    if file.read_exact(&mut head).is_ok() && &head[0..3] == b"ID3" {
        let size = head[6..10]
            .iter()
            .fold(0u64, |acc, &b| (acc << 7) | u64::from(b & 0x7F));
        at = 10 + size + if head[5] & 0x10 != 0 { 10 } else { 0 };
    }
    while at + 4 <= len {
        file.seek(SeekFrom::Start(at))?;
        let mut h = [0u8; 4];
        file.read_exact(&mut h)?;
        if mpeg_frame_len(h).is_some() {
            return Ok(Some((at, h)));
        }
        at += 1;
    }
    Ok(None)
}

/// For an MP3 file: `Some((present, frame))` when it ends inside a frame (`present` of its
/// `frame` bytes are there), `None` when it ends on a frame boundary (or an ID3v1 tag).
fn mp3_cut_frame(path: &Path) -> std::io::Result<Option<(usize, usize)>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut at = 0u64;
    let mut head = [0u8; 10];
    // An ID3v2 tag first: 10-byte header, then a syncsafe size.
    if file.read_exact(&mut head).is_ok() && &head[0..3] == b"ID3" {
        let size = head[6..10]
            .iter()
            .fold(0u64, |acc, &b| (acc << 7) | u64::from(b & 0x7F));
        at = 10 + size + if head[5] & 0x10 != 0 { 10 } else { 0 };
    }
    let mut found_frame = false;
    loop {
        if at + 4 > len {
            return Ok(None);
        }
        file.seek(SeekFrom::Start(at))?;
        let mut h = [0u8; 4];
        file.read_exact(&mut h)?;
        let Some(frame) = mpeg_frame_len(h) else {
            if found_frame {
                // Trailing tags (ID3v1 "TAG", APE) or junk after the audio.
                return Ok(None);
            }
            // Still looking for the first frame (junk before the audio).
            at += 1;
            continue;
        };
        found_frame = true;
        if at + frame as u64 > len {
            return Ok(Some(((len - at) as usize, frame)));
        }
        at += frame as u64;
    }
}

/// For an OGG file: why it is incomplete, or `None` when its last page is whole and ends
/// the stream.
pub(super) fn ogg_incomplete(path: &Path) -> std::io::Result<Option<String>> {
    let mut file = std::fs::File::open(path)?;
    let mut at = 0u64;
    let len = file.metadata()?.len();
    let mut last_flags = None;
    loop {
        if at == len {
            break;
        }
        let mut header = [0u8; 27];
        file.seek(SeekFrom::Start(at))?;
        if len - at < 27 || file.read_exact(&mut header).is_err() {
            return Ok(Some(format!("it ends inside a page header at byte {at}")));
        }
        if &header[0..4] != b"OggS" {
            return Ok(Some(format!("byte {at} does not start a page")));
        }
        let segments = usize::from(header[26]);
        let mut table = vec![0u8; segments];
        if file.read_exact(&mut table).is_err() {
            return Ok(Some(format!("it ends inside the page at byte {at}")));
        }
        let body: u64 = table.iter().map(|&s| u64::from(s)).sum();
        let end = at + 27 + segments as u64 + body;
        if end > len {
            return Ok(Some(format!(
                "it ends inside the page at byte {at} ({} of its {} bytes are there)",
                len - at,
                end - at
            )));
        }
        last_flags = Some(header[5]);
        at = end;
    }
    match last_flags {
        Some(flags) if flags & 0x04 != 0 => Ok(None),
        Some(_) => Ok(Some("its last page does not end the stream".to_owned())),
        None => Ok(Some("it holds no page".to_owned())),
    }
}

/// The name of a codec the decoders do not know (symphonia's codec ids), for errors.
pub(super) fn codec_name(codec: symphonia::core::codecs::CodecType) -> String {
    use symphonia::core::codecs as c;
    let known = [
        (c::CODEC_TYPE_OPUS, "Opus"),
        (c::CODEC_TYPE_SPEEX, "Speex"),
        (c::CODEC_TYPE_MUSEPACK, "Musepack"),
        (c::CODEC_TYPE_ATRAC1, "ATRAC1"),
        (c::CODEC_TYPE_ATRAC3, "ATRAC3"),
        (c::CODEC_TYPE_ATRAC3PLUS, "ATRAC3plus"),
        (c::CODEC_TYPE_ATRAC9, "ATRAC9"),
        (c::CODEC_TYPE_EAC3, "E-AC-3"),
        (c::CODEC_TYPE_AC4, "AC-4"),
        (c::CODEC_TYPE_DCA, "DTS"),
        (c::CODEC_TYPE_WMA, "WMA"),
        (c::CODEC_TYPE_WAVPACK, "WavPack"),
        (c::CODEC_TYPE_MONKEYS_AUDIO, "Monkey's Audio"),
        (c::CODEC_TYPE_TTA, "TTA"),
        (c::CODEC_TYPE_ADPCM_G722, "G.722 ADPCM"),
        (c::CODEC_TYPE_ADPCM_G726, "G.726 ADPCM"),
        (c::CODEC_TYPE_ADPCM_G726LE, "G.726 ADPCM"),
    ];
    known
        .iter()
        .find(|(id, _)| *id == codec)
        .map_or_else(|| format!("codec {codec}"), |(_, name)| (*name).to_owned())
}

/// The codecs the file ingest decodes, for errors.
pub(super) const DECODED_CODECS: &str =
    "PCM, A-law, µ-law, IMA and Microsoft ADPCM, FLAC, MP1/MP2/MP3, Vorbis, AAC-LC and ALAC";

/// The containers the file ingest reads, for errors.
pub(super) const READ_FORMATS: &str =
    "WAV, AIFF, CAF, FLAC, MP3, AAC (ADTS), OGG, MP4/M4A, MKV/WebM";

/// Whether `container` (a [`container_name`]) is one the file ingest reads: then what
/// failed is inside it (a codec or variant), not the format.
pub(super) fn is_read_format(container: &str) -> bool {
    matches!(
        container,
        "WAV" | "AIFF" | "CAF" | "FLAC" | "OGG" | "MP4/M4A" | "Matroska/WebM"
    )
}

/// Byte runs at offsets that must all match, and the format they mark.
type Signature = (&'static [(usize, &'static [u8])], &'static str);

/// What a file that no reader took looks like, from its first bytes.
pub(super) fn container_name(head: &[u8]) -> Option<&'static str> {
    const SIGNATURES: &[Signature] = &[
        (&[(0, b"RIFF"), (8, b"AVI ")], "AVI"),
        (&[(0, b"RIFF"), (8, b"WAVE")], "WAV"),
        (&[(0, b"FORM"), (8, b"AIFF")], "AIFF"),
        (&[(0, b"FORM"), (8, b"AIFC")], "AIFF"),
        (&[(0, b"#!AMR")], "AMR"),
        (&[(0, b"MThd")], "MIDI"),
        (&[(0, &[0x30, 0x26, 0xB2, 0x75])], "ASF/WMA"),
        (&[(0, b"wvpk")], "WavPack"),
        (&[(0, b"MAC ")], "Monkey's Audio"),
        (&[(0, b".snd")], "Sun/NeXT AU"),
        (&[(4, b"ftyp")], "MP4/M4A"),
        (&[(0, &[0x1A, 0x45, 0xDF, 0xA3])], "Matroska/WebM"),
        (&[(0, b"OggS")], "OGG"),
        (&[(0, b"fLaC")], "FLAC"),
        (&[(0, b"caff")], "CAF"),
        (&[(0, &[0x0B, 0x77])], "AC-3"),
        (&[(0, &[0x7F, 0xFE, 0x80, 0x01])], "DTS"),
    ];
    SIGNATURES
        .iter()
        .find(|(runs, _)| {
            runs.iter()
                .all(|(at, bytes)| head.get(*at..at + bytes.len()) == Some(*bytes))
        })
        .map(|(_, name)| *name)
}

/// Whether a WAV header declares its data length unknown, as writers to a pipe do: a
/// `data` chunk of 0x7FFFF000 bytes (sox's convention) or 0xFFFFFFFF (ffmpeg's).
pub(super) fn wav_length_unknown(head: &[u8]) -> bool {
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return false;
    }
    let mut at = 12;
    while at + 8 <= head.len() {
        let size = u32::from_le_bytes([head[at + 4], head[at + 5], head[at + 6], head[at + 7]]);
        if &head[at..at + 4] == b"data" {
            return size == 0x7fff_f000 || size == u32::MAX;
        }
        at = at
            .saturating_add(8)
            .saturating_add(size as usize + (size as usize & 1));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wav_with_rate_zero_is_named() {
        let mut head = b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x01\0".to_vec();
        head.extend_from_slice(&0u32.to_le_bytes());
        head.extend_from_slice(&[0; 8]);
        assert_eq!(
            wav_header_problem(&head).as_deref(),
            Some("the WAV header declares a sample rate of 0 Hz")
        );
    }

    #[test]
    fn mpeg_frame_lengths_follow_the_header() {
        // MPEG-1 layer III, 128 kb/s, 44.1 kHz, no padding: 417 bytes.
        assert_eq!(mpeg_frame_len([0xFF, 0xFB, 0x90, 0x00]), Some(417));
        // MPEG-2 layer III, 64 kb/s, 22.05 kHz, padding: 209 bytes.
        assert_eq!(mpeg_frame_len([0xFF, 0xF3, 0x82, 0x00]), Some(209));
        assert_eq!(mpeg_frame_len([0x49, 0x44, 0x33, 0x04]), None);
    }

    #[test]
    fn a_streamed_wav_declares_an_unknown_length() {
        let header = |data_size: u32| {
            let mut h = b"RIFF\xff\xff\xff\xffWAVEfmt \x10\0\0\0\x01\0\x01\0\x80\x3e\0\0\0\x7d\0\0\x02\0\x10\0data".to_vec();
            h.extend_from_slice(&data_size.to_le_bytes());
            h
        };
        assert!(wav_length_unknown(&header(0x7fff_f000)));
        assert!(wav_length_unknown(&header(u32::MAX)));
        assert!(!wav_length_unknown(&header(32_000)));
        assert_eq!(container_name(b"FORM\0\0\0\0AIFF"), Some("AIFF"));
        assert_eq!(container_name(b"\0\0\0\x20ftypM4A "), Some("MP4/M4A"));
        assert_eq!(container_name(b"plain text"), None);
    }
}
