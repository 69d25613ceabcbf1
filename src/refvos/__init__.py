"""refvos: segment the object a sentence refers to, in an image or through a video."""

__version__ = "0.1.0"

__all__ = [
    "MODEL_REGISTRY",
    "Predictor",
    "RefVOS",
    "RefVOSConfig",
    "build_model",
    "load_checkpoint",
    "save_checkpoint",
]

# name -> module: imported on first use, so that `refvos --help` and the command-line parser
# start without torch or transformers
_LAZY = {
    "MODEL_REGISTRY": "modeling",
    "RefVOS": "modeling",
    "RefVOSConfig": "modeling",
    "build_model": "modeling",
    "load_checkpoint": "checkpoint",
    "save_checkpoint": "checkpoint",
    "Predictor": "predictor",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'refvos' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
