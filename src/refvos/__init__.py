"""refvos: segment the object a sentence refers to, in an image or through a video."""

__version__ = "0.1.0"

from .checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from .modeling import MODEL_REGISTRY, RefVOS, RefVOSConfig, build_model  # noqa: E402

__all__ = [
    "MODEL_REGISTRY",
    "Predictor",
    "RefVOS",
    "RefVOSConfig",
    "build_model",
    "load_checkpoint",
    "save_checkpoint",
]


def __getattr__(name: str):
    if name == "Predictor":  # imported lazily: it pulls in image decoding
        from .predictor import Predictor

        return Predictor
    raise AttributeError(name)
