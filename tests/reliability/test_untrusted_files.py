"""Untrusted files: nothing the project reads can run code, whatever a stranger put in it.

Already covered elsewhere (not repeated here): an ``os.system`` payload in a zip checkpoint and a
plain-pickle checkpoint (tests/checkpoint/test_formats.py), ``open`` / ``os.system`` payloads in a refs
pickle (tests/io/test_safe_pickle.py, tests/data/test_refer.py). Here: every other way in —
payload kinds x checkpoint layouts (zip, legacy, raw pickle, nested in the optimizer state or in
the allowed ``argparse.Namespace``), through ``load_checkpoint``, ``Trainer.resume`` and the CLI;
hand-written opcode streams (GLOBAL, STACK_GLOBAL, INST, OBJ, persistent ids) and resource-
exhaustion calls of the allowed globals in refs pickles; the ImageNet backbone weights file; a
BERT directory (``--ck_bert``); and a scan of the source tree for unsafe loaders.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import io
import os
import pickle
import subprocess
from pathlib import Path

import pytest
import torch

from refvos.errors import CheckpointError, DataFormatError, RefVOSError, UnsafePickleError
from refvos.io.safe_pickle import safe_load
from tests.helpers import REPO_ROOT, TINY_TEXT_CONFIG, make_tiny_model

# ------------------------------------------------------------------------------ payloads


class _Reduce:
    """Pickles as ``func(*args)``: what a hostile file would carry."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker: Path) -> dict[str, _Reduce]:
    m = str(marker)
    return {
        "os.system": _Reduce(os.system, f"touch {m}"),
        "builtins.open": _Reduce(builtins.open, m, "w"),
        "builtins.exec": _Reduce(builtins.exec, f"open({m!r}, 'w').close()"),
        "builtins.eval": _Reduce(builtins.eval, f"open({m!r}, 'w')"),
        "subprocess.call": _Reduce(subprocess.call, ["touch", m]),
        "pathlib.Path.touch": _Reduce(Path.touch, Path(m)),
    }


PAYLOADS = list(_payloads(Path("x")))
pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")


def _opcode_pickles(marker: Path) -> dict[str, bytes]:
    """Hand-written pickle streams that reach a callable without a Python class on our side."""
    cmd = f"touch {marker}".encode()
    return {
        "GLOBAL (protocol 0)": b"cos\nsystem\n(S'" + cmd + b"'\ntR.",
        "STACK_GLOBAL (protocol 4)": (
            b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94\x8c"
            + bytes([len(cmd)])
            + cmd
            + b"\x94\x85\x94R\x94."
        ),
        "INST": b"(S'" + cmd + b"'\nios\nsystem\n.",
        "OBJ": b"\x80\x02(cos\nsystem\nX" + len(cmd).to_bytes(4, "little") + cmd + b"o.",
        "posix module name": b"cposix\nsystem\n(S'" + cmd + b"'\ntR.",
        "persistent id": b"\x80\x02X\x03\x00\x00\x00abcQ.",
    }


def test_the_payloads_are_live(tmp_path):
    """Control: unpickled without restrictions, every payload does create its file."""
    for i, kind in enumerate(PAYLOADS):
        marker = tmp_path / f"made_{i}"
        pickle.loads(pickle.dumps(_payloads(marker)[kind]))
        assert marker.exists(), kind
    for name, stream in _opcode_pickles(tmp_path / "op").items():
        if name != "persistent id":
            pickle.loads(stream)
            assert (tmp_path / "op").exists(), name
            (tmp_path / "op").unlink()


# ------------------------------------------------------------------------------ checkpoints


@pytest.fixture(scope="module")
def good_ckpt(tmp_path_factory) -> dict:
    from refvos.checkpoint import checkpoint_dict

    return checkpoint_dict(make_tiny_model(max_tokens=10))


def _evil_checkpoint(kind: str, layout: str, good: dict, marker: Path, path: Path) -> Path:
    payload = _payloads(marker)[kind]
    ckpt = dict(good)
    if layout == "top level":
        ckpt["args"] = payload
    elif layout == "inside the optimizer state":
        ckpt["optimizer"] = {"state": {0: {"momentum_buffer": payload}}, "param_groups": []}
    elif layout == "inside an argparse.Namespace":
        ckpt["args"] = argparse.Namespace(dataset="refcoco", hook=payload)
    elif layout == "in place of a tensor":
        ckpt["model"] = {**ckpt["model"], "backbone.extra": payload}
    if layout == "legacy (non-zip) format":
        ckpt["args"] = payload
        torch.save(ckpt, path, _use_new_zipfile_serialization=False)
    elif layout == "raw pickle protocol 5":
        path.write_bytes(pickle.dumps({"model": {}, "bert_model": {}, "args": payload}, protocol=5))
    else:
        torch.save(ckpt, path)
    return path


LAYOUTS = [
    "top level",
    "inside the optimizer state",
    "inside an argparse.Namespace",
    "in place of a tensor",
    "legacy (non-zip) format",
    "raw pickle protocol 5",
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", PAYLOADS)
def test_checkpoint_payload_is_refused_and_runs_nothing(kind, layout, good_ckpt, tmp_path):
    from refvos.checkpoint import load_checkpoint

    marker = tmp_path / "pwned"
    path = _evil_checkpoint(kind, layout, good_ckpt, marker, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"evil\.pth.*(refused|cannot be read)") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("name", list(_opcode_pickles(Path("x"))))
def test_hand_written_opcode_checkpoints_are_refused(name, tmp_path):
    from refvos.checkpoint import read_checkpoint

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(_opcode_pickles(marker)[name])
    with pytest.raises(CheckpointError, match=r"evil\.pth"):
        read_checkpoint(path)
    assert not marker.exists()


def test_trainer_resume_refuses_a_planted_last_pth(good_ckpt, tmp_path):
    """A ``last.pth`` planted in a run folder (what ``--resume auto`` would pick up)."""
    from refvos.data import build_dataset
    from refvos.data.synthetic import make_refcoco
    from refvos.engine.trainer import TrainConfig, Trainer

    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    run.mkdir()
    evil = _evil_checkpoint(
        "os.system", "inside the optimizer state", good_ckpt, marker, run / "last.pth"
    )
    root = make_refcoco(tmp_path / "data", num_images=2, image_size=32)
    train = build_dataset(
        "refcoco", root, "train", "train", max_tokens=10, base_size=28, crop_size=32
    )
    config = TrainConfig(
        output_dir=run,
        epochs=1,
        schedule="constant",
        lr=0.01,
        batch_size=2,
        workers=0,
        progress=False,
        tensorboard=False,
    )
    trainer = Trainer(make_tiny_model(max_tokens=10), train, config)
    with pytest.raises(CheckpointError, match=r"last\.pth.*refused"):
        trainer.resume(evil)
    assert not marker.exists()


def test_cli_predict_and_test_refuse_a_hostile_checkpoint(good_ckpt, tmp_path, monkeypatch, capsys):
    import numpy as np
    from PIL import Image

    from refvos.cli import main
    from refvos.data.synthetic import make_refcoco

    marker = tmp_path / "pwned"
    evil = _evil_checkpoint("builtins.exec", "top level", good_ckpt, marker, tmp_path / "evil.pth")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "photo.png")
    root = make_refcoco(tmp_path / "data", num_images=2, image_size=32)
    monkeypatch.chdir(tmp_path)
    for argv in (
        [
            "predict",
            "--checkpoint",
            str(evil),
            "--image",
            "photo.png",
            "-e",
            "the thing",
            "--mask-out",
            "mask.png",
            "--device",
            "cpu",
        ],
        [
            "test",
            "--refer_data_root",
            str(root),
            "--split",
            "train",
            "--resume",
            str(evil),
            "--output-dir",
            "out",
            "--device",
            "cpu",
        ],
    ):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "refused" in err and "nothing in it was run" in err
    assert (
        not marker.exists()
        and not (tmp_path / "mask.png").exists()
        and not (tmp_path / "out").exists()
    )


# ------------------------------------------------------------------------------ refs pickles


@pytest.mark.parametrize("name", list(_opcode_pickles(Path("x"))))
def test_refs_pickle_opcode_payloads_are_refused(name, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "refs(unc).p"
    path.write_bytes(_opcode_pickles(marker)[name])
    with pytest.raises(UnsafePickleError, match=r"refs\(unc\)\.p: refused.*nothing"):
        safe_load(path)
    assert not marker.exists()


@pytest.mark.parametrize("kind", PAYLOADS)
@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_refs_pickle_payload_every_protocol(kind, protocol, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "refs(unc).p"
    path.write_bytes(
        pickle.dumps([{"ref_id": 1, "sentences": [_payloads(marker)[kind]]}], protocol=protocol)
    )
    with pytest.raises(UnsafePickleError, match=r"refs\(unc\)\.p"):
        safe_load(path)
    assert not marker.exists()


def _global_call(module: str, name: str, *args: bytes) -> bytes:
    """Protocol-2 stream: ``module.name(*args)`` where each arg is an already-encoded opcode."""
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n(" + b"".join(args) + b"tR."


def _int(n: int) -> bytes:
    return b"I" + str(n).encode() + b"\n"


def _str(s: str) -> bytes:
    data = s.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


@pytest.mark.parametrize(
    "stream, what",
    [
        (_global_call("__builtin__", "bytearray", _int(10**13)), "bytearray"),  # 10 TB allocation
        (_global_call("builtins", "bytearray", _str("abc"), _str("latin1")), "bytearray"),
        (_global_call("_codecs", "encode", _str("abc"), _str("rot13")), "encode"),
        (_global_call("_codecs", "encode", _int(5), _str("latin1")), "encode"),
    ],
)
def test_allowed_globals_cannot_exhaust_memory_or_reach_codecs(stream, what, tmp_path):
    path = tmp_path / "refs(unc).p"
    path.write_bytes(stream)
    with pytest.raises(UnsafePickleError, match=rf"refs\(unc\)\.p: refused.*{what}"):
        safe_load(path)


def test_legitimate_python2_refs_still_load():
    """Python 2 refs pickles (str as latin-1 ``_codecs.encode`` bytes, bytearray) still load."""
    obj = [
        {"raw": "café", "b": b"\xff\x00", "ba": bytearray(b"\x01\x02"), "s": {1, 2}, "c": 1 + 2j}
    ]
    for protocol in (0, 1, 2):
        assert safe_load(io.BytesIO(pickle.dumps(obj, protocol=protocol))) == obj


def test_refer_dataset_through_the_cli_refuses_a_hostile_refs_pickle(tmp_path, monkeypatch, capsys):
    from refvos.checkpoint import save_checkpoint
    from refvos.cli import main
    from refvos.data.synthetic import make_refcoco

    marker = tmp_path / "pwned"
    root = make_refcoco(tmp_path / "data", num_images=2, image_size=32)
    (root / "refcoco" / "refs(unc).p").write_bytes(
        _opcode_pickles(marker)["STACK_GLOBAL (protocol 4)"]
    )
    ckpt = save_checkpoint(tmp_path / "m.pth", make_tiny_model(max_tokens=10))
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "test",
                "--refer_data_root",
                str(root),
                "--resume",
                str(ckpt),
                "--output-dir",
                "out",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert (
        r"refs(unc).p: refused to load the pickle: it references os.system" in err
        and "Traceback" not in err
    )
    assert not marker.exists() and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ other weights files


def test_backbone_weights_file_payload_is_refused(tmp_path):
    from refvos.modeling.backbone import resnet101_os8

    marker = tmp_path / "pwned"
    path = tmp_path / "resnet101.pth"
    torch.save({"conv1.weight": torch.zeros(1), "hook": _payloads(marker)["os.system"]}, path)
    with pytest.raises(CheckpointError, match=r"backbone_weights: cannot read .*resnet101\.pth"):
        resnet101_os8(path)
    assert not marker.exists()


def test_bert_directory_with_a_hostile_pytorch_model_bin_is_refused(tmp_path):
    """``--ck_bert DIR``: transformers reads ``pytorch_model.bin`` with ``weights_only=True``."""
    from transformers import BertConfig

    from refvos.modeling.text_encoder import load_pretrained_text_encoder

    marker = tmp_path / "pwned"
    bert = tmp_path / "bert"
    bert.mkdir()
    BertConfig(**TINY_TEXT_CONFIG).save_pretrained(bert)
    torch.save(
        {"embeddings.word_embeddings.weight": _payloads(marker)["os.system"]},
        bert / "pytorch_model.bin",
    )
    with pytest.raises(RefVOSError, match=r"cannot load a BERT from directory .*bert"):
        load_pretrained_text_encoder(bert)
    assert not marker.exists()


# ------------------------------------------------------------------------------ source scan


def _call_name(node: ast.Call) -> str:
    f = node.func
    parts = []
    while isinstance(f, ast.Attribute):
        parts.append(f.attr)
        f = f.value
    if isinstance(f, ast.Name):
        parts.append(f.id)
    return ".".join(reversed(parts))


def _kw(node: ast.Call, name: str):
    for k in node.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else "<expr>"
    return None


def test_source_tree_uses_only_safe_loaders():
    """Every loader call in ``src/refvos``: ``torch.load`` / ``load_state_dict_from_url`` with
    ``weights_only=True``, ``np.load`` with ``allow_pickle=False``, ``pickle`` loads only in
    ``safe_pickle.py``, no ``yaml.load`` / ``eval`` / ``exec`` / ``marshal`` / ``shelve``."""
    problems = []
    for path in sorted((REPO_ROOT / "src" / "refvos").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        rel = path.relative_to(REPO_ROOT)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node)
            where = f"{rel}:{node.lineno}: {name}"
            last = name.rsplit(".", 1)[-1]
            if (
                name in ("torch.load", "torch.hub.load_state_dict_from_url")
                and _kw(node, "weights_only") is not True
            ):
                problems.append(f"{where} without weights_only=True")
            elif name in ("np.load", "numpy.load") and _kw(node, "allow_pickle") is not False:
                problems.append(f"{where} without allow_pickle=False")
            elif name.startswith(
                ("pickle.", "cPickle.", "dill.", "joblib.", "marshal.", "shelve.")
            ) and last in ("load", "loads", "Unpickler", "open"):
                if rel.name != "safe_pickle.py":
                    problems.append(f"{where}: use refvos.io.safe_pickle.safe_load")
            elif name in (
                "yaml.load",
                "yaml.unsafe_load",
                "builtins.eval",
                "builtins.exec",
                "pd.read_pickle",
                "pandas.read_pickle",
            ) or (isinstance(node.func, ast.Name) and name in ("eval", "exec")):
                problems.append(where)
    assert not problems, "unsafe loaders:\n" + "\n".join(problems)


def test_safe_load_names_the_stream_for_corrupt_data():
    with pytest.raises(DataFormatError, match="not a readable pickle"):
        safe_load(io.BytesIO(b"\x80\x05garbage"))
