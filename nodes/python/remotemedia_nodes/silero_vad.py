"""`SileroVADNode`: voice activity detection with the Silero VAD model.

The model is the ONNX file shipped in the `silero-vad` package (installed with
`pip install --no-deps silero-vad`: only its data file is used, not its torch code), run
with onnxruntime on the CPU. Nothing is downloaded.

Same event contract as the native `VADNode`: for each audio input, one Json event

    {"has_speech", "speech_probability", "is_speech_start", "is_speech_end", "timestamp_ms"}

(plus `speech_start_ms` on a start, `speech_end_ms` on an end, and the audio's
`stream_id` when it has one), then the audio itself, unchanged. Each track (`stream_id`)
has its own detector state; the model is loaded once per sample rate. Other data types
pass through.
"""

import functools
import importlib.util
import os

import numpy as np

import remotemedia

#: Leaving speech needs the probability to fall this far below the threshold.
HYSTERESIS = 0.15


def model_path():
    """The Silero VAD ONNX file of the installed `silero-vad` package (found without
    importing the package, whose __init__ needs torch)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "SileroVADNode needs the model file of the silero-vad package: "
            "pip install --no-deps silero-vad")
    for location in spec.submodule_search_locations:
        path = os.path.join(location, "data", "silero_vad.onnx")
        if os.path.isfile(path):
            return path
    raise RuntimeError("the silero-vad package has no data/silero_vad.onnx")


class SileroModel:
    """The Silero VAD v5 model for one sample rate: 512-sample windows at 16 kHz (256 at
    8 kHz), each with the previous 64 (32) samples as context. The model's recurrent state
    lives in a `SileroState`, one per track."""

    def __init__(self, sample_rate):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            model_path(), sess_options=options, providers=["CPUExecutionProvider"])
        self.sample_rate = sample_rate
        self.window = 512 if sample_rate == 16000 else 256
        self.context_size = 64 if sample_rate == 16000 else 32

    def __call__(self, state, window):
        """The speech probability of `window`, advancing `state`."""
        x = np.concatenate([state.context, window.reshape(1, -1)], axis=1)
        out, state.rnn = self.session.run(None, {
            "input": x,
            "state": state.rnn,
            "sr": np.array(self.sample_rate, dtype=np.int64),
        })
        state.context = x[:, -self.context_size:]
        return float(out.reshape(-1)[0])


@functools.lru_cache(maxsize=None)
def shared_model(sample_rate):
    """The model for `sample_rate`, loaded once per process: every instance (session) in it
    runs the same onnxruntime session with its own `SileroState`."""
    return SileroModel(sample_rate)


class SileroState:
    """One track's detector: the model's recurrent state and the speech state machine."""

    def __init__(self, model, timestamp_ms):
        self.model = model
        self.rate = model.sample_rate
        self.rnn = np.zeros((2, 1, 128), dtype=np.float32)
        self.context = np.zeros((1, model.context_size), dtype=np.float32)
        self.window_ms = model.window * 1000.0 / model.sample_rate
        self.carry = np.zeros(0, dtype=np.float32)
        self.in_speech = False
        self.speech_run_ms = 0.0
        self.run_start_ms = 0.0
        self.dip_ms = 0.0
        self.silence_run_ms = 0.0
        self.silence_start_ms = 0.0
        self.next_window_ms = timestamp_ms


#: Tracks a node keeps state for at most (as the native audio nodes).
MAX_TRACKS = 64


@remotemedia.node("SileroVADNode", share=True)
class SileroVADNode(remotemedia.Node):
    """Speech starts after `min_speech_duration_ms` of windows at or above `threshold`
    (short dips inside the onset do not restart the count); it ends after
    `min_silence_duration_ms + speech_pad_ms` of windows below `threshold - 0.15`.
    Accepts 16 kHz or 8 kHz audio (multiples of 16 kHz are decimated); channels are
    averaged."""

    def initialize(self):
        self.threshold = float(self.params["threshold"])
        self.min_speech_ms = float(self.params["min_speech_duration_ms"])
        self.min_silence_ms = float(self.params["min_silence_duration_ms"])
        self.speech_pad_ms = float(self.params["speech_pad_ms"])
        self.models = {}
        self.tracks = {}
        # Load the 16 kHz model now, so the first item does not pay for it.
        self.models[16000] = shared_model(16000)

    def _track(self, stream_id, rate, timestamp_ms):
        track = self.tracks.get(stream_id)
        if track is not None and track.rate == rate:
            return track
        if track is None and len(self.tracks) >= MAX_TRACKS:
            raise ValueError(
                f"audio of a {MAX_TRACKS + 1}th track ({stream_id or 'untagged'}) arrived; "
                f"a node keeps state for at most {MAX_TRACKS} tracks")
        if rate not in self.models:
            self.models[rate] = shared_model(rate)
        # A new track, or another rate (another signal): the detector starts over.
        track = SileroState(self.models[rate], timestamp_ms)
        self.tracks[stream_id] = track
        return track

    def process(self, data):
        if not isinstance(data, remotemedia.Audio):
            return data
        samples = np.asarray(data.samples, dtype=np.float32)
        if data.channels > 1:
            samples = samples.reshape(-1, data.channels).mean(axis=1)
        rate = data.sample_rate
        if rate not in (8000, 16000):
            if rate % 16000 == 0:
                samples = samples[:: rate // 16000]
                rate = 16000
            else:
                raise ValueError(
                    f"SileroVADNode needs 16 kHz or 8 kHz audio, got {data.sample_rate} Hz: "
                    "put a FastResampleNode with target_rate 16000 before it")
        timestamp_ms = data.timestamp_us / 1000.0
        t = self._track(data.stream_id, rate, timestamp_ms)

        started = ended = None
        any_speech = t.in_speech
        max_probability = 0.0
        max_dip_ms = min(max(self.min_silence_ms, t.window_ms), 100.0)
        buffer = np.concatenate([t.carry, samples]) if t.carry.size else samples
        window = t.model.window
        whole = len(buffer) // window * window
        for offset in range(0, whole, window):
            window_ms = t.next_window_ms
            t.next_window_ms += t.window_ms
            p = t.model(t, buffer[offset:offset + window])
            max_probability = max(max_probability, p)
            if t.in_speech:
                if p < max(self.threshold - HYSTERESIS, 0.0):
                    if t.silence_run_ms == 0.0:
                        t.silence_start_ms = window_ms
                    t.silence_run_ms += t.window_ms
                    if t.silence_run_ms >= self.min_silence_ms + self.speech_pad_ms:
                        t.in_speech = False
                        t.speech_run_ms = 0.0
                        t.dip_ms = 0.0
                        ended = t.silence_start_ms
                else:
                    t.silence_run_ms = 0.0
            elif p >= self.threshold:
                if t.speech_run_ms == 0.0:
                    t.run_start_ms = window_ms
                t.dip_ms = 0.0
                t.speech_run_ms += t.window_ms
                if t.speech_run_ms >= max(self.min_speech_ms, t.window_ms):
                    t.in_speech = True
                    t.silence_run_ms = 0.0
                    started = t.run_start_ms
                    any_speech = True
            elif t.speech_run_ms > 0.0:
                t.dip_ms += t.window_ms
                if t.dip_ms > max_dip_ms:
                    t.speech_run_ms = 0.0
                    t.dip_ms = 0.0
        t.carry = np.array(buffer[whole:], dtype=np.float32)

        event = {
            "has_speech": any_speech,
            "speech_probability": round(max_probability, 3),
            "is_speech_start": started is not None,
            "is_speech_end": ended is not None,
            "timestamp_ms": timestamp_ms,
        }
        if started is not None:
            event["speech_start_ms"] = started
        if ended is not None:
            event["speech_end_ms"] = ended
        if data.stream_id is not None:
            event["stream_id"] = data.stream_id
        return [event, data]
