"""Types of the native extension module (what `import remotemedia` re-exports)."""

import array
import os
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

#: A manifest: a dict, JSON or YAML text, or the path of a manifest file.
Manifest = Union[Mapping[str, Any], str, "os.PathLike[str]"]
#: What a pipeline takes and gives: str (Text), dict/list/number/bool/None (Json), bytes
#: (Binary), Audio, Video, or a numpy array (Tensor).
Item = Union[str, bytes, Dict[str, Any], List[Any], int, float, bool, None, "Audio", "Video",
             npt.NDArray[Any]]

class RemoteMediaError(Exception):
    """A runtime error; `node_id` names the node involved, when one is."""

    node_id: Optional[str]

class ManifestError(RemoteMediaError):
    """An invalid manifest: bad structure, an unknown node type, a bad param."""

class NodeError(RemoteMediaError):
    """A node failed while the pipeline ran."""

class Audio:
    """Interleaved float32 samples plus rate and channels; `samples` is a read-only view."""

    sample_rate: int
    channels: int
    stream_id: Optional[str]
    timestamp_us: int
    def __init__(
        self,
        samples: Union[npt.NDArray[np.float32], "array.array[float]", memoryview],
        sample_rate: int,
        channels: Optional[int] = None,
        stream_id: Optional[str] = None,
        timestamp_us: int = 0,
    ) -> None: ...
    @property
    def samples(self) -> npt.NDArray[np.float32]: ...
    @property
    def frames(self) -> int: ...

class Video:
    """One video frame: pixel bytes plus geometry (`format`: yuv420p, nv12, rgb24, rgba32,
    gray8 or encoded)."""

    width: int
    height: int
    codec: Optional[str]
    frame_number: int
    timestamp_us: int
    is_keyframe: bool
    stream_id: Optional[str]
    def __init__(
        self,
        pixels: Union[bytes, bytearray, memoryview, npt.NDArray[np.uint8]],
        width: int,
        height: int,
        format: str = "rgb24",
        codec: Optional[str] = None,
        frame_number: int = 0,
        timestamp_us: int = 0,
        is_keyframe: bool = False,
        stream_id: Optional[str] = None,
    ) -> None: ...
    @property
    def format(self) -> str: ...
    @property
    def pixels(self) -> npt.NDArray[np.uint8]: ...

class Output:
    """One pipeline output."""

    node_id: Optional[str]
    sequence: Optional[int]
    input_sequence: Optional[int]
    data: Any
    @property
    def metadata(self) -> Dict[str, str]: ...

class StreamSession:
    """A live session: `send` inputs, `recv` outputs, `close` to flush and end."""

    def __init__(self, manifest: Manifest) -> None: ...
    @property
    def session_id(self) -> str: ...
    @property
    def is_active(self) -> bool: ...
    def send(
        self,
        item: Item,
        sequence: Optional[int] = None,
        metadata: Optional[Mapping[str, str]] = None,
    ) -> None: ...
    def recv(self, timeout: Optional[float] = None) -> Optional[Output]: ...
    def close(self) -> None: ...
    def __enter__(self) -> "StreamSession": ...
    def __exit__(self, *args: Any) -> bool: ...
    def __iter__(self) -> Iterator[Output]: ...
    def __next__(self) -> Output: ...

def execute(manifest: Manifest, inputs: Union[Item, List[Item]]) -> List[Output]: ...
def open_session(manifest: Manifest) -> StreamSession: ...
def nodes() -> List[Dict[str, Any]]: ...
def normalize_params(node_type: str, params: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]: ...
def encode_frame(item: Item) -> bytes: ...
def decode_frame(frame: Union[bytes, bytearray, memoryview]) -> Any: ...
def frame_header(
    frame: Union[bytes, bytearray, memoryview],
) -> Tuple[str, Dict[str, Any], int, int]: ...
