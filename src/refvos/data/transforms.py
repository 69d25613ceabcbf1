"""Train and evaluation transforms, as in RefVOS (torchvision segmentation references).

Both take ``image`` uint8 ``(H, W, 3)`` and ``mask`` uint8 ``(H, W)`` (0/1) numpy arrays and
return ``image`` float ``(3, h, w)`` normalised with the ImageNet mean/std and ``mask`` long
``(h, w)`` with 0/1 and 255 = ignore.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..media.image import to_tensor

IGNORE_INDEX = 255


def short_side_size(h: int, w: int, side: int) -> tuple[int, int]:
    """``(h, w)`` resized so that the shorter side is ``side`` and the longer one
    ``int(side * long / short)``, torchvision's ``F.resize(img, side)`` rule (the original's
    ``RandomResize``)."""
    if h <= w:
        return side, int(side * w / h)
    return int(side * h / w), side


class EvalTransform:
    """The image at its own resolution, or (``size``) with its shorter side resized to ``size``
    as the original's validation during training did (bilinear image, nearest mask)."""

    def __init__(self, size: int | None = None) -> None:
        self.size = size

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        if self.size is not None:
            nh, nw = short_side_size(*mask.shape, self.size)
            image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
            mask = np.asarray(Image.fromarray(mask).resize((nw, nh), Image.NEAREST))
        return to_tensor(image), torch.from_numpy(mask.astype(np.int64))


class TrainTransform:
    """Shorter side to ``base_size``; pad right/bottom to ``crop_size`` (image 0, mask 255);
    random ``crop_size`` crop drawn from torch's RNG (reproducible under DataLoader seeding).
    No flips (a flip would contradict "left"/"right" in the expression)."""

    def __init__(self, base_size: int = 416, crop_size: int = 480) -> None:
        self.base_size = base_size
        self.crop_size = crop_size

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = mask.shape
        scale = self.base_size / min(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        image = np.asarray(Image.fromarray(image).resize((nw, nh), Image.BILINEAR))
        mask = np.asarray(Image.fromarray(mask).resize((nw, nh), Image.NEAREST))
        c = self.crop_size
        ph, pw = max(c, nh), max(c, nw)
        padded_img = np.zeros((ph, pw, 3), np.uint8)
        padded_img[:nh, :nw] = image
        padded_mask = np.full((ph, pw), IGNORE_INDEX, np.uint8)
        padded_mask[:nh, :nw] = mask
        top = int(torch.randint(0, ph - c + 1, ()).item())
        left = int(torch.randint(0, pw - c + 1, ()).item())
        padded_img = padded_img[top : top + c, left : left + c]
        padded_mask = padded_mask[top : top + c, left : left + c]
        return to_tensor(padded_img), torch.from_numpy(padded_mask.astype(np.int64))
