"""`ChunkLoudness`: the loudness of each audio chunk, computed with numpy inside the
node's container (the example's Docker node)."""

import sys

import numpy as np

import remotemedia


@remotemedia.node("ChunkLoudness")
class ChunkLoudness(remotemedia.Node):
    """For each audio chunk: its RMS level in dBFS, its peak, how many samples it has, and
    which interpreter and numpy computed it."""

    def process(self, data):
        samples = np.asarray(data.samples, dtype=np.float64)
        rms = float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0
        peak = float(np.max(np.abs(samples))) if samples.size else 0.0
        floor = 1e-6
        return {
            "rms_dbfs": round(20.0 * np.log10(max(rms, floor)), 2),
            "peak_dbfs": round(20.0 * np.log10(max(peak, floor)), 2),
            "samples": int(samples.size),
            "sample_rate": data.sample_rate,
            "python": sys.version.split()[0],
            "numpy": np.__version__,
        }
