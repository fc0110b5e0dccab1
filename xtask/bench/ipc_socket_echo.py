"""The Unix-socket baselines of `cargo xtask bench ipc`: the same EchoNode, reached the
plain ways over a Unix stream socket.

    python ipc_socket_echo.py SOCKET_PATH struct|pickle

- `struct`: each frame is struct '<IIQ' (sample_rate, channels, payload bytes) then the raw
  float32 payload, both ways. The payload is read with recv_into into one buffer and
  viewed by numpy (no copy beyond the kernel's); the echo sends that array back from its
  own memory. (The buffer is writable, and `remotemedia.Audio` copies writable memory, so
  the echo is done here rather than by EchoNode: the baseline measures the socket path,
  not a copy a plain server would not make.)
- `pickle`: each frame is an 8-byte little-endian length, then a pickle (protocol 5) of
  `{"sample_rate", "channels", "samples": bytes}`, both ways — what a Python-first
  framework does between processes.
"""

import pickle
import socket
import struct
import sys

import numpy as np

import remotemedia
from remotemedia_nodes.echo import EchoNode

HEADER = struct.Struct("<IIQ")
LENGTH = struct.Struct("<Q")


def recv_exact(conn, view):
    got = 0
    while got < len(view):
        n = conn.recv_into(view[got:])
        if n == 0:
            raise EOFError
        got += n


def serve_struct(conn):
    header = bytearray(HEADER.size)
    while True:
        recv_exact(conn, memoryview(header))
        rate, channels, size = HEADER.unpack(header)
        payload = bytearray(size)
        recv_exact(conn, memoryview(payload))
        samples = np.frombuffer(payload, dtype=np.float32)
        conn.sendall(HEADER.pack(rate, channels, samples.nbytes))
        conn.sendall(memoryview(samples).cast("B"))


def serve_pickle(conn, node):
    length = bytearray(LENGTH.size)
    while True:
        recv_exact(conn, memoryview(length))
        (size,) = LENGTH.unpack(length)
        body = bytearray(size)
        recv_exact(conn, memoryview(body))
        frame = pickle.loads(body)
        audio = remotemedia.Audio(np.frombuffer(frame["samples"], dtype=np.float32),
                                  frame["sample_rate"], frame["channels"])
        out = node.process(audio)
        reply = pickle.dumps({"sample_rate": out.sample_rate, "channels": out.channels,
                              "samples": out.samples.tobytes()}, protocol=5)
        conn.sendall(LENGTH.pack(len(reply)))
        conn.sendall(reply)


def main(path, mode):
    node = EchoNode()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    print("ready", flush=True)
    conn, _ = server.accept()
    try:
        serve_pickle(conn, node) if mode == "pickle" else serve_struct(conn)
    except EOFError:
        pass


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "struct")
