"""The settings of a training run (``refvos train``'s flags), checked before anything is built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from .param_groups import TEXT_ENCODER_TRAINING

# "sgd": the original's (momentum, weight decay); "adamw": AdamW (decoupled weight decay), the
# optimiser of later referring-segmentation models, which also trains a backbone from scratch
OPTIMIZERS = ("sgd", "adamw")


@dataclass
class TrainConfig:
    """Settings of a training run (the CLI's flags). ``epochs`` / ``lr`` of ``None`` take the
    schedule's own (a recipe's length, 0.01 for ``poly`` / ``constant``); ``lr_factor``: the
    ``fixed`` schedule's factor (the original's ``--lr_specific``); ``momentum``: SGD's (AdamW keeps
    its default betas)."""

    output_dir: str | Path
    epochs: int | None = None
    schedule: str | None = None
    lr: float | None = None
    lr_factor: float | None = None
    batch_size: int = 7
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-6
    accumulate: int = 1
    workers: int = 4
    seed: int = 0
    checkpoint_every: int = 0
    text_encoder_training: str = "original"
    precision: str = "auto"
    select_metric: str = "overall_iou"
    print_freq: int = 10
    progress: bool = True
    tensorboard: bool = True

    def check(self) -> None:
        for name, low in (
            ("batch_size", 1),
            ("accumulate", 1),
            ("workers", 0),
            ("checkpoint_every", 0),
            ("print_freq", 1),
        ):
            if getattr(self, name) < low:
                raise InputError(
                    f"--{name.replace('_', '-')} must be at least {low}, got {getattr(self, name)}"
                )
        if self.lr is not None and not self.lr > 0:
            raise InputError(f"--lr must be positive, got {self.lr}")
        if self.epochs is not None and self.epochs < 1:
            raise InputError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2:
            raise InputError(
                f"--batch-size must be at least 2 (per process), got {self.batch_size}: the ASPP "
                "image-pooling BatchNorm needs two images; use --accumulate for larger effective batches"
            )
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"--optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.text_encoder_training not in TEXT_ENCODER_TRAINING:
            raise InputError(
                f"--text-encoder-training must be one of {TEXT_ENCODER_TRAINING}, got {self.text_encoder_training!r}"
            )
