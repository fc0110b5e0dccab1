"""The worker process of RemoteMedia's multiprocess executor.

The runtime starts `python -m remotemedia.worker` for a node type. The worker imports the
runtime (numpy, the extension) first, so a started worker is warm, then reads one JSON line
on stdin — its assignment:

    {"channel": {...}, "node_type": "MyNode", "modules": ["my_nodes"],
     "python_path": ["./nodes"], "source": null, "env": {...}}

It applies `python_path` and `env`, runs `source` (a module's code given inline in the
manifest) and imports `modules`, finds the node class (registered with
`@remotemedia.node`, or published by an installed package in the `remotemedia.nodes`
entry-point group) and tells the runtime what the class declares (`share`: how many
instances one process may host). Then it serves: the runtime opens instances — one per
session using the node, each built with `(node_id=..., params=...)` and initialized, each
with its own state — sends them items, flushes them and closes them (`cleanup()`), until
it shuts the process down. Calls are served one at a time in arrival order; when several
instances' items wait at once and the class has `process_batch`, they go to it in one
call. Anything that goes wrong is reported to the runtime with the Python traceback, for
the instance it happened in.

Stdin stays open while the runtime lives: end of file means the runtime is gone, and the
worker exits.
"""

import json
import os
import sys
import threading

from . import sdk
from ._hosting import ENTRY_POINT_GROUP, describe, find_node_class  # noqa: F401 (re-exported)
from ._remotemedia import WorkerChannel


def _exit_when_stdin_closes():
    # os.read on the descriptor, not sys.stdin: a thread blocked inside a buffered reader
    # would hold its lock through interpreter shutdown.
    try:
        while os.read(0, 65536):
            pass
    finally:
        os._exit(0)


def _read_line(fd):
    """The assignment line from `fd` (the runtime writes nothing after it)."""
    data = bytearray()
    while b"\n" not in data:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    return data.split(b"\n", 1)[0].decode("utf-8")


def _describe(exc):
    """`TypeName: message` and the traceback, from the node's own code on."""
    return describe(exc, (__file__,))


class Instances:
    """The node instances this process hosts, as `WorkerChannel.serve` drives them."""

    def __init__(self, cls):
        self.cls = cls
        self.calls = {}
        self.batchable = callable(getattr(cls, "process_batch", None))

    def open(self, instance, payload):
        spec = json.loads(payload)
        node = self.cls(node_id=spec.get("node_id"), params=spec.get("params") or {})
        calls = sdk.NodeCalls(node)
        calls.initialize()
        self.calls[instance] = calls
        return json.dumps({"instance": instance, "node_id": spec.get("node_id"),
                           "session_id": spec.get("session_id"), "hosted": len(self.calls)})

    def process(self, instance, item):
        return self.calls[instance].process(item)

    def flush(self, instance):
        return self.calls[instance].flush()

    def batch(self, items):
        """One `process_batch` call for items of several instances: a list with, per item,
        the iterator of its outputs or the exception its instance raised."""
        calls = [self.calls[instance] for instance, _ in items]
        results = self.cls.process_batch([(c.node, item) for c, (_, item) in zip(calls, items)])
        results = list(results)
        return [r if isinstance(r, BaseException) else c.outputs(r) for c, r in zip(calls, results)]

    def close(self, instance):
        calls = self.calls.pop(instance, None)
        if calls is None:
            return
        try:
            calls.cleanup()
        finally:
            calls.close()

    def close_all(self):
        status = 0
        for instance in list(self.calls):
            try:
                self.close(instance)
            except BaseException as exc:
                # The runtime has stopped listening; the report goes to the log.
                message, trace = _describe(exc)
                print(f"cleanup() of {self.cls.node_type} failed: {message}\n{trace}", file=sys.stderr)
                status = 1
        return status


def main():
    line = _read_line(0)
    if not line.strip():
        return 0  # the runtime went away before assigning a node
    assignment = json.loads(line)
    threading.Thread(target=_exit_when_stdin_closes, name="stdin-watch", daemon=True).start()
    for path in reversed(assignment.get("python_path") or []):
        sys.path.insert(0, os.path.abspath(path))
    os.environ.update(assignment.get("env") or {})

    channel = WorkerChannel(json.dumps(assignment["channel"]))
    node_type = assignment["node_type"]
    try:
        cls = find_node_class(node_type, assignment.get("modules") or [], assignment.get("source"))
        share = sdk.share_of(cls)
    except BaseException as exc:  # everything, SystemExit from node code included
        message, trace = _describe(exc)
        channel.fail(message, trace, "import")
        # Stay until the runtime has read the report and says goodbye.
        channel.await_shutdown(10.0)
        return 1

    channel.ready(json.dumps({
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "node_class": f"{cls.__module__}.{cls.__qualname__}",
        "share": share,
    }))
    instances = Instances(cls)
    try:
        channel.serve(instances)
    finally:
        status = instances.close_all()
    return status


if __name__ == "__main__":
    sys.exit(main())
