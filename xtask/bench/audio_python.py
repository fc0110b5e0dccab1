"""The Python way of doing what the native audio nodes do, on the same signals.

Run by `cargo xtask bench audio` after the Rust side wrote the signals:
    python audio_python.py <work-dir>
Writes <work-dir>/python.json. Every case streams 60 s of audio in 20 ms chunks, the way a
Python pipeline node would receive it, and reports the best of 5 runs.
"""

import json
import os
import sys
import time

import numpy as np
import scipy.signal
import soxr
import webrtcvad

RUNS = 5
SECONDS = 60.0


def load(work, name):
    return np.fromfile(os.path.join(work, name + ".f32"), dtype="<f4")


def chunks(signal, frames, channels=1):
    step = frames * channels
    return [signal[i : i + step] for i in range(0, len(signal), step)]


def best_of(fn, *args):
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - started)
    return best


def db(x):
    return 20.0 * np.log10(max(x, 1e-6))


def level(cs):
    for c in cs:
        rms = float(np.sqrt(np.mean(np.square(c, dtype=np.float64))))
        peak = float(np.max(np.abs(c)))
        rms_db, peak_db = db(rms), db(peak)
        _ = {"rms_db": rms_db, "peak_db": peak_db, "is_silence": rms_db < -60, "is_low_volume": -60 <= rms_db < -20}


def gain(cs):
    g = np.float32(10 ** (6.0 / 20))
    for c in cs:
        np.clip(c * g, -1.0, 1.0)


def chunk(packets):
    buffer = np.zeros(0, dtype=np.float32)
    out = []
    for p in packets:
        buffer = np.concatenate([buffer, p])
        while len(buffer) >= 320:
            out.append(buffer[:320])
            buffer = buffer[320:]
    out.append(buffer)


def clipping(cs):
    for c in cs:
        ratio = np.count_nonzero(np.abs(c) >= 0.99) * 100.0 / len(c)
        _ = ratio > 1.0


def silence(cs):
    window = 480  # 10 ms at 48 kHz
    carry = np.zeros(0, dtype=np.float32)
    for c in cs:
        carry = np.concatenate([carry, c])
        n = len(carry) // window
        if n:
            frames = carry[: n * window].reshape(n, window)
            rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
            _ = 20 * np.log10(np.maximum(rms, 1e-6)) < -50
            carry = carry[n * window :]


def downmix(cs):
    for c in cs:
        c.reshape(-1, 2).mean(axis=1)


def vad(cs):
    detector = webrtcvad.Vad(2)
    for c in cs:
        pcm = (np.clip(c, -1, 1) * 32767).astype("<i2").tobytes()
        if len(pcm) == 640:
            detector.is_speech(pcm, 16000)


def soxr_stream(cs, quality):
    stream = soxr.ResampleStream(44100, 16000, 1, dtype="float32", quality=quality)
    out = [stream.resample_chunk(c) for c in cs]
    out.append(stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True))
    return np.concatenate(out)


def scipy_poly(cs):
    # resample_poly keeps no state between chunks: the usual per-chunk Python approach.
    return np.concatenate([scipy.signal.resample_poly(c, 160, 441).astype(np.float32) for c in cs])


def thd_n_db(signal, freq, rate):
    start = len(signal) // 10
    x = signal[start : len(signal) - start].astype(np.float64)
    t = 2 * np.pi * freq / rate * (np.arange(len(x)) + start)
    basis = np.stack([np.sin(t), np.cos(t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    fit = basis @ coef
    return float(10 * np.log10(np.sum((x - fit) ** 2) / np.sum(fit**2)))


def main():
    work = sys.argv[1]
    mono48 = chunks(load(work, "mono48"), 960)
    stereo48 = chunks(load(work, "stereo48"), 960, 2)
    tone441 = chunks(load(work, "tone441"), 882)
    speech16 = chunks(load(work, "speech16"), 320)
    packets48 = chunks(load(work, "mono48"), 1024)

    results = []

    def record(name, seconds, **extra):
        x = SECONDS / seconds
        print(f"{name:<28} {x:>12.0f}x realtime", file=sys.stderr)
        results.append({"case": name, "seconds": seconds, "x_realtime": x, **extra})

    record("level", best_of(level, mono48), impl="numpy")
    record("gain", best_of(gain, mono48), impl="numpy")
    record("chunk", best_of(chunk, packets48), impl="numpy")
    record("clipping", best_of(clipping, mono48), impl="numpy")
    record("silence", best_of(silence, mono48), impl="numpy")
    record("downmix", best_of(downmix, stereo48), impl="numpy")
    record("vad", best_of(vad, speech16), impl="webrtcvad (C, mode 2)")
    for q, name in [("LQ", "soxr_lq"), ("MQ", "soxr_mq"), ("HQ", "soxr_hq"), ("VHQ", "soxr_vhq")]:
        seconds = best_of(soxr_stream, tone441, q)
        out = soxr_stream(tone441, q)
        record(name, seconds, impl="soxr ResampleStream " + q, thd_n_db=thd_n_db(out, 1000.0, 16000), output_frames=len(out))
    seconds = best_of(scipy_poly, tone441)
    out = scipy_poly(tone441)
    record("scipy_resample_poly", seconds, impl="scipy.signal.resample_poly per chunk", thd_n_db=thd_n_db(out, 1000.0, 16000), output_frames=len(out))

    versions = {"numpy": np.__version__, "scipy": scipy.__version__, "soxr": soxr.__version__, "python": sys.version.split()[0]}
    with open(os.path.join(work, "python.json"), "w") as f:
        json.dump({"results": results, "versions": versions}, f)


if __name__ == "__main__":
    main()
