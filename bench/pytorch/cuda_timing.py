"""Shared by the side-by-side scripts: the median GPU time of a CUDA call, measured with CUDA events.

Each timed run is queued behind torch.cuda._sleep, which keeps the GPU busy for a few times the host's time to
enqueue the call, so the events time the GPU's work and not the launch overhead: the same method as slope's
CUDABackend.medianMilliseconds (a hold_stream kernel before each run), so the two sides compare alike.
"""
import statistics
import time

import torch

_cycles_per_ms = None


def _sleep_cycles_per_ms():
    """How many torch.cuda._sleep cycles make one millisecond on this GPU (measured once)."""
    global _cycles_per_ms
    if _cycles_per_ms is None:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(1_000_000)  # warm up
        start.record()
        torch.cuda._sleep(10_000_000)
        end.record()
        end.synchronize()
        _cycles_per_ms = 10_000_000 / start.elapsed_time(end)
    return _cycles_per_ms


def hold_seconds(enqueue_seconds):
    """Three times the fastest warm-up's enqueue time plus 50 µs, within 50 µs … 20 ms (1 ms without warm-up)."""
    if not enqueue_seconds:
        return 1e-3
    return min(20e-3, max(50e-6, 3 * min(enqueue_seconds) + 50e-6))


def median_ms(fn, repeats, warmup):
    enqueue = []
    for _ in range(warmup):
        begin = time.perf_counter()
        fn()
        enqueue.append(time.perf_counter() - begin)
        torch.cuda.synchronize()
    cycles = int(hold_seconds(enqueue) * 1e3 * _sleep_cycles_per_ms())
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda._sleep(cycles)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)
