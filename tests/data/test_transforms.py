import numpy as np
import torch

from refvos.data.transforms import EvalTransform, TrainTransform


def test_train_resize_pad_crop():
    img = np.full((100, 200, 3), 255, np.uint8)
    mask = np.ones((100, 200), np.uint8)
    torch.manual_seed(0)
    im, m = TrainTransform(base_size=416, crop_size=480)(img, mask)
    assert im.shape == (3, 480, 480) and m.shape == (480, 480) and m.dtype == torch.long
    # shorter side 416 -> rows 416..479 are padding: ignore in the mask, 0 in the raw image
    assert (m[416:] == 255).all() and (m[:416] == 1).all()
    raw = im * torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1) + torch.tensor(
        [0.485, 0.456, 0.406]
    ).view(3, 1, 1)
    assert raw[:, 416:].abs().max() < 1e-5 and (raw[:, :416] > 0.99).all()


def test_train_crop_is_random_and_seeded():
    img = np.random.default_rng(0).integers(0, 255, (50, 300, 3), dtype=np.uint8)
    mask = np.zeros((50, 300), np.uint8)
    t = TrainTransform(base_size=40, crop_size=40)
    torch.manual_seed(1)
    a = [t(img, mask)[0] for _ in range(4)]
    torch.manual_seed(1)
    b = [t(img, mask)[0] for _ in range(4)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(a[0], x) for x in a[1:])


def test_eval_keeps_resolution():
    im, m = EvalTransform()(np.zeros((7, 9, 3), np.uint8), np.eye(7, 9, dtype=np.uint8))
    assert im.shape == (3, 7, 9) and m.sum() == 7 and m.dtype == torch.long


def test_eval_transform_resizes_the_short_side_as_torchvision():
    """``EvalTransform(520)``: the original's validation size (short side 520, the long side
    int(520 * long / short), torchvision's F.resize rule); nearest-neighbour mask."""
    img = np.zeros((30, 47, 3), np.uint8)
    mask = np.zeros((30, 47), np.uint8)
    mask[:, 20:] = 1
    im, m = EvalTransform(520)(img, mask)
    assert im.shape == (3, 520, int(520 * 47 / 30)) and m.shape == (520, 814)
    assert set(m.unique().tolist()) == {0, 1}
    im, m = EvalTransform()(img, mask)
    assert im.shape == (3, 30, 47)
