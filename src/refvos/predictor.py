"""The user's entry point: segment what an expression refers to in an image or a video.

>>> predictor = Predictor.from_pretrained("refcoco")      # a released model, by name
>>> predictor = Predictor.from_checkpoint("model.pth")
>>> mask = predictor.predict("photo.jpg", "the man on the left")   # bool (H, W)
>>> results = predictor.predict_all("photo.jpg", ["the man", "the dog"])   # [Prediction]
>>> frames = predictor.predict_video("clip.gif", "the dog running")       # [Prediction] per frame

Like segment-anything's predictor, ``set_image`` runs the visual encoder once
(:meth:`RefVOS.encode_image`) and caches its features, so several expressions about one image
cost one backbone pass; each expression is then decoded (:meth:`RefVOS.decode`, upsampling to
the image's size inside). Videos run frames in batches, the backbone once per batch and every
expression's head on it, each expression encoded once (:meth:`Predictor.iter_video_all`). By
default the image is scaled down to the long side the model was trained and evaluated at
(``model.config.input_size``; the released checkpoints: the image's own resolution, exactly as
the original test pipeline), with ImageNet normalisation and the model's token limit;
``max_size`` overrides the cap (the mask is always resized back to the image). The model given
is not changed: the predictor works on its own copy. The evaluator, the demo, ``refvos
predict`` and ``refvos serve`` all run this one path.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from .errors import InputError
from .media.image import load_image, scaled_tensor
from .modeling import RefVOS
from .modeling.postprocess import (
    Prediction,
    foreground_mask,
    mask_box,
    prediction,
    upsampled_prediction,
)
from .modeling.surgery import fold_batchnorm
from .runtime import PrecisionChoice, autocast, check_precision, resolve_device
from .runtime.backend import CALIBRATION_SIDE, Backends, check_backend, torch_precision
from .runtime.compiling import SegmenterRunner, check_compile
from .tokenization import Tokenizer, get_tokenizer

ImageLike = str | os.PathLike | Image.Image | np.ndarray

# Prediction and the functions that make one live in refvos.modeling.postprocess
__all__ = ["ImageLike", "Prediction", "Predictor", "mask_box", "prediction", "upsampled_prediction"]


# a video batch holds at most this many pixels of frames (4 frames of 2048 x 2048): frames of
# 8000 x 8000 run one at a time
BATCH_PIXELS = 4 * 2048 * 2048


class Predictor:
    """Runs a :class:`RefVOS` network on images and videos.

    Args:
        model: the network; the predictor runs a copy on ``device`` in eval mode (the caller's
            model is left as it was). :meth:`from_checkpoint` loads one without the copy.
        device: ``None``/``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda:0"``...
        precision: ``"auto"`` (bf16 on CUDA; on CPUs the faster of fp32 and bf16 on this network,
            measured once per CPU model / threads / torch version and cached, see
            :mod:`refvos.runtime`), ``"fp32"`` (bit-faithful to the original pipeline), ``"bf16"``
            or ``"fp16"``. On a CPU, bf16 and fp16 (``"auto"``'s candidates and an explicit
            choice alike) are timed with the ASPP's atrous convolutions in both forms, the
            dilated convolution and tap by tap (:func:`refvos.modeling.head.atrous_by_taps`;
            2-3x faster per ``refvos_r101`` frame on an Intel Xeon family 6 model 207 with AMX,
            docs/BENCHMARKS.md), and the faster runs; fp32 runs the convolution.
            :attr:`precision_choice` says what was chosen and why. Constructing measures nothing
            and writes nothing: the precision is resolved on first use (the first
            ``set_image`` / ``predict`` / video, or :attr:`precision_choice`) or by an explicit
            :meth:`calibrate`.
        max_size: cap on the long side of the processed image: ``"model"`` (default) the
            model's ``config.input_size``, an int, or None (the image's own resolution).
        legacy_truncation: cut token ids after the special tokens, as the original code
            (``None``: the rule the model's config records, ``model.config.truncation``).
        channels_last: run convolutions in channels-last memory format.
        fold_bn: fold BatchNorm into the preceding convolutions of an inference copy of the
            segmentation network (``None``: when the precision is bf16 / fp16; fp32 keeps the
            original's exact arithmetic). The copy is taken here: weights changed on ``model``
            afterwards are not seen by a predictor with folded BN.
        compile: ``torch.compile`` the segmentation network (inductor, ``freezing``; one graph
            per image size): ``True`` from the first call, ``False`` never, ``"auto"`` for an
            image size only where the measured eager time of the frames still to come, times the
            expected saving, exceeds the compile time (see :mod:`refvos.runtime.compiling`; a video's
            length is known from ``iter_video_all``'s ``frames`` or ``total_frames``).
            :meth:`warm_up` compiles given sizes at once and then compiles nothing more.
            :meth:`compile_report` gives the time compiling took; a failure falls back to eager
            with a warning.
        backend: ``"auto"`` (PyTorch, or OpenVINO where it is installed and measured faster on
            this network, see :mod:`refvos.runtime.backend`), ``"torch"`` or ``"openvino"`` (the extra
            ``refvos[openvino]``). :attr:`precision_choice` says which ran and why.
        int8_model: an int8 encoder written by ``refvos quantize`` for this network (OpenVINO
            IR ``.xml`` with its record ``.json`` beside it); used only when given, and reported
            by :meth:`runtime_report` with its measured agreement with fp32.
    """

    def __init__(
        self,
        model: RefVOS,
        device: str | torch.device | None = None,
        precision: str = "auto",
        max_size: int | str | None = "model",
        legacy_truncation: bool | None = None,
        channels_last: bool = True,
        tokenizer: Tokenizer | None = None,
        fold_bn: bool | None = None,
        compile: str | bool = "auto",
        backend: str = "auto",
        int8_model: str | os.PathLike | None = None,
        *,
        _owns_model: bool = False,
    ) -> None:
        import copy

        self.device = resolve_device(device)
        if max_size == "model":
            max_size = getattr(model.config, "input_size", None)
        if max_size is not None and (isinstance(max_size, str) or max_size < 16):
            raise InputError(f"max_size must be at least 16 pixels, got {max_size}")
        self.compile = check_compile(compile)
        self.model = (model if _owns_model else copy.deepcopy(model)).to(self.device).eval()
        self.channels_last = channels_last
        if channels_last:
            self.model.segmenter.to(memory_format=torch.channels_last)
        self._folded: torch.nn.Module | None = None
        self._fold_bn = fold_bn
        self._precision_request = precision
        self._calibration_side = min(max_size or CALIBRATION_SIDE, CALIBRATION_SIDE)
        self.backends = Backends(
            self._segmenter_for,
            self.model.config.text_dim,
            self.device,
            check_backend(backend),
            int8_model,
            channels_last,
        )
        self._choice: PrecisionChoice | None = None
        self._torch_precision: str | None = None
        self._segmenter: torch.nn.Module | None = None
        self._runner: SegmenterRunner | None = None
        self._calibration_lock = threading.Lock()
        check_precision(precision)  # now; resolved (and measured where it is) on first use
        self.max_size = max_size
        if legacy_truncation is None:
            legacy_truncation = getattr(model.config, "truncation", "standard") == "original"
        self.legacy_truncation = legacy_truncation
        self.tokenizer = tokenizer or get_tokenizer()
        self._features: torch.Tensor | None = None
        self._image_size: tuple[int, int] | None = None

    # -- precision: resolved on first use ----------------------------------------------------
    def _segmenter_for(self, precision: str) -> torch.nn.Module:
        """The network ``precision`` runs: the model's segmenter, or its BN-folded copy."""
        if self._fold_bn if self._fold_bn is not None else precision != "fp32":
            if self._folded is None:
                self._folded = fold_batchnorm(self.model.segmenter)
            return self._folded
        return self.model.segmenter

    def calibrate(self) -> PrecisionChoice:
        """Resolve the precision now (``"auto"`` on a CPU: the timing of
        :func:`refvos.runtime.choose_precision` through :class:`refvos.runtime.backend.Backends`,
        or its cached result) and build the network that runs images. Called by the first prediction when not called before; later calls return
        the same choice."""
        with self._calibration_lock:
            if self._choice is None:
                self._resolve_precision()
        return self._choice

    def _resolve_precision(self) -> None:
        choice = self.backends.choose(self._precision_request, self._calibration_side)
        # the precision of what PyTorch runs (the text encoder; the segmenter with backend torch)
        precision = torch_precision(choice)
        # the network that runs images: the model's own segmenter, or its BN-folded copy, its
        # atrous convolutions in the chosen form
        runner = self.backends.runner(choice, self.compile)
        segmenter = getattr(runner, "segmenter", self.model.segmenter)
        self._folded = None  # the runner holds what it runs; any other copy was for measuring
        self._segmenter, self._runner = segmenter, runner
        self._torch_precision, self._choice = precision, choice

    @property
    def precision_choice(self) -> PrecisionChoice:
        """What runs (backend, precision) and why (resolves it: see :meth:`calibrate`)."""
        return self.calibrate()

    @property
    def precision(self) -> str:
        """The precision PyTorch runs at: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (resolves it: see
        :meth:`calibrate`)."""
        self.calibrate()
        return self._torch_precision

    @property
    def backend(self) -> str:
        """``"torch"`` or ``"openvino"`` (resolves it: see :meth:`calibrate`)."""
        return self.calibrate().backend

    @property
    def segmenter(self) -> torch.nn.Module:
        """The network that runs images: the model's own segmenter, or its BN-folded copy."""
        self.calibrate()
        return self._segmenter

    @property
    def runner(self) -> SegmenterRunner:
        """The segmenter's encode / decode, eager or compiled (see :mod:`refvos.runtime.compiling`)."""
        self.calibrate()
        return self._runner

    @runner.setter
    def runner(self, runner: SegmenterRunner) -> None:
        self.calibrate()
        self._runner = runner

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, truncation: str | None = None, **kwargs
    ) -> Predictor:
        """A predictor for the network in checkpoint ``path`` (refvos format or the authors'
        release); ``truncation`` overrides the rule it records (see
        :func:`~refvos.checkpoint.load_checkpoint`); ``kwargs`` as for the constructor."""
        from .checkpoint import load_checkpoint

        return cls(load_checkpoint(path, truncation=truncation), _owns_model=True, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        truncation: str | None = None,
        hub_kwargs: dict | None = None,
        **kwargs,
    ) -> Predictor:
        """A predictor for a model by name: a released model (``"refcoco"``, ``"davis"``...,
        see ``refvos download --list``; downloaded into the cache on first use), a folder written
        by :meth:`save_pretrained`, a Hugging Face repository id (``"org/name"``), or a ``.pth``
        file. ``hub_kwargs``: the Hub's ``revision``, ``cache_dir``, ``token``...; ``kwargs`` as for
        the constructor."""
        from .hub.resolve import load_model

        return cls(
            load_model(name_or_path, truncation=truncation, **(hub_kwargs or {})),
            _owns_model=True,
            **kwargs,
        )

    def save_pretrained(self, folder: str | os.PathLike, **kwargs) -> str:
        """Write the model as ``config.json`` + ``model.safetensors`` + a model card ``README.md``
        (huggingface_hub's ``ModelHubMixin``; ``kwargs``: its ``push_to_hub``, ``repo_id``...),
        readable by :meth:`from_pretrained`. Returns the folder."""
        from .hub.folder import save_pretrained

        return str(save_pretrained(self.model, folder, **kwargs))

    # -- reports ---------------------------------------------------------------------------
    def compile_report(self) -> dict:
        """PyTorch: ``{"setting": "auto" | True | False, "compiled", "compile_s", "compiled_sizes",
        "fallback"}``; OpenVINO: :meth:`refvos.runtime.openvino_backend.OpenVINORunner.report`."""
        return self.runner.report()

    def runtime_report(self) -> dict:
        """The backend and precision choice (and its measured reason), the compile (or OpenVINO)
        report and the int8 model's record when one runs, for JSON output."""
        report = {
            "device": str(self.device),
            "backend": self.backend,
            "precision": self.precision_choice.to_json(),
            "compile": self.compile_report(),
        }
        if (int8 := self.backends.report()) is not None:
            report["int8_model"] = int8
        return report

    def warm_up(
        self, sizes: Iterable[tuple[int, int]], batch_sizes: Iterable[int] = (1, 4)
    ) -> None:
        """Compile the network now for processed pictures of each ``(height, width)`` in ``sizes``
        (batches of each of ``batch_sizes`` frames, one expression), then compile nothing more:
        other shapes run eagerly (what ``refvos serve --warmup`` does before it serves)."""
        self.runner.compile = True
        text = torch.zeros(1, self.model.config.text_dim, device=self.device)
        with torch.inference_mode():
            for h, w in sizes:
                for b in batch_sizes:
                    x = torch.zeros(b, 3, h, w, device=self.device)
                    if self.channels_last:
                        x = x.contiguous(memory_format=torch.channels_last)
                    features = self.encode_images(x)
                    self.decode(features, text, tuple(features.shape[-2:]))
                    self.decode(features, text, (h, w))
        self.runner.freeze()

    # -- pre / post processing -------------------------------------------------------------
    def preprocess(self, image: np.ndarray) -> torch.Tensor:
        """RGB uint8 ``(H, W, 3)`` -> normalised ``(1, 3, h, w)`` on the device (h, w capped by max_size)."""
        x = scaled_tensor(image, self.max_size).to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    # -- the network: the model's encode_image / decode split --------------------------------
    def encode_images(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 256, h, w)`` of preprocessed images ``(B, 3, h, w)`` (compiled when on)."""
        with autocast(self.device, self.precision):
            return self.runner.encode(x)

    def decode(
        self, features: torch.Tensor, text: torch.Tensor, size: tuple[int, int]
    ) -> torch.Tensor:
        """Float logits ``(B, 2, *size)`` of features ``(B, 256, h, w)`` and sentence vectors
        ``(B, D)`` or ``(1, D)``, upsampled to ``size`` (the image's own size)."""
        with autocast(self.device, self.precision):
            return self.runner.decode(features, text, tuple(size))

    # -- text ------------------------------------------------------------------------------
    @torch.inference_mode()
    def encode_expressions(self, expressions: Sequence[str]) -> torch.Tensor:
        """Sentence vectors ``(N, D)`` of the expressions (tokenised to the model's limit)."""
        ids, mask = self.tokenizer.encode(
            list(expressions),
            self.model.config.max_tokens,
            legacy_truncation=self.legacy_truncation,
        )
        with autocast(self.device, self.precision):
            return self.model.encode_text(ids.to(self.device), mask.to(self.device)).float()

    # -- images ----------------------------------------------------------------------------
    @torch.inference_mode()
    def set_image(self, image: ImageLike) -> None:
        """Load an image and run the visual encoder once; ``predict`` then reuses its features."""
        rgb = load_image(image)
        self._features = self.encode_images(self.preprocess(rgb))
        self._image_size = rgb.shape[:2]

    @torch.inference_mode()
    def predict_all(
        self, image: ImageLike | None, expressions: str | Sequence[str]
    ) -> list[Prediction]:
        """One :class:`Prediction` per expression on ``image`` (None: the image given to
        ``set_image``). The arguments are in :meth:`predict`'s order."""
        if isinstance(image, (list, tuple)) or isinstance(
            expressions, (np.ndarray, Image.Image, os.PathLike)
        ):
            raise TypeError(
                "predict_all(image, expressions): the image comes first, as in predict()"
            )
        if image is not None:
            self.set_image(image)
        if self._features is None:
            raise InputError("no image: call set_image(image) or pass image=")
        expressions = _expression_list(expressions)
        text = self.encode_expressions(expressions)
        results = []
        for expression, vector in zip(expressions, text):
            logits = self.decode(self._features, vector[None], self._image_size)
            results.append(prediction(expression, foreground_mask(logits)[0], logits[0]))
        return results

    def predict(self, image: ImageLike, expression: str) -> np.ndarray:
        """Bool mask ``(H, W)`` of what ``expression`` refers to in ``image``."""
        return self.predict_all(image, [expression])[0].mask

    # -- videos ----------------------------------------------------------------------------
    def predict_video(
        self, frames: str | os.PathLike | Iterable[ImageLike], expression: str, batch_size: int = 4
    ) -> list[Prediction]:
        """One :class:`Prediction` (mask, score, area, box) per frame. ``frames``: a folder of
        frames, a GIF or video file, or an iterable of images. The expression is encoded once;
        frames of one size run in batches of ``batch_size``; decoding of the next frames overlaps
        with compute."""
        if isinstance(frames, (str, os.PathLike)):
            from .media.video import read_video_frames

            frames = read_video_frames(frames)
        return [preds[0] for _, preds in self.iter_video_all(frames, [expression], batch_size)]

    def iter_video(
        self, frames: Iterable[ImageLike], expression: str, batch_size: int = 4
    ) -> Iterator[tuple[np.ndarray, np.ndarray, float]]:
        """Yield ``(frame RGB uint8 (H, W, 3), mask bool (H, W), score)`` per frame, in order
        (score: the mean foreground probability inside the mask, 0 when empty)."""
        for rgb, (p,) in self.iter_video_all(frames, [expression], batch_size):
            yield rgb, p.mask, p.score

    def iter_video_all(
        self,
        frames: Iterable[ImageLike],
        expressions: str | Sequence[str],
        batch_size: int = 4,
        total_frames: int | None = None,
    ) -> Iterator[tuple[np.ndarray, list[Prediction]]]:
        """Yield ``(frame RGB uint8 (H, W, 3), [Prediction per expression])`` per frame, in order.

        Each expression is encoded once for the whole video; frames run in batches of
        ``batch_size`` (the backbone once per batch, the head once per expression on it); frames
        are read ahead in a thread. Nothing is kept after a frame is yielded, so memory stays flat
        in the video's length; the network's logits stay at its head's resolution and are
        upsampled to the frame's size one frame and one expression at a time (a batch of 8000 x
        8000 frames never holds float logits at full size for every expression).
        ``total_frames``: how many frames are coming when ``frames`` has no ``len`` (used by
        ``compile="auto"`` to judge whether compiling pays back; None: unknown)."""
        expressions = _expression_list(expressions)
        for rgb, head in self._video_logits(frames, expressions, batch_size, total_frames):
            size = rgb.shape[:2]  # one full-size logit map at a time
            yield rgb, [upsampled_prediction(e, small, size) for e, small in zip(expressions, head)]

    def _video_logits(
        self,
        frames: Iterable[ImageLike],
        expressions: list[str],
        batch_size: int,
        total_frames: int | None = None,
    ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """``(frame, float head logits (N expressions, 2, h, w))`` per frame, at the resolution of
        the network's head (a stride-8 map of the processed picture), never at the frame's size."""
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        from .media.video import frame_batches

        if total_frames is None and hasattr(frames, "__len__"):
            total_frames = len(frames)  # type: ignore[arg-type]
        self.runner.expect_frames(total_frames)
        with torch.inference_mode():
            text = self.encode_expressions(expressions)  # (N, D): once per video
        for batch in frame_batches((load_image(f) for f in frames), batch_size, BATCH_PIXELS):
            yield from self._run_batch(batch, text)

    @torch.inference_mode()
    def _batch_logits(self, batch: list[np.ndarray], text: torch.Tensor) -> torch.Tensor:
        """Head logits ``(B, N, 2, h, w)`` (float, at the features' resolution) of a batch of
        frames for N sentence vectors ``text (N, D)``."""
        features = self.encode_images(torch.cat([self.preprocess(rgb) for rgb in batch]))
        size = tuple(features.shape[-2:])  # decode's upsampling to its own size is the identity
        return torch.stack([self.decode(features, vector[None], size) for vector in text], dim=1)

    def _run_batch(
        self, batch: list[np.ndarray], text: torch.Tensor
    ) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        yield from zip(batch, self._batch_logits(batch, text))


def _expression_list(expressions: str | Sequence[str]) -> list[str]:
    expressions = [expressions] if isinstance(expressions, str) else list(expressions)
    if not expressions:
        raise InputError("no expression given")
    return expressions
