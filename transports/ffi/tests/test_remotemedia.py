"""The `remotemedia` wheel: pipelines from Python, zero-copy audio, sessions (sync, context
manager, iteration, asyncio), threads, and every bad input."""

import asyncio
import json
import os
import threading
import tracemalloc

import numpy as np
import pytest

import remotemedia

PASS = {"nodes": [{"id": "echo", "node_type": "PassThrough"}]}
CALC = {"nodes": [{"id": "calc", "node_type": "CalculatorNode"}]}
CHUNK = {"nodes": [{"id": "chunk", "node_type": "AudioChunkerNode", "params": {"chunk_size": 320}}]}
ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def pointer(array):
    return array.__array_interface__["data"][0]


def test_version_and_nodes():
    assert remotemedia.__version__.count(".") == 2
    listed = {n["node_type"]: n for n in remotemedia.nodes()}
    assert listed["AudioChunkerNode"]["params"]["properties"]["chunk_size"]["default"] == 512
    assert "AudioResampleNode" in listed["FastResampleNode"]["aliases"]


@pytest.mark.parametrize(
    "manifest",
    [
        CALC,
        json.dumps(CALC),
        "nodes: [{id: calc, node_type: CalculatorNode}]",
    ],
)
def test_execute_accepts_dict_json_and_yaml(manifest):
    [out] = remotemedia.execute(manifest, [{"operation": "add", "operands": [2, 3]}])
    assert out.node_id == "calc"
    assert out.data == {"result": 5, "operation": "add"}


def test_execute_accepts_a_manifest_path():
    path = os.path.join(ROOT, "examples", "pipelines", "vad-segmentation.yaml")
    speech = np.zeros(16000, dtype=np.float32)
    assert remotemedia.execute(path, remotemedia.Audio(speech, 16000)) == []


def test_execute_accepts_a_pathlib_path():
    import pathlib
    path = pathlib.Path(ROOT) / "examples" / "pipelines" / "vad-segmentation.yaml"
    assert remotemedia.execute(path, remotemedia.Audio(np.zeros(160, np.float32), 16000)) == []


@pytest.mark.parametrize("path", ["examples/pipelines/vad-segmentaton.yaml", "pipeline.json",
                                  "/no/such/dir/manifest", "pipeline"])
def test_a_mistyped_manifest_path_says_no_such_file(path):
    with pytest.raises(FileNotFoundError, match=f"no such manifest file: '{path}'"):
        remotemedia.execute(path, [])
    import pathlib
    with pytest.raises(FileNotFoundError, match="no such manifest file"):
        remotemedia.execute(pathlib.Path(path), [])


def test_one_line_text_that_is_no_manifest_is_still_a_parse_error():
    with pytest.raises(remotemedia.ManifestError, match="not valid JSON at line 1"):
        remotemedia.execute("{nodes: [", [])
    with pytest.raises(remotemedia.ManifestError, match="not valid YAML"):
        remotemedia.execute("nodes: [{id: a, node_type: PassThrough", [])


def test_every_data_type_round_trips():
    video = remotemedia.Video(np.arange(12, dtype=np.uint8), 2, 2, "rgb24", frame_number=4)
    tensor = np.arange(6, dtype=np.int16).reshape(2, 3)
    items = ["héllo", {"a": [1, 2.5, None]}, [1, 2], b"\x00\xff", video, tensor, 42]
    outs = remotemedia.execute(PASS, items)
    assert [o.node_id for o in outs] == ["echo"] * len(items)
    assert outs[0].data == "héllo"
    assert outs[1].data == {"a": [1, 2.5, None]}
    assert outs[2].data == [1, 2]
    assert outs[3].data == b"\x00\xff"
    v = outs[4].data
    assert (v.width, v.height, v.format, v.frame_number) == (2, 2, "rgb24", 4)
    assert v.pixels.dtype == np.uint8 and list(v.pixels) == list(range(12))
    assert outs[5].data.dtype == np.int16 and (outs[5].data == tensor).all()
    assert outs[6].data == 42


def test_immutable_audio_crosses_without_copying_in_both_directions():
    samples = np.frombuffer(np.linspace(-1, 1, 48000, dtype=np.float32).tobytes(), dtype=np.float32)
    [out] = remotemedia.execute(PASS, [remotemedia.Audio(samples, 48000, stream_id="audio:0", timestamp_us=7)])
    audio = out.data
    assert (audio.sample_rate, audio.channels, audio.stream_id, audio.timestamp_us) == (48000, 1, "audio:0", 7)
    view = audio.samples
    assert pointer(view) == pointer(samples), "the output views the input's memory"
    assert not view.flags.writeable, "shared memory is handed out read-only"
    np.testing.assert_array_equal(view, samples)
    [again] = remotemedia.execute(PASS, [remotemedia.Audio(view, 48000)])
    assert pointer(again.data.samples) == pointer(samples), "an output fed back in is not copied"


def test_a_writable_array_is_copied_so_later_writes_cannot_reach_the_pipeline():
    samples = np.full(48000, 0.5, dtype=np.float32)
    audio = remotemedia.Audio(samples, 48000)
    samples[:] = -1.0  # the caller reuses its buffer right away
    [out] = remotemedia.execute(PASS, [audio])
    assert pointer(out.data.samples) != pointer(samples)
    assert float(out.data.samples.min()) == 0.5, "the pipeline saw the audio as it was sent"


def test_a_read_only_view_of_writable_memory_is_copied_too():
    owner = np.full(1000, 0.25, dtype=np.float32)
    view = owner[:]
    view.flags.writeable = False  # the owner stays writable
    audio = remotemedia.Audio(view, 16000)
    owner[:] = 0.0
    [out] = remotemedia.execute(PASS, [audio])
    assert float(out.data.samples.max()) == 0.25


def test_a_100_mb_immutable_buffer_costs_no_copy():
    raw = bytes(100 * 1024 * 1024)  # 100 MiB of silence
    big = np.frombuffer(raw, dtype=np.float32)
    tracemalloc.start()
    [out] = remotemedia.execute(PASS, [remotemedia.Audio(big, 48000)])
    view = out.data.samples
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert pointer(view) == pointer(big)
    assert peak < 10 * 1024 * 1024, f"{peak} bytes allocated"


def test_output_audio_outlives_the_pipeline():
    [first, *_] = remotemedia.execute(CHUNK, [remotemedia.Audio(np.ones(1000, dtype=np.float32), 16000)])
    samples = first.data.samples
    del first
    assert samples.shape == (320,) and float(samples.sum()) == 320.0


def test_two_dimensional_audio_is_frames_by_channels():
    stereo = np.zeros((480, 2), dtype=np.float32)
    stereo[:, 0] = 1.0
    [out] = remotemedia.execute(PASS, [remotemedia.Audio(stereo, 48000)])
    assert out.data.channels == 2 and out.data.frames == 480


def test_streaming_session_send_recv_close_and_flush():
    session = remotemedia.open_session(
        {"nodes": [{"id": "collect", "node_type": "TextCollectorNode"}]}
    )
    session.send("Hello wor")
    assert session.recv() is None
    session.send("ld. And more")
    out = session.recv()
    assert (out.node_id, out.data) == ("collect", "Hello world.")
    assert session.recv() is None
    session.close()
    session.close()
    assert not session.is_active
    assert session.recv().data == "And more"
    assert session.recv() is None


def test_context_manager_and_iteration():
    frames = []
    with remotemedia.open_session(CHUNK) as session:
        for i in range(5):
            session.send(remotemedia.Audio(np.full(500, i, dtype=np.float32), 16000))
    frames = [out.data.frames for out in session]
    assert sum(frames) == 2500
    assert frames[:-1] == [320] * (len(frames) - 1)


def test_async_session():
    async def main():
        async with remotemedia.AsyncStreamSession(CALC) as session:
            await session.send({"operation": "multiply", "operands": [6, 7]})
            out = await session.recv()
            assert out.data["result"] == 42
        session2 = await remotemedia.open_async_session(CHUNK)
        await session2.send(remotemedia.Audio(np.zeros(640, dtype=np.float32), 16000))
        await session2.close()
        return [o async for o in session2]

    outs = asyncio.run(main())
    assert [o.data.frames for o in outs] == [320, 320]


def test_many_threads_run_sessions_at_once():
    results, errors = {}, []

    def worker(i):
        try:
            outs = remotemedia.execute(CALC, [{"operation": "add", "operands": [i, i]}])
            results[i] = outs[0].data["result"]
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == {i: 2 * i for i in range(16)}


def test_node_failure_raises_with_the_node_id():
    with pytest.raises(remotemedia.NodeError) as err:
        remotemedia.execute(CALC, [{"operation": "divide", "operands": [1, 0]}])
    assert err.value.node_id == "calc"
    assert str(err.value) == "node 'calc' (CalculatorNode) failed: division by zero"
    assert isinstance(err.value, remotemedia.RemoteMediaError)


def test_bad_manifest_raises_with_the_node_id():
    with pytest.raises(remotemedia.ManifestError) as err:
        remotemedia.execute(
            {"nodes": [{"id": "chunk", "node_type": "AudioChunkerNode", "params": {"chunk_size": 0}}]},
            [],
        )
    assert err.value.node_id == "chunk"
    assert "param 'chunk_size'" in str(err.value)
    with pytest.raises(remotemedia.ManifestError) as syntax:
        remotemedia.execute("nodes: [", [])
    assert syntax.value.node_id is None
    with pytest.raises(TypeError):
        remotemedia.execute(42, [])


def test_wrong_dtype_is_a_type_error():
    with pytest.raises(TypeError, match="float32 numpy array, got dtype float64"):
        remotemedia.Audio(np.zeros(10), 16000)
    with pytest.raises(TypeError, match="float32 numpy array"):
        remotemedia.Audio([0.0, 1.0], 16000)


def test_non_contiguous_array_is_a_value_error():
    strided = np.zeros(20, dtype=np.float32)[::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        remotemedia.Audio(strided, 16000)


def test_ragged_audio_and_unsupported_items_are_rejected():
    with pytest.raises(ValueError, match="not a whole number of 2-channel frames"):
        remotemedia.Audio(np.zeros(5, dtype=np.float32), 16000, channels=2)
    with pytest.raises(TypeError, match=r"inputs\[1\]: cannot send a value of type object"):
        remotemedia.execute(PASS, ["fine", object()])


def test_send_after_close_raises():
    session = remotemedia.open_session(PASS)
    session.close()
    with pytest.raises(remotemedia.RemoteMediaError, match="is closed"):
        session.send("late")


def test_outputs_compare_equal_to_their_data():
    outs = remotemedia.execute(PASS, ["hello", {"a": 1}])
    assert outs == ["hello", {"a": 1}]
    assert outs[0] != "bye"
    again = remotemedia.execute(PASS, ["hello", {"a": 1}])
    assert outs == again


def test_an_inputs_sequence_and_metadata_reach_its_outputs():
    with remotemedia.open_session(CHUNK) as session:
        session.send(remotemedia.Audio(np.zeros(700, dtype=np.float32), 16000),
                     sequence=41, metadata={"utterance": "u-1"})
        outputs = []
        while (out := session.recv()) is not None:
            outputs.append(out)
    assert len(outputs) == 2
    assert all(o.input_sequence == 41 and o.metadata == {"utterance": "u-1"} for o in outputs)
    flushed = list(session)
    assert [o.input_sequence for o in flushed] == [41], "the flushed tail came from that input too"


def test_output_repr_reads_as_python():
    [out] = remotemedia.execute(PASS, ["hi"])
    assert repr(out) == "Output(node_id=\"echo\", sequence=0, data='hi')"


def test_the_type_stubs_describe_the_extension_module():
    """`_remotemedia.pyi` names every public name of the native module, with the same
    parameters, and ships with `py.typed`."""
    import ast
    import inspect
    import remotemedia._remotemedia as native

    package = os.path.dirname(remotemedia.__file__)
    assert os.path.exists(os.path.join(package, "py.typed"))
    with open(os.path.join(package, "_remotemedia.pyi")) as f:
        stub = ast.parse(f.read())
    stubbed = {}
    for node in stub.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            stubbed[node.name] = node
        elif isinstance(node, ast.AnnAssign):
            stubbed[node.target.id] = node
    public = {name for name in dir(native) if not name.startswith("_") or name == "__version__"}
    public.discard("WorkerChannel")  # the worker loop's own channel, not part of the API
    assert public - set(stubbed) == set(), "not in the stub"
    for name, node in stubbed.items():
        if not isinstance(node, ast.FunctionDef) or not hasattr(native, name):
            continue
        params = [a.arg for a in node.args.args]
        assert params == list(inspect.signature(getattr(native, name)).parameters), name
    for name in ("Audio", "Video", "StreamSession"):
        init = next(n for n in stubbed[name].body
                    if isinstance(n, ast.FunctionDef) and n.name == "__init__")
        params = [a.arg for a in init.args.args][1:]
        assert params == list(inspect.signature(getattr(native, name)).parameters), name
    session = next(n for n in stubbed["StreamSession"].body
                   if isinstance(n, ast.FunctionDef) and n.name == "send")
    assert [a.arg for a in session.args.args][1:] == list(
        inspect.signature(native.StreamSession.send).parameters)[1:]
