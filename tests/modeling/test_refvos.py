import pytest
import torch

from refvos.errors import InputError
from refvos.modeling import MODEL_REGISTRY, RefVOSConfig, build_from_config, build_model
from refvos.modeling.config import BERT_BASE_UNCASED
from tests.helpers import TINY_TEXT_CONFIG


def _released_key_names() -> dict[str, tuple[int, ...]]:
    """Names and shapes of the released checkpoints' ``model`` entries (the authors' ``lib/deeplabv3_emb.py``
    network as their ``train.py`` saves it: no ``module.`` prefix, no aux classifier)."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix, c, bias_only=False):
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{k}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["backbone.conv1.weight"] = (64, 3, 7, 7)
    bn("backbone.bn1", 64)
    inplanes = 64
    for layer, (blocks, planes) in enumerate([(3, 64), (4, 128), (23, 256), (3, 512)], start=1):
        for b in range(blocks):
            p = f"backbone.layer{layer}.{b}"
            cin = inplanes if b == 0 else planes * 4
            shapes[f"{p}.conv1.weight"] = (planes, cin, 1, 1)
            bn(f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if b == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, cin, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
        inplanes = planes * 4
    a = "classifier.aspp"
    shapes[f"{a}.convs.0.0.weight"] = (256, 2048, 1, 1)
    bn(f"{a}.convs.0.1", 256)
    for i in (1, 2, 3):
        shapes[f"{a}.convs.{i}.0.weight"] = (256, 2048, 3, 3)
        bn(f"{a}.convs.{i}.1", 256)
    shapes[f"{a}.convs.4.1.weight"] = (256, 2048, 1, 1)
    bn(f"{a}.convs.4.2", 256)
    shapes[f"{a}.project.0.weight"] = (256, 1280, 1, 1)
    bn(f"{a}.project.1", 256)
    shapes[f"{a}.embedding_project.0.weight"] = (256, 768)
    shapes[f"{a}.embedding_project.0.bias"] = (256,)
    bn(f"{a}.embedding_project.1", 256)
    shapes[f"{a}.project_final.0.weight"] = (256, 256, 1, 1)
    bn(f"{a}.project_final.1", 256)
    shapes["classifier.conv.weight"] = (256, 256, 3, 3)
    bn("classifier.bn", 256)
    shapes["classifier.conv_2.weight"] = (2, 256, 1, 1)
    shapes["classifier.conv_2.bias"] = (2,)
    return shapes


def test_r101_state_dict_matches_released_layout(r101_model):
    expected = _released_key_names()
    assert len(expected) == 681
    got = {k: tuple(v.shape) for k, v in r101_model.segmenter.state_dict().items()}
    assert got == expected


def test_r101_dilation_gives_output_stride_8(r101_model):
    with torch.no_grad():
        feats = r101_model.segmenter.backbone(torch.zeros(1, 3, 64, 96))
    assert feats.shape == (1, 2048, 8, 12)


def test_r101_forward_shapes_and_text_width(r101_model):
    ids = torch.tensor([[101, 1996, 2158, 102, 0], [101, 2158, 102, 0, 0]])
    mask = (ids > 0).long()
    with torch.no_grad():
        logits = r101_model(torch.randn(2, 3, 37, 53), ids, mask)
        text = r101_model.encode_text(ids, mask)
    assert logits.shape == (2, 2, 37, 53)
    assert text.shape == (2, 768)
    assert r101_model.config.text_dim == 768


def test_text_vector_is_last_layer_cls_state(tiny_model):
    ids = torch.tensor([[101, 1996, 2158, 102]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        hidden, pooled = tiny_model.text_encoder(ids, mask)
        vec = tiny_model.encode_text(ids, mask)
    torch.testing.assert_close(vec, hidden[:, 0])
    assert not torch.allclose(vec, pooled)


def test_fusion_is_multiplicative(tiny_model):
    """A zero language projection (gamma = beta = 0 in its BatchNorm) zeroes the fused features."""
    aspp = tiny_model.segmenter.classifier.aspp
    with torch.no_grad():
        aspp.embedding_project[1].weight.zero_()
        aspp.embedding_project[1].bias.zero_()
        feats = torch.randn(2, tiny_model.config.backbone_channels, 5, 6)
        text = torch.randn(2, tiny_model.config.text_dim)
        out = aspp(feats, text)
        expected = aspp.project_final(torch.zeros(2, 256, 5, 6))
    torch.testing.assert_close(out, expected)


def test_segment_with_one_sentence_for_many_frames_equals_repeated(tiny_model):
    ids = torch.tensor([[101, 1996, 2158, 102]])
    mask = torch.ones_like(ids)
    images = torch.randn(3, 3, 32, 40)
    with torch.no_grad():
        text = tiny_model.encode_text(ids, mask)
        shared = tiny_model.segment(images, text)
        repeated = tiny_model(images, ids.expand(3, -1), mask.expand(3, -1))
    torch.testing.assert_close(shared, repeated)


def test_registry_and_config_round_trip(tiny_model):
    assert set(MODEL_REGISTRY) == {"refvos_r101", "refvos_lite"}
    cfg = RefVOSConfig.from_dict(tiny_model.config.to_dict())
    assert cfg == tiny_model.config
    rebuilt = build_from_config(cfg.to_dict())
    assert rebuilt.state_dict().keys() == tiny_model.state_dict().keys()
    with pytest.raises(InputError, match="unknown model 'refvos_r50'; expected one of"):
        build_model("refvos_r50")


def test_r101_default_text_config_is_bert_base(r101_model):
    assert r101_model.config.text_config == BERT_BASE_UNCASED


def test_r101_imagenet_weights_offline_give_clear_message(monkeypatch):
    from refvos.errors import RefVOSError
    from refvos.modeling.backbone import resnet101_os8

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(RefVOSError, match="backbone_weights=PATH"):
        resnet101_os8("imagenet")


def test_r101_backbone_weights_from_path(tmp_path):
    from torchvision.models import resnet101

    from refvos.modeling.backbone import resnet101_os8

    torch.manual_seed(1)
    ref = resnet101()
    torch.save(ref.state_dict(), tmp_path / "r101.pth")
    backbone = resnet101_os8(tmp_path / "r101.pth")
    torch.testing.assert_close(backbone.layer3[5].conv2.weight, ref.layer3[5].conv2.weight)


def test_lite_stage_head_width_and_rates_are_kept_by_checkpoints(tmp_path):
    from refvos.checkpoint import load_checkpoint, save_checkpoint

    model = build_model(
        "refvos_lite",
        backbone_weights=None,
        text_encoder=None,
        text_config=TINY_TEXT_CONFIG,
        backbone_stage=2,
        head_channels=32,
        atrous_rates=(2, 3, 5),
    ).eval()
    assert model.config.backbone_channels == 40
    assert [c[0].dilation for c in model.segmenter.classifier.aspp.convs[1:4]] == [
        (2, 2),
        (3, 3),
        (5, 5),
    ]
    assert model.segmenter.classifier.conv_2.weight.shape == (2, 32, 1, 1)
    loaded = load_checkpoint(save_checkpoint(tmp_path / "m.pth", model))
    assert loaded.config == model.config
    ids = torch.tensor([[101, 2417, 4418, 102]])
    images = torch.randn(1, 3, 48, 40)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(images, ids, torch.ones_like(ids)), model(images, ids, torch.ones_like(ids))
        )


def test_encode_image_then_decode_is_the_forward(tiny_model):
    """The SAM-style split reproduces the released pipeline: backbone, head, bilinear upsampling
    to the image; features (after the head's ASPP, the last sentence-independent step) serve
    several sentences and other output sizes."""
    images, ids = torch.randn(2, 3, 40, 56), torch.randint(1000, 2000, (2, 6))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        ref = tiny_model(images, ids, mask)
        features = tiny_model.encode_image(images)
        text = tiny_model.encode_text(ids, mask)
        got = tiny_model.decode(features, text, (40, 56))
        small = tiny_model.decode(features, text[:1], (20, 28))
    head_channels = tiny_model.segmenter.classifier.aspp.project[0].out_channels
    assert features.shape[1:] == (head_channels, 5, 7) and got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    assert small.shape == (2, 2, 20, 28)
    with torch.no_grad():  # the released head on the backbone's features, in one call
        backbone = tiny_model.segmenter.backbone(images)
        head = tiny_model.segmenter.classifier(backbone, text[:1].expand(2, -1))
    torch.testing.assert_close(
        small, torch.nn.functional.interpolate(head, size=(20, 28), mode="bilinear")
    )
