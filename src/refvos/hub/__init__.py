"""Models by name: the authors' released weights (:mod:`.registry`), fetched into a local cache
(:mod:`.cache`, :mod:`.download`, :mod:`.archive`) and resolved wherever a model is named
(:mod:`.resolve`), and the Hugging Face folder format (:mod:`.folder`). Importing the registry
imports nothing heavy; the rest is imported on first use."""

from .registry import RELEASED, ReleasedWeights, released

__all__ = [
    "RELEASED",
    "ReleasedWeights",
    "download",
    "load_model",
    "released",
    "resolve_checkpoint",
    "resolve_text_encoder",
]

_LAZY = {"download", "load_model", "resolve_checkpoint", "resolve_text_encoder"}


def __getattr__(name: str):
    if name in _LAZY:
        from . import resolve

        return getattr(resolve, name)
    raise AttributeError(f"module 'refvos.hub' has no attribute {name!r}")
