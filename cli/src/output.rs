//! Where pipeline outputs go: text or JSON lines, and audio into a WAV file.

use anyhow::{bail, Context, Result};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::transport::TransportData;
use serde_json::json;
use std::io::Write;

/// How outputs are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// `[node_id] value`, one per line.
    Text,
    /// One JSON object per line: `{"node_id", "sequence", "type", ...}`.
    Json,
}

/// Audio written to a WAV (32-bit float).
enum WavTarget {
    File(hound::WavWriter<std::io::BufWriter<std::fs::File>>),
    /// A pipe cannot be rewound to patch the header, so the header declares the longest
    /// possible stream, as streaming WAV writers do.
    Stdout(std::io::BufWriter<std::io::Stdout>),
}

struct WavOutput {
    path: String,
    sample_rate: u32,
    channels: u16,
    first_node: String,
    target: WavTarget,
    frames: u64,
}

/// Consumes pipeline outputs.
pub struct OutputSink {
    format: Format,
    wav_path: Option<String>,
    wav: Option<WavOutput>,
    /// Lines go to stderr when the WAV goes to stdout.
    lines_to_stderr: bool,
    pub outputs: u64,
}

impl OutputSink {
    pub fn new(format: Format, wav_path: Option<String>) -> Self {
        let lines_to_stderr = wav_path.as_deref() == Some("-");
        Self {
            format,
            wav_path,
            wav: None,
            lines_to_stderr,
            outputs: 0,
        }
    }

    /// Renders one output as a line, or writes its audio to the WAV (then returns None).
    pub fn handle(&mut self, output: &TransportData) -> Result<Option<String>> {
        self.outputs += 1;
        let node = output.node_id().unwrap_or("?").to_owned();
        if let RuntimeData::Audio { .. } = &output.data {
            if self.wav_path.is_some() {
                self.write_audio(&node, &output.data)?;
                return Ok(None);
            }
        }
        Ok(Some(match self.format {
            Format::Text => format!("[{node}] {}", text_value(&output.data)),
            Format::Json => {
                let mut line = json_value(&output.data);
                line["node_id"] = json!(node);
                line["sequence"] = json!(output.sequence);
                line.to_string()
            }
        }))
    }

    /// Whether printed lines go to stderr (because stdout carries the WAV).
    pub fn lines_to_stderr(&self) -> bool {
        self.lines_to_stderr
    }

    fn write_audio(&mut self, node: &str, data: &RuntimeData) -> Result<()> {
        let RuntimeData::Audio {
            samples,
            sample_rate,
            channels,
            ..
        } = data
        else {
            return Ok(());
        };
        let Some(path) = self.wav_path.clone() else {
            return Ok(());
        };
        if self.wav.is_none() {
            self.wav = Some(WavOutput::open(&path, *sample_rate, *channels, node)?);
        }
        let Some(wav) = self.wav.as_mut() else {
            return Ok(());
        };
        if wav.sample_rate != *sample_rate || wav.channels != *channels {
            bail!(
                "audio from node '{node}' is {} Hz, {} channel(s), but {} holds {} Hz, {} channel(s) audio from node '{}'; a WAV holds one format",
                sample_rate,
                channels,
                wav.path,
                wav.sample_rate,
                wav.channels,
                wav.first_node
            );
        }
        wav.write(samples)
    }

    /// Completes the WAV; returns (path, frames, rate, channels) when one was written.
    pub fn finish(&mut self) -> Result<Option<(String, u64, u32, u16)>> {
        let Some(wav) = self.wav.take() else {
            return Ok(None);
        };
        let summary = (wav.path.clone(), wav.frames, wav.sample_rate, wav.channels);
        match wav.target {
            WavTarget::File(writer) => writer
                .finalize()
                .with_context(|| format!("cannot finish {}", wav.path))?,
            WavTarget::Stdout(mut out) => out.flush().context("cannot write to stdout")?,
        }
        Ok(Some(summary))
    }
}

impl WavOutput {
    fn open(path: &str, sample_rate: u32, channels: u16, node: &str) -> Result<Self> {
        let spec = hound::WavSpec {
            channels,
            sample_rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let target = if path == "-" {
            let mut out = std::io::BufWriter::new(std::io::stdout());
            out.write_all(&streaming_float_wav_header(sample_rate, channels))
                .context("cannot write to stdout")?;
            WavTarget::Stdout(out)
        } else {
            WavTarget::File(
                hound::WavWriter::create(path, spec)
                    .with_context(|| format!("cannot create {path}"))?,
            )
        };
        Ok(Self {
            path: path.to_owned(),
            sample_rate,
            channels,
            first_node: node.to_owned(),
            target,
            frames: 0,
        })
    }

    fn write(&mut self, samples: &[f32]) -> Result<()> {
        match &mut self.target {
            WavTarget::File(writer) => {
                for &s in samples {
                    writer
                        .write_sample(s)
                        .with_context(|| format!("cannot write {}", self.path))?;
                }
            }
            WavTarget::Stdout(out) => {
                for &s in samples {
                    out.write_all(&s.to_le_bytes())
                        .context("cannot write to stdout")?;
                }
            }
        }
        self.frames += (samples.len() / usize::from(self.channels.max(1))) as u64;
        Ok(())
    }
}

/// A 32-bit float WAV header whose sizes say "as long as it goes" (0xFFFFFFFF).
fn streaming_float_wav_header(sample_rate: u32, channels: u16) -> Vec<u8> {
    let block_align = channels * 4;
    let mut h = Vec::with_capacity(44);
    h.extend_from_slice(b"RIFF");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h.extend_from_slice(b"WAVEfmt ");
    h.extend_from_slice(&16u32.to_le_bytes());
    h.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
    h.extend_from_slice(&channels.to_le_bytes());
    h.extend_from_slice(&sample_rate.to_le_bytes());
    h.extend_from_slice(&(sample_rate * u32::from(block_align)).to_le_bytes());
    h.extend_from_slice(&block_align.to_le_bytes());
    h.extend_from_slice(&32u16.to_le_bytes());
    h.extend_from_slice(b"data");
    h.extend_from_slice(&u32::MAX.to_le_bytes());
    h
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

fn json_value(data: &RuntimeData) -> serde_json::Value {
    match data {
        RuntimeData::Text(text) => json!({"type": "text", "text": text}),
        RuntimeData::Json(value) => json!({"type": "json", "data": value}),
        RuntimeData::Audio {
            sample_rate,
            channels,
            stream_id,
            timestamp_us,
            ..
        } => json!({
            "type": "audio",
            "frames": data.audio_frames(),
            "sample_rate": sample_rate,
            "channels": channels,
            "stream_id": stream_id.as_deref(),
            "timestamp_us": timestamp_us,
        }),
        other => json!({"type": other.type_name(), "bytes": other.size_bytes()}),
    }
}
