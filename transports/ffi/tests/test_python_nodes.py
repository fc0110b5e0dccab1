"""Manifests with Python nodes, run from Python: the nodes run in real worker processes
of the multiprocess executor (started from this interpreter)."""

import os
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
    assert listed["SpeechRecognitionNode"]["params"]["properties"]["engine"]["default"] == "pocketsphinx"


def test_find_node_class_names_what_it_searched():
    with pytest.raises(LookupError, match="no Python node class 'Nope' was found"):
        find_node_class("Nope")
    assert find_node_class("EchoNode").__name__ == "EchoNode"
