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

In the browser (the WASM engine runs Python nodes in Pyodide) the package holds the node
SDK only — `Node`, `node`, `Audio`, `Video` and the helpers — in pure Python: audio samples
are a float32 `memoryview` there, and pipelines are run from JavaScript.

Manifests are dicts, JSON/YAML strings or paths. Audio crosses as float32 numpy arrays
without copying in either direction; the GIL is released while the runtime works, so
several Python threads can run sessions at once. Failures raise `RemoteMediaError`
(`ManifestError`, `NodeError`) with `.node_id` naming the node involved.
"""

import sys

from .sdk import (
    AsyncNodeCalls,
    Node,
    NodeCalls,
    collect_outputs,
    node,
    node_class,
    registered_nodes,
    run_node,
)

_SDK = [
    "Node",
    "NodeCalls",
    "AsyncNodeCalls",
    "node",
    "node_class",
    "registered_nodes",
    "collect_outputs",
    "run_node",
]

if sys.platform == "emscripten":
    from ._browser import Audio, Video

    __all__ = ["Audio", "Video", *_SDK]
else:
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
    from ._sessions import AsyncStreamSession, open_async_session
    from .sdk import decode_frame, encode_frame

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
        "encode_frame",
        "decode_frame",
        *_SDK,
    ]
