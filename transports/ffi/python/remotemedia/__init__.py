"""Run RemoteMedia real-time media pipelines from Python.

    import numpy as np
    import remotemedia

    manifest = {"nodes": [{"id": "chunk", "node_type": "AudioChunkerNode",
                           "params": {"chunk_size": 320}}]}
    audio = remotemedia.Audio(np.zeros(16000, dtype=np.float32), sample_rate=16000)
    for out in remotemedia.execute(manifest, [audio]):
        print(out.node_id, out.data.frames)

    with remotemedia.open_session(manifest) as session:
        session.send(audio)
        while (out := session.recv()) is not None:
            ...

Python nodes: subclass `remotemedia.Node` and register it with
`@remotemedia.node("TypeName")` (see `remotemedia.sdk`).

Manifests are dicts, JSON/YAML strings or paths. Audio crosses as float32 numpy arrays
without copying in either direction; the GIL is released while the runtime works, so
several Python threads can run sessions at once. Failures raise `RemoteMediaError`
(`ManifestError`, `NodeError`) with `.node_id` naming the node involved.
"""

import asyncio

from ._remotemedia import (
    Audio,
    ManifestError,
    NodeError,
    Output,
    RemoteMediaError,
    StreamSession,
    Video,
    __version__,
    execute,
    nodes,
    open_session,
)
from .sdk import (
    Node,
    NodeCalls,
    collect_outputs,
    decode_frame,
    encode_frame,
    node,
    node_class,
    registered_nodes,
    run_node,
)

__all__ = [
    "Audio",
    "AsyncStreamSession",
    "ManifestError",
    "NodeError",
    "Output",
    "RemoteMediaError",
    "StreamSession",
    "Video",
    "__version__",
    "execute",
    "nodes",
    "open_session",
    "open_async_session",
    "Node",
    "NodeCalls",
    "node",
    "node_class",
    "registered_nodes",
    "collect_outputs",
    "run_node",
    "encode_frame",
    "decode_frame",
]


class AsyncStreamSession:
    """The asyncio form of `StreamSession`: `await session.send(x)`,
    `await session.recv()`, `await session.close()`, `async with`, `async for`.

    Each call runs the blocking session method in a worker thread (the GIL is released
    while the runtime works), so the event loop is never blocked.
    """

    def __init__(self, manifest):
        self._session = StreamSession(manifest)

    @property
    def session_id(self):
        return self._session.session_id

    @property
    def is_active(self):
        return self._session.is_active

    async def send(self, item):
        await asyncio.to_thread(self._session.send, item)

    async def recv(self, timeout=None):
        return await asyncio.to_thread(self._session.recv, timeout)

    async def close(self):
        await asyncio.to_thread(self._session.close)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()
        return False

    def __aiter__(self):
        return self

    async def __anext__(self):
        item = await asyncio.to_thread(_next_or_none, self._session)
        if item is None:
            raise StopAsyncIteration
        return item


def _next_or_none(session):
    return next(session, None)


async def open_async_session(manifest):
    """Opens an `AsyncStreamSession` without blocking the event loop."""
    return await asyncio.to_thread(AsyncStreamSession, manifest)
