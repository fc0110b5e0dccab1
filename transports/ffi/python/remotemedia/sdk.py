"""The Python node SDK: write pipeline nodes in Python.

    import remotemedia

    @remotemedia.node("Shout")
    class Shout(remotemedia.Node):
        def process(self, data):
            return data.upper() if isinstance(data, str) else data

A node receives one item per `process` call — `str`, `dict`/`list`, `bytes`,
`remotemedia.Audio` (`.samples` is a float32 numpy view), `remotemedia.Video`, or a numpy
array — and returns one item, a list of items, an iterator or generator of items, an async
generator, or None (nothing to emit). `initialize` runs once before the first item,
`cleanup` once at the end; both may be plain or async functions. Nodes run out of process,
in the runtime's Python executor; `run_node` runs one here, e.g. in tests.

Items cross process boundaries as frames of the runtime's frame codec (implemented once,
in Rust): `encode_frame(item) -> bytes` and `decode_frame(buffer)`, which views audio,
video and tensor payloads in place (no copy) when given a buffer such as a memoryview of
shared memory.
"""

import asyncio
import inspect
import json

import numpy as np

from ._remotemedia import Audio, Video, encode_frame, frame_header

__all__ = ["Node", "node", "registered_nodes", "node_class", "collect_outputs", "run_node",
           "encode_frame", "decode_frame"]

_REGISTRY = {}


class Node:
    """Base class of Python nodes. Subclass it and override `process`."""

    #: The type name manifests use; set by `@remotemedia.node("Name")`.
    node_type = None

    def __init__(self, node_id=None, params=None):
        self.node_id = node_id
        self.params = dict(params or {})

    def initialize(self):
        """Called once before the first item (load models here)."""

    def process(self, data):
        """Handles one item; returns an item, a list, an iterator, an async generator or
        None. The base class passes every item through unchanged."""
        return data

    def flush(self):
        """Called once at end of stream; returns what is still buffered (same forms as
        `process`). The base class has nothing buffered."""
        return None

    def cleanup(self):
        """Called once at the end of the session."""


def node(type_name):
    """Class decorator registering a `Node` subclass under `type_name`."""
    if not isinstance(type_name, str) or not type_name:
        raise TypeError("@remotemedia.node needs the node type name, e.g. @remotemedia.node(\"MyNode\")")

    def register(cls):
        if not (isinstance(cls, type) and issubclass(cls, Node)):
            raise TypeError(f"@remotemedia.node({type_name!r}) must decorate a subclass of remotemedia.Node")
        existing = _REGISTRY.get(type_name)
        if existing is not None and existing is not cls:
            raise ValueError(f"node type {type_name!r} is already registered by {existing.__module__}.{existing.__qualname__}")
        cls.node_type = type_name
        _REGISTRY[type_name] = cls
        return cls

    return register


def registered_nodes():
    """Type name -> class of every registered Python node."""
    return dict(_REGISTRY)


def node_class(type_name):
    """The class registered as `type_name`; KeyError naming the known types otherwise."""
    try:
        return _REGISTRY[type_name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"no Python node type {type_name!r} is registered (registered: {known})") from None


async def _drain_async(agen):
    return [item async for item in agen]


def collect_outputs(result):
    """Normalizes what `process` returned into a list of items."""
    if result is None:
        return []
    if inspect.isawaitable(result):
        return collect_outputs(asyncio.run(_await(result)))
    if inspect.isasyncgen(result):
        return asyncio.run(_drain_async(result))
    if isinstance(result, list):
        return list(result)
    if isinstance(result, (str, bytes, bytearray, dict, Audio, Video, np.ndarray)):
        return [result]
    if inspect.isgenerator(result) or hasattr(result, "__next__"):
        return list(result)
    return [result]


async def _await(awaitable):
    return await awaitable


def _call(fn, *args):
    result = fn(*args)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


def run_node(node_instance, items):
    """Runs a node over `items` in this process as the executor would: initialize, process
    each item, flush at the end, cleanup. Returns every emitted item, in order."""
    _call(node_instance.initialize)
    outputs = []
    try:
        for item in items:
            outputs.extend(collect_outputs(node_instance.process(item)))
        flush = getattr(node_instance, "flush", None)
        if flush is not None:
            outputs.extend(collect_outputs(flush()))
    finally:
        _call(node_instance.cleanup)
    return outputs


_TENSOR_DTYPES = {
    "f32": np.float32, "f64": np.float64, "f16": np.float16, "i8": np.int8, "i16": np.int16,
    "i32": np.int32, "i64": np.int64, "u8": np.uint8, "bool": np.bool_,
}


def decode_frame(buffer):
    """Decodes one frame (bytes, bytearray, memoryview). Audio samples, video pixels and
    tensor elements are views of `buffer`, not copies."""
    kind, fields, offset, length = frame_header(buffer)
    payload = memoryview(buffer)[offset:offset + length]
    if kind == "audio":
        return Audio(np.frombuffer(payload, dtype=np.float32), fields["sample_rate"], fields["channels"],
                     fields.get("stream_id"), fields["timestamp_us"])
    if kind == "video":
        return Video(np.frombuffer(payload, dtype=np.uint8), fields["width"], fields["height"], fields["format"],
                     fields.get("codec"), fields["frame_number"], fields["timestamp_us"],
                     fields.get("is_keyframe", False), fields.get("stream_id"))
    if kind == "text":
        return bytes(payload).decode("utf-8")
    if kind == "json":
        return json.loads(bytes(payload))
    if kind == "binary":
        return bytes(payload)
    if kind == "tensor":
        return np.frombuffer(payload, dtype=_TENSOR_DTYPES[fields["dtype"]]).reshape(fields["shape"])
    raise ValueError(f"bad frame: unknown kind {kind!r}")
