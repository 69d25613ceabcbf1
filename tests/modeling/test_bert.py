"""refvos's plain-PyTorch BERT against transformers' BertModel: same keys, same outputs."""

import pytest
import torch

from refvos.errors import CheckpointError
from refvos.modeling.bert import BertEncoder
from refvos.modeling.config import BERT_BASE_UNCASED
from refvos.modeling.text_encoder import bert_config, build_text_encoder, cls_embedding

TINY = {
    **BERT_BASE_UNCASED,
    "vocab_size": 120,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 48,
    "max_position_embeddings": 24,
}


def _hf_bert(cfg):
    from transformers import BertModel

    torch.manual_seed(0)
    model = BertModel(bert_config(cfg), add_pooling_layer=True).eval()
    with torch.no_grad():  # non-trivial LayerNorms and a used token-type row
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu"])
def test_matches_transformers_bert_model_with_padding(act):
    cfg = {**TINY, "hidden_act": act}
    hf = _hf_bert(cfg)
    ours = BertEncoder(cfg).eval()
    missing, unexpected = ours.load_state_dict(hf.state_dict(), strict=False)
    assert missing == [] and set(unexpected) <= {"embeddings.position_ids"}
    ids = torch.tensor([[101, 5, 17, 33, 102, 0, 0], [101, 9, 8, 7, 6, 5, 102]])
    mask = (ids != 0).long()
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask)
        hidden, pooled = ours(ids, mask)
    torch.testing.assert_close(hidden, ref.last_hidden_state, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(pooled, ref.pooler_output, atol=1e-5, rtol=1e-4)
    # padding changes nothing at the real tokens: the [CLS] vector of a padded row equals the unpadded
    with torch.no_grad():
        short = cls_embedding(ours, ids[:1, :5], mask[:1, :5])
    torch.testing.assert_close(short, hidden[:1, 0], atol=1e-5, rtol=1e-4)


def test_state_dict_keys_and_shapes_equal_transformers():
    hf = {
        k: v.shape for k, v in _hf_bert(TINY).state_dict().items() if k != "embeddings.position_ids"
    }
    ours = {k: v.shape for k, v in build_text_encoder(TINY).state_dict().items()}
    assert ours == hf


def test_random_init_follows_transformers_recipe():
    enc = build_text_encoder(TINY)
    assert torch.all(enc.embeddings.word_embeddings.weight[0] == 0)  # padding row
    assert torch.all(enc.encoder.layer[0].attention.self.query.bias == 0)
    std = enc.encoder.layer[1].intermediate.dense.weight.std().item()
    assert 0.015 < std < 0.025


def test_dropout_is_active_in_training_only():
    enc = build_text_encoder({**TINY, "hidden_dropout_prob": 0.5})
    ids = torch.tensor([[101, 5, 6, 102]])
    enc.train()
    a, b = enc(ids)[0], enc(ids)[0]
    assert not torch.allclose(a, b)
    enc.eval()
    torch.testing.assert_close(enc(ids)[0], enc(ids)[0])


def test_unsupported_config_is_refused():
    with pytest.raises(CheckpointError, match="hidden_act"):
        BertEncoder({**TINY, "hidden_act": "swish"})
    with pytest.raises(CheckpointError, match="num_attention_heads"):
        BertEncoder({**TINY, "num_attention_heads": 5})


def test_building_the_encoder_imports_no_transformers_modelling():
    import subprocess
    import sys

    code = (
        "import sys; from refvos.modeling.text_encoder import build_text_encoder; "
        "from refvos.modeling.config import BERT_BASE_UNCASED; "
        f"build_text_encoder({TINY!r}); "
        "print(any(m.startswith('transformers.models') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
