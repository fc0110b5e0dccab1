"""`cargo xtask bench ffi`: the remotemedia wheel driven from Python, side by side with
doing the same work in pure Python libraries, in one run.

1. Call overhead: `remotemedia.execute` on a one-node PassThrough pipeline (a whole
   pipeline run per call: validate, start, send, flush, collect), next to a streaming
   session's per-frame send+recv round trip.
2. Resampling 60 s of 44.1 kHz audio to 16 kHz in 20 ms chunks: a FastResampleNode
   session driven from Python vs soxr.ResampleStream vs scipy.signal.resample_poly.
"""

import time

import numpy as np
import scipy.signal
import soxr

import remotemedia

RUNS = 3
SECONDS = 60.0


def best(fn, runs=RUNS):
    t = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - start)
    return t


def main():
    passthrough = {"nodes": [{"id": "echo", "node_type": "PassThrough"}]}
    n = 2000
    t_text = best(lambda: [remotemedia.execute(passthrough, "x") for _ in range(n)]) / n
    frame = remotemedia.Audio(np.zeros(960, dtype=np.float32), 48000)
    t_audio = best(lambda: [remotemedia.execute(passthrough, frame) for _ in range(n)]) / n
    session = remotemedia.open_session(passthrough)

    def round_trips():
        for _ in range(n):
            session.send(frame)
            session.recv()

    t_session = best(round_trips) / n
    session.close()

    def plain_call():
        for _ in range(n):
            np.copy(frame.samples)

    t_plain = best(plain_call) / n

    print("| call | per call |")
    print("|---|---|")
    print(f"| remotemedia.execute(PassThrough, text) | {t_text * 1e6:.1f} µs |")
    print(f"| remotemedia.execute(PassThrough, 20 ms 48 kHz Audio) | {t_audio * 1e6:.1f} µs |")
    print(f"| session.send + session.recv, 20 ms 48 kHz Audio | {t_session * 1e6:.1f} µs |")
    print(f"| for scale: numpy.copy of the same 960 samples | {t_plain * 1e6:.1f} µs |")

    rate_in, rate_out = 44100, 16000
    total = int(rate_in * SECONDS)
    signal = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(total) / rate_in)).astype(np.float32)
    chunks = [signal[i:i + 882] for i in range(0, total, 882)]
    manifest = {"nodes": [{"id": "resample", "node_type": "FastResampleNode",
                           "params": {"target_rate": rate_out, "quality": "Medium"}}]}

    def via_remotemedia():
        frames = 0
        with remotemedia.open_session(manifest) as s:
            for i, c in enumerate(chunks):
                s.send(remotemedia.Audio(c, rate_in, timestamp_us=i * 20000))
                while (out := s.recv()) is not None:
                    frames += out.data.frames
        for out in s:
            frames += out.data.frames
        assert frames == round(total * rate_out / rate_in), frames

    def via_soxr(quality):
        def run():
            stream = soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality=quality)
            for c in chunks:
                stream.resample_chunk(c)
            stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        return run

    def via_scipy():
        for c in chunks:
            scipy.signal.resample_poly(c, 160, 441)

    rows = [
        ("remotemedia FastResampleNode (Medium) session, driven from Python", best(via_remotemedia)),
        ("soxr.ResampleStream HQ", best(via_soxr("HQ"))),
        ("soxr.ResampleStream VHQ", best(via_soxr("VHQ"))),
        ("scipy.signal.resample_poly per chunk", best(via_scipy, runs=1)),
    ]
    print()
    print("| 60 s of 44.1 kHz -> 16 kHz in 20 ms chunks | x realtime | vs remotemedia |")
    print("|---|---|---|")
    ours = rows[0][1]
    for name, t in rows:
        print(f"| {name} | {SECONDS / t:.0f}x | {t / ours:.2f} |")


if __name__ == "__main__":
    main()
