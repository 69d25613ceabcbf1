"""Helpers shared by the tests (fixtures live in ``tests/conftest.py``).

- Tiny networks: :func:`make_tiny_model` (a random ``refvos_lite`` with a 2-layer, 64-wide BERT,
  built in well under a second, offline) and :data:`TINY_MODEL_ARGS`, the same network as
  command-line flags; :func:`train_argv`, a ``refvos train`` command line on synthetic RefCOCO.
- Built-in synthetic data at toy size: :func:`make_tiny_synthetic`.
- Networks whose masks are mixed, and an independent reference. Random weights make a tiny
  network predict one class everywhere (every mask empty), so a comparison of two mask pipelines
  can pass whatever either does to the logits. The network from :func:`make_mixed_model` puts
  foreground on about half the pixels; :func:`reference_mask` computes the released pipeline's
  mask (head logits, bilinear upsampling with ``align_corners=False``, argmax) by hand, without
  the package's ``decode``, so changing the upsampling fails a test.
- :class:`TableModel`: a stand-in network that predicts a given mask per (image, sentence).
- RefVOS's annotation files beside the repository: :func:`shared_dataset_file`.
- Bad (and odd-but-valid) inputs for the reliability and serve tests: constant, truncated or
  oddly-moded pictures, frame folders, GIF / TIFF bombs (:func:`gif_with_huge_second_frame`,
  :func:`tiff_pages`, :func:`many_page_tiff`, :func:`flat_gif`), corrupt TIFF pages
  (:func:`tiff_with_bad_second_page`), and :func:`tree` (the files under a folder).
- Checkpoint bombs: :func:`deflated_checkpoint` (a torch zip of a few MB whose deflated records
  inflate to gigabytes of zeros).
- A ``refvos serve`` server started and stopped around a block: :func:`running_server`; an
  HTTP client for it (:func:`request`, :func:`post_json`, :func:`post_files`, :func:`multipart`)
  and its inputs / outputs (:func:`png_bytes`, :func:`gif_bytes`, :func:`decode_png`).

Modules: :mod:`.browser`, :mod:`.models`, :mod:`.hostile`, :mod:`.http`, :mod:`.paths`; imported one way
everywhere: ``from tests.helpers import ...``.
"""

from .browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    browser_or_fail,
)
from .hostile import (
    deflated_checkpoint,
    flat_gif,
    frames_folder,
    gif_with_huge_second_frame,
    many_page_tiff,
    rgb,
    tiff_pages,
    tiff_with_bad_second_page,
    tree,
    truncated_png,
    write_constant_png,
    write_image,
)
from .http import (
    HTTP_TIMEOUT,
    SERVE_H,
    SERVE_W,
    decode_png,
    gif_bytes,
    multipart,
    png_bytes,
    post_files,
    post_json,
    request,
    running_server,
)
from .models import (
    IMAGE_SIZE,
    TINY_MODEL_ARGS,
    TINY_TEXT_CONFIG,
    TableModel,
    assert_mixed,
    make_mixed_model,
    make_tiny_model,
    make_tiny_synthetic,
    reference_logits,
    reference_mask,
    train_argv,
)
from .paths import (
    REPO_ROOT,
    SHARED,
    shared_dataset_file,
)

__all__ = [
    "deflated_checkpoint",
    "flat_gif",
    "many_page_tiff",
    "tiff_with_bad_second_page",
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "browser_or_fail",
    "HTTP_TIMEOUT",
    "IMAGE_SIZE",
    "REPO_ROOT",
    "SERVE_H",
    "SERVE_W",
    "SHARED",
    "TINY_MODEL_ARGS",
    "TINY_TEXT_CONFIG",
    "TableModel",
    "assert_mixed",
    "decode_png",
    "frames_folder",
    "gif_bytes",
    "gif_with_huge_second_frame",
    "make_mixed_model",
    "make_tiny_model",
    "make_tiny_synthetic",
    "multipart",
    "png_bytes",
    "post_files",
    "post_json",
    "reference_logits",
    "reference_mask",
    "request",
    "rgb",
    "running_server",
    "shared_dataset_file",
    "tiff_pages",
    "train_argv",
    "tree",
    "truncated_png",
    "write_constant_png",
    "write_image",
]
