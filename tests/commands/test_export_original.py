"""``refvos export-original``: a refvos checkpoint rewritten in the authors' released layout."""

from __future__ import annotations

import torch

from refvos.checkpoint import is_released_format, load_checkpoint, read_checkpoint, save_checkpoint
from refvos.cli import main


def test_export_original_r101(tmp_path, r101_model):
    src = save_checkpoint(tmp_path / "r101.pth", r101_model, epoch=3, args={"dataset": "davis"})
    assert main(["export-original", str(src), str(tmp_path / "released.pth")]) == 0
    released = read_checkpoint(tmp_path / "released.pth")
    assert is_released_format(released) and released["epoch"] == 3
    assert released["args"].model == "deeplabv3_resnet101" and released["args"].dataset == "davis"
    model = load_checkpoint(tmp_path / "released.pth")
    assert model.config.max_tokens == 10
    for k, v in r101_model.segmenter.state_dict().items():
        assert torch.equal(model.segmenter.state_dict()[k], v)


def test_export_original_refuses_lite_networks(tiny_checkpoint, tmp_path, capsys):
    """refvos_lite has no released layout: one line naming the network that has one, no file."""
    assert main(["export-original", str(tiny_checkpoint), str(tmp_path / "x.pth")]) == 2
    assert "refvos_r101" in capsys.readouterr().err
    assert not (tmp_path / "x.pth").exists()
