"""refvos.media.image: pictures in, normalised tensors out."""

from __future__ import annotations

import numpy as np


def test_scaled_tensor_caps_the_long_side_and_normalises():
    import torch

    from refvos.media.image import IMAGENET_MEAN, scaled_tensor, to_tensor

    image = np.random.default_rng(0).integers(0, 256, (30, 60, 3), dtype=np.uint8)
    torch.testing.assert_close(scaled_tensor(image, None), to_tensor(image)[None])
    torch.testing.assert_close(scaled_tensor(image, 60), to_tensor(image)[None])  # not over the cap
    small = scaled_tensor(image, 20)
    assert small.shape == (1, 3, 10, 20)
    grey = np.full((40, 80, 3), 128, np.uint8)  # a flat picture stays flat after scaling
    expected = (128 / 255 - IMAGENET_MEAN[0]) / 0.229
    assert torch.allclose(scaled_tensor(grey, 20)[0, 0], torch.full((10, 20), expected), atol=1e-5)
