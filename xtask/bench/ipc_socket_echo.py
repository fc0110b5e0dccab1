"""The Unix-socket baseline of `cargo xtask bench ipc`: the same EchoNode, reached the
plain way — a length-prefixed frame over a Unix stream socket, a `struct` header and the
raw float32 samples, decoded into a numpy array and encoded back.

    python ipc_socket_echo.py SOCKET_PATH

Frame (both directions): struct '<IIQ' (sample_rate, channels, payload bytes), then the
payload. The received payload is read with recv_into into one buffer and viewed by numpy
(no copy beyond the kernel's); the reply is sent straight from the array's memory.
"""

import socket
import struct
import sys

import numpy as np

import remotemedia
from remotemedia_nodes.echo import EchoNode

HEADER = struct.Struct("<IIQ")


def recv_exact(conn, view):
    got = 0
    while got < len(view):
        n = conn.recv_into(view[got:])
        if n == 0:
            raise EOFError
        got += n


def main(path):
    node = EchoNode()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    print("ready", flush=True)
    conn, _ = server.accept()
    header = bytearray(HEADER.size)
    try:
        while True:
            recv_exact(conn, memoryview(header))
            rate, channels, size = HEADER.unpack(header)
            payload = bytearray(size)
            recv_exact(conn, memoryview(payload))
            audio = remotemedia.Audio(np.frombuffer(payload, dtype=np.float32), rate, channels)
            out = node.process(audio)
            samples = out.samples
            conn.sendall(HEADER.pack(out.sample_rate, out.channels, samples.nbytes))
            conn.sendall(memoryview(samples).cast("B"))
    except EOFError:
        pass


if __name__ == "__main__":
    main(sys.argv[1])
