"""refvos's own training step, timed: ``Trainer.train_one_epoch`` (src/refvos/engine/trainer.py)
run for one optimizer step on an in-memory batch, or, if the trainer cannot be used, a replica of
its step (autocast at the trainer's precision, cross-entropy over non-ignored pixels, SGD step,
``zero_grad(set_to_none=True)``, no per-step collection)."""

from __future__ import annotations

import tempfile
from typing import Any

import torch
from torch.nn import functional as F


class _Batch(torch.utils.data.Dataset):
    """The samples of one batch (the trainer's loader re-collates them every step)."""

    def __init__(self, batch: dict) -> None:
        self.batch = batch

    def __len__(self) -> int:
        return self.batch["image"].shape[0]

    def __getitem__(self, i: int) -> dict[str, Any]:
        b = self.batch
        return {
            "image": b["image"][i],
            "mask": b["mask"][i],
            "input_ids": b["input_ids"][i],
            "attention_mask": b["attention_mask"][i],
            "sentence": "x",
            "meta": {"dataset": "bench", "image_id": i},
        }


class TrainerStep:
    """``step()``: one optimizer step of refvos's Trainer (precision ``auto``: measured, see refvos.runtime)."""

    source = "refvos.engine.trainer.Trainer.train_one_epoch"

    def __init__(self, model, batch: dict, device: torch.device, precision: str = "auto") -> None:
        from refvos.engine.trainer import TrainConfig, Trainer

        self._tmp = tempfile.TemporaryDirectory(prefix="refvos-bench-train-")
        config = TrainConfig(
            output_dir=self._tmp.name,
            epochs=1000,
            schedule="constant",
            lr=0.01,
            batch_size=batch["image"].shape[0],
            workers=0,
            progress=False,
            tensorboard=False,
            print_freq=10**9,
            precision=precision,
        )
        self.trainer = Trainer(model, _Batch(batch), config, device=device)
        self.precision = self.trainer.precision
        self.epoch = 0

    def __call__(self) -> float:
        t = self.trainer
        t.step = 0
        t.steps_per_epoch = 1
        summary = t.train_one_epoch(self.epoch)
        self.epoch += 1
        return float(summary["loss"])

    def close(self) -> None:
        self._tmp.cleanup()


class ReplicaStep:
    """The trainer's step written out (used when the Trainer cannot be built)."""

    source = "replica of refvos Trainer.train_one_epoch's step"

    def __init__(self, model, batch: dict, device: torch.device, precision: str = "auto") -> None:
        from refvos.runtime import autocast

        try:
            from refvos.engine.param_groups import build_param_groups
            from refvos.engine.train_precision import resolve_train_precision

            groups = build_param_groups(model, "original")
            self.precision = resolve_train_precision(precision, device)
        except Exception:  # noqa: BLE001 - the trainer module is missing or changed
            from benchmarks.original import original_param_groups

            groups = original_param_groups(model)
            self.precision = "fp32" if precision == "auto" and device.type == "cpu" else precision
        self.autocast = autocast
        self.model, self.batch, self.device = model.to(device), batch, device
        self.optimizer = torch.optim.SGD(groups, lr=0.01, momentum=0.9, weight_decay=1e-6)

    def __call__(self) -> float:
        m, b, dev = self.model, self.batch, self.device
        m.train()
        m.text_encoder.eval()
        with self.autocast(dev, self.precision):
            logits = m(b["image"].to(dev), b["input_ids"].to(dev), b["attention_mask"].to(dev))
        target = b["mask"].to(dev)
        total = F.cross_entropy(logits.float(), target, ignore_index=255, reduction="sum")
        loss = total / (target != 255).sum().clamp(min=1)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def close(self) -> None:
        pass


def project_step(model, batch: dict, device: torch.device, precision: str = "auto"):
    """The trainer's step if it can be built, else its replica; ``.source`` says which."""
    try:
        return TrainerStep(model, batch, device, precision)
    except Exception as e:  # noqa: BLE001
        step = ReplicaStep(model, batch, device, precision)
        step.source += f" (Trainer unusable: {type(e).__name__}: {e})"
        return step
