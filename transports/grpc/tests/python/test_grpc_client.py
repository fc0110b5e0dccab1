"""A third-party client against the real server: Python grpcio with stubs generated from
our .proto by grpcio-tools at test time.

Run by `cargo xtask ci` (which makes the venv and builds the server); by hand:
    REMOTEMEDIA_GRPC_SERVER=target/debug/remotemedia-grpc-server \
        .venv/bin/python -m pytest transports/grpc/tests/python
"""

import array
import json
import os
import queue

import grpc
import pytest

from conftest import Server


@pytest.fixture(scope="module")
def server():
    s = Server("--shutdown-grace-secs", "1")
    yield s
    assert s.stop() == 0, "the server exits cleanly on SIGTERM"


@pytest.fixture
def stub(pb, server):
    _, services = pb
    channel = grpc.insecure_channel(server.address)
    yield services.PipelineServiceStub(channel)
    channel.close()


def json_item(messages, value):
    return messages.DataItem(json=json.dumps(value))


def audio_item(messages, samples, rate, channels, timestamp_us):
    return messages.DataItem(
        audio=messages.AudioData(
            samples=array.array("f", samples).tobytes(),
            sample_rate=rate,
            channels=channels,
            timestamp_us=timestamp_us,
        )
    )


def test_unary_execute(pb, stub):
    messages, _ = pb
    response = stub.Execute(
        messages.ExecuteRequest(
            manifest="nodes: [{id: calc, node_type: CalculatorNode}]",
            inputs=[json_item(messages, {"operation": "multiply", "operands": [6, 7]})],
        ),
        timeout=10,
    )
    assert len(response.outputs) == 1
    output = response.outputs[0]
    assert output.node_id == "calc"
    assert json.loads(output.data.json) == {"operation": "multiply", "result": 42}


def test_streaming_audio_through_resample_and_chunker(pb, stub):
    messages, _ = pb
    manifest = (
        "nodes:\n"
        "  - {id: resample, node_type: FastResampleNode, params: {target_rate: 16000}}\n"
        "  - {id: chunk, node_type: AudioChunkerNode, params: {chunk_size: 320}}\n"
    )
    requests = queue.Queue()
    requests.put(messages.StreamRequest(open=messages.OpenSession(manifest=manifest)))
    for i in range(50):
        frame = [0.25] * 960  # 20 ms at 48 kHz
        requests.put(messages.StreamRequest(data=audio_item(messages, frame, 48000, 1, i * 20000)))
    requests.put(messages.StreamRequest(close=messages.CloseSession()))
    requests.put(None)

    responses = stub.StreamPipeline(iter(requests.get, None), timeout=30)
    kinds, frames, closed = [], 0, None
    for response in responses:
        kind = response.WhichOneof("kind")
        kinds.append(kind)
        if kind == "output":
            assert response.output.node_id == "chunk"
            audio = response.output.data.audio
            assert audio.sample_rate == 16000
            frames += len(audio.samples) // 4
        elif kind == "closed":
            closed = response.closed
    assert kinds[0] == "opened"
    assert kinds[-1] == "closed"
    assert frames == 16000
    assert closed.outputs == kinds.count("output")


def test_errors_carry_codes_and_the_node_id(pb, stub):
    messages, _ = pb
    with pytest.raises(grpc.RpcError) as bad_param:
        stub.Execute(
            messages.ExecuteRequest(
                manifest="nodes: [{id: chunks, node_type: AudioChunkerNode, params: {chunk_size: -1}}]"
            ),
            timeout=10,
        )
    assert bad_param.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "param 'chunk_size'" in bad_param.value.details()

    with pytest.raises(grpc.RpcError) as failure:
        stub.Execute(
            messages.ExecuteRequest(
                manifest="nodes: [{id: calc, node_type: CalculatorNode}]",
                inputs=[json_item(messages, {"operation": "divide", "operands": [1, 0]})],
            ),
            timeout=10,
        )
    assert failure.value.code() == grpc.StatusCode.ABORTED
    metadata = dict(failure.value.trailing_metadata())
    assert metadata["x-remotemedia-node-id"] == "calc"
    assert failure.value.details() == "node 'calc' (CalculatorNode) failed: division by zero"

    with pytest.raises(grpc.RpcError) as unknown:
        stub.Execute(
            messages.ExecuteRequest(manifest="nodes: [{id: asr, node_type: NoSuchNode}]"),
            timeout=10,
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_python_nodes_run_behind_the_server(pb, stub):
    """Text -> espeak-ng (Python worker) -> 16 kHz (native) -> Whisper small (Python worker)."""
    assert os.environ.get("REMOTEMEDIA_PYTHON"), (
        "set REMOTEMEDIA_PYTHON to the interpreter of `cargo xtask python-env` for Python nodes")
    messages, _ = pb
    manifest = (
        "nodes:\n"
        "  - {id: tts, node_type: TextToSpeechNode, params: {engine: espeak-ng, voice: en-us+klatt2, rate: 160}}\n"
        "  - {id: resample, node_type: FastResampleNode, params: {target_rate: 16000}}\n"
        "  - {id: asr, node_type: SpeechRecognitionNode}\n"
    )
    response = stub.Execute(
        messages.ExecuteRequest(manifest=manifest, inputs=[messages.DataItem(text="please call me tomorrow morning")]),
        timeout=60,
    )
    assert [o.node_id for o in response.outputs] == ["asr"]
    text = response.outputs[0].data.text
    assert text.lower().rstrip(".") == "please call me tomorrow morning", text

    with pytest.raises(grpc.RpcError) as failure:
        stub.Execute(
            messages.ExecuteRequest(
                manifest="nodes: [{id: voice, node_type: TextToSpeechNode, params: {engine: espeak-ng, voice: nosuchvoice}}]",
                inputs=[messages.DataItem(text="hi")],
            ),
            timeout=60,
        )
    assert dict(failure.value.trailing_metadata())["x-remotemedia-node-id"] == "voice"
    assert "espeak-ng has no voice 'nosuchvoice'" in failure.value.details()


def test_list_nodes(pb, stub):
    messages, _ = pb
    nodes = stub.ListNodes(messages.ListNodesRequest(), timeout=10).nodes
    by_name = {n.node_type: n for n in nodes}
    assert "VADNode" in by_name
    assert "SileroVADNode" in by_name
    schema = json.loads(by_name["AudioChunkerNode"].params_schema)
    assert schema["properties"]["chunk_size"]["default"] == 512


def test_auth_token(pb):
    messages, services = pb
    protected = Server("--auth-token", "letmein", "--shutdown-grace-secs", "1")
    try:
        channel = grpc.insecure_channel(protected.address)
        stub = services.PipelineServiceStub(channel)
        request = messages.ExecuteRequest(
            manifest="nodes: [{id: p, node_type: PassThrough}]",
            inputs=[messages.DataItem(text="hi")],
        )
        with pytest.raises(grpc.RpcError) as denied:
            stub.Execute(request, timeout=10)
        assert denied.value.code() == grpc.StatusCode.UNAUTHENTICATED
        ok = stub.Execute(request, metadata=[("authorization", "Bearer letmein")], timeout=10)
        assert ok.outputs[0].data.text == "hi"
        channel.close()
    finally:
        assert protected.stop() == 0


def test_reflection_answers_grpcio_reflection_clients_v1alpha_and_v1(server):
    """grpcio's own reflection client (and grpc_requests, built on it) speak v1alpha;
    grpcurl speaks v1. Both find the service and its methods."""
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )
    from google.protobuf.descriptor_pool import DescriptorPool

    channel = grpc.insecure_channel(server.address)
    database = ProtoReflectionDescriptorDatabase(channel)
    assert "remotemedia.v1.PipelineService" in list(database.get_services())
    pool = DescriptorPool(database)
    service = pool.FindServiceByName("remotemedia.v1.PipelineService")
    assert {m.name for m in service.methods} >= {"Execute", "StreamPipeline", "ListNodes"}
    # v1: a list_services request (field 7, empty string), raw.
    call = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda m: m, response_deserializer=lambda m: m)
    [reply] = list(call(iter([b"\x3a\x00"]), timeout=10))
    assert b"remotemedia.v1.PipelineService" in reply
    channel.close()
