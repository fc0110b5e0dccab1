"""A noise gate written with the standard library only, so the same node runs unchanged in
a worker process (`remotemedia run`, the gRPC server) and in a browser tab (the WASM engine
runs it in Pyodide, where there is no numpy).

Portable habits: iterate over `audio.samples` and take `float(x)` of each sample (numpy
gives float32 scalars, the browser's memoryview gives Python floats; `float()` makes both
the same double), and build audio from `array.array("f")`, which both accept.
"""

import array
import math

import remotemedia


@remotemedia.node("NoiseGateNode")
class NoiseGateNode(remotemedia.Node):
    """Mutes audio whose level stays below `threshold_db` (dBFS RMS of each input) for
    longer than `hold_ms` after the last loud input; passes everything else unchanged."""

    def initialize(self):
        self.threshold_db = float(self.params.get("threshold_db", -45.0))
        self.hold_us = int(float(self.params.get("hold_ms", 200.0)) * 1000)
        self.open_until_us = -1

    def process(self, data):
        if not isinstance(data, remotemedia.Audio):
            return data
        count = len(data.samples)
        energy = 0.0
        for x in data.samples:
            value = float(x)
            energy += value * value
        rms_db = 10.0 * math.log10(energy / count) if count and energy > 0.0 else -120.0
        end_us = data.timestamp_us + round(data.frames * 1_000_000 / data.sample_rate)
        if rms_db >= self.threshold_db:
            self.open_until_us = end_us + self.hold_us
        if data.timestamp_us < self.open_until_us:
            return data
        muted = array.array("f", bytes(4 * count))
        return remotemedia.Audio(muted, data.sample_rate, data.channels, data.stream_id, data.timestamp_us)
