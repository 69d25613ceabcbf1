"""The training loop: SGD (or AdamW) on 2-class cross-entropy, learning-rate schedules set every step, exact resume.

Recipe (the paper, Bellver et al. 2020, and the authors' ``train.py``): SGD with momentum 0.9 and weight decay 1e-6, batch 7,
480 x 480 crops, ``cross_entropy(logits (B,2,H,W), mask (B,H,W), ignore_index=255)``.

Parameter groups as the original's (:mod:`refvos.engine.param_groups`); the text encoder always
runs in eval mode (no dropout).

Checkpoints (refvos format, :mod:`refvos.checkpoint`), written atomically by rank 0 into the run
directory: ``last.pth`` at the end of every epoch (and every ``checkpoint_every`` optimizer steps)
and ``best.pth`` (the weights, config and metrics only) when the validation metric improves.
``last.pth`` holds everything needed to resume:

- ``model`` / ``bert_model`` / ``config``; ``optimizer`` (SGD momentum buffers, AdamW moments); ``scaler``
  (fp16 only); ``lr_scheduler`` (schedule name, base rate, length and the epoch it is at; the
  rate of a step is a function of (epoch, step), :mod:`refvos.engine.schedules`);
- ``epoch`` / ``step``: the position to continue from (epoch index, optimizer steps already done
  in it); ``iteration``: optimizer steps done in total;
- ``sampler``: seed and samples consumed in the epoch; ``rng``: per process, the python, numpy,
  torch and CUDA generator states as tensors / lists (loadable with ``weights_only=True``);
- ``best`` (metric, value, epoch), ``history`` (per-epoch summaries), ``args`` (the run's
  settings, checked on resume).

Exact resume: :mod:`refvos.engine.resume` (sample order, per-sample seeds, generator states).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from .. import checkpoint as ckpt_io
from ..data import collate
from ..data.base import DataLoader, dataset_truncation
from ..errors import InputError, RefVOSError
from ..runtime import (
    agree_across_ranks,
    autocast,
)
from ..tokenization import truncation_note
from . import distributed as du
from .logger import EventWriter, MetricLogger
from .param_groups import build_optimizer, build_param_groups
from .resume import (
    ResumableSampler,
    SeededSamples,
    check_training_state,
    restore_training_state,
    seed_everything,
    training_state,
)
from .run_lock import run_lock
from .schedules import build_schedule
from .tables import epoch_line
from .train_config import TrainConfig
from .train_precision import choose_train_precision

IGNORE_INDEX = 255
LAST, BEST = "last.pth", "best.pth"


class NonFiniteLossError(RefVOSError):
    """The loss (or, after an update, a weight) became NaN or infinite; training stopped and the
    last good checkpoint was kept."""


# ----------------------------------------------------------------------------- validation


def validate(
    model: torch.nn.Module,
    dataset: torch.utils.data.Dataset,
    device: torch.device,
    precision: str = "fp32",
    workers: int = 0,
    progress: bool = False,
) -> dict[str, float]:
    """RefVOS's IoU metrics (overall / mean IoU, precision@0.5:0.9) of ``model`` on an eval-mode
    ``dataset`` through :func:`refvos.engine.evaluator.evaluate` (sharded over processes); the
    model's train / eval mode is restored afterwards."""
    from .evaluator import evaluate

    net = getattr(model, "module", model)
    was_training = net.training
    try:
        result = evaluate(
            net, dataset, device=device, precision=precision, workers=workers, progress=progress
        )
    finally:
        net.train(was_training)
    return dict(result["metrics"]["refvos"])


# ----------------------------------------------------------------------------- trainer


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns: per-epoch summaries, the best, the checkpoint folder."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None
    iteration: int = 0
    run_dir: Path | None = None


class Trainer:
    """Trains ``model`` on ``train_set`` (a train-mode referring Dataset).

    ``val_set``: eval-mode Dataset for best-model selection (``None``: no ``best.pth``).
    ``device``: where to train (after :func:`~refvos.engine.distributed.init_distributed_mode`
    under torchrun). ``args``: extra settings stored in checkpoints (data set, model, ...).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train_set: torch.utils.data.Dataset,
        config: TrainConfig,
        val_set: torch.utils.data.Dataset | None = None,
        device: str | torch.device = "cpu",
        args: dict[str, Any] | None = None,
    ) -> None:
        config.check()
        self.config = config
        self.device = torch.device(device)
        self.precision_choice = agree_across_ranks(
            choose_train_precision(config.precision, self.device, model)
        )
        self.precision = self.precision_choice.precision
        self.run_dir = Path(config.output_dir)
        self.schedule = build_schedule(config.schedule, config.lr, config.epochs, config.lr_factor)
        self.epochs = self.schedule.epochs
        # channels-last: oneDNN's and cuDNN's fast convolution layout (only 4-D tensors change)
        self.model = model.to(self.device, memory_format=torch.channels_last)
        self.train_set, self.val_set = train_set, val_set
        self.world_size, self.rank = du.get_world_size(), du.get_rank()
        self.args = {**(args or {}), **self._settings()}

        self.param_groups = build_param_groups(self.model, config.text_encoder_training)
        self.optimizer = build_optimizer(config, self.param_groups, self.schedule(0))
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        self.ddp = None
        if self.world_size > 1:
            self.ddp = torch.nn.parallel.DistributedDataParallel(
                self.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,  # the pooler is optimised (as the original) but unused
            )
        self.sampler = ResumableSampler(len(train_set), config.seed)
        self.loader = DataLoader(
            SeededSamples(train_set),
            batch_size=config.batch_size,
            sampler=self.sampler,
            drop_last=True,
            num_workers=config.workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator(),  # keeps the global generator untouched
        )
        self.steps_per_epoch = self.sampler.per_rank // config.batch_size // config.accumulate
        if self.steps_per_epoch < 1:
            raise InputError(
                f"the training set has {len(train_set)} samples, fewer than one optimizer step needs "
                f"(batch size {config.batch_size} x accumulate {config.accumulate} x {self.world_size} "
                "process(es)); lower --batch-size or --accumulate"
            )
        self.epoch, self.step, self.iteration = 0, 0, 0
        self.best: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.events = EventWriter(self.run_dir, tensorboard=config.tensorboard)

    def _settings(self) -> dict[str, Any]:
        c = asdict(self.config)
        c["output_dir"] = str(c["output_dir"])
        c.update(
            world_size=du.get_world_size(),
            schedule=self.schedule.name,
            lr=self.schedule(0),
            epochs=self.epochs,
            precision=self.precision,
        )
        return c

    # -------------------------------------------------------------- state

    def state(self) -> dict[str, Any]:
        """Everything but the weights: the ``extra`` entries of a training checkpoint
        (:func:`refvos.engine.resume.training_state`)."""
        return training_state(self)

    def load_state(self, ckpt: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore optimizer, position, generators, best and history from a training checkpoint
        (:func:`refvos.engine.resume.restore_training_state`; the weights: :meth:`resume`)."""
        restore_training_state(self, ckpt, source)

    def resume(self, path: str | Path, ckpt: dict[str, Any] | None = None) -> None:
        """Load weights and training state from ``path`` (a refvos training checkpoint);
        ``ckpt``: its contents when the caller has read them already (not read again)."""
        if ckpt is None:
            ckpt = ckpt_io.read_checkpoint(path, map_location="cpu")
        check_training_state(ckpt, str(path))
        ckpt_io.load_state_into(self.model, ckpt, str(path))
        self.load_state(ckpt, str(path))

    def save(self, name: str, weights_only: bool = False) -> Path:
        """Write the model and :meth:`state` to ``<run dir>/<name>`` on rank 0 (atomically);
        ``weights_only``: without the optimizer, generators and position (a file to evaluate or
        predict with, a fraction of the size; resuming needs ``last.pth``)."""
        self.check_finite_weights()
        state = self.state()  # collective: every rank takes part
        if weights_only:
            state = {k: state[k] for k in ("epoch", "iteration", "best", "history", "args")}
        path = self.run_dir / name
        du.save_on_master(ckpt_io.save_checkpoint, path, self.model, **state)
        du.barrier()
        return path

    def check_finite_weights(self) -> None:
        """Raise :class:`NonFiniteLossError` if an update made a weight NaN or infinite (its loss
        was still finite), so that no checkpoint is written with such weights: the last one
        written stays the last good one (every rank holds the same weights and raises alike)."""
        bad = next(
            (name for name, p in self.model.named_parameters() if not torch.isfinite(p).all()), None
        )
        if bad is None:
            return
        last = self.run_dir / LAST
        raise NonFiniteLossError(
            f"the weights became non-finite ({bad}) at iteration {self.iteration}; training stopped. "
            + (
                f"The last good checkpoint is {last}; resume from it with --resume {last} "
                "(perhaps with a lower --lr)."
                if last.is_file()
                else "No checkpoint was written yet."
            )
        )

    # -------------------------------------------------------------- training

    def criterion(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean 2-class cross-entropy over non-ignored pixels: ``(B,2,H,W)``, ``(B,H,W)`` -> scalar
        (0 where every pixel is ignored)."""
        total = F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX, reduction="sum")
        return total / (target != IGNORE_INDEX).sum().clamp(min=1)

    def set_train_mode(self) -> None:
        self.model.train()
        self.model.text_encoder.eval()  # as the original: no dropout in BERT

    def set_lr(self, epoch: int, step: int = 0) -> float:
        """Set the rate of optimizer step ``step`` of ``epoch`` on every group; returns it."""
        lr = self.schedule.at(epoch, step, self.steps_per_epoch)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        return lr

    def on_step_end(self) -> None:
        """Called after every optimizer step (and its checkpoint); override to observe or stop."""

    def train_one_epoch(self, epoch: int) -> dict[str, Any]:
        """Optimizer steps ``self.step .. steps_per_epoch - 1`` of ``epoch``; returns its summary."""
        cfg = self.config
        net = self.ddp or self.model
        first_lr = self.set_lr(epoch, self.step)
        self.set_train_mode()
        self.sampler.set_epoch(epoch, self.step * cfg.accumulate * cfg.batch_size)
        batches = iter(self.loader)
        logger = MetricLogger(progress=cfg.progress)
        images_per_step = cfg.batch_size * cfg.accumulate * self.world_size
        for step in logger.log_every(
            range(self.step, self.steps_per_epoch),
            header=f"Epoch [{epoch}]",
            total=self.steps_per_epoch,
            print_freq=cfg.print_freq,
            initial=self.step,
        ):
            start = time.perf_counter()
            lr = self.set_lr(epoch, step)  # poly decays every iteration, as the original
            loss_sum = torch.zeros((), device=self.device)
            for micro in range(cfg.accumulate):
                batch = next(batches)
                sync = micro == cfg.accumulate - 1 or self.ddp is None
                with contextlib.nullcontext() if sync else self.ddp.no_sync():
                    with autocast(self.device, self.precision):
                        image = batch["image"].to(
                            self.device, non_blocking=True, memory_format=torch.channels_last
                        )
                        logits = net(
                            image,
                            batch["input_ids"].to(self.device),
                            batch["attention_mask"].to(self.device),
                        )
                    loss = self.criterion(logits, batch["mask"].to(self.device)) / cfg.accumulate
                    (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
                loss_sum += loss.detach()
            mean_loss = float(du.reduce_tensor(loss_sum).item())
            if not math.isfinite(mean_loss):
                last = self.run_dir / LAST
                raise NonFiniteLossError(
                    f"the loss became {mean_loss} at epoch {epoch}, step {step} (iteration {self.iteration + 1}, "
                    f"learning rate {lr:g}); training stopped. "
                    + (
                        f"The last good checkpoint is {last}; resume from it with --resume {last} "
                        "(perhaps with a lower --lr)."
                        if last.is_file()
                        else "No checkpoint was written yet."
                    )
                )
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step, self.iteration = step + 1, self.iteration + 1
            seconds = time.perf_counter() - start
            logger.update(loss=mean_loss, lr=lr, **{"img/s": images_per_step / max(seconds, 1e-9)})
            if self.iteration % cfg.print_freq == 0:
                self.events.write(
                    "train",
                    self.iteration,
                    epoch=epoch,
                    loss=mean_loss,
                    lr=lr,
                    images_per_second=images_per_step / max(seconds, 1e-9),
                )
            if cfg.checkpoint_every and self.iteration % cfg.checkpoint_every == 0:
                self.save(LAST)
            self.on_step_end()
        logger.synchronize_between_processes()
        loss_meter = logger.meters.get("loss")
        return {
            "epoch": epoch,
            "lr": first_lr,
            "iteration": self.iteration,
            "loss": loss_meter.global_avg if loss_meter is not None else math.nan,
        }

    def end_epoch(self, summary: dict[str, Any]) -> None:
        """Validate, keep the best, then save ``best.pth`` (if improved) and ``last.pth``."""
        epoch = summary["epoch"]
        improved = False
        if self.val_set is not None:
            metrics = validate(
                self.model,
                self.val_set,
                self.device,
                self.precision,
                self.config.workers,
                progress=self.config.progress,
            )
            summary["val"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
            value = metrics[self.config.select_metric]
            self.events.write("val", self.iteration, epoch=epoch, **summary["val"])
            if self.best is None or value > self.best["value"]:
                self.best = {"metric": self.config.select_metric, "value": value, "epoch": epoch}
                improved = True
        self.history.append(summary)
        self.events.write(
            "epoch", self.iteration, **{k: v for k, v in summary.items() if k != "val"}
        )
        if du.is_main_process():
            print(epoch_line(summary, self.best if improved else None), flush=True)
        self.epoch, self.step = epoch + 1, 0
        if improved:
            self.save(BEST, weights_only=True)
        self.save(LAST)
        self.set_train_mode()

    def remove_stale_temporaries(self) -> None:
        """Delete checkpoint temporaries (``.last.pth.*.tmp``) that a killed run left behind."""
        if du.is_main_process() and self.run_dir.is_dir():
            for tmp in self.run_dir.glob(".*.pth.*.tmp"):
                tmp.unlink(missing_ok=True)

    def truncation_reports(self) -> dict[str, dict[str, Any]]:
        """``{"training": report, "validation": report}``
        (:func:`~refvos.data.base.dataset_truncation`) for the data sets whose expressions can be read."""
        sets = {"training": self.train_set, "validation": self.val_set}
        reports = {name: dataset_truncation(d) for name, d in sets.items() if d is not None}
        return {name: r for name, r in reports.items() if r is not None}

    def report_truncation(self) -> None:
        """Log how many expressions are longer than the token limit (event ``truncation``) and
        print a note with examples for each data set that has some."""
        reports = self.truncation_reports()
        if reports:
            self.events.write("truncation", self.iteration, **reports)
        for name, report in reports.items():
            if (note := truncation_note(report, name)) is not None:
                print(note, file=sys.stderr, flush=True)

    def fit(
        self, resume: str | Path | None = None, checkpoint: dict[str, Any] | None = None
    ) -> TrainResult:
        """Train until ``epochs``; ``resume``: a checkpoint to continue from (``checkpoint``: its
        contents, if already read). Returns the history. The run folder is locked meanwhile
        (:func:`~refvos.engine.run_lock.run_lock`, main process)."""
        with run_lock(self.run_dir) if du.is_main_process() else contextlib.nullcontext():
            return self._fit(resume, checkpoint)

    def _fit(self, resume: str | Path | None, checkpoint: dict[str, Any] | None) -> TrainResult:
        self.remove_stale_temporaries()
        if resume is not None:
            self.resume(resume, checkpoint)
            self.events.write(
                "resume", self.iteration, source=str(resume), epoch=self.epoch, epoch_step=self.step
            )
        else:
            seed_everything(self.config.seed + self.rank)
            self.events.write(
                "start",
                0,
                **{
                    k: v
                    for k, v in self.args.items()
                    if isinstance(v, (str, int, float, bool)) or v is None
                },
            )
        self.events.write("precision", self.iteration, **self.precision_choice.to_json())
        if du.is_main_process():
            print(
                f"precision: {self.precision} ({self.precision_choice.source}: {self.precision_choice.reason})",
                flush=True,
            )
            self.report_truncation()
        try:
            while self.epoch < self.epochs:
                summary = self.train_one_epoch(self.epoch)
                self.end_epoch(summary)
        finally:
            self.events.flush()
        self.events.close()
        return TrainResult(self.history, self.best, self.iteration, self.run_dir)
