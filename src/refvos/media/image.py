"""Image loading and normalisation shared by the predictor, the demo and the web page.

``load_image`` turns a path, a PIL image or an array into an RGB ``uint8`` array ``(H, W, 3)``:
EXIF orientation applied; grayscale, RGBA (composited on white, as a viewer shows a transparent
picture), palette, 16-bit and CMYK images converted. Images larger than :data:`MAX_PIXELS` are refused with a clear error
rather than exhausting memory (the predictor's ``max_size`` downscales big-but-allowed ones).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_PIXELS = 8192 * 8192  # larger images are refused (a 10000 x 10000 photo is 100 MP)


def check_pixels(width: int, height: int, source: str, max_pixels: int = MAX_PIXELS) -> None:
    """Refuse an image of no pixels or of more than ``max_pixels`` (read from a header, before decoding)."""
    if width < 1 or height < 1:
        raise InputError(f"{source}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InputError(
            f"{source}: image is {width}x{height} pixels, more than the limit of {max_pixels:,}; "
            "downscale it first"
        )


def _from_pil(img: Image.Image, source: str) -> np.ndarray:
    check_pixels(img.width, img.height, source)
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise InputError(f"{source}: image contains NaN or infinite values")
        hi = arr.max() if arr.size and arr.max() > 0 else 1.0
        if img.mode == "F" and hi <= 1.0:
            scale = 1.0  # float image in [0, 1], as the array path reads floats
        else:
            scale = 65535.0 if img.mode.startswith("I;16") or hi > 255 else 255.0
        arr = np.clip(arr / scale * 255.0, 0, 255).round().astype(np.uint8)  # as the array path
        return np.repeat(arr[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def load_image(image: str | os.PathLike | Image.Image | np.ndarray) -> np.ndarray:
    """An RGB ``uint8`` array ``(H, W, 3)`` from a path, a PIL image or an array.

    Arrays may be ``(H, W)`` (grayscale), ``(H, W, 1|3|4)``, ``uint8`` or ``uint16``, or float in [0, 1].
    Raises :class:`InputError` for a missing, empty, corrupt or unsupported image.
    """
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"image {path} does not exist")
        if path.stat().st_size == 0:
            raise InputError(f"image {path} is empty (0 bytes)")
        try:
            with warnings.catch_warnings():
                # Pillow's own bomb warning (> 89 MP) is superseded by the stricter MAX_PIXELS check
                # below, which reads the size from the header, before anything is decoded.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as img:
                    check_pixels(img.width, img.height, str(path))
                    img.load()
                    return _from_pil(img, str(path))
        except InputError:
            raise
        except Image.DecompressionBombError as e:  # > 2 x Pillow's limit: refused by Image.open
            raise InputError(
                f"image {path} is too large ({e}); the limit is {MAX_PIXELS:,} pixels, downscale it first"
            ) from e
        except UnidentifiedImageError as e:
            raise InputError(f"image {path} is not a readable image: {e}") from e
        except (OSError, SyntaxError, ValueError) as e:
            raise InputError(f"image {path} is truncated or corrupt: {e}") from e
    if isinstance(image, Image.Image):
        return _from_pil(image, "image")
    if isinstance(image, np.ndarray):
        return _from_array(image)
    raise InputError(
        f"image must be a path, a PIL image or a numpy array, got {type(image).__name__}"
    )


def _from_array(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InputError(
            f"image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {arr.shape}"
        )
    check_pixels(arr.shape[1], arr.shape[0], "image array")
    if arr.dtype == np.uint16:
        arr = (arr.astype(np.float64) / 65535.0 * 255.0).round().astype(np.uint8)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError("image array contains NaN or infinite values")
        arr = (np.clip(arr, 0.0, 1.0) * 255.0).round().astype(np.uint8)
    elif arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        raise InputError(f"image array dtype must be uint8, uint16, bool or float, got {arr.dtype}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        alpha = arr[:, :, 3:4].astype(np.float64) / 255.0
        arr = (arr[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)  # on white
    return np.ascontiguousarray(arr)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """RGB ``uint8 (H, W, 3)`` -> ImageNet-normalised ``float32 (3, H, W)``."""
    if not image.flags.writeable or not image.flags.c_contiguous:
        image = np.array(image, copy=True, order="C")
    x = torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def denormalize(image: torch.Tensor) -> np.ndarray:
    """Normalised ``(3, H, W)`` -> RGB ``uint8 (H, W, 3)`` (for overlays)."""
    mean = torch.tensor(IMAGENET_MEAN, device=image.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=image.device).view(3, 1, 1)
    x = (image.float() * std + mean).clamp(0, 1).mul(255).round().byte()
    return x.permute(1, 2, 0).cpu().numpy()


def scaled_tensor(image: np.ndarray, max_size: int | None) -> torch.Tensor:
    """RGB uint8 ``(H, W, 3)`` -> normalised float ``(1, 3, h, w)``, the long side scaled down to
    ``max_size`` (bilinear, antialiased; None: the image's own size). A big frame is scaled in
    [0, 1] and then normalised: one float copy of it, not three."""
    import warnings

    from torch.nn import functional as F

    h, w = image.shape[:2]
    if max_size is None or max(h, w) <= max_size:
        return to_tensor(image)[None]
    scale = max_size / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    with warnings.catch_warnings():  # a read-only frame is only read: .float() copies it
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255.0)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x.sub_(torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)).div_(
        torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    )
