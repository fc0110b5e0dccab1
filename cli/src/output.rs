//! Where pipeline outputs go: text or JSON lines, audio into one WAV (a file or stdout) or
//! one WAV per audio output in a directory.

use anyhow::{bail, Context, Result};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::transport::TransportData;
use serde_json::json;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// The metadata key under which `run` tags each input with the media time (µs) at its end.
pub const MEDIA_END_US: &str = "media_end_us";

/// How outputs are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `[node_id] value`, one per line.
    Text,
    /// One JSON object per line: `{"node_id", "sequence", "media_time_s", "type", ...}`.
    Json,
}

/// Sample encoding of written WAV files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WavEncoding {
    /// 16-bit signed PCM (samples beyond ±1.0 clip): what every WAV reader takes.
    S16,
    /// 32-bit IEEE float, lossless for the pipeline's samples.
    F32,
}

impl WavEncoding {
    fn bytes_per_sample(self) -> u16 {
        match self {
            WavEncoding::S16 => 2,
            WavEncoding::F32 => 4,
        }
    }
}

/// The data size a WAV header gives when the length is unknown (output to a pipe): the
/// value sox and others write and read as "unspecified".
const UNKNOWN_DATA_SIZE: u32 = 0x7fff_f000;

/// A WAV header: plain PCM (format 1) for s16; IEEE float (format 3, an 18-byte `fmt `
/// chunk and the `fact` chunk non-PCM data needs) for f32. `data_bytes` is the size of the
/// samples that follow.
fn wav_header(rate: u32, channels: u16, encoding: WavEncoding, data_bytes: u32) -> Vec<u8> {
    let sample_bytes = encoding.bytes_per_sample();
    let block_align = channels * sample_bytes;
    let (format_tag, fmt_size): (u16, u32) = match encoding {
        WavEncoding::S16 => (1, 16),
        WavEncoding::F32 => (3, 18),
    };
    let fact_size: u32 = if encoding == WavEncoding::F32 { 12 } else { 0 };
    let riff_size = 4 + (8 + fmt_size) + fact_size + 8 + data_bytes;
    let mut h = Vec::with_capacity(58);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&riff_size.to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&fmt_size.to_le_bytes());
    h.extend_from_slice(&format_tag.to_le_bytes());
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&rate.to_le_bytes());
    h.extend_from_slice(&rate.saturating_mul(u32::from(block_align)).to_le_bytes());
    h.extend_from_slice(&block_align.to_le_bytes());
    h.extend_from_slice(&(sample_bytes * 8).to_le_bytes());
    if encoding == WavEncoding::F32 {
        h.extend_from_slice(&0u16.to_le_bytes()); // no extension
        h.extend_from_slice(b"fact");
        h.extend_from_slice(&4u32.to_le_bytes());
        let frames = data_bytes / u32::from(block_align.max(1));
        h.extend_from_slice(&frames.to_le_bytes());
    }
    h.extend_from_slice(b"data");
    h.extend_from_slice(&data_bytes.to_le_bytes());
    h
}

/// Appends `samples` to `out` in `encoding`.
fn encode_samples(samples: &[f32], encoding: WavEncoding, out: &mut Vec<u8>) {
    match encoding {
        WavEncoding::S16 => {
            out.reserve(samples.len() * 2);
            for &s in samples {
                let v = (s.clamp(-1.0, 1.0) * 32767.0).round() as i16;
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        WavEncoding::F32 => {
            out.reserve(samples.len() * 4);
            for &s in samples {
                out.extend_from_slice(&s.to_le_bytes());
            }
        }
    }
}

/// One WAV being written.
struct WavWriter {
    path: String,
    sample_rate: u32,
    channels: u16,
    encoding: WavEncoding,
    first_node: String,
    target: WavTarget,
    data_bytes: u64,
    buffer: Vec<u8>,
}

enum WavTarget {
    /// A file: the header is rewritten with the real sizes when the WAV is finished.
    File(std::io::BufWriter<std::fs::File>),
    /// A pipe cannot be rewound, so the header says "unknown length".
    Stdout(std::io::BufWriter<std::io::Stdout>),
}

impl WavWriter {
    fn create(
        path: &str,
        sample_rate: u32,
        channels: u16,
        encoding: WavEncoding,
        node: &str,
    ) -> Result<Self> {
        let target = if path == "-" {
            let mut out = std::io::BufWriter::new(std::io::stdout());
            out.write_all(&wav_header(
                sample_rate,
                channels,
                encoding,
                UNKNOWN_DATA_SIZE,
            ))
            .context("cannot write to stdout")?;
            WavTarget::Stdout(out)
        } else {
            let file =
                std::fs::File::create(path).with_context(|| format!("cannot create {path}"))?;
            let mut out = std::io::BufWriter::new(file);
            out.write_all(&wav_header(sample_rate, channels, encoding, 0))
                .with_context(|| format!("cannot write {path}"))?;
            WavTarget::File(out)
        };
        Ok(Self {
            path: path.to_owned(),
            sample_rate,
            channels,
            encoding,
            first_node: node.to_owned(),
            target,
            data_bytes: 0,
            buffer: Vec::new(),
        })
    }

    fn write(&mut self, samples: &[f32]) -> Result<()> {
        self.buffer.clear();
        encode_samples(samples, self.encoding, &mut self.buffer);
        let limit = u64::from(UNKNOWN_DATA_SIZE);
        if self.data_bytes + self.buffer.len() as u64 > limit {
            bail!(
                "{} would exceed the {} bytes a WAV file holds (use --output-dir for one file per output)",
                self.path,
                limit
            );
        }
        let result = match &mut self.target {
            WavTarget::File(out) => out.write_all(&self.buffer),
            WavTarget::Stdout(out) => out.write_all(&self.buffer),
        };
        result.with_context(|| format!("cannot write {}", self.display_path()))?;
        self.data_bytes += self.buffer.len() as u64;
        Ok(())
    }

    fn frames(&self) -> u64 {
        self.data_bytes / u64::from(self.channels.max(1) * self.encoding.bytes_per_sample())
    }

    fn display_path(&self) -> &str {
        if self.path == "-" {
            "stdout"
        } else {
            &self.path
        }
    }

    /// Completes the file: the header gets the real sizes.
    fn finish(self) -> Result<()> {
        match self.target {
            WavTarget::File(mut out) => {
                let header = wav_header(
                    self.sample_rate,
                    self.channels,
                    self.encoding,
                    self.data_bytes as u32,
                );
                out.seek(SeekFrom::Start(0))
                    .and_then(|_| out.write_all(&header))
                    .and_then(|()| out.flush())
                    .with_context(|| format!("cannot finish {}", self.path))
            }
            WavTarget::Stdout(mut out) => out.flush().context("cannot write to stdout"),
        }
    }
}

/// Where audio outputs go.
pub enum AudioTarget {
    /// Printed as a line like any other output.
    Lines,
    /// All into one WAV file (or `-`: stdout).
    Wav(String),
    /// One WAV per audio output in this directory.
    Directory(PathBuf),
}

/// What was written, for the closing message.
pub enum Written {
    /// One WAV: its path, frames, rate and channels.
    Wav(String, u64, u32, u16),
    /// Files in a directory: how many.
    Files(PathBuf, usize),
    /// Audio was asked for but none came: what the outputs were instead.
    NoAudio(String, u64),
    /// Nothing to report.
    Nothing,
}

/// Consumes pipeline outputs.
pub struct OutputSink {
    format: Format,
    audio: AudioTarget,
    encoding: WavEncoding,
    wav: Option<WavWriter>,
    files: usize,
    /// Lines go to stderr when the WAV goes to stdout.
    lines_to_stderr: bool,
    pub outputs: u64,
}

impl OutputSink {
    pub fn new(format: Format, audio: AudioTarget, encoding: WavEncoding) -> Result<Self> {
        if let AudioTarget::Directory(dir) = &audio {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the directory {}", dir.display()))?;
        }
        let lines_to_stderr = matches!(&audio, AudioTarget::Wav(path) if path == "-");
        Ok(Self {
            format,
            audio,
            encoding,
            wav: None,
            files: 0,
            lines_to_stderr,
            outputs: 0,
        })
    }

    /// Renders one output as a line, or writes its audio (then returns a line only when the
    /// audio went to a file of its own).
    pub fn handle(&mut self, output: &TransportData) -> Result<Option<String>> {
        self.outputs += 1;
        let node = output.node_id().unwrap_or("?").to_owned();
        let mut file = None;
        if let RuntimeData::Audio { .. } = &output.data {
            match &self.audio {
                AudioTarget::Lines => {}
                AudioTarget::Wav(_) => {
                    self.write_audio(&node, &output.data)?;
                    return Ok(None);
                }
                AudioTarget::Directory(dir) => {
                    let path = dir.join(format!("{:04}-{}.wav", self.files + 1, file_safe(&node)));
                    write_wav_file(&path, &output.data, self.encoding)?;
                    self.files += 1;
                    file = Some(path);
                }
            }
        }
        let media_time_s = output
            .metadata
            .get(MEDIA_END_US)
            .and_then(|us| us.parse::<u64>().ok())
            .map(|us| us as f64 / 1e6);
        Ok(Some(match self.format {
            Format::Text => {
                let mut line = format!("[{node}] {}", text_value(&output.data));
                if let Some(path) = &file {
                    line.push_str(&format!(" -> {}", path.display()));
                }
                line
            }
            Format::Json => {
                let mut line = output.data.summary_json();
                line["node_id"] = json!(node);
                line["sequence"] = json!(output.sequence);
                line["input_sequence"] = json!(output.input_sequence);
                line["media_time_s"] = json!(media_time_s);
                if let Some(path) = &file {
                    line["file"] = json!(path.display().to_string());
                }
                line.to_string()
            }
        }))
    }

    /// Whether printed lines go to stderr (because stdout carries the WAV).
    pub fn lines_to_stderr(&self) -> bool {
        self.lines_to_stderr
    }

    fn write_audio(&mut self, node: &str, data: &RuntimeData) -> Result<()> {
        let Some((samples, sample_rate, channels)) = audio_parts(data) else {
            return Ok(());
        };
        let AudioTarget::Wav(path) = &self.audio else {
            return Ok(());
        };
        if self.wav.is_none() {
            self.wav = Some(WavWriter::create(
                path,
                sample_rate,
                channels,
                self.encoding,
                node,
            )?);
        }
        let Some(wav) = self.wav.as_mut() else {
            return Ok(());
        };
        if wav.sample_rate != sample_rate || wav.channels != channels {
            bail!(
                "audio from node '{node}' is {} Hz, {} channel(s), but {} holds {} Hz, {} channel(s) audio from node '{}'; a WAV holds one format (--output-dir writes one file per output)",
                sample_rate,
                channels,
                wav.display_path(),
                wav.sample_rate,
                wav.channels,
                wav.first_node
            );
        }
        wav.write(samples)
    }

    /// Completes the WAV and says what was written.
    pub fn finish(&mut self) -> Result<Written> {
        if let Some(wav) = self.wav.take() {
            let summary = Written::Wav(
                wav.path.clone(),
                wav.frames(),
                wav.sample_rate,
                wav.channels,
            );
            wav.finish()?;
            return Ok(summary);
        }
        Ok(match &self.audio {
            AudioTarget::Lines => Written::Nothing,
            AudioTarget::Wav(path) => Written::NoAudio(path.clone(), self.outputs),
            AudioTarget::Directory(dir) if self.files == 0 => {
                Written::NoAudio(dir.display().to_string(), self.outputs)
            }
            AudioTarget::Directory(dir) => Written::Files(dir.clone(), self.files),
        })
    }
}

/// A node id as part of a file name.
fn file_safe(node: &str) -> String {
    node.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An audio item's samples, rate and channels.
fn audio_parts(data: &RuntimeData) -> Option<(&[f32], u32, u16)> {
    match data {
        RuntimeData::Audio {
            samples,
            sample_rate,
            channels,
            ..
        } => Some((samples, *sample_rate, *channels)),
        _ => None,
    }
}

/// Writes one audio item as a whole WAV file.
fn write_wav_file(path: &Path, data: &RuntimeData, encoding: WavEncoding) -> Result<()> {
    let Some((samples, sample_rate, channels)) = audio_parts(data) else {
        return Ok(());
    };
    let mut bytes = Vec::new();
    encode_samples(samples, encoding, &mut bytes);
    if bytes.len() as u64 > u64::from(UNKNOWN_DATA_SIZE) {
        bail!("{} would exceed the size a WAV file holds", path.display());
    }
    let mut file = wav_header(sample_rate, channels, encoding, bytes.len() as u32);
    file.extend_from_slice(&bytes);
    std::fs::write(path, file).with_context(|| format!("cannot write {}", path.display()))
}

fn text_value(data: &RuntimeData) -> String {
    match data {
        RuntimeData::Text(text) => text.clone(),
        RuntimeData::Json(value) => value.to_string(),
        RuntimeData::Audio {
            sample_rate,
            channels,
            timestamp_us,
            ..
        } => format!(
            "audio {:.2} s at {:.2} s ({} Hz, {} channel{})",
            data.audio_frames().unwrap_or(0) as f64 / f64::from((*sample_rate).max(1)),
            *timestamp_us as f64 / 1e6,
            sample_rate,
            channels,
            if *channels == 1 { "" } else { "s" }
        ),
        other => format!("{} ({} bytes)", other.type_name(), other.size_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_declare_what_follows() {
        let pcm = wav_header(16_000, 1, WavEncoding::S16, 320);
        assert_eq!(pcm.len(), 44);
        assert_eq!(&pcm[20..22], &1u16.to_le_bytes()); // PCM
        assert_eq!(u32::from_le_bytes(pcm[4..8].try_into().unwrap()), 36 + 320);
        assert_eq!(u32::from_le_bytes(pcm[40..44].try_into().unwrap()), 320);
        let float = wav_header(48_000, 2, WavEncoding::F32, 800);
        assert_eq!(float.len(), 58);
        assert_eq!(&float[20..22], &3u16.to_le_bytes()); // IEEE float
        assert_eq!(&float[38..42], b"fact");
        assert_eq!(u32::from_le_bytes(float[46..50].try_into().unwrap()), 100); // frames
        assert_eq!(
            u32::from_le_bytes(float[4..8].try_into().unwrap()),
            50 + 800
        );
        assert_eq!(u32::from_le_bytes(float[54..58].try_into().unwrap()), 800);
    }

    #[test]
    fn s16_rounds_and_clips() {
        let mut out = Vec::new();
        encode_samples(&[0.0, 1.0, -1.0, 2.0, 0.5], WavEncoding::S16, &mut out);
        let values: Vec<i16> = out
            .chunks(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        assert_eq!(values, vec![0, 32767, -32767, 32767, 16384]);
    }
}
