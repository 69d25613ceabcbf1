"""precision="auto": explicit flags and the environment win; otherwise a cached calibration.

Nothing here asserts which precision is faster: the calibration's timings are replaced by fixed
ones where a test needs a given outcome."""

import json

import pytest
import torch

from refvos.errors import InputError
from refvos.runtime import PRECISION_ENV, Workload, choose_precision
from refvos.runtime import precision as runtime

CPU = torch.device("cpu")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(runtime.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(PRECISION_ENV, raising=False)
    monkeypatch.setattr(runtime, "machine_load", lambda: 0.0)  # a quiet machine
    return tmp_path


def counting_workload(name="w"):
    calls = {"fp32": 0, "bf16": 0}

    def runner(precision):
        def run():
            calls[precision] += 1
            with runtime.autocast(CPU, precision):
                return torch.ones(8, 8) @ torch.ones(8, 8)

        return run

    return Workload(name, runner), calls


def fixed_seconds(monkeypatch, fp32, bf16):
    monkeypatch.setattr(runtime, "measure", lambda w, p, budget_s=4.0: {"fp32": fp32, "bf16": bf16})


def test_explicit_precision_wins_over_env_and_is_not_measured(cache, monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "bf16")
    workload, calls = counting_workload()
    c = choose_precision("fp32", CPU, workload)
    assert (c.precision, c.source) == ("fp32", "explicit") and calls == {"fp32": 0, "bf16": 0}


def test_env_overrides_auto(cache, monkeypatch):
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    c = choose_precision("auto", CPU, counting_workload()[0])
    assert (c.precision, c.source) == ("fp32", "env") and PRECISION_ENV in c.reason
    monkeypatch.setenv(PRECISION_ENV, "fast")
    with pytest.raises(InputError, match=PRECISION_ENV):
        choose_precision("auto", CPU)


def test_bad_precision_is_refused():
    with pytest.raises(InputError, match="precision must be one of"):
        choose_precision("int4", CPU)


class FakeClock:
    """Stands in for the ``time`` module in :mod:`refvos.runtime`: each run of a
    :func:`clocked_workload` advances it by that precision's seconds (no real timing)."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    def strftime(self, fmt):
        return "2026-01-01T00:00:00"


def clocked_workload(clock, seconds):
    calls = {p: 0 for p in seconds}

    def runner(precision):
        def run():
            calls[precision] += 1
            clock.now += seconds[precision]

        return run

    return Workload("clocked", runner), calls


def test_a_precision_far_slower_at_warm_up_is_not_timed_again(monkeypatch):
    """bf16 emulated (no bf16 instructions): its warm-up takes 10x fp32's, so it is run once."""
    clock = FakeClock()
    monkeypatch.setattr(runtime, "time", clock)
    workload, calls = clocked_workload(clock, {"fp32": 1.0, "bf16": 10.0})
    assert runtime.measure(workload, ("fp32", "bf16"), budget_s=100.0, repeats=3) == {
        "fp32": 1.0,
        "bf16": 10.0,
    }
    assert calls == {"fp32": 4, "bf16": 1}


def test_close_precisions_are_both_timed(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(runtime, "time", clock)
    workload, calls = clocked_workload(clock, {"fp32": 1.0, "bf16": 2.0})  # bf16 half as fast
    assert runtime.measure(workload, ("fp32", "bf16"), budget_s=100.0, repeats=3) == {
        "fp32": 1.0,
        "bf16": 2.0,
    }
    assert calls == {"fp32": 4, "bf16": 4}


def test_auto_on_a_cpu_measures_whatever_its_flags(cache, monkeypatch):
    """No CPU flag decides: without bf16 instructions (or without /proc/cpuinfo) auto measures."""
    monkeypatch.setattr(runtime, "_cpuinfo", lambda: "")
    clock = FakeClock()
    monkeypatch.setattr(runtime, "time", clock)
    workload, calls = clocked_workload(clock, {"fp32": 1.0, "bf16": 0.5})
    c = runtime.choose_precision("auto", CPU, workload)
    assert (c.precision, c.source) == ("bf16", "measured") and calls["bf16"] > 1


@pytest.mark.parametrize(
    ("fp32", "bf16", "expected"), [(1.0, 0.5, "bf16"), (1.0, 2.0, "fp32"), (1.0, 0.99, "fp32")]
)
def test_auto_takes_the_measured_faster_and_caches_it(cache, monkeypatch, fp32, bf16, expected):
    fixed_seconds(monkeypatch, fp32, bf16)
    workload, _ = counting_workload()
    c = choose_precision("auto", CPU, workload)
    assert (c.precision, c.source, c.seconds) == (
        expected,
        "measured",
        {"fp32": fp32, "bf16": bf16},
    )
    assert "fp32" in c.reason and "bf16" in c.reason
    # the second time comes from the cache, without measuring
    monkeypatch.setattr(runtime, "measure", lambda *a, **k: pytest.fail("measured twice"))
    again = choose_precision("auto", CPU, workload)
    assert (again.precision, again.source, again.seconds) == (expected, "cached", c.seconds)
    stored = json.loads((cache / runtime.CACHE_FILE).read_text())
    (key,) = stored
    assert (
        torch.__version__ in key
        and f"threads={torch.get_num_threads()}" in key
        and key.endswith("|w")
    )


def test_the_cache_is_keyed_by_workload_and_threads(cache, monkeypatch):
    fixed_seconds(monkeypatch, 1.0, 0.5)
    choose_precision("auto", CPU, counting_workload("a")[0])
    fixed_seconds(monkeypatch, 1.0, 2.0)
    assert choose_precision("auto", CPU, counting_workload("b")[0]).source == "measured"
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads + 1)
        assert choose_precision("auto", CPU, counting_workload("a")[0]).source == "measured"
    finally:
        torch.set_num_threads(threads)


def test_a_measurement_under_load_is_used_but_not_cached(cache, monkeypatch):
    fixed_seconds(monkeypatch, 1.0, 0.5)
    monkeypatch.setattr(runtime, "machine_load", lambda: 100.0)
    c = choose_precision("auto", CPU, counting_workload()[0])
    assert (c.precision, c.source) == ("bf16", "measured") and "not cached" in c.reason
    assert not (cache / runtime.CACHE_FILE).exists()
    monkeypatch.setattr(runtime, "machine_load", lambda: 0.0)
    assert choose_precision("auto", CPU, counting_workload()[0]).source == "measured"
    assert choose_precision("auto", CPU, counting_workload()[0]).source == "cached"


def test_a_corrupt_or_unwritable_cache_is_not_an_error(cache, monkeypatch):
    (cache / runtime.CACHE_FILE).write_text("{not json")
    fixed_seconds(monkeypatch, 1.0, 2.0)
    assert choose_precision("auto", CPU, counting_workload()[0]).precision == "fp32"
    monkeypatch.setenv(runtime.CACHE_ENV, str(cache / runtime.CACHE_FILE / "below-a-file"))
    assert choose_precision("auto", CPU, counting_workload()[0]).source == "measured"


def test_measure_warms_up_then_alternates_within_the_budget(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(runtime, "time", clock)
    workload, calls = clocked_workload(clock, {"fp32": 1.0, "bf16": 1.5})
    seconds = runtime.measure(workload, ("fp32", "bf16"), budget_s=10.0, repeats=3)
    assert seconds == {"fp32": 1.0, "bf16": 1.5}
    assert calls == {"fp32": 4, "bf16": 4}  # one warm-up + three timed runs each
    workload, calls = clocked_workload(clock, {"fp32": 1.0, "bf16": 1.5})
    runtime.measure(workload, ("fp32", "bf16"), budget_s=0.0, repeats=3)
    assert calls == {"fp32": 2, "bf16": 2}  # at least one timed run each


def test_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv(runtime.CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert runtime.cache_dir() == tmp_path / "refvos"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert runtime.cache_dir() == tmp_path / ".cache" / "refvos"


def test_choice_to_json_names_precision_source_and_reason(cache, monkeypatch):
    fixed_seconds(monkeypatch, 1.0, 0.5)
    doc = choose_precision("auto", CPU, counting_workload()[0]).to_json()
    assert doc["precision"] == "bf16" and doc["source"] == "measured" and doc["workload"] == "w"
    json.dumps(doc)


def _agree_worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    try:
        mine = runtime.PrecisionChoice(["bf16", "fp32"][rank], "measured", f"rank {rank}")
        agreed = runtime.agree_across_ranks(mine)
        with open(f"{out_dir}/{rank}.json", "w") as f:
            json.dump(agreed.to_json(), f)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ranks_of_a_distributed_run_take_rank_0s_choice(tmp_path):
    torch.multiprocessing.spawn(
        _agree_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2
    )
    docs = [json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1)]
    assert docs[0] == docs[1] and docs[0]["precision"] == "bf16" and docs[0]["reason"] == "rank 0"


def test_a_single_process_keeps_its_choice():
    c = runtime.PrecisionChoice("fp32", "explicit", "x")
    assert runtime.agree_across_ranks(c) is c


def test_tf32_mode_off_disables_tf32_and_restores_it():
    """``--tf32 off`` (``--recipe paper``): no TF32 in CUDA matmuls and cuDNN convolutions inside
    the block, the previous settings after it; ``default`` changes nothing."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        with runtime.tf32_mode("off"):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        with runtime.tf32_mode("default"):
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        with pytest.raises(InputError), runtime.tf32_mode("on"):
            pass
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (
            {"fp32": 1.0, "bf16": 0.5, "openvino:fp32": 0.8, "openvino:bf16": 0.3},
            ("openvino", "bf16"),
        ),
        (
            {"fp32": 1.0, "bf16": 0.5, "openvino:fp32": 0.8, "openvino:bf16": 0.49},
            ("torch", "bf16"),
        ),  # a near tie
        (
            {"fp32": 1.0, "bf16": 2.0, "openvino:fp32": 0.9, "openvino:bf16": 1.5},
            ("openvino", "fp32"),
        ),
    ],
)
def test_backends_are_measured_and_chosen_with_their_margins(cache, monkeypatch, seconds, expected):
    monkeypatch.setattr(
        runtime, "measure", lambda workload, names, budget_s=0: {n: seconds[n] for n in names}
    )
    workload, _ = counting_workload()
    c = choose_precision("auto", CPU, workload, backends=("torch", "openvino"))
    assert (c.backend, c.precision, c.source) == (*expected, "measured") and c.seconds == seconds
    assert c.to_json()["backend"] == expected[0] and "openvino:bf16" in c.reason
    monkeypatch.setattr(runtime, "measure", lambda *a, **k: pytest.fail("measured twice"))
    again = choose_precision("auto", CPU, workload, backends=("torch", "openvino"))
    assert (again.backend, again.precision, again.source) == (*expected, "cached")
    # a torch-only choice is another cache entry (the backends are part of the key)
    monkeypatch.setattr(
        runtime, "measure", lambda workload, names, budget_s=0: {n: seconds[n] for n in names}
    )
    assert choose_precision("auto", CPU, workload).backend == "torch"


def test_an_explicit_precision_with_two_backends_measures_only_that_precision(cache, monkeypatch):
    seen = []
    monkeypatch.setattr(
        runtime,
        "measure",
        lambda workload, names, budget_s=0: (
            seen.append(names) or {n: 1.0 if n == "fp32" else 0.5 for n in names}
        ),
    )
    c = choose_precision("fp32", CPU, counting_workload()[0], backends=("torch", "openvino"))
    assert seen == [("fp32", "openvino:fp32")] and (c.backend, c.precision) == ("openvino", "fp32")


def test_flush_denormals_zeroes_denormals_inside_the_block_only():
    """On the CPU a denormal float becomes 0 inside the block (where the CPU can flush) and keeps
    its value after it; on another device nothing is switched."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # below float32's normal range (1.2e-38)
    assert (tiny * 1.0).item() != 0.0
    with runtime.flush_denormals(torch.device("cpu")) as on:
        inside = (tiny * 1.0).item()
    after = (tiny * 1.0).item()
    if on:
        assert inside == 0.0
    assert after != 0.0
    with runtime.flush_denormals(torch.device("meta")) as on_meta:
        assert not on_meta


def test_the_demo_trainer_runs_with_denormals_flushed(monkeypatch):
    """train_head runs its steps inside flush_denormals and says so in its result."""
    from refvos.demo import head_trainer

    seen = []

    def steps(*args):
        seen.append((torch.tensor([1e-39]) * 1.0).item())
        return {"iterations": 0}

    monkeypatch.setattr(head_trainer, "_train_steps", steps)
    result = head_trainer.train_head(None, None, None, None, None, "fp32", 0)
    assert result["flush_denormals"] in (True, False) and len(seen) == 1
    assert (seen[0] == 0.0) == result["flush_denormals"]


@pytest.mark.parametrize(
    ("parts", "name"),
    [
        (("torch", "fp32", "conv"), "fp32"),
        (("torch", "bf16", "taps"), "bf16+taps"),
        (("openvino", "bf16", "conv"), "openvino:bf16"),
        (("openvino", "bf16", "taps"), "openvino:bf16+taps"),
    ],
)
def test_candidate_names_carry_backend_precision_and_atrous_form(parts, name):
    assert runtime.candidate(*parts) == name and runtime.split_candidate(name) == parts


@pytest.mark.parametrize(
    ("taps", "expected"),
    [(0.4, ("bf16", "taps")), (0.6, ("bf16", "conv")), (2.0, ("bf16", "conv"))],
)
def test_reduced_precisions_are_timed_in_both_atrous_forms_fp32_in_the_convolution(
    cache, monkeypatch, taps, expected
):
    seconds = {"fp32": 1.0, "bf16": 0.5, "bf16+taps": taps}
    seen = []
    monkeypatch.setattr(
        runtime,
        "measure",
        lambda workload, names, budget_s=0: seen.append(names) or {n: seconds[n] for n in names},
    )
    workload, _ = counting_workload()
    c = choose_precision("auto", CPU, workload, atrous_forms=("conv", "taps"))
    assert seen == [("fp32", "bf16", "bf16+taps")]
    assert (c.precision, c.atrous, c.source) == (*expected, "measured")
    assert c.to_json()["atrous"] == expected[1]
    monkeypatch.setattr(runtime, "measure", lambda *a, **k: pytest.fail("measured twice"))
    again = choose_precision("auto", CPU, workload, atrous_forms=("conv", "taps"))
    assert (again.precision, again.atrous, again.source) == (*expected, "cached")
    # an explicit bf16 times its two forms (another cache entry); fp32 and CUDA time nothing
    monkeypatch.setattr(
        runtime,
        "measure",
        lambda workload, names, budget_s=0: seen.append(names) or {n: seconds[n] for n in names},
    )
    explicit = choose_precision("bf16", CPU, workload, atrous_forms=("conv", "taps"))
    assert seen[-1] == ("bf16", "bf16+taps") and explicit.atrous == expected[1]
    fp32 = choose_precision("fp32", CPU, workload, atrous_forms=("conv", "taps"))
    assert (fp32.source, fp32.atrous, len(seen)) == ("explicit", "conv", 2)
