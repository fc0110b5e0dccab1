"""Manifests with Python nodes, run from Python: the nodes run in real worker processes
of the multiprocess executor (started from this interpreter)."""

import os
import re
import sys

import numpy as np
import pytest

import remotemedia
from remotemedia.worker import find_node_class

HERE = os.path.dirname(os.path.abspath(__file__))


def test_echo_node_returns_every_type_from_a_worker():
    items = [
        "héllo",
        {"a": [1, 2.5, None]},
        b"\x00\xff",
        remotemedia.Audio(np.arange(8, dtype=np.float32), 16000, channels=2, stream_id="s", timestamp_us=5),
        np.arange(6, dtype=np.int16).reshape(2, 3),
    ]
    outputs = remotemedia.execute({"nodes": [{"id": "echo", "node_type": "EchoNode"}]}, items)
    assert [o.node_id for o in outputs] == ["echo"] * 5
    assert outputs[0] == "héllo" and outputs[1] == {"a": [1, 2.5, None]} and outputs[2] == b"\x00\xff"
    audio = outputs[3].data
    assert (audio.sample_rate, audio.channels, audio.stream_id, audio.timestamp_us) == (16000, 2, "s", 5)
    np.testing.assert_array_equal(audio.samples, np.arange(8, dtype=np.float32))
    np.testing.assert_array_equal(outputs[4].data, np.arange(6, dtype=np.int16).reshape(2, 3))


def test_a_node_from_a_listed_module_runs_in_a_worker():
    manifest = {"nodes": [{
        "id": "whoami", "node_type": "WhoAmI",
        "multiprocess": {"modules": ["pytest_worker_nodes"], "python_path": [HERE]},
    }]}
    [out] = remotemedia.execute(manifest, ["?"])
    assert out.data["pid"] != os.getpid()
    assert out.data["executable"] == sys.executable


def test_a_python_exception_raises_node_error_with_the_traceback():
    manifest = {"nodes": [{
        "id": "bad", "node_type": "Fails",
        "multiprocess": {"modules": ["pytest_worker_nodes"], "python_path": [HERE]},
    }]}
    with pytest.raises(remotemedia.NodeError) as info:
        remotemedia.execute(manifest, ["x"])
    assert info.value.node_id == "bad"
    assert "ZeroDivisionError" in str(info.value)
    assert "pytest_worker_nodes.py" in str(info.value)


def test_python_catalog_is_listed():
    listed = {n["node_type"]: n for n in remotemedia.nodes()}
    assert listed["SileroVADNode"]["kind"] == "python"
    assert listed["SpeechRecognitionNode"]["params"]["properties"]["engine"]["default"] == "whisper-small"


def test_find_node_class_names_what_it_searched():
    with pytest.raises(LookupError, match="no Python node class 'Nope' was found"):
        find_node_class("Nope")
    assert find_node_class("EchoNode").__name__ == "EchoNode"


def test_catalog_nodes_get_their_defaults_from_the_runtimes_schema():
    from remotemedia_nodes.text_to_speech import TextToSpeechNode

    node = TextToSpeechNode(params={"sampleRate": 16000})
    assert node.params["sample_rate"] == 16000, "camelCase normalized as in a manifest"
    assert node.params["rate"] == 175 and node.params["engine"] == "piper", "defaults filled in"
    assert node.params.get("voice") is None, "no default voice: the engine's own"
    with pytest.raises(remotemedia.ManifestError, match="param 'rate'"):
        TextToSpeechNode(params={"rate": 5})


def _speech_bursts(rate=16000):
    t = np.arange(int(0.6 * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    silence = np.zeros(int(0.8 * rate), dtype=np.float32)
    return np.concatenate([silence, tone, silence])


def test_silero_vad_keeps_a_detector_per_track():
    from remotemedia_nodes.silero_vad import SileroVADNode

    def chunks(samples, tag):
        step = 512
        return [remotemedia.Audio(samples[i:i + step].copy(), 16000, stream_id=tag,
                                  timestamp_us=i * 1_000_000 // 16000)
                for i in range(0, len(samples), step)]

    def events(outputs, tag):
        return [o for o in outputs if isinstance(o, dict) and o.get("stream_id") == tag]

    speech, quiet = _speech_bursts(), np.zeros(len(_speech_bursts()), dtype=np.float32)
    alone_a = events(remotemedia.run_node(SileroVADNode(), chunks(speech, "audio:0")), "audio:0")
    alone_b = events(remotemedia.run_node(SileroVADNode(), chunks(quiet, "audio:1")), "audio:1")
    mixed_inputs = [x for pair in zip(chunks(speech, "audio:0"), chunks(quiet, "audio:1")) for x in pair]
    mixed = remotemedia.run_node(SileroVADNode(), mixed_inputs)
    assert events(mixed, "audio:0") == alone_a
    assert events(mixed, "audio:1") == alone_b
    assert not any(e["is_speech_start"] for e in alone_b), "the silent track hears nothing"


@pytest.mark.parametrize("engine,rate", [("piper", 22050), ("festival", 32000), ("espeak-ng", 22050)])
def test_every_tts_engine_speaks_offline_at_the_asked_rate(engine, rate):
    from remotemedia_nodes.text_to_speech import ENGINE_CLASSES, DEFAULT_VOICES, TextToSpeechNode

    voice = ENGINE_CLASSES[engine](DEFAULT_VOICES[engine], 175)
    samples, native_rate = voice.synthesize("Hello world, this is a test.")
    assert native_rate == rate
    seconds = samples.size / native_rate
    assert 1.0 < seconds < 4.0, f"{engine}: {seconds} s"
    assert 0.05 < float(np.abs(samples).max()) <= 1.0, engine
    node = TextToSpeechNode(params={"engine": engine, "sample_rate": 16000})
    node.initialize()
    audio = node.process("Hello world.")
    assert audio.sample_rate == 16000 and audio.channels == 1
    assert audio.samples.size > 8000


def test_tts_voices_are_names_the_engine_has():
    from remotemedia_nodes.text_to_speech import TextToSpeechNode

    for engine, message in [
        ("piper", "piper has no voice 'nobody' (installed voices: en_US-joe-medium)"),
        ("festival", "festival has no voice 'nobody' (installed: cmu_us_slt_arctic_hts)"),
    ]:
        node = TextToSpeechNode(params={"engine": engine, "voice": "nobody"})
        with pytest.raises(RuntimeError, match=re.escape(message)):
            node.initialize()
    node = TextToSpeechNode(params={"engine": "festival", "voice": "Bad-Voice"})
    with pytest.raises(ValueError, match="not a festival voice name"):
        node.initialize()


def test_whisper_features_are_whispers_log_mel():
    from remotemedia_nodes import whisper

    t = np.arange(16000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    features = whisper.log_mel(tone)
    assert features.shape == (80, 3000) and features.dtype == np.float32
    # Clamped to 8 (log10) below the peak, scaled by (x + 4) / 4.
    assert features.max() - features.min() <= 2.0 + 1e-6
    # The 1 kHz tone's energy sits in the band around 1 kHz during its second.
    filters = whisper.mel_filters()
    band = int(np.argmax(filters[:, 1000 * 400 // 16000]))
    assert int(np.argmax(features[:, 50])) == band
    assert features[band, 50] > features[band, 2000] + 1.0, "the padding is silence"


def test_a_missing_whisper_model_says_how_to_install_it(monkeypatch, tmp_path):
    from remotemedia_nodes import whisper

    monkeypatch.setenv("REMOTEMEDIA_MODELS", str(tmp_path))
    whisper.load.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"whisper-small model is not installed .*cargo xtask python-env"):
            whisper.load("whisper-small")
    finally:
        whisper.load.cache_clear()
