"""Device and numeric precision: CUDA when there is one; on CPUs, bf16 or fp32 by measurement.

``precision="auto"`` resolves, in order:

1. the ``REFVOS_PRECISION`` environment variable (``fp32`` / ``bf16`` / ``fp16``) when set;
2. on CUDA: bf16 where the GPU supports it, else fp16;
3. on a CPU, a short calibration of the work about to run (a :class:`Workload`: e.g. the
   network's forward at a representative size for inference, forward + backward for training),
   timed in fp32 and bf16 and cached per CPU model, thread count, torch version and workload in
   ``precision.json`` under :func:`cache_dir` (not cached when the load average exceeds the CPU
   count: other processes skew the timings; delete the file to measure again). No CPU flag
   decides: bf16 instructions do not make bf16 fast (on some CPUs bf16 convolutions run at half
   the fp32 speed, on others at twice), and where there are none (bf16 emulated) the warm-up
   runs show it at once: a precision whose warm-up takes :data:`CLEARLY_SLOWER` times the
   fastest one's is not timed further (:func:`measure`).

With several inference backends to choose from (:mod:`refvos.runtime.backend`: PyTorch and OpenVINO),
the same calibration times each backend's variants (``fp32``, ``bf16``, ``openvino:fp32``,
``openvino:bf16``) and the choice records the backend too (:attr:`PrecisionChoice.backend`).
Inference also times each reduced precision with the ASPP's atrous convolutions computed tap by
tap (``bf16+taps``, ``openvino:bf16+taps``: :func:`refvos.modeling.head.atrous_by_taps`, matrix
products where a dilated convolution is slow on some CPUs' kernels) and records the form
(:attr:`PrecisionChoice.atrous`); fp32 keeps the convolution, the original's arithmetic.

An explicit precision (a flag, an argument other than ``auto``) always wins. The outcome is a
:class:`PrecisionChoice` whose :meth:`~PrecisionChoice.to_json` goes into ``--json`` output,
``metrics.json`` and the trainer's log.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
PRECISION_ENV = "REFVOS_PRECISION"
CACHE_ENV = "REFVOS_CACHE_DIR"
CACHE_FILE = "precision.json"
# bf16 must beat fp32 by this factor to be chosen (fp32 is exact; a near tie keeps it)
BF16_MARGIN = 0.97
# another backend (OpenVINO) must beat PyTorch by this factor (a near tie keeps the default)
BACKEND_MARGIN = 0.97
# a precision whose warm-up run takes this many times the fastest warm-up is not timed further
# (bf16 emulated on a CPU without bf16 instructions: several times slower, and slow to time)
CLEARLY_SLOWER = 4.0


def clearly_slower(seconds: dict[str, float]) -> set[str]:
    """The names in ``seconds`` whose time is :data:`CLEARLY_SLOWER` times the fastest or more."""
    fastest = min(seconds.values())
    return {name for name, t in seconds.items() if t >= CLEARLY_SLOWER * fastest}


def default_device() -> torch.device:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or str(device) == "auto":
        return default_device()
    from ..errors import InputError

    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(
            f"device {device!r} is not a device name (expected auto, cpu, cuda or cuda:N)"
        ) from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device} was asked for but no CUDA GPU is available")
    return device


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 instructions (x86 AVX512-BF16 or AMX, Arm BF16), as Linux lists
    them. Recorded by the benchmarks; it decides nothing: whether bf16 is faster than fp32 is
    what :func:`choose_precision` measures."""
    flags = set(_cpuinfo().replace("\t", " ").split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` knows."""
    for line in _cpuinfo().splitlines():
        if line.split(":", 1)[0].strip() in ("model name", "Model", "Hardware"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cache_dir() -> Path:
    """``$REFVOS_CACHE_DIR``, else ``$XDG_CACHE_HOME/refvos``, else ``~/.cache/refvos``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "refvos"


# ------------------------------------------------------------------------------ the choice


@dataclass(frozen=True)
class PrecisionChoice:
    """What ``auto`` (or a flag) resolved to, and why.

    ``source``: ``explicit`` (an argument / flag), ``env`` (:data:`PRECISION_ENV`), ``cuda``,
    ``measured`` (calibrated now) or ``cached``
    (an earlier calibration on this CPU, thread count and torch version). ``seconds``: the
    calibration's best time per run of the workload, per variant (:func:`candidate` names;
    empty when not measured). ``backend``: ``torch`` or ``openvino`` (see
    :mod:`refvos.runtime.backend`). ``atrous``: how the ASPP's atrous convolutions compute
    (:data:`refvos.modeling.head.ATROUS_FORMS`).
    """

    precision: str
    source: str
    reason: str
    workload: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    backend: str = "torch"
    atrous: str = "conv"

    def to_json(self) -> dict:
        return {
            "precision": self.precision,
            "backend": self.backend,
            "atrous": self.atrous,
            "source": self.source,
            "reason": self.reason,
            "workload": self.workload,
            "seconds": dict(self.seconds),
        }


@dataclass(frozen=True)
class Workload:
    """The work a calibration times. ``name`` identifies it in the cache (network, size, kind);
    ``runner(precision)`` returns a callable doing one unit of the work at that precision (its
    first call is a warm-up)."""

    name: str
    runner: Callable[[str], Callable[[], object]]


def check_precision(precision: str, what: str = "precision") -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else an :class:`InputError` naming ``what``."""
    if precision not in PRECISIONS:
        from ..errors import InputError

        raise InputError(f"{what} must be one of {PRECISIONS}, got {precision!r}")
    return precision


def choose_precision(
    precision: str,
    device: torch.device,
    workload: Workload | None = None,
    budget_s: float = 3.0,
    backends: tuple[str, ...] = ("torch",),
    atrous_forms: tuple[str, ...] = ("conv",),
) -> PrecisionChoice:
    """Resolve ``precision`` on ``device`` (see the module docstring). ``workload`` is what
    ``auto`` measures on a CPU (``None``: :func:`conv_workload`). ``backends``: the inference
    backends to choose from (``torch``, ``openvino``; the workload's ``runner`` takes
    :func:`candidate` names); with more than one, the backend is measured too, also for an
    explicit precision. ``atrous_forms``: the forms of the atrous convolutions the workload runs
    (``("conv", "taps")`` for inference); a reduced precision on a CPU is timed in each, also
    when explicit, fp32 in ``conv`` alone."""
    check_precision(precision)
    source, reason = "explicit", f"{precision} was asked for"
    if precision == "auto":
        env = os.environ.get(PRECISION_ENV, "").strip()
        if env and env != "auto":
            precision, source, reason = (
                check_precision(env, f"the environment variable {PRECISION_ENV}"),
                "env",
                f"{PRECISION_ENV}={env}",
            )
    forms_to_time = device.type == "cpu" and precision not in ("auto", "fp32")
    if precision != "auto" and len(backends) == 1 and not (forms_to_time and len(atrous_forms) > 1):
        return PrecisionChoice(precision, source, reason, backend=backends[0])
    if device.type == "cuda" and precision == "auto":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", "cuda", "the GPU supports bf16")
        return PrecisionChoice(
            "fp16", "cuda", "the GPU has no bf16; fp16 with loss scaling where trained"
        )
    if device.type != "cpu":
        return PrecisionChoice(
            "fp32" if precision == "auto" else precision,
            "explicit",
            f"no calibration on {device.type}",
        )
    precisions = ("fp32", "bf16") if precision == "auto" else (precision,)
    names = tuple(
        candidate(b, p, f)
        for b in backends
        for p in precisions
        for f in (("conv",) if p == "fp32" else atrous_forms)
    )
    workload = workload or conv_workload()
    name = workload.name if names == ("fp32", "bf16") else f"{workload.name}|{','.join(names)}"
    key = calibration_key(name)
    cached = _read_cache().get(key)
    if (
        isinstance(cached, dict)
        and cached.get("precision") in precisions
        and cached.get("backend", "torch") in backends
        and cached.get("atrous", "conv") in atrous_forms
    ):
        seconds = {k: float(v) for k, v in cached.get("seconds", {}).items()}
        return PrecisionChoice(
            cached["precision"],
            "cached",
            _reason(seconds, workload.name),
            workload.name,
            seconds,
            cached.get("backend", "torch"),
            cached.get("atrous", "conv"),
        )
    seconds = measure(workload, names, budget_s)
    best = min(names, key=lambda n: seconds[n] / _margin(n))
    backend, chosen, atrous = split_candidate(best)
    reason = _reason(seconds, workload.name)
    load = machine_load()
    if load is not None and load > _cpu_count():
        # other processes skew the timings: use this choice now, measure again next time
        reason += f"; load average {load:.1f} on {_cpu_count()} CPUs, so not cached"
    else:
        _write_cache(
            key,
            {
                "precision": chosen,
                "backend": backend,
                "atrous": atrous,
                "seconds": seconds,
                "workload": workload.name,
                "load_average": load,
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
        )
    return PrecisionChoice(chosen, "measured", reason, workload.name, seconds, backend, atrous)


def candidate(backend: str, precision: str, atrous: str = "conv") -> str:
    """A measured variant's name: the precision for PyTorch (``fp32``), ``backend:precision``
    for another backend (``openvino:bf16``), ``+taps`` after it where the atrous convolutions
    compute tap by tap (``bf16+taps``)."""
    name = precision if atrous == "conv" else f"{precision}+{atrous}"
    return name if backend == "torch" else f"{backend}:{name}"


def split_candidate(name: str) -> tuple[str, str, str]:
    """``(backend, precision, atrous form)`` of a :func:`candidate` name."""
    backend, _, variant = name.rpartition(":")
    precision, _, atrous = variant.partition("+")
    return backend or "torch", precision, atrous or "conv"


def _margin(name: str) -> float:
    """The factor a variant's time is divided by before the fastest is taken: bf16 must beat
    fp32 by :data:`BF16_MARGIN`, another backend PyTorch by :data:`BACKEND_MARGIN` (the
    convolution and the tap-by-tap form of one precision compete as equals)."""
    backend, precision, _ = split_candidate(name)
    return (BF16_MARGIN if precision == "bf16" else 1.0) * (
        BACKEND_MARGIN if backend != "torch" else 1.0
    )


def machine_load() -> float | None:
    """The 1-minute load average (None where the OS does not give it)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _cpu_count() -> int:
    return (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    )


def agree_across_ranks(choice: PrecisionChoice) -> PrecisionChoice:
    """Rank 0's choice on every process of an initialised ``torch.distributed`` group (each rank
    measures for itself; the processes of one run must compute alike)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return choice
    box = [choice]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def resolve_precision(
    precision: str, device: torch.device, workload: Workload | None = None
) -> str:
    """:func:`choose_precision`'s precision alone."""
    return choose_precision(precision, device, workload).precision


def _reason(seconds: dict[str, float], workload: str) -> str:
    times = ", ".join(f"{name} {t * 1e3:.1f} ms" for name, t in seconds.items())
    return f"{workload}: {times} per run on {cpu_model()} with {torch.get_num_threads()} threads"


def calibration_key(workload: str) -> str:
    """The cache key: CPU model, thread count, torch version and the workload's name."""
    return f"{cpu_model()}|threads={torch.get_num_threads()}|torch={torch.__version__}|{workload}"


def measure(
    workload: Workload, precisions: tuple[str, ...], budget_s: float = 4.0, repeats: int = 3
) -> dict[str, float]:
    """Best time in seconds of one run of ``workload`` per precision: one warm-up each, then
    runs alternated (so that other processes' load hits both alike) until ``repeats`` runs each
    or ``budget_s`` seconds are spent (at least one timed run each). A precision whose warm-up
    took :data:`CLEARLY_SLOWER` times the fastest warm-up is not run again: its warm-up time is
    its figure (it cannot win, and timing it would cost the most)."""
    runs = {p: workload.runner(p) for p in precisions}
    start = time.perf_counter()
    warmup: dict[str, float] = {}
    for p, run in runs.items():
        t0 = time.perf_counter()
        run()
        warmup[p] = time.perf_counter() - t0
    slow = clearly_slower(warmup)
    timed = {p: run for p, run in runs.items() if p not in slow}
    times: dict[str, list[float]] = {p: [] for p in timed}
    for i in range(repeats):
        if i > 0 and time.perf_counter() - start > budget_s:
            break
        for p, run in timed.items():
            t0 = time.perf_counter()
            run()
            times[p].append(time.perf_counter() - t0)
    return {p: min(times[p]) if p in times else warmup[p] for p in precisions}


def _read_cache() -> dict:
    try:
        with open(cache_dir() / CACHE_FILE) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(key: str, entry: dict) -> None:
    """Add ``entry`` under ``key`` (atomic; a read-only or full cache folder is not an error)."""
    from ..io import atomic_write_json

    data = _read_cache()
    data[key] = entry
    with contextlib.suppress(OSError):
        atomic_write_json(cache_dir() / CACHE_FILE, data)


# ------------------------------------------------------------------------------ workloads


def module_signature(module: torch.nn.Module) -> str:
    """A short hash of a network's architecture (parameter names and shapes): two checkpoints
    of one architecture share their calibration."""
    h = hashlib.sha1()
    for name, p in module.state_dict().items():
        h.update(f"{name}:{tuple(p.shape)};".encode())
    return f"{type(module).__name__}-{h.hexdigest()[:10]}"


def conv_workload(channels: int = 256, size: int = 32, layers: int = 4) -> Workload:
    """A stack of 3x3 convolutions (channels-last, batch 1): what ``auto`` measures when the
    caller does not name its own work."""

    def runner(precision: str) -> Callable[[], object]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            *[torch.nn.Conv2d(channels, channels, 3, padding=1) for _ in range(layers)]
        )
        net = net.eval().to(memory_format=torch.channels_last)
        x = torch.randn(1, channels, size, size).contiguous(memory_format=torch.channels_last)

        @torch.inference_mode()
        def run():
            with autocast(torch.device("cpu"), precision):
                return net(x)

        return run

    return Workload(f"conv3x3-{channels}ch-{size}px-{layers}layers-forward", runner)


@contextlib.contextmanager
def flush_denormals(device: torch.device) -> Iterator[bool]:
    """Inside the block, on the CPU, floats below the normal range (denormals) are flushed to
    zero (``torch.set_flush_denormal``: the FTZ / DAZ bits of x86, set in the calling thread and
    inherited by the threads it starts afterwards, PyTorch's intra-op workers among them). Training drives optimiser
    state and gradients into that range as the loss settles, where many CPUs take a slow path
    per operation (on an Intel Xeon, family 6 model 207, 2 threads, `make demo`'s fp32 step went
    from 0.07 s to 1.6 s half-way through the run without flushing). Yields whether flushing is on (False on other devices, or where
    the CPU cannot flush); PyTorch's default (off) is restored after the block."""
    on = torch.device(device).type == "cpu" and torch.set_flush_denormal(True)
    try:
        yield on
    finally:
        if on:
            torch.set_flush_denormal(False)


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Autocast for ``bf16`` / ``fp16``; nothing for ``fp32``."""
    if precision == "fp32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


TF32_MODES = ("default", "off")


@contextlib.contextmanager
def tf32_mode(mode: str) -> Iterator[None]:
    """``"off"``: TF32 disabled for CUDA matmuls and cuDNN convolutions
    (``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32`` False: full
    fp32 arithmetic, as on the paper's V100) until the block ends, when the previous settings come
    back; ``"default"``: PyTorch's settings left as they are (cuDNN convolutions may use TF32 on
    Ampere and later GPUs). No effect on CPUs."""
    if mode not in TF32_MODES:
        from ..errors import InputError

        raise InputError(f"TF32 mode must be one of {TF32_MODES}, got {mode!r}")
    if mode == "default":
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before
