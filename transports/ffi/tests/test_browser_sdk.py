"""The SDK's pure-Python parts that also run in the browser (Pyodide): the browser's data
types, the async call driver, inline source, and what a node written with the standard
library only gets natively (float32 buffers accepted as audio)."""

import array
import asyncio

import numpy as np
import pytest

import remotemedia
from remotemedia import _browser, _hosting, sdk


def test_native_audio_takes_a_float32_buffer_of_the_standard_library():
    audio = remotemedia.Audio(array.array("f", [0.5, -0.25, 1.0, 0.0]), 8000, channels=2, timestamp_us=7)
    assert (audio.frames, audio.sample_rate, audio.channels, audio.timestamp_us) == (2, 8000, 2, 7)
    np.testing.assert_array_equal(audio.samples, np.array([0.5, -0.25, 1.0, 0.0], np.float32))
    assert remotemedia.Audio(memoryview(array.array("f", [0.5])), 8000).frames == 1
    with pytest.raises(TypeError, match=r"float32 numpy array or a float32 buffer \(array.array\('f'\)\), not array"):
        remotemedia.Audio(array.array("d", [0.5]), 8000)
    with pytest.raises(TypeError, match="not list"):
        remotemedia.Audio([0.5], 8000)
    with pytest.raises(ValueError, match="not a whole number of 2-channel frames"):
        remotemedia.Audio(array.array("f", [0.5]), 8000, channels=2)


def test_browser_audio_holds_a_read_only_float32_view():
    audio = _browser.Audio([0.5, -0.5, 0.25, 0.0], 16000, channels=2, stream_id="mic", timestamp_us=20000)
    assert audio.samples.format == "f" and audio.samples.readonly
    assert audio.frames == 2 and list(audio.samples) == [0.5, -0.5, 0.25, 0.0]
    assert repr(audio) == "Audio(2 frames, 16000 Hz, 2 channel(s), timestamp_us=20000)"
    raw = array.array("f", [1.0, 2.0])
    assert list(_browser.Audio(raw, 8000).samples) == [1.0, 2.0]
    assert list(_browser.Audio(memoryview(raw.tobytes()), 8000).samples) == [1.0, 2.0]
    with pytest.raises(TypeError, match="must be float32"):
        _browser.Audio(array.array("d", [1.0]), 8000)
    with pytest.raises(ValueError, match="not a whole number of frames of 2 channels"):
        _browser.Audio([1.0], 8000, channels=2)
    with pytest.raises(ValueError, match="sample_rate"):
        _browser.Audio([1.0], 0)


def test_browser_items_are_tagged_for_the_engine():
    assert _browser.from_item("hi") == ["text", "hi"]
    assert _browser.from_item({"a": [1, None]}) == ["json", '{"a": [1, null]}']
    assert _browser.from_item(3.5) == ["json", "3.5"]
    assert _browser.from_item(b"\x01") == ["binary", b"\x01"]
    kind, samples, rate, channels, timestamp_us, stream_id = _browser.from_item(
        _browser.Audio([0.5], 8000, stream_id="a", timestamp_us=3))
    assert (kind, list(samples), rate, channels, timestamp_us, stream_id) == ("audio", [0.5], 8000, 1, 3, "a")
    assert _browser.to_item("text", "hi") == "hi"
    assert _browser.to_item("json", '{"a": 1}') == {"a": 1}
    with pytest.raises(TypeError, match="that is not JSON"):
        _browser.from_item({"x": float("nan")})
    with pytest.raises(TypeError, match="the node emitted a set"):
        _browser.from_item({1, 2})


def test_async_calls_collect_every_form_of_result():
    class Forms(remotemedia.Node):
        def process(self, data):
            if data == "list":
                return ["a", "b"]
            if data == "gen":
                return (x for x in "cd")
            if data == "none":
                return None
            return data

    class AsyncForms(remotemedia.Node):
        async def process(self, data):
            await asyncio.sleep(0)
            yield data
            yield data + "!"

        async def flush(self):
            return "done"

    async def run():
        calls = sdk.AsyncNodeCalls(Forms())
        await calls.initialize()
        got = [await calls.process(x) for x in ["list", "gen", "none", "one"]]
        assert not sdk.needs_awaiting(calls.node.process("gen"))
        assert calls.ready_outputs(calls.node.process("list")) == ["a", "b"]
        assert sdk.needs_awaiting(AsyncForms().process("x"))
        streaming = sdk.AsyncNodeCalls(AsyncForms())
        return got, await streaming.process("x"), await streaming.flush()

    got, streamed, flushed = asyncio.run(run())
    assert got == [["a", "b"], ["c", "d"], [], ["one"]]
    assert streamed == ["x", "x!"]
    assert flushed == ["done"]


def test_inline_source_is_one_module_however_often_it_is_used():
    source = 'import remotemedia\n\n@remotemedia.node("InlineOnce")\nclass InlineOnce(remotemedia.Node):\n    pass\n'
    first = _hosting.load_source(source)
    assert _hosting.load_source(source) is first
    assert _hosting.find_node_class("InlineOnce", (), source) is first.InlineOnce
    with pytest.raises(ZeroDivisionError) as raised:
        _hosting.load_source("x = 1\ny = 1 / 0\n")
    message, trace = _hosting.describe(raised.value)
    assert message == "ZeroDivisionError: division by zero"
    assert 'File "<multiprocess.source>", line 2, in <module>' in trace
    # A source that failed is not kept half-run.
    assert _hosting.source_module_name("x = 1\ny = 1 / 0\n") not in __import__("sys").modules
