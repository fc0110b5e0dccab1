"""`TextToSpeechNode`: speech synthesis with espeak-ng.

Engine `espeak-ng` (Debian package `espeak-ng`): each Text input becomes one mono Audio
item at `sample_rate` (espeak-ng speaks at 22050 Hz; other rates are produced by
band-limited FFT resampling of the whole utterance). `voice` is any espeak-ng voice
(`espeak-ng --voices`; variants like `en-us+klatt2`), `rate` is in words per minute.
Empty text produces nothing; other data types pass through.
"""

import io
import re
import shutil
import subprocess
import wave

import numpy as np

import remotemedia

ENGINES = ("espeak-ng",)
VOICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+/-]{0,63}")


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


@remotemedia.node("TextToSpeechNode")
class TextToSpeechNode(remotemedia.Node):
    def initialize(self):
        self.engine = self.params["engine"]
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r} (available: {', '.join(ENGINES)})")
        self.voice = str(self.params["voice"])
        # A voice is a name in espeak-ng's own data directory ("en-us", "gmw/en-US",
        # "en+f3"), never a path or an option: manifests may come from clients.
        if not VOICE_NAME.fullmatch(self.voice) or ".." in self.voice:
            raise ValueError(
                f"param 'voice': {self.voice!r} is not a voice name (letters, digits and "
                "'-', '_', '+', '/' inside; espeak-ng --voices lists them)")
        self.rate = int(self.params["rate"])
        self.sample_rate = int(self.params["sample_rate"])
        self.binary = shutil.which("espeak-ng")
        if self.binary is None:
            raise RuntimeError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
        self.timestamp_us = 0
        # Fails here, at session start, for a voice espeak-ng does not know.
        self._synthesize("ok")

    def _synthesize(self, text):
        result = subprocess.run(
            [self.binary, "--stdout", "-v", self.voice, "-s", str(self.rate)],
            input=text.encode("utf-8"), capture_output=True, timeout=60)
        problem = result.stderr.decode("utf-8", "replace").strip()
        if result.returncode != 0 or not result.stdout.startswith(b"RIFF"):
            if "voice does not exist" in problem:
                raise RuntimeError(
                    f"espeak-ng has no voice {self.voice!r} (espeak-ng --voices lists them)")
            raise RuntimeError(f"espeak-ng failed for voice {self.voice!r}: {problem or 'no audio produced'}")
        with wave.open(io.BytesIO(result.stdout)) as wav:
            rate = wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
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
