"""The `remotemedia` package in the browser: the WASM engine runs Python nodes in Pyodide,
where there is no native extension and no numpy. This module gives the SDK its data types
in pure Python and hosts node instances for the engine's Python executor.

- `Audio.samples` is a read-only `memoryview` of float32 (format "f"), interleaved; a
  node builds audio from a float32 buffer (`array.array("f", ...)`, a memoryview) or a
  list of numbers. `Video.pixels` is `bytes`.
- `Host` is what the engine's JavaScript side drives: it opens an instance of a node class
  per (session, node), calls it with items the engine sends (tagged JavaScript objects,
  see `to_item` / `from_item`), and reports a raised exception with its traceback.
"""

import array
import json
import sys

__all__ = ["Audio", "Video", "normalize_params", "Host"]

_PIXEL_FORMATS = ("rgb24", "rgba32", "yuv420p", "nv12", "gray8", "encoded")


def _float32_view(samples):
    if isinstance(samples, (list, tuple)):
        samples = array.array("f", samples)
    try:
        view = memoryview(samples)
    except TypeError:
        raise TypeError(
            f"Audio samples must be a float32 buffer (array.array('f'), a memoryview) or a list "
            f"of numbers, not {type(samples).__name__}") from None
    if view.format != "f":
        if view.format in ("B", "b", "c") and view.nbytes % 4 == 0 and view.contiguous:
            view = view.cast("B").cast("f")
        else:
            raise TypeError(f"Audio samples must be float32 (format 'f'), not format {view.format!r}")
    if view.ndim != 1:
        view = view.cast("B").cast("f")
    return view.toreadonly()


class Audio:
    """Audio: interleaved float32 samples, their rate and channel count."""

    __slots__ = ("samples", "sample_rate", "channels", "stream_id", "timestamp_us")

    def __init__(self, samples, sample_rate, channels=None, stream_id=None, timestamp_us=0):
        view = _float32_view(samples)
        channels = 1 if channels is None else int(channels)
        if not 1 <= channels <= 64:
            raise ValueError(f"Audio channels must be 1..=64, not {channels}")
        if not 1 <= int(sample_rate) <= 1_000_000:
            raise ValueError(f"Audio sample_rate must be 1..=1000000 Hz, not {sample_rate}")
        if len(view) % channels:
            raise ValueError(
                f"Audio has {len(view)} samples, not a whole number of frames of {channels} channels")
        self.samples = view
        self.sample_rate = int(sample_rate)
        self.channels = channels
        self.stream_id = stream_id
        self.timestamp_us = int(timestamp_us)

    @property
    def frames(self):
        """Frames (samples per channel)."""
        return len(self.samples) // self.channels

    def __repr__(self):
        return (f"Audio({self.frames} frames, {self.sample_rate} Hz, {self.channels} channel(s), "
                f"timestamp_us={self.timestamp_us})")


class Video:
    """One video frame: pixel bytes plus geometry."""

    __slots__ = ("pixels", "width", "height", "format", "codec", "frame_number", "timestamp_us",
                 "is_keyframe", "stream_id")

    def __init__(self, pixels, width, height, format="rgb24", codec=None, frame_number=0,
                 timestamp_us=0, is_keyframe=False, stream_id=None):
        if format not in _PIXEL_FORMATS:
            raise ValueError(f"Video format must be one of {', '.join(_PIXEL_FORMATS)}, not {format!r}")
        self.pixels = bytes(pixels)
        self.width = int(width)
        self.height = int(height)
        self.format = format
        self.codec = codec
        self.frame_number = int(frame_number)
        self.timestamp_us = int(timestamp_us)
        self.is_keyframe = bool(is_keyframe)
        self.stream_id = stream_id

    def __repr__(self):
        return f"Video({self.width}x{self.height} {self.format}, frame {self.frame_number})"


def normalize_params(node_type, params=None):
    """The engine validates and normalizes params before a node is built; here they are
    taken as given (a copy)."""
    return dict(params or {})


def _value(value):
    """A JavaScript `undefined`/`null` argument as None."""
    return None if value is None or type(value).__name__ == "JsNull" else value


def to_item(kind, *fields):
    """A Python item from the engine's form: a kind and its fields, positional —
    `text` (str), `json` (text), `binary` (Uint8Array), `audio` (Float32Array, rate,
    channels, timestamp_us, stream_id), `video` (Uint8Array, width, height, format, codec,
    frame_number, timestamp_us, is_keyframe, stream_id)."""
    if kind == "text":
        return fields[0]
    if kind == "json":
        return json.loads(fields[0])
    if kind == "binary":
        return fields[0].to_bytes()
    if kind == "audio":
        samples, rate, channels, timestamp_us, stream_id = fields
        return Audio(samples.to_memoryview(), rate, channels, _value(stream_id), timestamp_us)
    if kind == "video":
        pixels, width, height, format, codec, frame_number, timestamp_us, keyframe, stream_id = fields
        return Video(pixels.to_bytes(), width, height, format, _value(codec), frame_number,
                     timestamp_us, keyframe, _value(stream_id))
    raise TypeError(f"{kind} items cannot reach a Python node in the browser")


def from_item(item):
    """The engine's form of what a node emitted — a list `[kind, *fields]` (as `to_item`
    takes them) that `to_js` turns into a JavaScript array; TypeError naming the type for
    anything else."""
    if isinstance(item, str):
        return ["text", item]
    if isinstance(item, Audio):
        return ["audio", item.samples, item.sample_rate, item.channels, item.timestamp_us,
                item.stream_id]
    if isinstance(item, Video):
        return ["video", item.pixels, item.width, item.height, item.format, item.codec,
                item.frame_number, item.timestamp_us, item.is_keyframe, item.stream_id]
    if isinstance(item, (bytes, bytearray, memoryview)):
        return ["binary", bytes(item)]
    if item is None or isinstance(item, (bool, int, float, list, tuple, dict)):
        try:
            return ["json", json.dumps(item, allow_nan=False)]
        except (TypeError, ValueError) as exc:
            raise TypeError(f"the node emitted a {type(item).__name__} that is not JSON: {exc}") from None
    raise TypeError(
        f"the node emitted a {type(item).__name__}; nodes emit str, bytes, dict/list (JSON), "
        f"remotemedia.Audio or remotemedia.Video")


class Failure(Exception):
    """A node's exception, worded: what the engine reports (`phase`, `message`,
    `traceback`)."""

    def __init__(self, phase, exc):
        from ._hosting import describe

        message, trace = describe(exc, (__file__,))
        super().__init__(message)
        self.answer = ["error", phase, message, trace]


class Host:
    """The node instances of the page, by instance number, as the engine's JavaScript side
    drives them. Answers are lists `to_js` turns into arrays: `["instance", n]`,
    `["outputs", [item, ...]]`, `["closed"]`, or `["error", phase, message, traceback]`
    when the node raised. A call whose node method is synchronous answers at once; one
    that returned a coroutine or an async generator answers with a coroutine the page's
    event loop runs (nothing here ever blocks that loop)."""

    def __init__(self, to_js):
        self._to_js = to_js
        self._calls = {}
        self._next = 0

    def _answer(self, outputs):
        try:
            return self._to_js(["outputs", [from_item(item) for item in outputs]])
        except TypeError as exc:
            return self._to_js(["error", "process", f"TypeError: {exc}", ""])

    def _settle(self, phase, calls, result):
        """The answer for what a node method returned: now, or a coroutine when it must
        be awaited."""
        from .sdk import needs_awaiting

        if needs_awaiting(result):
            return self._later(phase, calls, result)
        return self._answer(calls.ready_outputs(result))

    async def _later(self, phase, calls, result):
        try:
            outputs = await calls.outputs(result)
        except BaseException as exc:
            return self._to_js(Failure(phase, exc).answer)
        return self._answer(outputs)

    async def open(self, node_type, node_id, params_json, modules, source):
        """Finds the class (imports `modules`, runs `source`), builds and initializes an
        instance."""
        from . import sdk
        from ._hosting import find_node_class

        try:
            cls = find_node_class(node_type, list(modules or ()), _value(source))
        except BaseException as exc:  # SystemExit and KeyboardInterrupt from node code too
            return self._to_js(Failure("import", exc).answer)
        try:
            node = cls(node_id=node_id, params=json.loads(params_json))
            calls = sdk.AsyncNodeCalls(node)
            await calls.initialize()
        except BaseException as exc:
            return self._to_js(Failure("initialize", exc).answer)
        self._next += 1
        self._calls[self._next] = calls
        return self._to_js(["instance", self._next])

    def process(self, instance, kind, *fields):
        calls = self._calls[instance]
        try:
            return self._settle("process", calls, calls.node.process(to_item(kind, *fields)))
        except BaseException as exc:
            return self._to_js(Failure("process", exc).answer)

    def flush(self, instance):
        calls = self._calls[instance]
        flush = getattr(calls.node, "flush", None)
        try:
            return self._settle("flush", calls, flush() if flush is not None else None)
        except BaseException as exc:
            return self._to_js(Failure("flush", exc).answer)

    async def close(self, instance):
        calls = self._calls.pop(instance, None)
        if calls is None:
            return self._to_js(["closed"])
        try:
            await calls.cleanup()
        except BaseException as exc:
            return self._to_js(Failure("cleanup", exc).answer)
        return self._to_js(["closed"])

    def instances(self):
        """Instances open now."""
        return len(self._calls)
