"""Hostile checkpoints: a config of the wrong type or range, tensors that describe far more
elements than the file stores (stride-0 expansion, overlapping views), sparse / meta / int8 /
complex weights. Each is refused with one CheckpointError line before anything is allocated or
a value is read; the CLI (predict, serve, train --resume) exits 2 with that line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from refvos.checkpoint import checkpoint_dict, load_checkpoint
from refvos.cli import main
from refvos.errors import CheckpointError
from tests.helpers import make_tiny_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def good() -> dict:
    return checkpoint_dict(make_tiny_model())


def _save(path: Path, ckpt: dict) -> Path:
    torch.save(ckpt, path)
    return path


def _with_config(good, **changes) -> dict:
    config = {**good["config"], **changes}
    return {**good, "config": config}


def _with_text(good, **changes) -> dict:
    return _with_config(good, text_config={**good["config"]["text_config"], **changes})


def _with_weight(good, key_part: str, make) -> dict:
    model = dict(good["model"])
    key = next(k for k in model if key_part in k)
    model[key] = make(model[key])
    return {**good, "model": model}


CONFIG_CASES = {
    "layers": (lambda g: _with_text(g, num_hidden_layers=100_000), "num_hidden_layers"),
    "vocab_str": (lambda g: _with_text(g, vocab_size="30522"), "vocab_size"),
    "vocab_huge": (lambda g: _with_text(g, vocab_size=10**12), "vocab_size"),
    "heads": (lambda g: _with_text(g, num_attention_heads=3), "multiple of num_attention_heads"),
    "head_channels": (lambda g: _with_config(g, head_channels="256"), "head_channels"),
    "atrous": (lambda g: _with_config(g, atrous_rates=[1, 2]), "atrous_rates"),
    "atrous_neg": (lambda g: _with_config(g, atrous_rates=[1, 2, -3]), "atrous_rates"),
    "stage": (lambda g: _with_config(g, backbone_stage=9), "backbone_stage"),
    "classes": (lambda g: _with_config(g, num_classes=3), "num_classes"),
    "variant": (lambda g: _with_config(g, variant="nope"), "variant"),
    "variant_list": (lambda g: _with_config(g, variant=["refvos_lite"]), "variant"),
    "config_list": (lambda g: {**g, "config": [1, 2]}, "config must be a dict"),
    "version_str": (lambda g: {**g, "version": "1"}, "'version'"),
    "model_list": (lambda g: {**g, "model": [1, 2]}, "'model' must be a dict"),
    "act": (lambda g: _with_text(g, hidden_act="os.system"), "hidden_act"),
}

TENSOR_CASES = {
    "stride0_big": (
        lambda g: _with_weight(g, "classifier", lambda t: torch.zeros(1).expand(100_000, 100_000)),
        "elements, more than the limit",
    ),
    "stride0": (
        lambda g: _with_weight(g, "classifier", lambda t: torch.zeros(1).expand(*t.shape)),
        "stride 0",
    ),
    "views": (
        lambda g: {
            **g,
            "model": {
                k: torch.zeros(64, 64)[:, :] if v.dim() else v for k, v in g["model"].items()
            },
        },
        None,
    ),
    "sparse": (lambda g: _with_weight(g, "classifier", lambda t: t.to_sparse()), "sparse"),
    "meta": (
        lambda g: _with_weight(g, "classifier", lambda t: torch.empty(t.shape, device="meta")),
        "meta",
    ),
    "int8": (lambda g: _with_weight(g, "classifier", lambda t: t.to(torch.int8)), "int8"),
    "complex": (
        lambda g: _with_weight(g, "classifier", lambda t: t.to(torch.complex64)),
        "complex",
    ),
    "nan_last": (
        lambda g: _with_weight(g, "classifier", lambda t: torch.full_like(t, float("nan"))),
        "NaN",
    ),
}


def _shared_views(good) -> dict:
    """Every weight a view of ONE stored 4096-element buffer: far more claimed than stored."""
    base = torch.zeros(4096)
    model = {
        k: (base[: v.numel()].view(v.shape) if v.is_floating_point() and v.numel() <= 4096 else v)
        for k, v in good["model"].items()
    }
    return {**good, "model": model}


TENSOR_CASES["views"] = (_shared_views, "overlapping views")


@pytest.mark.parametrize("case", sorted(CONFIG_CASES) + sorted(TENSOR_CASES))
def test_hostile_checkpoint_is_one_line_checkpoint_error(tmp_path, good, case):
    make, words = {**CONFIG_CASES, **TENSOR_CASES}[case]
    path = _save(tmp_path / f"{case}.pth", make(good))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message and words in message, message


def test_keys_and_shapes_are_checked_before_values(tmp_path, good):
    """A wrongly named NaN tensor is refused for its name, not after a NaN scan."""
    model = dict(good["model"])
    model["classifier.extra.weight"] = torch.full((4, 4), float("nan"))
    path = _save(tmp_path / "extra.pth", {**good, "model": model})
    with pytest.raises(CheckpointError, match=r"unexpected \['classifier.extra.weight'\]"):
        load_checkpoint(path)


def test_hostile_checkpoints_stay_within_1gb(tmp_path, good):
    """In a fresh process, loading a few-kB file holding an 8.1e9-element stride-0 tensor and one
    whose config asks for 100,000 BERT layers raises peak RSS by less than 1 GB (a NaN scan of the
    first would allocate 8 GB; the issue measured 8.8 GB for the second)."""
    small = {
        **good,
        "model": {"classifier.conv_2.bias": torch.zeros(2)},
        "bert_model": {},
    }  # a few kB
    stride0 = _save(
        tmp_path / "s0.pth",
        {**small, "model": {"classifier.w": torch.zeros(1).expand(90_000, 90_000)}},
    )
    layers = _save(tmp_path / "layers.pth", _with_text(small, num_hidden_layers=100_000))
    assert stride0.stat().st_size < 20 * 2**20 and layers.stat().st_size < 20 * 2**20
    script = textwrap.dedent("""
        import json, resource, sys
        from refvos.checkpoint import load_checkpoint
        from refvos.errors import CheckpointError
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = {}
        for path in sys.argv[1:]:
            try:
                load_checkpoint(path)
                out[path] = "loaded"
            except CheckpointError as e:
                out[path] = str(e)
        out["rise_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
        print(json.dumps(out))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(stride0), str(layers)],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PYTHONPATH": str(REPO / "src"),
            "PATH": "/usr/bin:/bin",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        },
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (
        "elements, more than the limit" in out[str(stride0)]
        and "num_hidden_layers" in out[str(layers)]
    )
    assert out["rise_kb"] < 1024 * 1024, out


@pytest.mark.parametrize("command", ["predict", "serve", "train"])
def test_cli_exits_2_with_one_line(tmp_path, good, capsys, command):
    bad = _save(
        tmp_path / "bad.pth",
        _with_weight(good, "classifier", lambda t: torch.zeros(1).expand(*t.shape)),
    )
    image = tmp_path / "p.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    argv = {
        "predict": [
            "predict",
            "--checkpoint",
            str(bad),
            "--image",
            str(image),
            "-e",
            "x",
            "--out",
            str(tmp_path / "o.png"),
        ],
        "serve": ["serve", "--checkpoint", str(bad), "--port", "0"],
        "train": [
            "train",
            "--dataset",
            "refcoco",
            "--resume",
            str(bad),
            "--output-dir",
            str(tmp_path / "runs"),
            "--device",
            "cpu",
        ],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stride 0" in err[0] and str(bad) in err[0], err
    assert not (tmp_path / "o.png").exists()


def _peak_rise_loading(paths: list[Path]) -> dict:
    """``{path: "loaded" or the CheckpointError line, "rise_kb": peak RSS rise}`` of
    load_checkpoint on each path in a fresh process."""
    script = textwrap.dedent("""
        import json, resource, sys
        from refvos.checkpoint import load_checkpoint
        from refvos.errors import CheckpointError
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = {}
        for path in sys.argv[1:]:
            try:
                load_checkpoint(path)
                out[path] = "loaded"
            except CheckpointError as e:
                out[path] = str(e)
        out["rise_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
        print(json.dumps(out))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            "PYTHONPATH": str(REPO / "src"),
            "PATH": "/usr/bin:/bin",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        },
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_compressed_checkpoint_bomb_is_refused_before_inflating(tmp_path, good):
    """A few-MB torch zip of two deflated all-zero 2^28-element tensors (2 GiB once inflated) is
    refused from the zip's directory, naming the file, with peak RSS of a fresh process rising
    far less than 1 GB; a normal checkpoint loads in the same process."""
    from tests.helpers import deflated_checkpoint

    bomb = deflated_checkpoint(tmp_path / "bomb.pth", tensors=2, elements=1 << 28)
    normal = _save(tmp_path / "normal.pth", good)
    assert bomb.stat().st_size < 5 * 2**20
    out = _peak_rise_loading([bomb, normal])
    assert str(bomb) in out[str(bomb)] and "is compressed" in out[str(bomb)], out
    assert out[str(normal)] == "loaded"
    assert out["rise_kb"] < 512 * 1024, out


@pytest.mark.parametrize("case", ["inflated_size", "overlapping"])
def test_zip_records_larger_than_the_file_are_refused(tmp_path, good, case):
    """Stored records whose declared size differs from what they store, or whose sizes add up to
    more than the file (records of the directory pointing at the same bytes), are refused."""
    import zipfile

    path = _save(tmp_path / "c.pth", good)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    start = data.rindex(b"PK\x05\x06")
    directory = int.from_bytes(data[start + 16 : start + 20], "little")
    entries, at = [], directory
    while data[at : at + 4] == b"PK\x01\x02":
        entries.append(at)
        at += (
            46
            + int.from_bytes(data[at + 28 : at + 30], "little")
            + int.from_bytes(data[at + 30 : at + 32], "little")
            + int.from_bytes(data[at + 32 : at + 34], "little")
        )
    biggest = max(range(len(infos)), key=lambda i: infos[i].file_size)
    if case == "inflated_size":  # uncompressed size field of the biggest record: 100 times larger
        at = entries[biggest] + 24
        data[at : at + 4] = (infos[biggest].file_size * 100).to_bytes(4, "little")
        words = "declares"
    else:  # every tensor record's directory entry points at the biggest record's bytes
        for i, info in enumerate(infos):
            if "/data/" in info.filename:
                at = entries[i]
                data[at + 20 : at + 28] = data[entries[biggest] + 20 : entries[biggest] + 28]
                data[at + 42 : at + 46] = data[entries[biggest] + 42 : entries[biggest] + 46]
        words = "more than the file"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value) and words in str(e.value), str(
        e.value
    )


def test_legacy_pickle_checkpoint_still_loads(tmp_path, good):
    """torch.save's pre-zip format (a pickle followed by raw storages) is read as before."""
    path = tmp_path / "legacy.pth"
    torch.save(good, path, _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:1] == b"\x80"
    model = load_checkpoint(path)
    assert torch.equal(
        model.segmenter.classifier.conv_2.bias, good["model"]["classifier.conv_2.bias"]
    )


def _training_checkpoint(good) -> dict:
    """A refvos training checkpoint as Trainer.state() writes it (one process, epoch 1)."""
    from refvos.engine.resume import rng_state

    model = make_tiny_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return {
        **good,
        "optimizer": optimizer.state_dict(),
        "epoch": 1,
        "step": 0,
        "iteration": 5,
        "rng": [rng_state()],
        "best": None,
        "history": [{"epoch": 0, "loss": 0.5}],
        "args": {
            "dataset": "refcoco",
            "seed": 0,
            "batch_size": 4,
            "accumulate": 1,
            "world_size": 1,
            "text_encoder_training": "original",
        },
    }


RESUME_CASES = {
    "released_layout": (
        lambda g: {
            "model": g["model"],
            "bert_model": g["bert_model"],
            "args": __import__("argparse").Namespace(dataset="refcoco"),
        },
        "released format",
    ),
    "args_list": (lambda g: {**_training_checkpoint(g), "args": [1, 2]}, "'args' must be a dict"),
    "epoch_str": (
        lambda g: {**_training_checkpoint(g), "epoch": "3"},
        "'epoch' must be a non-negative integer",
    ),
    "epoch_negative": (
        lambda g: {**_training_checkpoint(g), "iteration": -4},
        "'iteration' must be",
    ),
    "rng_list_of_ints": (lambda g: {**_training_checkpoint(g), "rng": [1, 2, 3]}, "'rng' must be"),
    "rng_bad_state": (
        lambda g: {**_training_checkpoint(g), "rng": [{"python": [3], "numpy": [], "torch": 0}]},
        "'rng' holds a generator state",
    ),
    "history_number": (
        lambda g: {**_training_checkpoint(g), "history": 7},
        "'history' must be a list",
    ),
    "best_str": (lambda g: {**_training_checkpoint(g), "best": "yes"}, "'best' must be"),
    "vocab_int": (
        lambda g: {**_training_checkpoint(g), "args": {"dataset": "refcoco", "vocab_file": 3}},
        "'vocab_file' must be a string",
    ),
}


def test_training_checkpoint_of_the_tests_is_resumable(good):
    from refvos.engine.resume import check_training_state

    check_training_state(
        _training_checkpoint(good), "c.pth"
    )  # the cases below differ in one entry only


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_train_resume_refuses_damaged_training_state_in_one_line(tmp_path, good, capsys, case):
    """`train --resume` on a released-layout file or on a training checkpoint whose args / epoch /
    rng / history have the wrong type: status 2, one line naming the file, no run folder."""
    make, words = RESUME_CASES[case]
    path = _save(tmp_path / f"{case}.pth", make(good))
    argv = [
        "train",
        "--dataset",
        "refcoco",
        "--resume",
        str(path),
        "--output-dir",
        str(tmp_path / "runs"),
        "--data-root",
        str(tmp_path / "nodata"),
        "--device",
        "cpu",
        "--workers",
        "0",
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and words in err[0], err
    assert not (tmp_path / "runs").exists()


def test_compressed_pytorch_model_bin_in_a_bert_folder_is_refused(tmp_path):
    """--ck_bert / --bert DIR (save_pretrained layout) whose pytorch_model.bin is a deflate bomb:
    refused from the zip's directory before transformers' torch.load inflates it."""
    from refvos.engine.pretrain_bert import load_masked_lm
    from refvos.modeling.text_encoder import load_pretrained_text_encoder
    from tests.helpers import TINY_TEXT_CONFIG, deflated_checkpoint

    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**TINY_TEXT_CONFIG, "model_type": "bert"}))
    bomb = deflated_checkpoint(folder / "pytorch_model.bin", tensors=1, elements=1 << 20)
    for load in (load_pretrained_text_encoder, load_masked_lm):
        with pytest.raises(CheckpointError) as e:
            load(folder)
        assert (
            "\n" not in str(e.value)
            and str(bomb) in str(e.value)
            and "is compressed" in str(e.value)
        )
