"""The Python node SDK and the frame codec shared with the runtime."""

import numpy as np
import pytest

import remotemedia


@remotemedia.node("Doubler")
class Doubler(remotemedia.Node):
    def initialize(self):
        self.factor = self.params.get("factor", 2)
        self.seen = 0

    def process(self, data):
        self.seen += 1
        if isinstance(data, remotemedia.Audio):
            return remotemedia.Audio(data.samples * self.factor, data.sample_rate, data.channels)
        return [data, data]


@remotemedia.node("Splitter")
class Splitter(remotemedia.Node):
    def process(self, data):
        for word in data.split():
            yield word


@remotemedia.node("AsyncEcho")
class AsyncEcho(remotemedia.Node):
    async def initialize(self):
        self.ready = True

    async def process(self, data):
        yield data


@remotemedia.node("Quiet")
class Quiet(remotemedia.Node):
    def process(self, data):
        return None


def test_registration_by_type_name():
    assert remotemedia.node_class("Doubler") is Doubler
    assert Doubler.node_type == "Doubler"
    assert {"Doubler", "Splitter", "AsyncEcho", "Quiet"} <= set(remotemedia.registered_nodes())
    with pytest.raises(KeyError, match="no Python node type 'Nope' is registered"):
        remotemedia.node_class("Nope")


def test_registration_errors_are_clear():
    with pytest.raises(TypeError, match="must decorate a subclass of remotemedia.Node"):
        remotemedia.node("Bad")(object)
    with pytest.raises(ValueError, match="already registered"):
        @remotemedia.node("Doubler")
        class Other(remotemedia.Node):
            pass


def test_process_may_return_item_list_generator_async_generator_or_none():
    assert remotemedia.run_node(Doubler(params={"factor": 3}), ["a"]) == ["a", "a"]
    assert remotemedia.run_node(Splitter(), ["one two three"]) == ["one", "two", "three"]
    assert remotemedia.run_node(AsyncEcho(), [{"k": 1}]) == [{"k": 1}]
    assert remotemedia.run_node(Quiet(), ["x", "y"]) == []
    assert remotemedia.run_node(remotemedia.Node(), ["pass"]) == ["pass"]


def test_audio_nodes_see_numpy_views():
    audio = remotemedia.Audio(np.ones(4, dtype=np.float32), 16000)
    [out] = remotemedia.run_node(Doubler(params={"factor": 0.5}), [audio])
    np.testing.assert_array_equal(out.samples, np.full(4, 0.5, dtype=np.float32))


def test_frame_codec_round_trips_every_type():
    items = [
        remotemedia.Audio(np.arange(6, dtype=np.float32), 48000, channels=2, stream_id="audio:1", timestamp_us=9),
        remotemedia.Video(np.arange(12, dtype=np.uint8), 2, 2, "rgb24", frame_number=3),
        "héllo",
        {"a": [1, 2.5, None]},
        b"\x00\x01",
        np.arange(6, dtype=np.int32).reshape(2, 3),
    ]
    for item in items:
        back = remotemedia.decode_frame(remotemedia.encode_frame(item))
        if isinstance(item, remotemedia.Audio):
            assert (back.sample_rate, back.channels, back.stream_id, back.timestamp_us) == (48000, 2, "audio:1", 9)
            np.testing.assert_array_equal(back.samples, item.samples)
        elif isinstance(item, remotemedia.Video):
            assert (back.width, back.height, back.format, back.frame_number) == (2, 2, "rgb24", 3)
            np.testing.assert_array_equal(back.pixels, item.pixels)
        elif isinstance(item, np.ndarray):
            assert back.dtype == item.dtype and (back == item).all()
        else:
            assert back == item


def test_decoding_views_an_immutable_buffer_in_place():
    frame = remotemedia.encode_frame(remotemedia.Audio(np.ones(1024, dtype=np.float32), 16000))
    audio = remotemedia.decode_frame(frame)
    _, _, offset, _ = remotemedia._remotemedia.frame_header(frame)
    base = np.frombuffer(frame, dtype=np.uint8).__array_interface__["data"][0]
    assert audio.samples.__array_interface__["data"][0] == base + offset


def test_decoding_a_writable_buffer_copies_it():
    frame = bytearray(remotemedia.encode_frame(remotemedia.Audio(np.ones(1024, dtype=np.float32), 16000)))
    audio = remotemedia.decode_frame(memoryview(frame))
    frame[-4:] = bytes(4)  # the caller reuses its buffer
    assert float(audio.samples[-1]) == 1.0


def test_bad_frames_are_rejected():
    frame = remotemedia.encode_frame("abc")
    with pytest.raises(ValueError, match="truncated"):
        remotemedia.decode_frame(frame[:-1])
    with pytest.raises(ValueError, match="does not start with RMF1"):
        remotemedia.decode_frame(b"RIFF" + bytes(40))


@remotemedia.node("Gather")
class Gather(remotemedia.Node):
    def initialize(self):
        self.words = []

    def process(self, data):
        self.words.append(data)

    def flush(self):
        return " ".join(self.words)


def test_run_node_flushes_at_end_of_stream():
    assert remotemedia.run_node(Gather(), ["a", "b", "c"]) == ["a b c"]
