"""The server against requests written to take it over, kill it or stall it, sent by a
real grpcio client (and raw sockets). Each is refused with a clear status, within a bounded
time and memory, and the server goes on serving."""

import json
import os
import queue
import select
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse

import grpc
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TEST_NODES = os.path.normpath(
    os.path.join(HERE, "..", "..", "..", "..", "executors", "multiprocess", "tests", "python"))

SERVING, NOT_SERVING = b"\x08\x01", b"\x08\x02"


def stub_of(pb, server, channel=None):
    _, services = pb
    return services.PipelineServiceStub(channel or grpc.insecure_channel(server.address))


def execute(pb, stub, manifest, items=(), timeout=30):
    messages, _ = pb
    return stub.Execute(messages.ExecuteRequest(manifest=manifest, inputs=list(items)), timeout=timeout)


def rpc_error(call):
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def health(server, service="", timeout=2):
    channel = grpc.insecure_channel(server.address)
    check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                request_serializer=lambda m: m, response_deserializer=lambda m: m)
    request = b"\x0a" + bytes([len(service)]) + service.encode() if service else b""
    try:
        return check(request, timeout=timeout)
    finally:
        channel.close()


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def text(pb, value):
    messages, _ = pb
    return messages.DataItem(text=value)


def audio(pb, samples, rate, channels=1):
    messages, _ = pb
    return messages.DataItem(audio=messages.AudioData(
        samples=struct.pack(f"<{len(samples)}f", *samples), sample_rate=rate, channels=channels))


# --- takes over the server ---------------------------------------------------------------

def test_a_client_manifest_cannot_choose_programs_environment_or_paths(pb, start_server):
    server = start_server()
    stub = stub_of(pb, server)
    for key, value in [("python_executable", "/bin/bash"), ("env", "{LD_PRELOAD: /tmp/x.so}"),
                       ("python_path", "[/tmp]"), ("modules", "[os]"),
                       ("source", "'import os; os.system(\"id\")'")]:
        manifest = f"nodes: [{{id: shell, node_type: EchoNode, multiprocess: {{{key}: {value}}}}}]"
        err = rpc_error(lambda: execute(pb, stub, manifest, [text(pb, "hi")]))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, err
        assert err.details() == (
            f"node 'shell' (EchoNode): multiprocess.{key} is not allowed in manifests from clients "
            "(the server's operator can allow it)")
        assert dict(err.trailing_metadata())["x-remotemedia-node-id"] == "shell"
    for key, value in [("base_image", "'evil:latest'"), ("volumes", "['/:/host:rw']"),
                       ("python_packages", "[evil-package]"), ("system_packages", "[openssh-server]"),
                       ("env", "{LD_PRELOAD: /x.so}"), ("resource_limits", "{memory_mb: 100000}")]:
        err = rpc_error(lambda: execute(
            pb, stub, f"nodes: [{{id: box, node_type: EchoNode, docker: {{{key}: {value}}}}}]"))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, err
        assert err.details() == (
            f"node 'box' (EchoNode): docker.{key} is not allowed in manifests from clients "
            "(the server's operator can allow it)")


def test_the_operator_opens_settings_and_restricts_node_types(pb, start_server):
    server = start_server("--allow-client-setting", "multiprocess.env",
                          "--allow-node-type", "EchoNode", "--allow-node-type", "PassThrough")
    stub = stub_of(pb, server)
    ok = execute(pb, stub, "nodes: [{id: e, node_type: EchoNode, multiprocess: {env: {A: '1'}}}]",
                 [text(pb, "hi")], timeout=60)
    assert ok.outputs[0].data.text == "hi"
    err = rpc_error(lambda: execute(
        pb, stub, "nodes: [{id: e, node_type: EchoNode, multiprocess: {python_executable: /bin/sh}}]"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    err = rpc_error(lambda: execute(pb, stub, "nodes: [{id: c, node_type: CalculatorNode}]"))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details() == (
        "node 'c' (CalculatorNode): node type 'CalculatorNode' is not one of the types this "
        "server allows clients to use")


def test_tls_serves_clients_that_trust_the_certificate(pb, start_server, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, capture_output=True)
    server = start_server("--tls-cert", str(cert), "--tls-key", str(key),
                          "--auth-token", "secret")
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    channel = grpc.secure_channel(server.address, credentials)
    stub = stub_of(pb, server, channel)
    messages, _ = pb
    reply = stub.Execute(messages.ExecuteRequest(
        manifest="nodes: [{id: p, node_type: PassThrough}]", inputs=[text(pb, "over tls")]),
        metadata=[("authorization", "Bearer secret")], timeout=30)
    assert reply.outputs[0].data.text == "over tls"
    plain = stub_of(pb, server)
    err = rpc_error(lambda: execute(pb, plain, "nodes: [{id: p, node_type: PassThrough}]",
                                    timeout=5))
    assert err.code() == grpc.StatusCode.UNAVAILABLE, err
    # A key that is not the certificate's stops the server before it listens.
    other = tmp_path / "other.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(other), "2048"], check=True,
                   capture_output=True)
    result = subprocess.run(
        [os.environ["REMOTEMEDIA_GRPC_SERVER"], "--listen", "127.0.0.1:0",
         "--tls-cert", str(cert), "--tls-key", str(other)],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        f"cannot use the TLS certificate {cert} with the key {other}: "
        "the private key does not belong to the certificate"), result.stderr
    assert "listening" not in result.stderr


# --- kills the server ---------------------------------------------------------------------

def ring(n):
    nodes = [{"id": f"n{i}", "node_type": "PassThrough"} for i in range(n)]
    edges = [{"from": f"n{i}", "to": f"n{(i + 1) % n}"} for i in range(n)]
    return json.dumps({"nodes": nodes, "connections": edges})


def test_a_ring_of_13500_nodes_is_refused_and_the_server_lives(pb, start_server):
    server = start_server()
    stub = stub_of(pb, server)
    started = time.monotonic()
    manifest = ring(13_500)  # about 1 MB of JSON
    err = rpc_error(lambda: execute(pb, stub, manifest))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    assert err.details() in (
        f"manifest refused: the manifest is {len(manifest)} bytes, over the limit of 1048576 bytes",
        "manifest refused: the manifest has 13500 nodes, over the limit of 1024 nodes")
    assert time.monotonic() - started < 5
    assert health(server) == SERVING

    roomy = start_server("--max-manifest-nodes", "20000", "--max-manifest-connections", "20000",
                         "--max-manifest-bytes", "4000000")
    err = rpc_error(lambda: execute(pb, stub_of(pb, roomy), ring(13_500)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("invalid manifest: connections form a cycle: n0 -> n1 -> n2")
    assert err.details().endswith("(13500 nodes on the cycle)")
    assert len(err.details()) < 200
    assert health(roomy) == SERVING


def test_a_yaml_alias_bomb_is_refused_with_bounded_time_and_memory(pb, start_server):
    server = start_server()
    anchor = "[" + ", ".join(["1"] * 5000) + "]"
    aliases = "[" + ", ".join(["*a"] * 20_000) + "]"
    bomb = f"metadata:\n  name: bomb\n  a: &a {anchor}\n  b: {aliases}\nnodes: [{{id: x, node_type: PassThrough}}]\n"
    assert 80_000 < len(bomb) < 300_000  # stands for 100 million values
    before = server.peak_memory_mib()
    started = time.monotonic()
    err = rpc_error(lambda: execute(pb, stub_of(pb, server), bomb))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    budget = 4 * len(bomb.encode()) + 1000
    assert err.details() == (
        "manifest refused: the manifest has more values, counting each YAML alias as the "
        f"values it repeats, over the limit of {budget} values (four per byte of text plus "
        "1000, at most 500000)")
    assert time.monotonic() - started < 5
    assert server.peak_memory_mib() - before < 100, server.peak_memory_mib()
    assert health(server) == SERVING


def complete_dag(n):
    """A manifest of n PassThrough nodes, each feeding every later one: 2^(n-2) paths."""
    nodes = [{"id": f"n{i}", "node_type": "PassThrough"} for i in range(n)]
    edges = [{"from": f"n{i}", "to": f"n{j}"} for i in range(n) for j in range(i + 1, n)]
    return json.dumps({"nodes": nodes, "connections": edges})


def idle_sockets(server, count):
    """Opens `count` TCP connections to the server that never send a byte."""
    host, port = server.address.rsplit(":", 1)
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex((host, int(port)))
        sockets.append(s)
    return sockets


def test_an_exploding_graph_stops_at_the_output_limit(pb, start_server):
    server = start_server()
    manifest = complete_dag(30)
    assert len(manifest) < 20_000  # one input becomes 2^28 outputs
    started = time.monotonic()
    err = rpc_error(lambda: execute(pb, stub_of(pb, server), manifest, [text(pb, "x")], timeout=60))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    assert ("work budget" in err.details()) or ("more than 100000 outputs" in err.details()), err.details()
    assert time.monotonic() - started < 30
    assert server.peak_memory_mib() < 1024, server.peak_memory_mib()
    assert health(server) == SERVING


def test_absurd_audio_is_refused_at_the_door(pb, start_server):
    server = start_server()
    stub = stub_of(pb, server)
    resample = "nodes: [{id: r, node_type: FastResampleNode, params: {target_rate: 16000}}]"
    for rate in (4294967295, 49_999_999):
        err = rpc_error(lambda: execute(pb, stub, resample, [audio(pb, [0.0] * 16, rate)]))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.details() == f"inputs[0]: audio sample rate {rate} Hz is outside 1..=768000 Hz"
    err = rpc_error(lambda: execute(pb, stub, resample, [audio(pb, [0.0, float("nan")], 16000)]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "inputs[0]: audio sample 1 is NaN (samples must be finite numbers)"


def test_video_whose_bytes_do_not_fit_its_size_is_refused(pb, start_server):
    server = start_server()
    messages, _ = pb
    stub = stub_of(pb, server)
    passthrough = "nodes: [{id: p, node_type: PassThrough}]"
    good = messages.DataItem(video=messages.VideoData(
        pixel_data=bytes(4 * 4 * 3), width=4, height=4, format="rgb24"))
    assert execute(pb, stub, passthrough, [good]).outputs[0].data.video.width == 4
    for pixels, fmt in ((bytes(10), "rgb24"), (bytes(4 * 4 * 3), "yuv420p"),
                        (bytes(16), "no-such-format")):
        bad = messages.DataItem(video=messages.VideoData(
            pixel_data=pixels, width=4, height=4, format=fmt))
        err = rpc_error(lambda: execute(pb, stub, passthrough, [text(pb, "ok"), bad]))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err
        assert err.details().startswith("inputs[1]: "), err.details()
        assert fmt in err.details() or "bytes" in err.details(), err.details()


def test_a_message_over_the_limit_names_the_limit_the_operator_set(pb, start_server):
    server = start_server("--max-message-bytes", "100000")
    messages, _ = pb
    stub = stub_of(pb, server)
    passthrough = "nodes: [{id: p, node_type: PassThrough}]"
    # Just over the limit, and far over it (beyond tonic's own decoding limit).
    for size in (120_000, 400_000):
        item = messages.DataItem(binary=bytes(size))
        err = rpc_error(lambda: execute(pb, stub, passthrough, [item]))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
        assert err.details().startswith("a request message is "), err.details()
        assert err.details().endswith(
            "bytes, over the server's limit of 100000 bytes (--max-message-bytes)"), err.details()
    # The same on a stream, and the server serves on.
    requests = queue.Queue()
    requests.put(messages.StreamRequest(open=messages.OpenSession(manifest=passthrough)))
    requests.put(messages.StreamRequest(data=messages.DataItem(binary=bytes(400_000))))
    call = stub.StreamPipeline(iter(requests.get, None), timeout=30)
    err = rpc_error(lambda: list(call))
    requests.put(None)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    assert "over the server's limit of 100000 bytes" in err.details(), err.details()
    assert execute(pb, stub, passthrough, [text(pb, "fine")]).outputs[0].data.text == "fine"


def test_an_awkward_but_allowed_rate_costs_little(pb, start_server):
    server = start_server()
    before = server.peak_memory_mib()
    reply = execute(pb, stub_of(pb, server),
                    "nodes: [{id: r, node_type: FastResampleNode, params: {target_rate: 16000}}]",
                    [audio(pb, [0.1] * 7680, 767_999)])
    frames = sum(len(o.data.audio.samples) // 4 for o in reply.outputs)
    assert frames == round(7680 * 16000 / 767_999)
    assert server.peak_memory_mib() - before < 20, server.peak_memory_mib() - before


def test_params_that_are_not_finite_or_given_twice_are_refused(pb, start_server):
    server = start_server()
    stub = stub_of(pb, server)
    err = rpc_error(lambda: execute(
        pb, stub, "nodes:\n  - id: g\n    node_type: AudioGainNode\n    params: {gain_db: .inf}\n"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details().startswith("node 'g' (AudioGainNode): param 'gain_db': .inf is not a finite number")
    err = rpc_error(lambda: execute(
        pb, stub, "nodes:\n  - id: c\n    node_type: AudioChunkerNode\n    params: {chunk_size: 1, chunk_size: 2}\n"))
    assert err.details().startswith("node 'c' (AudioChunkerNode): param 'chunk_size': given twice")


class HalfSentMessages:
    """Raw HTTP/2 (grpcio cannot do this): `streams` Execute calls on one connection, each
    sending `sent` bytes of a message that declares `declared` bytes, then nothing more."""

    def __init__(self, server, streams, declared, sent):
        import h2.config
        import h2.connection
        host, port = server.address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.pending = {}
        for _ in range(streams):
            sid = self.conn.get_next_available_stream_id()
            self.conn.send_headers(sid, [
                (":method", "POST"), (":scheme", "http"), (":authority", "x"),
                (":path", "/remotemedia.v1.PipelineService/Execute"),
                ("content-type", "application/grpc"), ("te", "trailers")])
            self.pending[sid] = struct.pack(">BI", 0, declared) + b"\x0a" * (sent - 5)
        self.status = {}
        self._flush()

    def _flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def _read(self, timeout):
        import h2.events
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return False
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("the server closed the connection")
        for event in self.conn.receive_data(data):
            headers = getattr(event, "headers", None)
            if headers:
                fields = {k.decode() if isinstance(k, bytes) else k:
                          v.decode() if isinstance(v, bytes) else v for k, v in headers}
                if "grpc-status" in fields:
                    self.status[event.stream_id] = (
                        int(fields["grpc-status"]),
                        urllib.parse.unquote(fields.get("grpc-message", "")))
            if isinstance(event, h2.events.StreamReset):
                self.status.setdefault(event.stream_id, ("reset", ""))
        self._flush()
        return True

    def send_what_the_window_allows(self, quiet=1.0):
        """Sends until every stream's share is out or the server stops taking bytes."""
        import h2.exceptions
        idle_since = time.monotonic()
        while self.pending and time.monotonic() - idle_since < quiet:
            moved = False
            for sid, rest in list(self.pending.items()):
                try:
                    window = min(self.conn.local_flow_control_window(sid),
                                 self.conn.max_outbound_frame_size, len(rest))
                    if window > 0:
                        self.conn.send_data(sid, rest[:window])
                except h2.exceptions.StreamClosedError:  # the server has answered it
                    del self.pending[sid]
                    continue
                if window > 0:
                    moved = True
                    if window == len(rest):
                        del self.pending[sid]
                    else:
                        self.pending[sid] = rest[window:]
            self._flush()
            if moved:
                idle_since = time.monotonic()
            self._read(0.01)
        return self

    def statuses(self, count, timeout):
        deadline = time.monotonic() + timeout
        while len(self.status) < count and time.monotonic() < deadline:
            self._read(0.1)
        return self.status


def test_messages_that_stop_halfway_cannot_exhaust_memory(pb, start_server):
    server = start_server("--max-pending-message-bytes", "64000000", "--message-timeout-secs", "3")
    base = server.peak_memory_mib()
    started = time.monotonic()
    # 40 streams hold 10 MB each of 12 MB messages: 400 MB if the server kept them all.
    attackers = [HalfSentMessages(server, 20, 12_000_000, 10_000_000) for _ in range(2)]
    for attacker in attackers:
        attacker.send_what_the_window_allows()
    grew = server.peak_memory_mib() - base
    assert grew < 64 + 48, f"half-sent messages grew the server by {grew:.0f} MiB"
    # Small messages (one HTTP/2 frame) never wait for the spent budget.
    assert health(server) == SERVING
    reply = execute(pb, stub_of(pb, server), "nodes: [{id: p, node_type: PassThrough}]",
                    [text(pb, "still served")], timeout=2)
    assert reply.outputs[0].data.text == "still served"
    # Each stalled message fails once its time is up, and gives its bytes back.
    for attacker in attackers:
        statuses = attacker.statuses(20, timeout=15)
        assert len(statuses) == 20, statuses
        for code, message in statuses.values():
            assert code == 8, (code, message)
            assert ("did not arrive in full within 3 s" in message
                    or "holding its limit of 61 MiB" in message), message
    assert time.monotonic() - started < 20
    assert health(server) == SERVING


# --- stalls the server --------------------------------------------------------------------

def test_idle_connections_cannot_exhaust_the_server(pb, start_server):
    # A long handshake timeout: the idle sockets are still open when the client comes.
    server = start_server("--max-connections", "200", "--handshake-timeout-secs", "60")
    sockets = idle_sockets(server, 2000)
    cpu_before = cpu_seconds(server.pid)
    time.sleep(2)
    busy = cpu_seconds(server.pid) - cpu_before
    assert busy < 1.0, f"the server used {busy:.2f} s of CPU in 2 s with idle connections"
    # At the cap, the oldest connection without a request makes room for a real client.
    started = time.monotonic()
    assert health(server, timeout=5) == SERVING
    reply = execute(pb, stub_of(pb, server), "nodes: [{id: p, node_type: PassThrough}]", [text(pb, "ok")])
    assert reply.outputs[0].data.text == "ok"
    assert time.monotonic() - started < 2
    for s in sockets:
        s.close()


def test_a_connection_that_makes_no_request_is_closed(pb, start_server):
    server = start_server("--handshake-timeout-secs", "1")
    host, port = server.address.rsplit(":", 1)
    idle = socket.create_connection((host, int(port)))
    idle.settimeout(5)
    started = time.monotonic()
    while idle.recv(1024):  # the server's HTTP/2 settings, then its close
        pass
    assert 0.9 < time.monotonic() - started < 3
    idle.close()


def test_slow_manifests_do_not_starve_health_checks(pb, start_server):
    server = start_server()
    deep = "nodes: [{id: x, node_type: PassThrough, params: {a: " + "[" * 100_000 + "]" * 100_000 + "}}]"
    assert len(deep) > 200_000
    errors = []

    def send():
        errors.append(rpc_error(lambda: execute(pb, stub_of(pb, server), deep)))

    threads = [threading.Thread(target=send) for _ in range(2)]
    started = time.monotonic()
    for t in threads:
        t.start()
    assert health(server, timeout=1) == SERVING
    for t in threads:
        t.join(timeout=10)
    assert time.monotonic() - started < 3
    assert [e.code() for e in errors] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    assert "nests 100003 levels deep" in errors[0].details() or "levels deep" in errors[0].details()


def test_a_stream_that_never_opens_times_out_and_frees_its_slot(pb, start_server):
    server = start_server("--max-sessions", "1", "--open-timeout-secs", "1")
    stub = stub_of(pb, server)
    silent = queue.Queue()
    started = time.monotonic()
    err = rpc_error(lambda: list(stub.StreamPipeline(iter(silent.get, None), timeout=10)))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.details() == "no open message within 1 s (--open-timeout-secs)"
    assert time.monotonic() - started < 5
    silent.put(None)
    reply = execute(pb, stub, "nodes: [{id: p, node_type: PassThrough}]", [text(pb, "next")])
    assert reply.outputs[0].data.text == "next"


def test_an_abandoned_stream_frees_its_slot_and_its_busy_worker(pb, start_server, tmp_path):
    server = start_server(
        "--max-sessions", "1",
        "--allow-client-setting", "multiprocess.modules",
        "--allow-client-setting", "multiprocess.python_path")
    messages, _ = pb
    stub = stub_of(pb, server)
    pid_file = tmp_path / "pid"
    manifest = (
        "nodes: [{id: slow, node_type: SleepsWithPid, "
        f"params: {{path: '{pid_file}'}}, "
        f"multiprocess: {{modules: [rm_test_nodes], python_path: ['{TEST_NODES}']}}}}]")
    requests = queue.Queue()
    requests.put(messages.StreamRequest(open=messages.OpenSession(manifest=manifest)))
    requests.put(messages.StreamRequest(data=text(pb, "work")))
    call = stub.StreamPipeline(iter(requests.get, None), timeout=60)
    assert next(call).WhichOneof("kind") == "opened"
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    time.sleep(0.3)  # the worker is in its minute-long call
    call.cancel()  # the client goes away
    gone_by = time.monotonic() + 5
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < gone_by:
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    assert time.monotonic() < gone_by, "the busy worker outlived the abandoned stream"
    reply = execute(pb, stub, "nodes: [{id: p, node_type: PassThrough}]", [text(pb, "free")])
    assert reply.outputs[0].data.text == "free"
    requests.put(None)


def test_shutdown_flips_overall_health_and_a_watch_cannot_hold_the_server(pb, start_server):
    server = start_server("--shutdown-grace-secs", "2")
    messages, _ = pb
    stub = stub_of(pb, server)
    # A session that stays open through the drain.
    requests = queue.Queue()
    requests.put(messages.StreamRequest(open=messages.OpenSession(
        manifest="nodes: [{id: p, node_type: PassThrough}]")))
    stream = stub.StreamPipeline(iter(requests.get, None), timeout=60)
    assert next(stream).WhichOneof("kind") == "opened"
    channel = grpc.insecure_channel(server.address)
    watch = channel.unary_stream("/grpc.health.v1.Health/Watch",
                                 request_serializer=lambda m: m, response_deserializer=lambda m: m)
    updates = watch(b"", timeout=60)
    assert next(updates) == SERVING
    server.process.send_signal(signal.SIGTERM)
    assert next(updates) == NOT_SERVING, "the overall status (\"\") flips while draining"
    assert health(server) == NOT_SERVING
    # The watch is still held; the server exits anyway once the grace period is over.
    assert server.process.wait(timeout=20) == 0
    requests.put(None)
    channel.close()


def test_python_workers_stop_at_what_the_descriptors_can_back(pb, start_server):
    # 700 descriptors: 256 kept, 222 for connections, the rest backs 6 workers of 32.
    server = start_server(nofile=700)
    messages, _ = pb
    stub = stub_of(pb, server)
    streams, used = [], []
    while True:
        before = server.open_descriptors()
        requests = queue.Queue()
        requests.put(messages.StreamRequest(open=messages.OpenSession(
            manifest=f"nodes: [{{id: echo{len(streams)}, node_type: EchoNode}}]")))
        requests.put(messages.StreamRequest(data=text(pb, "hi")))
        call = stub.StreamPipeline(iter(requests.get, None), timeout=60)
        try:
            first = next(call)
        except grpc.RpcError as error:
            requests.put(None)
            err = error
            break
        assert first.WhichOneof("kind") == "opened"
        assert next(call).output.data.text == "hi"
        used.append(server.open_descriptors() - before)
        streams.append((requests, call))
        assert len(streams) <= 6, "the worker cap did not hold"
    assert len(streams) == 6, len(streams)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    assert err.details().startswith(
        "cannot start a Python worker for node 'echo6' (EchoNode): 6 workers are running"), err.details()
    assert max(used) <= 32, used  # what DESCRIPTORS_PER_WORKER assumes
    # The server still has descriptors for everything else.
    assert health(server) == SERVING
    reply = execute(pb, stub, "nodes: [{id: p, node_type: PassThrough}]", [text(pb, "native")])
    assert reply.outputs[0].data.text == "native"
    # A finished session gives its worker's place back.
    requests, call = streams.pop()
    requests.put(messages.StreamRequest(close=messages.CloseSession()))
    for _ in call:
        pass
    again = execute(pb, stub, "nodes: [{id: e, node_type: EchoNode}]", [text(pb, "again")],
                    timeout=60)
    assert again.outputs[0].data.text == "again"
    for requests, _ in streams:
        requests.put(None)


def domain_files(root, prefix):
    found = [os.path.join(d, f) for d, _, files in os.walk(root) for f in files
             if not f.endswith(".global_mgmt")]
    found += [f"/dev/shm/{f}" for f in os.listdir("/dev/shm")
              if f.startswith(prefix) and not f.endswith(".global_mgmt")]
    return found


def test_sigterm_with_python_sessions_open_leaves_no_files(pb, start_server):
    # Short: the root holds Unix sockets, whose paths are limited to 107 bytes.
    root, prefix = f"/dev/shm/rmsig-{os.getpid()}", f"rmsig{os.getpid()}_"
    server = start_server("--shutdown-grace-secs", "1",
                          env={"REMOTEMEDIA_IPC_ROOT": str(root), "REMOTEMEDIA_IPC_PREFIX": prefix})
    messages, _ = pb
    stub = stub_of(pb, server)
    streams = []
    for _ in range(3):
        requests = queue.Queue()
        requests.put(messages.StreamRequest(open=messages.OpenSession(
            manifest="nodes: [{id: echo, node_type: EchoNode}]")))
        requests.put(messages.StreamRequest(data=text(pb, "hi")))
        call = stub.StreamPipeline(iter(requests.get, None), timeout=60)
        assert next(call).WhichOneof("kind") == "opened"
        assert next(call).output.data.text == "hi"
        streams.append((requests, call))
    assert domain_files(root, prefix), "the sessions' workers use the private domain"
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=30) == 0
    left = domain_files(root, prefix)
    subprocess.run(["rm", "-rf", root], check=False)
    for f in os.listdir("/dev/shm"):
        if f.startswith(prefix):
            os.remove(f"/dev/shm/{f}")
    assert left == []
    for requests, _ in streams:
        requests.put(None)
