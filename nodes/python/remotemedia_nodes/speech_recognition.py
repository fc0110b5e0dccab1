"""`SpeechRecognitionNode`: offline speech recognition of utterances.

Engines (nothing is downloaded at run time):

- `pocketsphinx` (default): CMU PocketSphinx with the US English acoustic model, language
  model and dictionary bundled in its PyPI package; lower-case words.
- `whisper-small`: Whisper small (int8 ONNX, run with onnxruntime; see `whisper.py`),
  loaded once per worker process; cased, punctuated text. `language` is a Whisper
  language code (`en`, `de`, ...; `en-us` counts as `en`).

Input: one Audio item per utterance, 16 kHz (channels are averaged) — e.g. from
`AudioBufferAccumulatorNode`. Output: one Text item with the transcript (nothing when no
word was recognized, unless `emit_empty`). Other data types pass through.
"""

import numpy as np

import remotemedia

ENGINES = ("pocketsphinx", "whisper-small")
LANGUAGES = {"pocketsphinx": ("en-us",)}


@remotemedia.node("SpeechRecognitionNode")
class SpeechRecognitionNode(remotemedia.Node):
    def initialize(self):
        self.engine = self.params["engine"]
        self.language = self.params["language"]
        self.emit_empty = bool(self.params["emit_empty"])
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r} (available: {', '.join(ENGINES)})")
        if self.engine == "whisper-small":
            from remotemedia_nodes import whisper

            self.whisper = whisper.load("whisper-small")
            self.whisper_language = self.language.split("-")[0].lower()
            # Fails at session start for a language the model does not have.
            self.whisper.language_token(self.whisper_language)
            return
        if self.language not in LANGUAGES[self.engine]:
            raise ValueError(
                f"the {self.engine} engine has no model for language {self.language!r} "
                f"(available: {', '.join(LANGUAGES[self.engine])})")
        from pocketsphinx import Decoder

        # Logging off: pocketsphinx otherwise writes its configuration to stderr.
        self.decoder = Decoder(samprate=16000, loglevel="FATAL")

    def process(self, data):
        if not isinstance(data, remotemedia.Audio):
            return data
        if data.sample_rate != 16000:
            raise ValueError(
                f"SpeechRecognitionNode needs 16 kHz audio, got {data.sample_rate} Hz: "
                "put a FastResampleNode with target_rate 16000 before it")
        samples = np.asarray(data.samples, dtype=np.float32)
        if data.channels > 1:
            samples = samples.reshape(-1, data.channels).mean(axis=1)
        if self.engine == "whisper-small":
            transcript = self.whisper.transcribe_audio(samples, self.whisper_language)
            if transcript or self.emit_empty:
                return transcript
            return None
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hypothesis = self.decoder.hyp()
        transcript = hypothesis.hypstr.strip() if hypothesis is not None else ""
        if transcript or self.emit_empty:
            return transcript
        return None
