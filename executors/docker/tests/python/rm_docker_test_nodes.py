"""Test nodes for the Docker executor's tests, mounted read-only into test containers."""

import json
import os
import socket
import sys

import remotemedia


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as exc:
        return f"<{type(exc).__name__}>"


def _status_field(name):
    for line in _read("/proc/self/status").splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def _cgroup_value(*paths):
    for path in paths:
        text = _read(path).strip()
        if not text.startswith("<"):
            return text
    return None


@remotemedia.node("Posture")
class Posture(remotemedia.Node):
    """Reports what the worker can see and do."""

    def process(self, data):
        mounts = [line.split()[:4] for line in _read("/proc/mounts").splitlines()]
        try:
            with open("/usr/rm-write-test", "w") as f:
                f.write("x")
            root_writable = True
        except OSError:
            root_writable = False
        interfaces = [line.split(":")[0].strip() for line in _read("/proc/net/dev").splitlines()[2:]]
        try:
            s = socket.create_connection(("1.1.1.1", 53), timeout=1)
            s.close()
            network = True
        except OSError:
            network = False
        return {
            "uid": os.getuid(),
            "gid": os.getgid(),
            "cap_eff": _status_field("CapEff"),
            "no_new_privs": _status_field("NoNewPrivs"),
            "root_writable": root_writable,
            "tmp": next((m for m in mounts if m[1] == "/tmp"), None),
            "domain": next((m for m in mounts if m[1] == "/domain"), None),
            "mount_points": sorted({m[1] for m in mounts}),
            "interfaces": interfaces,
            "network": network,
            "host_marker_visible": os.path.exists(data) if isinstance(data, str) else None,
            "dev": sorted(os.listdir("/dev")),
            "memory_limit": _cgroup_value("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"),
            "pids_limit": _cgroup_value("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max"),
            "python": sys.version.split()[0],
            "pid": os.getpid(),
        }


@remotemedia.node("Counter")
class Counter(remotemedia.Node):
    """Counts the items it has seen: state that must stay per node instance."""

    def initialize(self):
        self.count = 0

    def process(self, data):
        self.count += 1
        return {"count": self.count, "pid": os.getpid(), "python": sys.version.split()[0]}


@remotemedia.node("Hog")
class Hog(remotemedia.Node):
    """Allocates memory without end when it gets an item."""

    def process(self, data):
        blocks = []
        while True:
            blocks.append(bytearray(16 << 20))
