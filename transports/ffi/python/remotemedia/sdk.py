"""The Python node SDK: write pipeline nodes in Python.

    import remotemedia

    @remotemedia.node("Shout")
    class Shout(remotemedia.Node):
        def process(self, data):
            return data.upper() if isinstance(data, str) else data

A node receives one item per `process` call — `str`, `dict`/`list`, `bytes`,
`remotemedia.Audio` (`.samples` is a float32 numpy view), `remotemedia.Video`, or a numpy
array — and returns one item, a list of items, an iterator or generator of items, an async
generator, a coroutine resolving to any of these, or None (nothing to emit). Items a
generator yields are sent on one by one as they are produced. `initialize` runs once before
the first item, `cleanup` once at the end; both may be plain or async functions. Nodes run
out of process, in the runtime's Python executor; `run_node` runs one here, e.g. in tests,
through the same `NodeCalls` the executor's worker uses.

One worker process may host many instances of a node class — one per session using the
same type and configuration — when the class shares (`@remotemedia.node("Name",
share=True)`, or `share=N` for at most N instances per process; the manifest's
`multiprocess: {share: ...}` overrides it). Each instance has its own state; what the
class holds (a model loaded in a cached function or a class attribute) is loaded once per
process. Calls are queued; a class may define `process_batch(cls, calls)`, a classmethod
that gets `[(node, item), ...]` of several instances whose items are waiting at once and
returns one result per call (what `process` would return, or an exception instance for
that call alone) — one model call for several sessions.

Items cross process boundaries as frames of the runtime's frame codec (implemented once,
in Rust): `encode_frame(item) -> bytes` and `decode_frame(buffer)`, which views audio,
video and tensor payloads in place (no copy) when the buffer is immutable (`bytes`).
"""

import asyncio
import inspect
import sys

if sys.platform == "emscripten":
    # In the browser (Pyodide, the WASM engine's Python executor): standard library only.
    from ._browser import Audio, Video, normalize_params

    _ARRAY_TYPES = ()
else:
    import numpy as np

    from ._remotemedia import Audio, Video, decode_frame, encode_frame, normalize_params

    _ARRAY_TYPES = (np.ndarray,)

__all__ = ["Node", "node", "registered_nodes", "node_class", "NodeCalls", "AsyncNodeCalls",
           "needs_awaiting", "collect_outputs", "run_node", "share_of", "MAX_SHARE"]
if sys.platform != "emscripten":
    __all__ += ["encode_frame", "decode_frame"]

#: The most instances one worker process may host (`share=True`).
MAX_SHARE = 64

_REGISTRY = {}


class Node:
    """Base class of Python nodes. Subclass it and override `process`.

    `self.params` holds the node's params as the runtime validates them: for node types
    the runtime knows (the catalog, types registered with a params schema) with snake_case
    keys and every default filled in, whether the node runs in the executor or here
    (`run_node`); a node reads `self.params["name"]` and never writes a default of its own.
    """

    #: The type name manifests use; set by `@remotemedia.node("Name")`.
    node_type = None

    #: How many instances (sessions) one worker process may host: 1 (the default, a
    #: process per instance), a number up to `MAX_SHARE`, or True (`MAX_SHARE`). Set by
    #: `@remotemedia.node("Name", share=...)`.
    share = 1

    def __init__(self, node_id=None, params=None):
        self.node_id = node_id
        if self.node_type is not None:
            params = normalize_params(self.node_type, params or {})
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


def share_of(cls):
    """The instances per process `cls` declares (1..=MAX_SHARE); ValueError otherwise."""
    share = getattr(cls, "share", 1)
    if share is True:
        return MAX_SHARE
    if share is False or share is None:
        return 1
    if isinstance(share, int) and 1 <= share <= MAX_SHARE:
        return share
    raise ValueError(f"{cls.__qualname__}.share must be True, False or 1..={MAX_SHARE}, not {share!r}")


def node(type_name, share=None):
    """Class decorator registering a `Node` subclass under `type_name`; `share` (True or a
    number of instances) lets one worker process host several sessions' instances."""
    if not isinstance(type_name, str) or not type_name:
        raise TypeError("@remotemedia.node needs the node type name, e.g. @remotemedia.node(\"MyNode\")")

    def register(cls):
        if not (isinstance(cls, type) and issubclass(cls, Node)):
            raise TypeError(f"@remotemedia.node({type_name!r}) must decorate a subclass of remotemedia.Node")
        existing = _REGISTRY.get(type_name)
        if existing is not None and existing is not cls:
            raise ValueError(f"node type {type_name!r} is already registered by {existing.__module__}.{existing.__qualname__}")
        cls.node_type = type_name
        if share is not None:
            cls.share = share
        share_of(cls)
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


#: What a node may return as a single item (not iterated).
_SINGLE_ITEMS = (str, bytes, bytearray, dict, Audio, Video, *_ARRAY_TYPES)


def _is_iterable_result(result):
    return isinstance(result, (list, tuple)) or inspect.isgenerator(result) or hasattr(result, "__next__")


class NodeCalls:
    """Calls a node's methods the way the runtime's executor does.

    Coroutines and async generators run on one event loop that lives as long as this
    object, so a node's async resources stay on one loop. `process(item)` and `flush()`
    return iterators over the emitted items: a generator is advanced only as the caller
    takes items, so items are forwarded as they are produced. The worker process and
    `run_node` both use this class, so a node runs the same way in both.
    """

    def __init__(self, node_instance):
        self.node = node_instance
        self._loop = None

    def _run(self, awaitable):
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(awaitable)

    def call(self, method, *args):
        """Calls `method`, awaiting its result if it is awaitable."""
        result = method(*args)
        if inspect.isawaitable(result):
            result = self._run(result)
        return result

    def outputs(self, result):
        """Iterates over the items `result` (what process/flush returned) stands for."""
        if inspect.isawaitable(result):
            result = self._run(result)
        if result is None:
            return
        if inspect.isasyncgen(result):
            while True:
                try:
                    item = self._run(result.__anext__())
                except StopAsyncIteration:
                    return
                yield item
        elif isinstance(result, _SINGLE_ITEMS):
            yield result
        elif _is_iterable_result(result):
            yield from result
        else:
            yield result

    def initialize(self):
        self.call(self.node.initialize)

    def process(self, item):
        """The items the node emits for `item`, as an iterator."""
        return self.outputs(self.node.process(item))

    def flush(self):
        """The items the node emits at end of stream, as an iterator."""
        flush = getattr(self.node, "flush", None)
        return self.outputs(flush()) if flush is not None else iter(())

    def cleanup(self):
        self.call(self.node.cleanup)

    def close(self):
        """Closes the event loop (after `cleanup`)."""
        if self._loop is not None:
            self._loop.close()
            self._loop = None


def needs_awaiting(result):
    """Whether what a node method returned must be awaited (a coroutine, another
    awaitable, an async generator) before its items are known."""
    return inspect.isawaitable(result) or inspect.isasyncgen(result)


def _ready_list(result):
    """The items of a result that needs no awaiting, as a list."""
    if result is None:
        return []
    if isinstance(result, _SINGLE_ITEMS):
        return [result]
    if _is_iterable_result(result):
        return list(result)
    return [result]


class AsyncNodeCalls:
    """`NodeCalls` for a host that lives on an event loop it does not own — the browser's
    (Pyodide), where nothing may block: every call is a coroutine, and a node's coroutines
    and async generators are awaited on the running loop. `process(item)` and `flush()`
    return the list of items emitted."""

    def __init__(self, node_instance):
        self.node = node_instance

    async def call(self, method, *args):
        result = method(*args)
        if inspect.isawaitable(result):
            result = await result
        return result

    async def outputs(self, result):
        """The items `result` (what process/flush returned) stands for, as a list."""
        if inspect.isawaitable(result):
            result = await result
        if inspect.isasyncgen(result):
            return [item async for item in result]
        return _ready_list(result)

    def ready_outputs(self, result):
        """`outputs` for a result that needs no awaiting (see `needs_awaiting`), at once."""
        return _ready_list(result)

    async def initialize(self):
        await self.call(self.node.initialize)

    async def process(self, item):
        return await self.outputs(self.node.process(item))

    async def flush(self):
        flush = getattr(self.node, "flush", None)
        return await self.outputs(flush()) if flush is not None else []

    async def cleanup(self):
        await self.call(self.node.cleanup)


def collect_outputs(result):
    """Normalizes what `process` returned into a list of items."""
    calls = NodeCalls(None)
    try:
        return list(calls.outputs(result))
    finally:
        calls.close()


def run_node(node_instance, items):
    """Runs a node over `items` in this process as the executor would: initialize, process
    each item, flush at the end, cleanup. Returns every emitted item, in order."""
    calls = NodeCalls(node_instance)
    calls.initialize()
    outputs = []
    try:
        for item in items:
            outputs.extend(calls.process(item))
        outputs.extend(calls.flush())
    finally:
        try:
            calls.cleanup()
        finally:
            calls.close()
    return outputs
