"""The training loop: parameter groups, sample order, loss going down, exact resume, NaN stop."""

from __future__ import annotations

import json
import math

import pytest
import torch

from refvos.checkpoint import read_checkpoint
from refvos.data import build_dataset
from refvos.engine.trainer import BEST, LAST, NonFiniteLossError, TrainConfig, Trainer
from refvos.errors import InputError
from tests.helpers import IMAGE_SIZE, make_tiny_model


def train_subset(root, n: int = 6) -> torch.utils.data.Dataset:
    """The first ``n`` training samples, cropped to the image size."""
    ds = build_dataset(
        "refcoco", root, "train", "train", base_size=IMAGE_SIZE, crop_size=IMAGE_SIZE
    )
    return torch.utils.data.Subset(ds, range(min(n, len(ds))))


def val_subset(root, n: int = 2) -> torch.utils.data.Dataset:
    ds = build_dataset("refcoco", root, "val", "eval")
    return torch.utils.data.Subset(ds, range(min(n, len(ds))))


def config(tmp_path, **kw) -> TrainConfig:
    base = dict(
        output_dir=tmp_path,
        epochs=2,
        schedule="constant",
        lr=0.01,
        batch_size=2,
        workers=0,
        seed=0,
        progress=False,
        tensorboard=False,
        print_freq=1,
    )
    return TrainConfig(**{**base, **kw})


class Stop(Exception):
    pass


class StoppingTrainer(Trainer):
    """Crashes right after optimizer step ``stop_at`` (and its checkpoint)."""

    stop_at = 0

    def on_step_end(self) -> None:
        if self.iteration == self.stop_at:
            raise Stop


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_bitwise_equal(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


# ------------------------------------------------------------------------------ groups


def test_text_encoder_stays_in_eval_mode(refcoco_root, tmp_path):
    trainer = Trainer(make_tiny_model(), train_subset(refcoco_root, 4), config(tmp_path))
    trainer.set_train_mode()
    assert trainer.model.segmenter.training and not trainer.model.text_encoder.training


# ------------------------------------------------------------------------------ sample order


# ------------------------------------------------------------------------------ training


def test_short_run_lowers_the_loss_and_writes_checkpoints(refcoco_root, tmp_path):
    cfg = config(tmp_path, epochs=4, lr=0.02, tensorboard=True)
    result = Trainer(
        make_tiny_model(), train_subset(refcoco_root, 8), cfg, val_set=val_subset(refcoco_root)
    ).fit()
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    assert (tmp_path / LAST).is_file() and (tmp_path / BEST).is_file()
    ckpt = read_checkpoint(tmp_path / LAST)  # weights_only=True
    assert ckpt["format"] == "refvos" and ckpt["epoch"] == 4 and ckpt["step"] == 0
    assert ckpt["iteration"] == 16 and ckpt["lr_scheduler"]["name"] == "constant"
    assert set(ckpt["rng"][0]) >= {"python", "numpy", "torch"}
    assert ckpt["best"]["metric"] == "overall_iou" and "val" in ckpt["history"][0]
    log = (tmp_path / "log.jsonl").read_text().splitlines()
    assert sum('"kind": "epoch"' in line for line in log) == 4
    assert any((tmp_path / "tensorboard").iterdir())
    (precision,) = [json.loads(line) for line in log if '"kind": "precision"' in line]
    assert (
        precision["precision"] == ckpt["args"]["precision"]
        and precision["source"]
        and precision["reason"]
    )


def test_auto_precision_measures_forward_and_backward_of_the_network(
    refcoco_root, tmp_path, monkeypatch
):
    """Which precision wins is the machine's business; the trainer times its own network's step."""
    from refvos.runtime import precision as runtime

    monkeypatch.setenv(runtime.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(runtime.PRECISION_ENV)
    timed = []
    monkeypatch.setattr(
        runtime, "measure", lambda w, p, budget_s=4.0: timed.append(w) or {"fp32": 1.0, "bf16": 2.0}
    )
    model = make_tiny_model()
    trainer = Trainer(model, train_subset(refcoco_root, 4), config(tmp_path, precision="auto"))
    (workload,) = timed
    assert workload.name.startswith("train:") and trainer.precision == "fp32"
    assert (
        trainer.precision_choice.source == "measured"
        and trainer.precision_choice.seconds["bf16"] == 2.0
    )
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for precision in ("fp32", "bf16"):  # a forward + backward of a copy: the model is untouched
        workload.runner(precision)()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def _uninterrupted(root, tmp_path, **kw):
    model = make_tiny_model()
    Trainer(
        model, train_subset(root), config(tmp_path / "full", **kw), val_set=val_subset(root)
    ).fit()
    return params(model)


OPTIMIZERS = {
    "sgd": (torch.optim.SGD, 0.01, "momentum_buffer"),
    "adamw": (torch.optim.AdamW, 1e-3, "exp_avg_sq"),
}


# stop mid-epoch 0, at the end of epoch 0 (before validation), mid-epoch 1
@pytest.mark.parametrize("stop_at, optimizer", [(1, "sgd"), (3, "sgd"), (4, "sgd"), (4, "adamw")])
def test_stop_and_resume_is_bitwise_identical(refcoco_root, tmp_path, stop_at, optimizer):
    # 6 samples, batch 2 -> 3 steps per epoch, 2 epochs; the constant-free poly schedule
    kind, lr, state = OPTIMIZERS[optimizer]
    kw = dict(schedule="poly", checkpoint_every=1, optimizer=optimizer, lr=lr)
    expected = _uninterrupted(refcoco_root, tmp_path, **kw)

    run = tmp_path / "stopped"
    trainer = StoppingTrainer(
        make_tiny_model(),
        train_subset(refcoco_root),
        config(run, **kw),
        val_set=val_subset(refcoco_root),
    )
    assert type(trainer.optimizer) is kind
    trainer.stop_at = stop_at
    with pytest.raises(Stop):
        trainer.fit()
    saved = read_checkpoint(run / LAST)
    assert saved["args"]["optimizer"] == optimizer
    assert all(state in v for v in saved["optimizer"]["state"].values())
    torch.manual_seed(1234)  # the resumed process starts from other generator states
    model = make_tiny_model(seed=7)
    result = Trainer(
        model, train_subset(refcoco_root), config(run, **kw), val_set=val_subset(refcoco_root)
    ).fit(resume=run / LAST)
    assert_bitwise_equal(params(model), expected)
    assert result.iteration == 6 and len(result.history) == 2


def test_resume_with_accumulation_from_epoch_checkpoint(refcoco_root, tmp_path):
    kw = dict(accumulate=2, epochs=3)  # 6 samples: 1 step of 2 x 2 per epoch
    expected = _uninterrupted(refcoco_root, tmp_path, **kw)
    run = tmp_path / "stopped"
    trainer = StoppingTrainer(
        make_tiny_model(),
        train_subset(refcoco_root),
        config(run, **kw),
        val_set=val_subset(refcoco_root),
    )
    trainer.stop_at = 2  # after epoch 1's only step, before its end; last.pth is the end of epoch 0
    with pytest.raises(Stop):
        trainer.fit()
    assert read_checkpoint(run / LAST)["epoch"] == 1
    model = make_tiny_model(seed=3)
    Trainer(
        model, train_subset(refcoco_root), config(run, **kw), val_set=val_subset(refcoco_root)
    ).fit(resume=run / LAST)
    assert_bitwise_equal(params(model), expected)


def test_resume_refuses_changed_settings(refcoco_root, tmp_path):
    Trainer(make_tiny_model(), train_subset(refcoco_root, 4), config(tmp_path, epochs=1)).fit()
    trainer = Trainer(
        make_tiny_model(), train_subset(refcoco_root, 4), config(tmp_path, epochs=2, seed=1)
    )
    with pytest.raises(InputError, match="seed"):
        trainer.fit(resume=tmp_path / LAST)


def test_resume_refuses_another_optimizer_and_reads_older_runs_as_sgd(refcoco_root, tmp_path):
    Trainer(make_tiny_model(), train_subset(refcoco_root, 4), config(tmp_path, epochs=1)).fit()
    trainer = Trainer(
        make_tiny_model(),
        train_subset(refcoco_root, 4),
        config(tmp_path, epochs=2, optimizer="adamw"),
    )
    with pytest.raises(InputError, match=r"optimizer \(checkpoint 'sgd', now 'adamw'\)"):
        trainer.fit(resume=tmp_path / LAST)
    older = read_checkpoint(tmp_path / LAST)
    del older["args"]["optimizer"]  # a run from before --optimizer existed
    torch.save(older, tmp_path / "older.pth")
    result = Trainer(
        make_tiny_model(), train_subset(refcoco_root, 4), config(tmp_path / "b", epochs=2)
    ).fit(resume=tmp_path / "older.pth")
    assert result.iteration == 4


def test_unknown_optimizer_is_refused(tmp_path):
    with pytest.raises(InputError, match="--optimizer must be one of"):
        config(tmp_path, optimizer="adam").check()


class NaNAtStep(Trainer):
    nan_at = 3

    def criterion(self, logits, target):
        loss = super().criterion(logits, target)
        return loss * math.nan if self.iteration + 1 == self.nan_at else loss


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(refcoco_root, tmp_path):
    trainer = NaNAtStep(
        make_tiny_model(), train_subset(refcoco_root, 4), config(tmp_path, epochs=3)
    )
    trainer.nan_at = 4  # 2 steps per epoch: epoch 0 completes, then NaN at the 2nd step of epoch 1
    with pytest.raises(
        NonFiniteLossError, match=r"loss became nan at epoch 1.*last good checkpoint"
    ):
        trainer.fit()
    ckpt = read_checkpoint(tmp_path / LAST)
    assert ckpt["epoch"] == 1 and ckpt["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_too_small_training_set(refcoco_root, tmp_path):
    with pytest.raises(InputError, match="fewer than one optimizer step"):
        Trainer(
            make_tiny_model(),
            train_subset(refcoco_root, 3),
            config(tmp_path, batch_size=2, accumulate=2),
        )


def test_worker_processes_do_not_change_the_result(refcoco_root, tmp_path):
    """Samples are seeded by (seed, epoch, position): loading in a worker gives the same run."""
    results = []
    for workers in (0, 1):
        model = make_tiny_model()
        Trainer(
            model,
            train_subset(refcoco_root),
            config(tmp_path / str(workers), epochs=1, workers=workers),
        ).fit()
        results.append(params(model))
    assert_bitwise_equal(*results)


class RateRecorder(Trainer):
    """Records the learning rate every optimizer step used."""

    def on_step_end(self) -> None:
        self.rates = [*getattr(self, "rates", []), self.optimizer.param_groups[0]["lr"]]


def _original_poly_rates(base_lr: float, steps_per_epoch: int, epochs: int) -> list[float]:
    """The authors' train.py: LambdaLR(lambda x: (1 - x / (len(loader) * epochs)) ** 0.9), stepped
    after every iteration."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda x: (1 - x / (steps_per_epoch * epochs)) ** 0.9
    )
    rates = []
    for _ in range(steps_per_epoch * epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


@pytest.mark.parametrize("schedule, per_step", [(None, True), ("poly-epoch", False)])
def test_default_poly_steps_every_iteration_as_the_original(
    refcoco_root, tmp_path, schedule, per_step
):
    # 6 samples, batch 2: 3 steps per epoch, 2 epochs
    trainer = RateRecorder(
        make_tiny_model(), train_subset(refcoco_root), config(tmp_path, schedule=schedule, lr=0.02)
    )
    trainer.fit()
    expected = _original_poly_rates(0.02, 3, 2)
    if per_step:
        assert trainer.rates == pytest.approx(expected, rel=1e-9) and len(set(trainer.rates)) == 6
    else:  # once per epoch
        assert trainer.rates == pytest.approx([expected[0]] * 3 + [expected[3]] * 3, rel=1e-9)


def test_fixed_schedule_is_lr_times_factor_as_the_original(refcoco_root, tmp_path):
    trainer = RateRecorder(
        make_tiny_model(),
        train_subset(refcoco_root),
        config(tmp_path, schedule="fixed", lr=1.0, lr_factor=3e-5, epochs=1),
    )
    trainer.fit()
    assert trainer.rates == [3e-5] * 3
    assert read_checkpoint(tmp_path / LAST)["lr_scheduler"] == {
        "name": "fixed",
        "epochs": 1,
        "base_lr": 1.0,
        "factor": 3e-5,
        "epoch": 1,
    }


def test_training_logs_expressions_over_the_token_limit(refcoco_root, tmp_path, capsys):
    train = build_dataset(
        "refcoco",
        refcoco_root,
        "train",
        "train",
        base_size=IMAGE_SIZE,
        crop_size=IMAGE_SIZE,
        max_tokens=4,
    )
    train = torch.utils.data.Subset(train, range(4))
    Trainer(
        make_tiny_model(max_tokens=4),
        train,
        config(tmp_path, epochs=1),
        val_set=val_subset(refcoco_root),
    ).fit()
    events = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    (event,) = [e for e in events if e["kind"] == "truncation"]
    assert event["training"]["token_limit"] == 4 and event["training"]["over_token_limit"] > 0
    assert event["training"]["examples"][0]["tokens"] > 4
    assert event["validation"]["token_limit"] == 20 and event["validation"]["over_token_limit"] == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "distinct training expressions are longer than 4 tokens" in notes[0]
    assert repr(event["training"]["examples"][0]["expression"]) in notes[0]


def test_nothing_over_the_limit_logs_zero_and_prints_nothing(refcoco_root, tmp_path, capsys):
    trainer = Trainer(make_tiny_model(), train_subset(refcoco_root, 4), config(tmp_path, epochs=1))
    trainer.report_truncation()
    (event,) = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert (
        event["kind"] == "truncation" and set(event) >= {"training"} and "validation" not in event
    )
    assert event["training"]["over_token_limit"] == 0
    assert "note:" not in capsys.readouterr().err
