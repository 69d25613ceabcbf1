"""Interrupted training: SIGKILL at several moments (mid-step, mid-checkpoint-write), resumed with
``--resume auto``, ends with bitwise the parameters of a run never stopped; no unreadable
``last.pth`` is ever left. A NaN / infinite loss stops training with a message and keeps the last
good checkpoint. A disk that fills during a save leaves the previous checkpoint intact.

Runs ``refvos train`` as a real process (through :mod:`tests.reliability.slow_save_runner`,
which makes checkpoint writes pause so a kill can land inside one) on a tiny synthetic RefCOCO
with a tiny network on the CPU.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from refvos.checkpoint import read_checkpoint
from refvos.errors import RefVOSError
from tests.helpers import REPO_ROOT, TINY_MODEL_ARGS, make_tiny_model

pytestmark = pytest.mark.slow

EPOCHS = 2


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    from refvos.data.synthetic import make_refcoco

    # 18 images: 16 train (32 refs of 2 objects each), 2 val
    return make_refcoco(
        tmp_path_factory.mktemp("data"),
        num_images=18,
        image_size=48,
        min_objects=2,
        max_objects=2,
        max_sentences=2,
    )


def _argv(root: Path, out: Path) -> list[str]:
    return [
        "train",
        "--dataset",
        "refcoco",
        "--refer_data_root",
        str(root),
        *TINY_MODEL_ARGS,
        "--base-size",
        "40",
        "--crop-size",
        "48",
        "-j",
        "0",
        "-b",
        "4",
        "--epochs",
        str(EPOCHS),
        "--schedule",
        "constant",
        "--lr",
        "0.01",
        "--seed",
        "3",
        "--output-dir",
        str(out),
        "--model_id",
        "run",
        "--checkpoint-every",
        "1",
        "--device",
        "cpu",
        "--print-freq",
        "1000",
        "--resume",
        "auto",
    ]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def _start(root: Path, out: Path, pause: float = 0.15) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.slow_save_runner", *_argv(root, out)],
        cwd=REPO_ROOT,
        env={**_env(), "REFVOS_TEST_SAVE_PAUSE": str(pause)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _tmp_files(run: Path) -> list[Path]:
    return sorted(run.glob(".*.tmp")) if run.is_dir() else []


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def _run_until(
    proc: subprocess.Popen, run: Path, when: str, count: int, timeout: float = 120.0
) -> str:
    """SIGKILL ``proc`` at the moment ``when``:

    - ``"tmp"``: the ``count``-th time a temporary checkpoint file is seen (inside a write);
    - ``"saved"``: ``count`` checkpoints after start, 0.05 s later (in the middle of a step).

    Returns what happened (``killed`` or ``finished``)."""
    stale = set(_tmp_files(run))  # left by earlier kills: SIGKILL gives no chance to clean up
    seen: set[Path] = set()
    saves, last_inode = 0, _inode(run / "last.pth")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return "finished"
        if when == "tmp":
            seen |= set(_tmp_files(run)) - stale
            if len(seen) == count:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return "killed"
        inode = _inode(run / "last.pth")
        if inode != last_inode and inode is not None:
            saves, last_inode = saves + 1, inode
            if when == "saved" and saves == count:
                time.sleep(0.05)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return "killed"
        time.sleep(0.002)
    proc.kill()
    raise AssertionError(f"timed out waiting for {when} #{count}")


def _params(path: Path) -> dict[str, torch.Tensor]:
    ckpt = read_checkpoint(path)
    return {
        **{f"model.{k}": v for k, v in ckpt["model"].items()},
        **{f"bert.{k}": v for k, v in ckpt["bert_model"].items()},
    }


def _assert_checkpoints_readable(run: Path) -> list[int]:
    """Every ``*.pth`` in the run folder loads (weights_only, complete: last.pth with the state
    to resume, best.pth weights only); returns their iterations."""
    its = []
    for path in sorted(run.glob("*.pth")):
        ckpt = read_checkpoint(path)  # raises CheckpointError on a truncated / corrupt file
        resume_state = {"optimizer", "step", "rng"} if path.name == "last.pth" else set()
        assert {"epoch", "iteration"} | resume_state <= set(ckpt)
        its.append(int(ckpt["iteration"]))
    return its


def test_sigkill_at_several_moments_then_resume_auto_is_bitwise_identical(data_root, tmp_path):
    # the reference: one uninterrupted run
    ref = _start(data_root, tmp_path / "ref", pause=0.0)
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    reference = _params(tmp_path / "ref" / "run" / "last.pth")
    total = int(read_checkpoint(tmp_path / "ref" / "run" / "last.pth")["iteration"])
    assert total >= 8

    run = tmp_path / "cut" / "run"
    plan = [
        ("tmp", 1),  # inside the very first checkpoint write: no last.pth yet
        ("saved", 3),  # in the middle of a training step
        ("tmp", 2),  # inside a checkpoint write that replaces an existing last.pth
        ("saved", 5),  # mid-step again, later (crosses the epoch boundary)
        ("tmp", 3),
    ]
    history = []
    for when, count in plan:
        before = _assert_checkpoints_readable(run) if run.exists() else []
        proc = _start(data_root, tmp_path / "cut")
        outcome = _run_until(proc, run, when, count)
        history.append((when, count, outcome))
        if outcome == "finished":
            assert proc.returncode == 0, proc.stderr.read()
            break
        its = _assert_checkpoints_readable(run)  # never a corrupt last.pth
        if before:
            assert max(its) >= max(before), "a kill rolled the run back"
    else:
        proc = _start(data_root, tmp_path / "cut")
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        history.append(("to the end", 0, "finished"))
    assert sum(1 for h in history if h[2] == "killed") >= 4, history

    resumed = _params(run / "last.pth")
    assert int(read_checkpoint(run / "last.pth")["iteration"]) == total
    assert resumed.keys() == reference.keys()
    different = [k for k in reference if not torch.equal(reference[k], resumed[k])]
    assert not different, (
        f"{len(different)} tensors differ after kill + resume, e.g. {different[:3]}"
    )


# ------------------------------------------------------------------------------ in-process cases


def _trainer(root: Path, out: Path, **config):
    from refvos.data import build_dataset
    from refvos.engine.trainer import TrainConfig, Trainer

    train = build_dataset(
        "refcoco", root, "train", "train", max_tokens=10, base_size=40, crop_size=48
    )
    settings = dict(
        output_dir=out,
        epochs=1,
        schedule="constant",
        lr=0.01,
        batch_size=4,
        workers=0,
        checkpoint_every=1,
        progress=False,
        tensorboard=False,
        print_freq=1000,
        seed=3,
    )
    settings.update(config)
    return Trainer(make_tiny_model(max_tokens=10), train, TrainConfig(**settings))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(bad, data_root, tmp_path):
    trainer = _trainer(data_root, tmp_path / "run")
    criterion, calls = trainer.criterion, []

    def poisoned(logits, target):
        calls.append(1)
        loss = criterion(logits, target)
        return loss * bad if len(calls) == 4 else loss

    trainer.criterion = poisoned
    snapshot = {}
    trainer.on_step_end = lambda: snapshot.update(
        {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
    )
    with pytest.raises(
        RefVOSError, match=rf"loss became {bad}.*step 3.*last good checkpoint is .*last\.pth"
    ) as e:
        trainer.fit()
    assert "\n" not in str(e.value)
    last = tmp_path / "run" / "last.pth"
    ckpt = read_checkpoint(last)
    assert ckpt["iteration"] == 3  # the three good steps; the poisoned one was not applied
    for k, v in ckpt["model"].items():
        assert torch.equal(v, snapshot[f"segmenter.{k}"]), k
        assert not v.is_floating_point() or torch.isfinite(v).all()
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_diverging_weights_never_reach_last_pth(data_root, tmp_path):
    """An update whose loss was finite makes a *weight* non-finite (here: the third update sets
    one to NaN); the checkpoint due after that step is not written (it would refuse to load,
    "contains NaN"): training stops and last.pth stays the one of iteration 2."""
    from refvos.checkpoint import load_checkpoint

    trainer = _trainer(data_root, tmp_path / "run")
    steps = []

    def diverge(optimizer, args, kwargs):
        steps.append(1)
        if len(steps) == 3:
            with torch.no_grad():
                trainer.model.segmenter.classifier.conv_2.weight[0, 0] = float("nan")

    trainer.optimizer.register_step_post_hook(diverge)
    with pytest.raises(
        RefVOSError,
        match=r"weights became non-finite \(segmenter\.classifier\.conv_2\.weight\) "
        r"at iteration 3.*last good checkpoint is .*last\.pth",
    ):
        trainer.fit()
    assert len(steps) == 3
    last = tmp_path / "run" / "last.pth"
    assert read_checkpoint(last)["iteration"] == 2
    load_checkpoint(last)  # CheckpointError if it held NaN / inf weights


def test_disk_full_during_a_save_keeps_the_previous_checkpoint(data_root, tmp_path, monkeypatch):
    from refvos.checkpoint import formats as checkpoint

    trainer = _trainer(data_root, tmp_path / "run")
    real_save, saves = torch.save, []

    def filling_disk(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) < 3:
            return real_save(obj, f, *args, **kwargs)
        f.write(b"PK\x03\x04" + b"\0" * 4096)  # part of the file made it to disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint.torch, "save", filling_disk)
    last = tmp_path / "run" / "last.pth"
    with pytest.raises(
        RefVOSError,
        match=r"cannot write checkpoint .*last\.pth: No space left on device.*"
        r"the previous last\.pth is unchanged",
    ) as e:
        trainer.fit()
    assert isinstance(e.value.__cause__, OSError) and e.value.__cause__.errno == errno.ENOSPC
    ckpt = read_checkpoint(last)  # the second save, intact
    assert ckpt["iteration"] == 2
    assert not list((tmp_path / "run").glob(".*.tmp")), (
        "the half-written temporary file was left behind"
    )


def test_disk_full_on_a_real_small_filesystem(tmp_path):
    """The same with a real full disk: a 48 MB tmpfs that holds one ~34 MB checkpoint, not two
    (needs root; skipped otherwise). torch's zip writer fails with a RuntimeError there."""
    from refvos.checkpoint import save_checkpoint

    mnt = tmp_path / "small"
    mnt.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mnt)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here")
    try:
        model = make_tiny_model(max_tokens=10)
        first = save_checkpoint(mnt / "last.pth", model)
        data = first.read_bytes()
        with torch.no_grad():
            next(model.parameters()).add_(1.0)
        with pytest.raises(
            RefVOSError,
            match=r"cannot write checkpoint .*last\.pth.*previous last\.pth is unchanged",
        ):
            save_checkpoint(mnt / "last.pth", model)
        assert (mnt / "last.pth").read_bytes() == data
        read_checkpoint(mnt / "last.pth")
        assert not list(mnt.glob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
