import torch

from refvos.modeling.postprocess import foreground_mask


def test_foreground_mask_is_the_argmax_including_ties():
    logits = torch.randn(3, 2, 17, 23)
    logits[0, 1, :4] = logits[0, 0, :4]  # ties go to the background, as argmax's first index
    logits[1, :, 5:9] = float("-inf")
    expected = logits.argmax(1).bool()
    got = foreground_mask(logits)
    assert got.dtype == torch.bool and got.shape == (3, 17, 23)
    assert torch.equal(got, expected)
    assert not got[0, :4].any()


def test_foreground_mask_of_bf16_logits():
    logits = torch.randn(2, 2, 8, 8).bfloat16()
    assert torch.equal(foreground_mask(logits), logits.float().argmax(1).bool())
