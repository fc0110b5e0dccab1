"""Measures the hostile cases of docs/RELIABILITY.md against the real server and prints the
table rows: what the server answered, how long it took and how much memory it cost.

Not a test (pytest does not collect it); the pass/fail checks live in test_hostile.py.

    cargo build --release -p remotemedia-grpc --bin remotemedia-grpc-server
    REMOTEMEDIA_GRPC_SERVER=target/release/remotemedia-grpc-server \\
    REMOTEMEDIA_PYTHON=$(cargo xtask python-env | tail -n 1) \\
        python transports/grpc/tests/python/hostile_figures.py

Each case gets a fresh server, so its peak memory (VmHWM) is the case's own. The client
side needs grpcio and grpcio-tools (the venv `cargo xtask ci` makes has both).
"""

import json
import os
import queue
import resource
import signal
import sys
import tempfile
import threading
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import conftest  # noqa: E402  (the Server class and the stub generation)
from test_hostile import (  # noqa: E402
    SERVING, TEST_NODES, HalfSentMessages, audio, complete_dag, cpu_seconds, execute, health,
    idle_sockets, ring, stub_of, text)


def stubs():
    """The generated message and service modules (what the `pb` fixture gives the tests)."""
    return conftest.generate_stubs(tempfile.mkdtemp())


def resident_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


ROWS = []
# Words naming the cases to run (command-line arguments); none: every case.
ONLY = sys.argv[1:]


def case(name, pb, *flags, ends_server=False):
    """Runs the decorated body against a fresh server; records answer, time and memory."""

    def run(body):
        if ONLY and not any(word in name for word in ONLY):
            return body
        server = conftest.Server(*flags)
        try:
            base = resident_mib(server.pid)
            started = time.monotonic()
            answer = body(pb, server)
            elapsed = time.monotonic() - started
            try:
                peak = server.peak_memory_mib()
            except FileNotFoundError:  # the case ended the server
                peak = base
            alive = ends_server or (
                server.process.poll() is None and health(server, timeout=5) == SERVING)
            ROWS.append((name, answer, elapsed, peak - base, peak, "yes" if alive else "NO"))
            print(f"| {name} | {answer} | {elapsed:.3f} s | +{peak - base:.1f} MiB "
                  f"(peak {peak:.0f} MiB) | {'yes' if alive else 'NO'} |", flush=True)
        finally:
            if server.process.poll() is None:
                server.stop()
        return body

    return run


def status_of(call):
    try:
        call()
    except grpc.RpcError as err:
        details = err.details()
        if len(details) > 160:
            details = details[:157] + "..."
        return f"{err.code().name}: {details}"
    return "OK"


def main():
    pb = stubs()
    messages, _ = pb

    @case("client manifest sets `multiprocess.python_executable: /bin/bash`", pb)
    def _(pb, server):
        return status_of(lambda: execute(pb, stub_of(pb, server),
                                         "nodes: [{id: s, node_type: EchoNode, "
                                         "multiprocess: {python_executable: /bin/bash}}]",
                                         [text(pb, "hi")]))

    @case("ring of 13,500 PassThrough nodes (1 MB JSON), default limits", pb)
    def _(pb, server):
        return status_of(lambda: execute(pb, stub_of(pb, server), ring(13_500)))

    @case("the same ring with limits raised to 20,000 nodes / 4 MB", pb,
          "--max-manifest-nodes", "20000", "--max-manifest-connections", "20000",
          "--max-manifest-bytes", "4000000")
    def _(pb, server):
        return status_of(lambda: execute(pb, stub_of(pb, server), ring(13_500)))

    @case("YAML alias bomb: 260 KB, one 60,000-value anchor aliased 20,000 times", pb)
    def _(pb, server):
        anchor = "[" + ", ".join(["1"] * 60_000) + "]"
        aliases = "[" + ", ".join(["*a"] * 20_000) + "]"
        bomb = f"metadata:\n  a: &a {anchor}\n  b: {aliases}\nnodes: [{{id: x, node_type: PassThrough}}]\n"
        assert 250_000 < len(bomb) < 270_000, len(bomb)
        return status_of(lambda: execute(pb, stub_of(pb, server), bomb))

    @case("Execute of a 30-node complete DAG (14 KB), one input, 2^28 paths", pb)
    def _(pb, server):
        manifest = complete_dag(30)
        return status_of(lambda: execute(pb, stub_of(pb, server), manifest, [text(pb, "x")],
                                         timeout=120))

    @case("the same DAG as a stream: one input, outputs read as they come", pb)
    def _(pb, server):
        manifest = complete_dag(30)
        requests = queue.Queue()
        requests.put(messages.StreamRequest(open=messages.OpenSession(manifest=manifest)))
        requests.put(messages.StreamRequest(data=text(pb, "x")))
        call = stub_of(pb, server).StreamPipeline(iter(requests.get, None), timeout=30)
        outputs = 0
        try:
            for reply in call:
                if reply.WhichOneof("kind") == "output":
                    outputs += 1
                elif reply.WhichOneof("kind") == "error":
                    return f"{outputs} outputs, then error: {reply.error.message[:70]}"
        except grpc.RpcError as err:
            return f"{outputs} outputs, then {err.code().name}: {err.details()[:70]}"
        finally:
            requests.put(None)
        return f"{outputs} outputs"

    resample = "nodes: [{id: r, node_type: FastResampleNode, params: {target_rate: 16000}}]"
    for rate in (4_294_967_295, 49_999_999):
        @case(f"audio declaring {rate:,} Hz into FastResampleNode", pb)
        def _(pb, server, rate=rate):
            return status_of(lambda: execute(pb, stub_of(pb, server), resample,
                                             [audio(pb, [0.0] * 16, rate)]))

    @case("audio at 767,999 Hz (allowed, awkward ratio) into FastResampleNode, 10 ms", pb)
    def _(pb, server):
        return status_of(lambda: execute(pb, stub_of(pb, server), resample,
                                         [audio(pb, [0.1] * 7680, 767_999)]))

    @case("audio with a NaN sample", pb)
    def _(pb, server):
        return status_of(lambda: execute(pb, stub_of(pb, server), resample,
                                         [audio(pb, [0.0, float("nan")], 16000)]))

    @case("params `gain_db: .inf`", pb)
    def _(pb, server):
        return status_of(lambda: execute(pb, stub_of(pb, server),
                                         "nodes: [{id: g, node_type: AudioGainNode, params: {gain_db: .inf}}]"))

    @case("a param key given twice", pb)
    def _(pb, server):
        return status_of(lambda: execute(pb, stub_of(pb, server),
                                         "nodes: [{id: c, node_type: AudioChunkerNode, "
                                         "params: {chunk_size: 1, chunk_size: 2}}]"))

    @case("19,000 idle TCP connections (no bytes), default flags; then one client", pb)
    def _(pb, server):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        sockets = idle_sockets(server, min(19_000, hard - 500))
        cpu = cpu_seconds(server.pid)
        time.sleep(3)
        busy = cpu_seconds(server.pid) - cpu
        asked = time.monotonic()
        state = health(server, timeout=15)
        answer_in = time.monotonic() - asked
        for s in sockets:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        return (f"{len(sockets)} sockets: server CPU {busy:.2f} s in 3 s; health "
                f"{'SERVING' if state == SERVING else state} in {answer_in * 1000:.0f} ms")

    @case("2 × 200 KB YAML nested 100,000 deep at once; health checked meanwhile", pb)
    def _(pb, server):
        deep = ("nodes: [{id: x, node_type: PassThrough, params: {a: " + "[" * 100_000
                + "]" * 100_000 + "}}]")
        answers = []
        threads = [threading.Thread(target=lambda: answers.append(status_of(
            lambda: execute(pb, stub_of(pb, server), deep)))) for _ in range(2)]
        for t in threads:
            t.start()
        asked = time.monotonic()
        state = health(server, timeout=5)
        answer_in = time.monotonic() - asked
        for t in threads:
            t.join()
        return (f"{answers[0]}; health {'SERVING' if state == SERVING else state} "
                f"in {answer_in * 1000:.0f} ms")

    def dense(n):
        return json.dumps({
            "nodes": [{"id": f"node{i}", "node_type": "PassThrough"} for i in range(n)],
            "connections": [{"from": f"node{i}", "to": f"node{j}"}
                            for i in range(n) for j in range(i + 1, n)]})

    @case("13 MB dense DAG (800 nodes, 319,600 edges), default limits", pb)
    def _(pb, server):
        manifest = dense(800)
        return f"{len(manifest) / 1e6:.1f} MB: " + status_of(
            lambda: execute(pb, stub_of(pb, server), manifest))

    @case("the same 13 MB DAG with limits raised (16 MB, 400k edges, 2M values), parsed "
          "and validated", pb,
          "--max-manifest-bytes", "16000000", "--max-manifest-connections", "400000",
          "--max-manifest-values", "2000000")
    def _(pb, server):
        manifest = dense(800)
        channel = grpc.insecure_channel(server.address, options=[
            ("grpc.max_send_message_length", 32 << 20)])
        return status_of(lambda: execute(pb, stub_of(pb, server, channel), manifest))

    @case("a 3 MB dense DAG (400 nodes, 79,800 edges), limits raised (4 MB, 100k edges), "
          "parsed and validated", pb,
          "--max-manifest-bytes", "4000000", "--max-manifest-connections", "100000")
    def _(pb, server):
        manifest = dense(400)
        channel = grpc.insecure_channel(server.address, options=[
            ("grpc.max_send_message_length", 32 << 20)])
        return status_of(lambda: execute(pb, stub_of(pb, server, channel), manifest))

    @case("100 streams on 2 connections each send 10 MB of a 12 MB message, then stall "
          "(default budget 256 MiB, timeout 60 s); a small Execute meanwhile", pb)
    def _(pb, server):
        attackers = [HalfSentMessages(server, 50, 12_000_000, 10_000_000) for _ in range(2)]
        for attacker in attackers:
            attacker.send_what_the_window_allows(quiet=3.0)
        held = server.peak_memory_mib()
        asked = time.monotonic()
        reply = execute(pb, stub_of(pb, server), "nodes: [{id: p, node_type: PassThrough}]",
                        [text(pb, "small")], timeout=5)
        small = time.monotonic() - asked
        codes = {}
        for attacker in attackers:
            for code, _ in attacker.statuses(50, timeout=90).values():
                codes[code] = codes.get(code, 0) + 1
        return (f"peak {held:.0f} MiB while stalled; small Execute "
                f"{'OK' if reply.outputs else 'FAILED'} in {small * 1000:.0f} ms; stalled "
                f"streams ended with grpc-status {codes}")

    @case("a stream that never sends `open` (default --open-timeout-secs 10)", pb)
    def _(pb, server):
        silent = queue.Queue()
        answer = status_of(lambda: list(stub_of(pb, server).StreamPipeline(
            iter(silent.get, None), timeout=30)))
        silent.put(None)
        return answer

    @case("abandoned stream whose Python node sleeps 60 s in `process`; time until the "
          "worker is gone", pb,
          "--allow-client-setting", "multiprocess.modules",
          "--allow-client-setting", "multiprocess.python_path")
    def _(pb, server):
        pid_file = os.path.join(tempfile.mkdtemp(), "pid")
        manifest = ("nodes: [{id: slow, node_type: SleepsWithPid, "
                    f"params: {{path: '{pid_file}'}}, "
                    f"multiprocess: {{modules: [rm_test_nodes], python_path: ['{TEST_NODES}']}}}}]")
        requests = queue.Queue()
        requests.put(messages.StreamRequest(open=messages.OpenSession(manifest=manifest)))
        requests.put(messages.StreamRequest(data=text(pb, "work")))
        call = stub_of(pb, server).StreamPipeline(iter(requests.get, None), timeout=120)
        next(call)
        while not (os.path.exists(pid_file) and open(pid_file).read()):
            time.sleep(0.02)
        pid = int(open(pid_file).read())
        time.sleep(0.5)
        call.cancel()
        cancelled = time.monotonic()
        while os.path.exists(f"/proc/{pid}"):
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        gone = time.monotonic() - cancelled
        requests.put(None)
        return f"worker gone {gone * 1000:.0f} ms after the client left"

    @case("endless Python generator behind a stream, 2,000 outputs read, then the client "
          "goes", pb,
          "--allow-client-setting", "multiprocess.modules",
          "--allow-client-setting", "multiprocess.python_path")
    def _(pb, server):
        manifest = ("nodes: [{id: gen, node_type: Endless, "
                    f"multiprocess: {{modules: [rm_test_nodes], python_path: ['{TEST_NODES}']}}}}]")
        requests = queue.Queue()
        requests.put(messages.StreamRequest(open=messages.OpenSession(manifest=manifest)))
        requests.put(messages.StreamRequest(data=text(pb, "x")))
        call = stub_of(pb, server).StreamPipeline(iter(requests.get, None), timeout=120)
        outputs = 0
        for reply in call:
            if reply.WhichOneof("kind") == "output":
                outputs += 1
                if outputs == 2000:
                    break
        time.sleep(2)  # the generator keeps running against a full channel
        call.cancel()
        requests.put(None)
        return f"{outputs} outputs delivered while the generator ran"

    @case("SIGTERM while a client holds a health Watch and a session is open "
          "(--shutdown-grace-secs 2); time to exit", pb, "--shutdown-grace-secs", "2",
          ends_server=True)
    def _(pb, server):
        requests = queue.Queue()
        requests.put(messages.StreamRequest(open=messages.OpenSession(
            manifest="nodes: [{id: p, node_type: PassThrough}]")))
        stream = stub_of(pb, server).StreamPipeline(iter(requests.get, None), timeout=60)
        next(stream)
        channel = grpc.insecure_channel(server.address)
        watch = channel.unary_stream("/grpc.health.v1.Health/Watch",
                                     request_serializer=lambda m: m,
                                     response_deserializer=lambda m: m)
        updates = watch(b"", timeout=60)
        next(updates)
        server.process.send_signal(signal.SIGTERM)
        flipped = next(updates)
        code = server.process.wait(timeout=30)
        requests.put(None)
        state = "NOT_SERVING" if flipped == b"\x08\x02" else repr(flipped)
        return f"'' went {state}; exit {code}"

    print()
    print("| Case | Answer | Time | Memory | Serving after |")
    print("|---|---|---|---|---|")
    for name, answer, elapsed, grew, peak, alive in ROWS:
        print(f"| {name} | {answer} | {elapsed:.3f} s | +{grew:.1f} MiB (peak {peak:.0f} MiB) | {alive} |")


if __name__ == "__main__":
    main()
