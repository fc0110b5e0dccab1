"""Python nodes the multiprocess executor's tests run in real worker processes."""

import ctypes
import functools
import os
import signal
import sys
import time

import numpy as np

import remotemedia


@remotemedia.node("InspectAudio")
class InspectAudio(remotemedia.Node):
    """Reports how an audio input reached Python: the array's flags and the memory mapping
    its data lives in (from /proc/self/maps)."""

    def process(self, data):
        samples = data.samples
        address = samples.__array_interface__["data"][0]
        mapping = None
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split()
                start, end = (int(x, 16) for x in fields[0].split("-"))
                if start <= address < end:
                    mapping = fields[5] if len(fields) > 5 else ""
                    break
        return {
            "type": type(samples).__name__,
            "dtype": str(samples.dtype),
            "owndata": bool(samples.flags.owndata),
            "writeable": bool(samples.flags.writeable),
            "mapping": mapping,
            "sum": float(samples.sum()),
        }


@remotemedia.node("ParamsAndEnv")
class ParamsAndEnv(remotemedia.Node):
    def process(self, data):
        return {"node_id": self.node_id, "params": self.params,
                "env": os.environ.get("RM_TEST_VALUE"), "pid": os.getpid()}


@remotemedia.node("Raises")
class Raises(remotemedia.Node):
    def process(self, data):
        if data == "boom":
            raise ValueError("bad input: boom")
        return data


@remotemedia.node("FailsToInitialize")
class FailsToInitialize(remotemedia.Node):
    def initialize(self):
        raise RuntimeError("model file missing")


@remotemedia.node("SlowToInitialize")
class SlowToInitialize(remotemedia.Node):
    def initialize(self):
        time.sleep(30)


@remotemedia.node("Crashes")
class Crashes(remotemedia.Node):
    def process(self, data):
        if data == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if data == "segfault":
            ctypes.string_at(0)
        if data == "exit":
            os._exit(3)
        return data


@remotemedia.node("Hangs")
class Hangs(remotemedia.Node):
    def process(self, data):
        if data == "hang":
            time.sleep(60)
        return data


@remotemedia.node("Fans")
class Fans(remotemedia.Node):
    """Emits `n` numbered items per input (a generator)."""

    def process(self, data):
        for i in range(int(data["n"])):
            yield {"i": i}


@remotemedia.node("Buffers")
class Buffers(remotemedia.Node):
    """Keeps every text until end of stream, then emits them joined."""

    def initialize(self):
        self.parts = []

    def process(self, data):
        self.parts.append(data)

    def flush(self):
        return " ".join(self.parts)


@remotemedia.node("KeepsInputs")
class KeepsInputs(remotemedia.Node):
    """Holds on to every input array (a node that accumulates views) and reports the sum."""

    def initialize(self):
        self.kept = []

    def process(self, data):
        self.kept.append(data.samples)
        return float(sum(float(a[0]) for a in self.kept))


@remotemedia.node("WritesPid")
class WritesPid(remotemedia.Node):
    """Writes its pid to params['path'] at initialize; passes items through."""

    def initialize(self):
        with open(self.params["path"], "w") as f:
            f.write(str(os.getpid()))

    def process(self, data):
        return data


@remotemedia.node("MarksCleanup")
class MarksCleanup(remotemedia.Node):
    def process(self, data):
        return data

    def cleanup(self):
        with open(self.params["path"], "w") as f:
            f.write("cleaned up")


@remotemedia.node("AsyncUpper")
class AsyncUpper(remotemedia.Node):
    async def initialize(self):
        self.prefix = self.params.get("prefix", "")

    async def process(self, data):
        yield self.prefix + data.upper()


@remotemedia.node("Scales")
class Scales(remotemedia.Node):
    """Returns a new audio item: the input times params['factor'] (a computed payload)."""

    def process(self, data):
        return remotemedia.Audio(np.ascontiguousarray(data.samples * self.params["factor"], dtype=np.float32),
                                 data.sample_rate, data.channels, data.stream_id, data.timestamp_us)


@remotemedia.node("BadOutput")
class BadOutput(remotemedia.Node):
    def process(self, data):
        return object()


@remotemedia.node("HangsInCleanup")
class HangsInCleanup(remotemedia.Node):
    def initialize(self):
        with open(self.params["path"], "w") as f:
            f.write(str(os.getpid()))

    def cleanup(self):
        time.sleep(60)


@remotemedia.node("Endless")
class Endless(remotemedia.Node):
    """A generator that never ends: `<item>-0`, `<item>-1`, ..."""

    def process(self, data):
        i = 0
        while True:
            yield f"{data}-{i}"
            i += 1


@remotemedia.node("SleepsWithPid")
class SleepsWithPid(remotemedia.Node):
    """Writes its pid to params['path'] at initialize; sleeps a minute on every item."""

    def initialize(self):
        with open(self.params["path"], "w") as f:
            f.write(str(os.getpid()))

    def process(self, data):
        time.sleep(60)
        return data


@remotemedia.node("PrintsWithoutNewline")
class PrintsWithoutNewline(remotemedia.Node):
    """Writes params['megabytes'] MB to stdout without a newline, then returns its input."""

    def process(self, data):
        chunk = "x" * (1 << 20)
        for _ in range(int(self.params["megabytes"])):
            sys.stdout.write(chunk)
        sys.stdout.flush()
        return data


#: Pids of this process's "model" loads (at most one per process).
_LOADS = []


@functools.lru_cache(maxsize=None)
def _shared_model():
    _LOADS.append(os.getpid())
    return object()


@remotemedia.node("SharedCounter", share=True)
class SharedCounter(remotemedia.Node):
    """Shares its process: one "model" per process, a count per instance. Text `raise`
    raises in this instance; `crash` ends the whole process with status 3; an instance
    with node id `bad` fails to initialize."""

    def initialize(self):
        if self.node_id == "bad":
            raise RuntimeError("this instance cannot start")
        self.model = _shared_model()
        self.count = 0

    def process(self, data):
        if data == "raise":
            raise ValueError("this instance failed")
        if data == "crash":
            os._exit(3)
        self.count += 1
        return {"pid": os.getpid(), "count": self.count, "loads": len(_LOADS), "item": data}


@remotemedia.node("BatchCounter", share=4)
class BatchCounter(SharedCounter):
    """SharedCounter with a batch hook, at most four instances per process; each output
    says how many items its batch held."""

    @classmethod
    def process_batch(cls, calls):
        results = []
        for node, data in calls:
            try:
                out = node.process(data)
                out["batch"] = len(calls)
                results.append(out)
            except Exception as exc:
                results.append(exc)
        return results
