"""The RefVOS network and its variants."""

from .build import (
    MODEL_REGISTRY,
    build_from_config,
    build_model,
    build_refvos_lite,
    build_refvos_r101,
)
from .config import RefVOSConfig
from .refvos import RefVOS

__all__ = [
    "MODEL_REGISTRY",
    "RefVOS",
    "RefVOSConfig",
    "build_from_config",
    "build_model",
    "build_refvos_lite",
    "build_refvos_r101",
]
