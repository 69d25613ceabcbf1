"""The ``refvos`` front end: help lists every command without importing torch, flags are
accepted with ``_`` or ``-``, argparse errors are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from refvos.cli import COMMANDS, main, parse
from tests.helpers import REPO_ROOT


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )


def test_help_lists_every_command_without_torch_or_transformers():
    proc = _python(
        "import json, sys\n"
        "from refvos.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'transformers', 'torchvision', 'timm', 'numpy', 'PIL'))))\n"
    )
    assert proc.returncode == 0, proc.stderr
    *help_lines, modules = proc.stdout.strip().splitlines()
    assert json.loads(modules) == []
    text = "\n".join(help_lines)
    assert "`" not in text
    for name, module in COMMANDS.items():
        help_first_words = " ".join(
            __import__(f"refvos.commands.{module}", fromlist=["HELP"]).HELP.split()[:3]
        )
        assert name in text and help_first_words in " ".join(text.split()), name


def test_each_command_help_runs(capsys):
    for name in COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert f"usage: refvos {name}" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, dest, value",
    [
        (["train", "--model-id", "x"], "model_id", "x"),
        (["train", "--model_id=x"], "model_id", "x"),
        (["train", "--output_dir", "o"], "output_dir", "o"),
        (["train", "--base-size", "64"], "base_size", 64),
        (["train", "--select_on_test"], "select_on_test", True),
        (["test", "--checkpoint", "c.pth", "--display_limit", "3"], "display_limit", 3),
        (["test", "--checkpoint", "c.pth", "--refer-data-root", "r"], "refer_data_root", "r"),
        (
            [
                "predict",
                "--checkpoint",
                "c.pth",
                "--image",
                "a.jpg",
                "-e",
                "x",
                "--mask_out",
                "m.png",
            ],
            "mask_out",
            "m.png",
        ),
        (["make-synthetic", "--out", "d", "--num_images", "30"], "num_images", 30),
        (["serve", "--checkpoint", "c.pth", "--max_upload_mb", "2"], "max_upload_mb", 2.0),
    ],
)
def test_flags_accept_underscores_and_hyphens(argv, dest, value):
    assert getattr(parse(argv), dest) == value


def test_argparse_errors_are_one_line(capsys):
    for argv in (["train", "--no-such-flag"], ["test", "--checkpoint"], ["nonsense"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and len(err.strip().splitlines()) == 1, err
        assert f"refvos {argv[0]}" in err or "refvos:" in err
