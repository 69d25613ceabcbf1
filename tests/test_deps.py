"""A missing optional package stops with one line naming pip install "refvos[EXTRA]"."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from refvos.deps import OPTIONAL, missing_extra, require
from refvos.errors import MissingExtraError
from tests.helpers import REPO_ROOT


def test_require_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import of onnxruntime fails
    with pytest.raises(MissingExtraError) as err:
        require("onnxruntime", "the ONNX parity check")
    assert str(err.value) == (
        "the ONNX parity check needs the package onnxruntime, which is not installed: "
        'pip install "refvos[export]"'
    )
    assert require("tqdm").__name__ == "tqdm"  # an installed one is returned


def test_missing_extra_maps_module_not_found_errors():
    err = missing_extra(
        ModuleNotFoundError("No module named 'skimage.measure'", name="skimage.measure")
    )
    assert 'pip install "refvos[data]"' in str(err) and "scikit-image" in str(err)
    assert missing_extra(ModuleNotFoundError("No module named 'nope'", name="nope")) is None
    assert missing_extra(ValueError("x")) is None


def test_every_extra_named_is_one_of_pyprojects():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for module, (dist, extra) in OPTIONAL.items():
        assert any(
            r.split(">")[0].split("=")[0].split("<")[0].lower() == dist.lower()
            for r in extras[extra]
        ), module


@pytest.mark.parametrize(
    ("blocked", "argv", "extra"),
    [
        ("onnx", ["export", "--checkpoint", "{ckpt}", "--out", "{tmp}/m.onnx"], "export"),
        ("starlette", ["serve", "--checkpoint", "{ckpt}", "--port", "0"], "serve"),
        # a module-level import of the data sets: the command's extra, which brings all it needs
        (
            "h5py",
            [
                "test",
                "--checkpoint",
                "{ckpt}",
                "--dataset",
                "refcoco",
                "--refer_data_root",
                "{tmp}",
            ],
            "train",
        ),
    ],
)
def test_cli_stops_with_one_line(blocked, argv, extra, tiny_checkpoint, tmp_path):
    """A command whose package is missing (hidden by a None in sys.modules before refvos runs):
    status 2, one line on stderr naming the extra."""
    argv = [a.format(ckpt=tiny_checkpoint, tmp=tmp_path) for a in argv]
    code = (
        f"import sys; sys.modules[{blocked!r}] = None\n"
        f"from refvos.cli import main\nsys.exit(main({argv!r}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f'pip install "refvos[{extra}]"' in lines[0], done.stderr
