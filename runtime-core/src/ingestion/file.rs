//! [`FileIngestPlugin`]: local files and stdin, decoded in pure Rust by symphonia.

use super::integrity;
use super::AudioConversion;
use super::{
    IngestConfig, IngestPlugin, IngestSender, IngestSource, IngestStatus, IngestStatusCell,
    IngestStream, MediaInfo, PcmEncoding, RawPcmFormat, TrackInfo,
};
use crate::data::RuntimeData;
use crate::{Error, Result};
use async_trait::async_trait;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as DecodeError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::{MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;
use tokio::sync::{mpsc, oneshot};

/// Items buffered between the decoding thread and the reader.
const STREAM_CAPACITY: usize = 16;

/// Decodes local files and stdin: `file:///path`, bare paths, and `-`.
///
/// - Containers and codecs: WAV (PCM), FLAC, MP3, OGG/Vorbis — pure Rust (symphonia).
/// - Streams: a decoding thread sends one Audio item per decoded packet through a bounded
///   channel, so memory stays flat however long the file is.
/// - Honours `audio_channels` (down-mix by mean, up-mix by copy) and `audio_sample_rate`
///   (the `FastResampleNode` at Medium quality), and the track selection; tracks are
///   tagged `audio:0`, `audio:1`, ... Timestamps count delivered frames from 0.
/// - Stdin (`-`) is probed like a file (WAV, FLAC, ...), or read as headerless PCM when
///   `raw_pcm` declares its format.
/// - A missing file, a file that is not media, a file that ends before its header says it
///   should (truncated) or a corrupt stream is an [`Error::Ingest`] naming the source.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileIngestPlugin;

impl IngestPlugin for FileIngestPlugin {
    fn name(&self) -> &'static str {
        "file"
    }

    fn schemes(&self) -> &'static [&'static str] {
        &["file://", "-"]
    }

    fn create(&self, config: IngestConfig) -> Result<Arc<dyn IngestSource>, Error> {
        self.validate(&config)?;
        Ok(Arc::new(FileIngestSource {
            config,
            status: Arc::new(IngestStatusCell::new()),
            stop: Arc::new(AtomicBool::new(false)),
        }))
    }

    fn validate(&self, config: &IngestConfig) -> Result<(), Error> {
        let fail = |message: String| Error::Ingest {
            source_url: config.url.clone(),
            message,
        };
        if config.url.trim().is_empty() {
            return Err(fail("the input path is empty".to_owned()));
        }
        if config.raw_pcm.is_some() && config.url != "-" {
            return Err(fail(
                "a raw PCM format can only be declared for stdin (-)".to_owned(),
            ));
        }
        if let Some(rate) = config.audio_sample_rate {
            if !(1000..=768_000).contains(&rate) {
                return Err(fail(format!(
                    "requested sample rate {rate} is out of range 1000..=768000"
                )));
            }
        }
        if config.audio_channels == Some(0) {
            return Err(fail("requested channel count is 0".to_owned()));
        }
        config
            .track_selection
            .check()
            .map_err(|e| fail(e.to_string()))?;
        if let Input::File(path) = Input::of(config) {
            if !path.exists() {
                return Err(fail("file not found".to_owned()));
            }
            if path.is_dir() {
                return Err(fail("is a directory, not a media file".to_owned()));
            }
        }
        Ok(())
    }
}

enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    fn of(config: &IngestConfig) -> Self {
        if config.url == "-" {
            return Input::Stdin;
        }
        let path = config.url.strip_prefix("file://").unwrap_or(&config.url);
        Input::File(PathBuf::from(path))
    }
}

struct FileIngestSource {
    config: IngestConfig,
    status: Arc<IngestStatusCell>,
    stop: Arc<AtomicBool>,
}

#[async_trait]
impl IngestSource for FileIngestSource {
    async fn start(&self) -> Result<IngestStream> {
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        let (info_tx, info_rx) = oneshot::channel();
        let config = self.config.clone();
        let stop = Arc::clone(&self.stop);
        let status = Arc::clone(&self.status);
        stop.store(false, Ordering::SeqCst);
        self.status.restart();
        self.status.set(IngestStatus::Connecting);
        let panicked: Arc<Mutex<Option<String>>> = Arc::default();
        let thread_panicked = Arc::clone(&panicked);
        std::thread::Builder::new()
            .name("remotemedia-file-ingest".to_owned())
            .spawn(move || {
                let sender = IngestSender { tx };
                // A decoder that panics on a malformed file (symphonia does on some) must
                // end in an error naming the file, not a lost thread.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    decode_source(&config, &stop, &sender, info_tx)
                }))
                .unwrap_or_else(|payload| {
                    let what = payload
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".to_owned());
                    let message =
                        format!("the decoder failed on this input ({what}): the file is malformed");
                    *thread_panicked.lock().unwrap_or_else(|p| p.into_inner()) =
                        Some(message.clone());
                    Err(Error::Ingest {
                        source_url: config.url.clone(),
                        message,
                    })
                });
                match result {
                    Ok(()) => status.set(IngestStatus::Disconnected),
                    Err(error) => {
                        status.set(IngestStatus::Error(error.to_string()));
                        sender.blocking_fail(error);
                    }
                }
            })
            .map_err(|e| Error::Ingest {
                source_url: self.config.url.clone(),
                message: format!("cannot start the decoding thread: {e}"),
            })?;
        match info_rx.await {
            Ok(Ok(info)) => {
                // The decoding thread may already have finished a short file.
                if self.status.get() == IngestStatus::Connecting {
                    self.status.set(IngestStatus::Connected);
                }
                Ok(IngestStream::from_parts(rx, info))
            }
            Ok(Err(error)) => {
                self.status.set(IngestStatus::Error(error.to_string()));
                Err(error)
            }
            Err(_) => Err(Error::Ingest {
                source_url: self.config.url.clone(),
                message: panicked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take()
                    .unwrap_or_else(|| {
                        "the decoding thread ended before opening the input".to_owned()
                    }),
            }),
        }
    }

    async fn stop(&self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        self.status.stop();
        Ok(())
    }

    fn status(&self) -> IngestStatus {
        self.status.get()
    }

    fn status_updates(&self) -> Option<tokio::sync::watch::Receiver<IngestStatus>> {
        Some(self.status.subscribe())
    }
}

impl IngestStream {
    pub(super) fn from_parts(rx: mpsc::Receiver<Result<RuntimeData>>, info: MediaInfo) -> Self {
        Self {
            rx,
            info,
            error: None,
        }
    }
}

/// A track's [`AudioConversion`], with timestamps counted from the frames decoded.
struct Conversion {
    inner: AudioConversion,
    frames_in: u64,
}

impl Conversion {
    fn new(config: &IngestConfig, stream_id: &str, rate: u32, channels: u16) -> Self {
        Self {
            inner: AudioConversion::new(config, stream_id, rate, channels),
            frames_in: 0,
        }
    }

    /// Converts one decoded block and sends the result. False when the reader is gone.
    fn push(&mut self, samples: Vec<f32>, sender: &IngestSender) -> Result<bool> {
        let (rate, channels) = self.inner.source_format();
        let timestamp_us = crate::nodes::audio::dsp::frames_to_us(self.frames_in, rate);
        self.frames_in += (samples.len() / usize::from(channels.max(1))) as u64;
        let items = self.inner.convert(samples, timestamp_us)?;
        Ok(send_all(items, sender))
    }

    fn finish(&mut self, sender: &IngestSender) -> Result<bool> {
        let items = self.inner.finish()?;
        Ok(send_all(items, sender))
    }
}

fn send_all(items: Vec<RuntimeData>, sender: &IngestSender) -> bool {
    items.into_iter().all(|data| sender.blocking_send(data))
}

struct DecodedTrack {
    track_id: u32,
    stream_id: String,
    decoder: Box<dyn Decoder>,
    /// Built when rate and channels are known: from the container, or else from the first
    /// decoded packet.
    conversion: Option<Conversion>,
    expected_frames: Option<u64>,
    decoded_frames: u64,
    buffer: Option<SampleBuffer<f32>>,
    corrupt_packets: u64,
}

/// Runs on the decoding thread: open, report media info, decode until the end.
fn decode_source(
    config: &IngestConfig,
    stop: &AtomicBool,
    sender: &IngestSender,
    info_tx: oneshot::Sender<Result<MediaInfo>>,
) -> Result<()> {
    let fail = |message: String| Error::Ingest {
        source_url: config.url.clone(),
        message,
    };
    let opened = match (Input::of(config), config.raw_pcm) {
        (Input::Stdin, Some(format)) => {
            let info = raw_pcm_info(config, format);
            let _ = info_tx.send(Ok(info));
            return decode_raw_pcm(config, format, stop, sender);
        }
        (input, _) => open_container(config, input),
    };
    let (mut reader, format_name, length_unknown) = match opened {
        Ok(opened) => opened,
        Err(error) => {
            let _ = info_tx.send(Err(error));
            return Ok(());
        }
    };

    // Symphonia lists video tracks with no codec: such a file needs the video decoder.
    let holds_video = reader
        .tracks()
        .iter()
        .any(|t| t.codec_params.codec == CODEC_TYPE_NULL);
    if holds_video && config.track_selection.selects("video:0", 0) {
        let _ = info_tx.send(Err(fail(video_file_hint(&format_name))));
        return Ok(());
    }
    let mut info = MediaInfo {
        format: Some(format_name.clone()),
        tracks: Vec::new(),
    };
    let mut tracks: Vec<DecodedTrack> = Vec::new();
    let audio_tracks: Vec<_> = reader
        .tracks()
        .iter()
        .filter(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .cloned()
        .collect();
    for (index, track) in audio_tracks.iter().enumerate() {
        let stream_id = format!("audio:{index}");
        let params = &track.codec_params;
        let selected =
            config
                .track_selection
                .selects_track(&stream_id, index, track.language.as_deref());
        let codec = symphonia::default::get_codecs()
            .get_codec(params.codec)
            .map_or_else(
                || integrity::codec_name(params.codec),
                |d| d.short_name.to_owned(),
            );
        let rate = params.sample_rate;
        let channels = params.channels.map(|c| c.count() as u16);
        let duration_us = match (params.n_frames, rate) {
            (Some(n), Some(r)) => Some(crate::nodes::audio::dsp::frames_to_us(n, r)),
            _ => None,
        };
        info.tracks.push(TrackInfo {
            stream_id: stream_id.clone(),
            codec,
            sample_rate: config.audio_sample_rate.or(rate),
            channels: config.audio_channels.or(channels),
            duration_us,
            selected,
            language: track.language.clone(),
            width: None,
            height: None,
        });
        if !selected {
            continue;
        }
        let decoder = match symphonia::default::get_codecs()
            .make(params, &DecoderOptions::default())
        {
            Ok(d) => d,
            Err(e) => {
                let why = if symphonia::default::get_codecs()
                    .get_codec(params.codec)
                    .is_none()
                {
                    format!(
                        "its codec is {}, which the file ingest does not decode (it decodes {})",
                        integrity::codec_name(params.codec),
                        integrity::DECODED_CODECS
                    )
                } else {
                    e.to_string()
                };
                let _ = info_tx.send(Err(fail(format!("cannot decode track {stream_id}: {why}"))));
                return Ok(());
            }
        };
        // Some containers leave rate or channels to the codec's own configuration (AAC in
        // MP4: its AudioSpecificConfig); then the first decoded packet tells.
        let conversion = match (rate, channels) {
            (Some(rate), Some(channels)) => {
                Some(Conversion::new(config, &stream_id, rate, channels))
            }
            _ => None,
        };
        tracks.push(DecodedTrack {
            track_id: track.id,
            stream_id: stream_id.clone(),
            decoder,
            conversion,
            // A WAV written to a pipe says "unknown length" in its header.
            expected_frames: params.n_frames.filter(|_| !length_unknown),
            decoded_frames: 0,
            buffer: None,
            corrupt_packets: 0,
        });
    }
    if audio_tracks.is_empty() {
        let _ = info_tx.send(Err(fail("contains no audio track".to_owned())));
        return Ok(());
    }
    if tracks.is_empty() {
        let found: Vec<&str> = info.tracks.iter().map(|t| t.stream_id.as_str()).collect();
        let _ = info_tx.send(Err(fail(format!(
            "no track matches the selection {:?} (tracks: {})",
            config.track_selection,
            found.join(", ")
        ))));
        return Ok(());
    }
    if info_tx.send(Ok(info)).is_err() {
        return Ok(());
    }

    let mut packets = 0u64;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            Err(DecodeError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(DecodeError::ResetRequired) => break,
            Err(e) => return Err(fail(format!("read error after {packets} packets: {e}"))),
        };
        packets += 1;
        let Some(track) = tracks.iter_mut().find(|t| t.track_id == packet.track_id()) else {
            continue;
        };
        let decoded = match track.decoder.decode(&packet) {
            Ok(decoded) => decoded,
            Err(DecodeError::DecodeError(_)) => {
                track.corrupt_packets += 1;
                continue;
            }
            Err(e) => return Err(fail(format!("decode error: {e}"))),
        };
        let spec = *decoded.spec();
        let capacity = decoded.capacity() as u64;
        let buffer = match &mut track.buffer {
            Some(b) if b.capacity() as u64 >= capacity * spec.channels.count() as u64 => b,
            slot => slot.insert(SampleBuffer::<f32>::new(capacity, spec)),
        };
        buffer.copy_interleaved_ref(decoded);
        let samples = buffer.samples().to_vec();
        if samples.is_empty() {
            // Codec priming packets (e.g. Vorbis headers) decode to nothing.
            continue;
        }
        track.decoded_frames += (samples.len() / spec.channels.count().max(1)) as u64;
        let conversion = track.conversion.get_or_insert_with(|| {
            Conversion::new(
                config,
                &track.stream_id,
                spec.rate,
                spec.channels.count() as u16,
            )
        });
        let pushed = conversion.push(samples, sender).map_err(|e| match e {
            Error::InvalidData(why) => fail(why),
            other => other,
        })?;
        if !pushed {
            return Ok(());
        }
    }

    if let Input::File(path) = Input::of(config) {
        let truncated = match format_name.as_str() {
            "mp3" => integrity::mp3_truncation(&path).ok().flatten(),
            "ogg" | "oga" => integrity::ogg_incomplete(&path)
                .ok()
                .flatten()
                .map(|why| format!("the OGG stream is incomplete: {why}")),
            _ => None,
        };
        if let Some(why) = truncated {
            return Err(fail(format!("truncated: {why}")));
        }
    }
    for track in &mut tracks {
        if track.decoded_frames == 0 && track.corrupt_packets > 0 {
            return Err(fail(format!(
                "every packet of {} failed to decode ({} corrupt packets)",
                track.stream_id, track.corrupt_packets
            )));
        }
        if let Some(expected) = track.expected_frames {
            let slack = 4096.max(expected / 100);
            if track.decoded_frames + slack < expected {
                return Err(fail(format!(
                    "truncated: {} ends after {} of the {} frames its header announces",
                    track.stream_id, track.decoded_frames, expected
                )));
            }
        }
        let Some(conversion) = &mut track.conversion else {
            continue;
        };
        if !conversion.finish(sender)? {
            return Ok(());
        }
    }
    Ok(())
}

/// The error for a video file, naming the adapter that decodes it.
fn video_file_hint(format_name: &str) -> String {
    format!(
        "this {format_name} file holds video, which the file ingest does not decode: video files are read by the ingest-rtmp adapter (crate remotemedia-ingest-rtmp, registered with its RtmpIngestPlugin; in the remotemedia command, the ingest-rtmp cargo feature); to read only its audio here, select the audio track (audio:0)"
    )
}

/// Opens the input's container: the reader, the format's name, and whether the header
/// declares its length unknown (a WAV streamed to a pipe).
fn open_container(
    config: &IngestConfig,
    input: Input,
) -> Result<(Box<dyn FormatReader>, String, bool)> {
    let fail = |message: String| Error::Ingest {
        source_url: config.url.clone(),
        message,
    };
    let mut hint = Hint::new();
    let file_path = match &input {
        Input::File(path) => Some(path.clone()),
        Input::Stdin => None,
    };
    // The header is looked at first, then read again by the decoder.
    let head_of = |input: &mut dyn Read| -> Result<(Vec<u8>, bool)> {
        let mut head = vec![0u8; 4096];
        let read = read_up_to(input, &mut head).map_err(|e| fail(format!("cannot read: {e}")))?;
        head.truncate(read);
        if let Some(problem) = integrity::wav_header_problem(&head) {
            return Err(fail(problem));
        }
        let length_unknown = integrity::wav_length_unknown(&head);
        Ok((head, length_unknown))
    };
    let (head, length_unknown, stream) = match input {
        Input::Stdin => {
            let mut stdin = std::io::stdin();
            let (head, length_unknown) = head_of(&mut stdin)?;
            let source = std::io::Cursor::new(head.clone()).chain(stdin);
            let stream =
                MediaSourceStream::new(Box::new(ReadOnlySource::new(source)), Default::default());
            (head, length_unknown, stream)
        }
        Input::File(path) => {
            if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
                hint.with_extension(ext);
            }
            let mut file = std::fs::File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => fail("file not found".to_owned()),
                _ => fail(format!("cannot open: {e}")),
            })?;
            let (head, length_unknown) = head_of(&mut file)?;
            use std::io::Seek;
            file.rewind()
                .map_err(|e| fail(format!("cannot read: {e}")))?;
            let stream = MediaSourceStream::new(Box::new(file), Default::default());
            (head, length_unknown, stream)
        }
    };
    let magic = &head[..head.len().min(16)];
    let probed = symphonia::default::get_probe()
        .format(
            &hint,
            stream,
            &FormatOptions {
                enable_gapless: true,
                ..FormatOptions::default()
            },
            &MetadataOptions::default(),
        )
        .map_err(|e| {
            let eof = matches!(&e, DecodeError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof);
            if eof && magic.starts_with(b"OggS") {
                let why = file_path
                    .as_deref()
                    .and_then(|path| integrity::ogg_incomplete(path).ok().flatten())
                    .unwrap_or_else(|| "it was cut short".to_owned());
                return fail(format!("truncated: the OGG stream is incomplete: {why}"));
            }
            let reads = integrity::READ_FORMATS;
            let video_extension = file_path
                .as_deref()
                .and_then(|p| p.extension())
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .filter(|e| super::VIDEO_FILE_EXTENSIONS.contains(&e.as_str()));
            if let Some(extension) = video_extension {
                return fail(format!("{} ({e})", video_file_hint(&extension)));
            }
            match (file_path.is_some(), integrity::container_name(magic)) {
                (true, Some(found)) if integrity::is_read_format(found) => fail(format!(
                    "the file is {found}, but what it holds cannot be read: {e} (the file ingest decodes {})",
                    integrity::DECODED_CODECS
                )),
                (true, Some(found)) => fail(format!(
                    "the file is {found}, which the file ingest cannot read ({e}; it reads {reads})"
                )),
                (true, None) => fail(format!(
                    "not a media file the file ingest reads (it reads {reads}): {e}"
                )),
                (false, _) => fail(format!(
                    "stdin holds no media format the file ingest reads (it reads {reads}): {e}; for headerless PCM, declare its format (on the command line --raw-format ENCODING:RATE:CHANNELS, e.g. s16le:16000:1; in IngestConfig, raw_pcm)"
                )),
            }
        })?;
    let name = std::path::Path::new(&config.url)
        .extension()
        .and_then(|e| e.to_str())
        .map_or_else(|| "probed".to_owned(), str::to_ascii_lowercase);
    Ok((probed.format, name, length_unknown))
}

/// Reads into `buf` until it is full or the input ends; returns the bytes read.
fn read_up_to(input: &mut (impl Read + ?Sized), buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn raw_pcm_info(config: &IngestConfig, format: RawPcmFormat) -> MediaInfo {
    MediaInfo {
        format: Some(
            match format.encoding {
                PcmEncoding::S16Le => "s16le",
                PcmEncoding::F32Le => "f32le",
            }
            .to_owned(),
        ),
        tracks: vec![TrackInfo {
            stream_id: "audio:0".to_owned(),
            codec: "pcm".to_owned(),
            sample_rate: config.audio_sample_rate.or(Some(format.sample_rate)),
            channels: config.audio_channels.or(Some(format.channels)),
            duration_us: None,
            selected: true,
            language: None,
            width: None,
            height: None,
        }],
    }
}

/// Reads headerless PCM from stdin in 20 ms blocks.
fn decode_raw_pcm(
    config: &IngestConfig,
    format: RawPcmFormat,
    stop: &AtomicBool,
    sender: &IngestSender,
) -> Result<()> {
    let width = match format.encoding {
        PcmEncoding::S16Le => 2,
        PcmEncoding::F32Le => 4,
    };
    let frame_bytes = width * usize::from(format.channels);
    let block = frame_bytes * (format.sample_rate as usize / 50).max(1);
    let mut conversion = Conversion::new(config, "audio:0", format.sample_rate, format.channels);
    let mut stdin = std::io::stdin().lock();
    let mut buffer = vec![0u8; block];
    let mut filled = 0usize;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let n = stdin
            .read(&mut buffer[filled..])
            .map_err(|e| Error::Ingest {
                source_url: config.url.clone(),
                message: format!("cannot read stdin: {e}"),
            })?;
        filled += n;
        let at_end = n == 0;
        if filled == block || (at_end && filled > 0) {
            let whole = filled - filled % frame_bytes;
            let samples: Vec<f32> = match format.encoding {
                PcmEncoding::S16Le => buffer[..whole]
                    .chunks_exact(2)
                    .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
                    .collect(),
                PcmEncoding::F32Le => buffer[..whole]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            };
            if !samples.is_empty() && !conversion.push(samples, sender)? {
                return Ok(());
            }
            if at_end && whole != filled {
                return Err(Error::Ingest {
                    source_url: config.url.clone(),
                    message: format!(
                        "stdin ended inside a frame: {} trailing bytes do not make a whole {}-channel frame",
                        filled - whole,
                        format.channels
                    ),
                });
            }
            filled = 0;
        }
        if at_end {
            break;
        }
    }
    conversion.finish(sender)?;
    Ok(())
}
