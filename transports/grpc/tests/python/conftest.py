"""Shared by the grpcio suites: stubs generated from our .proto at test time, and the
real server binary started with given flags."""

import importlib
import os
import resource
import signal
import subprocess
import sys
import threading

import pytest
from grpc_tools import protoc

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTO = os.path.join(PROTO_ROOT, "remotemedia", "v1", "pipeline.proto")


def generate_stubs(out):
    """Generates the Python stubs from the .proto into `out` and imports them."""
    result = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{os.path.join(os.path.dirname(protoc.__file__), '_proto')}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            PROTO,
        ]
    )
    assert result == 0, "protoc failed"
    sys.path.insert(0, str(out))
    messages = importlib.import_module("remotemedia.v1.pipeline_pb2")
    services = importlib.import_module("remotemedia.v1.pipeline_pb2_grpc")
    return messages, services


@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """The generated message and service modules."""
    return generate_stubs(tmp_path_factory.mktemp("stubs"))


class Server:
    """The real `remotemedia-grpc-server` on a free port of 127.0.0.1."""

    def __init__(self, *extra_args, env=None, nofile=None):
        binary = os.environ.get("REMOTEMEDIA_GRPC_SERVER")
        assert binary, "set REMOTEMEDIA_GRPC_SERVER to the remotemedia-grpc-server binary"
        self.process = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", *extra_args],
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            # `nofile`: the server's descriptor limit (soft and hard).
            preexec_fn=(lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))
            if nofile else None,
        )
        self.log = []
        while True:
            line = self.process.stderr.readline()
            assert line, "the server exited before listening: " + "".join(self.log)
            self.log.append(line)
            if "listening on" in line:
                break
        self.address = line.strip().rsplit(" ", 1)[-1]
        # Keep draining the log so the server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.process.stderr:
            self.log.append(line)

    def open_descriptors(self):
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    @property
    def pid(self):
        return self.process.pid

    def peak_memory_mib(self):
        with open(f"/proc/{self.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


@pytest.fixture
def start_server():
    """Starts servers with the given flags; stops them (SIGTERM) after the test."""
    started = []

    def start(*args, env=None, nofile=None):
        server = Server(*args, env=env, nofile=nofile)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()


