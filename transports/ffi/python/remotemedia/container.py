"""The agent of a RemoteMedia worker container (the Docker executor).

Each container the runtime starts runs `python -m remotemedia.container SOCKET` as its
first process. The agent listens on the Unix socket SOCKET, in the one directory the
container shares with the runtime, and starts node workers (`python -m remotemedia.worker`,
the same program the multiprocess executor runs) when the runtime asks, so one container
serves many node instances of many sessions.

Every connection starts with one JSON line saying what it is for:

* `{"kind": "lifeline"}` — the runtime's own connection. The agent answers each `ping`
  line with `pong`; when the connection ends (the runtime exited or was killed), the
  agent kills every worker and exits, which stops the container.
* `{"kind": "worker", "assignment": {...}}` — start a worker and hand it the assignment
  (the line the multiprocess executor writes on a worker's stdin). The agent answers
  `P <pid>` once the worker runs, relays everything the worker prints as `O <line>`
  lines, and ends with `S {"code": .., "signal": .., "oom_kills": ..}` when the worker
  has exited (`oom_kills`: how many processes the kernel's OOM killer ended in this
  container meanwhile). When the runtime closes the connection, the worker is killed
  with its process group.

One interpreter is kept started and waiting for an assignment, so a node starts without
paying for interpreter start-up and imports.
"""

import json
import os
import select
import signal
import socket
import sys
import threading

WORKER_COMMAND = [sys.executable, "-u", "-m", "remotemedia.worker"]
# What the agent waits for a worker's last output after it exited (a process it started
# may keep the pipe open).
OUTPUT_DRAIN_SECONDS = 2.0
MAX_LINE = 4096

_children = {}          # pid -> Spawned
_children_lock = threading.Lock()
_children_started = threading.Event()


def _oom_kills():
    """OOM kills in this container's memory cgroup so far (v1 or v2), or 0."""
    for path in ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control"):
        try:
            with open(path) as f:
                for line in f:
                    name, _, value = line.partition(" ")
                    if name == "oom_kill":
                        return int(value)
        except OSError:
            continue
    return 0


class Spawned:
    """A worker interpreter: started at once, given its assignment later."""

    def __init__(self):
        in_read, self.stdin = os.pipe()
        self.output, out_write = os.pipe()
        self.exited = threading.Event()
        self.status = None
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with _children_lock:
            self.pid = os.posix_spawn(
                WORKER_COMMAND[0], WORKER_COMMAND, env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, in_read, 0),
                    (os.POSIX_SPAWN_DUP2, out_write, 1),
                    (os.POSIX_SPAWN_DUP2, out_write, 2),
                    (os.POSIX_SPAWN_CLOSE, self.stdin),
                    (os.POSIX_SPAWN_CLOSE, self.output),
                ],
                setsid=True,
            )
            _children[self.pid] = self
        _children_started.set()
        os.close(in_read)
        os.close(out_write)

    def kill(self):
        if not self.exited.is_set():
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _reap():
    """Reaps every child (the agent is the container's first process, so orphans of the
    workers come here too) and records the workers' statuses."""
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            _children_started.wait()
            _children_started.clear()
            continue
        except InterruptedError:
            continue
        with _children_lock:
            spawned = _children.pop(pid, None)
        if spawned is not None:
            spawned.status = status
            spawned.exited.set()


class Pool:
    """Keeps one started interpreter ready."""

    def __init__(self):
        self._lock = threading.Lock()
        self._ready = None

    def take(self):
        with self._lock:
            spawned, self._ready = self._ready, None
        if spawned is None or spawned.exited.is_set():
            spawned = Spawned()
        threading.Thread(target=self._refill, daemon=True).start()
        return spawned

    def _refill(self):
        with self._lock:
            if self._ready is None:
                try:
                    self._ready = Spawned()
                except OSError as exc:
                    print(f"remotemedia agent: cannot start a spare worker: {exc}", file=sys.stderr)

    def kill(self):
        with self._lock:
            if self._ready is not None:
                self._ready.kill()


POOL = Pool()
_served = []            # Spawned workers of open connections
_served_lock = threading.Lock()


def _send(conn, line):
    try:
        conn.sendall(line.encode("utf-8", "replace") + b"\n")
        return True
    except OSError:
        return False


def _relay_output(spawned, conn, done):
    """Forwards the worker's output lines to the runtime until the pipe ends."""
    pending = b""
    while True:
        try:
            chunk = os.read(spawned.output, 65536)
        except OSError:
            break
        if not chunk:
            break
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            _send(conn, "O " + line[:MAX_LINE].decode("utf-8", "replace"))
        if len(pending) > MAX_LINE:
            _send(conn, "O " + pending[:MAX_LINE].decode("utf-8", "replace"))
            pending = b""
    if pending:
        _send(conn, "O " + pending[:MAX_LINE].decode("utf-8", "replace"))
    os.close(spawned.output)
    done.set()


def _serve_worker(conn, assignment):
    spawned = POOL.take()
    with _served_lock:
        _served.append(spawned)
    oom_before = _oom_kills()
    try:
        os.write(spawned.stdin, (json.dumps(assignment) + "\n").encode("utf-8"))
    except OSError:
        pass  # it died already; its status says how
    _send(conn, f"P {spawned.pid}")
    relayed = threading.Event()
    threading.Thread(target=_relay_output, args=(spawned, conn, relayed), daemon=True).start()
    # Wait for the runtime to hang up (then kill the worker) or the worker to exit.
    exit_read, exit_write = os.pipe()
    threading.Thread(target=lambda: (spawned.exited.wait(), os.write(exit_write, b"x")),
                     daemon=True).start()
    while not spawned.exited.is_set():
        readable, _, _ = select.select([conn, exit_read], [], [])
        if conn in readable:
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                spawned.kill()
                break
    spawned.exited.wait()
    relayed.wait(OUTPUT_DRAIN_SECONDS)
    status = spawned.status or 0
    report = {
        "code": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
        "oom_kills": max(0, _oom_kills() - oom_before),
    }
    _send(conn, "S " + json.dumps(report))
    os.close(spawned.stdin)
    os.close(exit_read)
    os.close(exit_write)
    with _served_lock:
        _served.remove(spawned)


def _shut_down():
    POOL.kill()
    with _served_lock:
        for spawned in _served:
            spawned.kill()
    os._exit(0)


def _serve_lifeline(conn):
    reader = conn.makefile("rb")
    for line in reader:
        if line.strip() == b"ping":
            _send(conn, "pong")
    # The runtime is gone: so is every session this container served.
    _shut_down()


def _serve(conn):
    try:
        reader = conn.makefile("rb")
        first = reader.readline(1 << 20)
        request = json.loads(first or b"{}")
        kind = request.get("kind")
        if kind == "lifeline":
            _serve_lifeline(conn)
        elif kind == "worker":
            _serve_worker(conn, request["assignment"])
        else:
            _send(conn, f"E unknown request {kind!r}")
    except Exception as exc:  # one bad connection must not stop the agent
        _send(conn, f"E {type(exc).__name__}: {exc}")
    finally:
        conn.close()


def main():
    if len(sys.argv) != 2:
        print("usage: python -m remotemedia.container SOCKET", file=sys.stderr)
        return 2
    path = sys.argv[1]
    signal.signal(signal.SIGTERM, lambda *_: _shut_down())
    threading.Thread(target=_reap, name="reaper", daemon=True).start()
    POOL._refill()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener.bind(path)
    listener.listen(128)
    print(f"remotemedia agent ready on {path} (python {sys.version.split()[0]})", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
