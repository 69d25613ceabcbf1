"""The machine: CPU model, load, matmul peak (the roofline's ceiling), peak-RSS bookkeeping, timing."""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import re
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (other processes' load skews timings)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def machine_info() -> dict[str, Any]:
    from refvos.runtime import cpu_has_native_bf16

    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "cpu_native_bf16": cpu_has_native_bf16(),
        "mkldnn": torch.backends.mkldnn.is_available(),
        "load_average_start": load_average(),
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(
    fn: Callable[[], Any], repeats: int, warmup: int = 1, device: torch.device = torch.device("cpu")
) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


def alternated_rounds(
    calls: dict[str, Callable[[], Any]],
    rounds: int,
    device: torch.device = torch.device("cpu"),
    before: Callable[[str], Any] | None = None,
    drop_slower: bool = True,
) -> dict[str, list[float]]:
    """Seconds of each call per round, the calls alternated within each round (so that load from
    elsewhere hits them alike; ``before(name)``, untimed, prepares a call). With ``drop_slower``,
    after the first round a call that took :data:`refvos.runtime.CLEARLY_SLOWER` times the fastest
    is timed no further: it cannot be the fastest, and it costs the most time (bf16 emulated on a
    CPU without it)."""
    from refvos.runtime import clearly_slower

    times: dict[str, list[float]] = {name: [] for name in calls}
    live = list(calls)
    for i in range(rounds):
        if i == 1 and drop_slower:
            slow = clearly_slower({name: times[name][0] for name in live})
            live = [name for name in live if name not in slow]
        for name in live:
            if before is not None:
                before(name)
            times[name] += time_calls(calls[name], 1, warmup=0, device=device)
    return times


def summary(times: list[float]) -> dict[str, float]:
    return {
        "median_s": statistics.median(times),
        "min_s": min(times),
        "n": len(times),
        "samples_s": [round(t, 5) for t in times],
    }


def matmul_gflops(
    dtype: torch.dtype,
    n: int = 4096,
    repeats: int = 8,
    device: torch.device = torch.device("cpu"),
    warmup: int = 2,
) -> dict[str, Any]:
    """Dense ``n x n`` matmul rate, best of ``repeats`` after ``warmup`` untimed calls (the best
    is the machine's limit; the median shows how much other processes took)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    times = time_calls(lambda: torch.mm(a, b, out=out), repeats, warmup=warmup, device=device)
    flop = 2 * n**3
    return {
        "n": n,
        "dtype": str(dtype).removeprefix("torch."),
        "gflops_best": flop / min(times) / 1e9,
        "gflops_median": flop / statistics.median(times) / 1e9,
        "repeats": repeats,
    }


# --------------------------------------------------------------------------- peak memory


def reset_peak_memory(device: torch.device = torch.device("cpu")) -> None:
    """Reset the peak-memory counter: CUDA's allocator peak, or the process's RSS high-water
    mark (Linux: writing 5 to /proc/self/clear_refs resets VmHWM)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_memory_mb(device: torch.device = torch.device("cpu")) -> dict[str, Any]:
    """Peak since the last :func:`reset_peak_memory`: CUDA max allocated, or peak RSS (VmHWM;
    falls back to ``getrusage`` ru_maxrss, a peak since process start)."""
    if device.type == "cuda":
        return {
            "kind": "cuda_max_memory_allocated",
            "mb": torch.cuda.max_memory_allocated(device) / 2**20,
        }
    try:
        with open("/proc/self/status") as f:
            m = re.search(r"VmHWM:\s+(\d+)\s+kB", f.read())
        if m:
            return {"kind": "peak_rss_vmhwm", "mb": int(m.group(1)) / 1024}
    except OSError:
        pass
    import resource

    return {
        "kind": "ru_maxrss_since_start",
        "mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def current_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            m = re.search(r"VmRSS:\s+(\d+)\s+kB", f.read())
        return int(m.group(1)) / 1024 if m else None
    except OSError:
        return None


@contextlib.contextmanager
def own_heap() -> Iterator[None]:
    """Run a bench section as if in a process of its own, as far as Python's garbage collector
    goes: the objects that earlier sections left (``torch.compile``'s graphs and caches: millions
    of them) are moved out of its reach (``gc.freeze``) for the section. The original's pipeline
    calls ``gc.collect()`` after every frame and step; without this each of those calls scanned
    the whole bench's heap (the original's 30-frame video took 14.3 s after the latency section
    against 9.7 s alone), a cost its own process does not have."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
