"""refvos download: --list prints the seven released models; a name downloads into the cache."""

from __future__ import annotations

import json

from refvos.checkpoint import save_checkpoint
from refvos.cli import main
from refvos.hub.registry import RELEASED
from tests.helpers import make_tiny_model


def test_list_prints_the_seven_released_models(capsys):
    assert main(["download", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    names = [line.split()[0] for line in out[1:]]
    assert names == [
        "refcoco",
        "refcoco+",
        "a2d",
        "refcoco-a2d",
        "davis",
        "bert-refcoco",
        "bert-refcoco+",
    ]
    assert "59.45" in out[1] and "44.71" in out[2] and "45.1" in out[5]
    assert main(["download", "--list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["drive_id"] for r in rows} == {n: w.drive_id for n, w in RELEASED.items()}
    assert {r["drive_id"] for r in rows} == {
        "1VI2TixrkjDORirkGGi3eXDJj35CRoEVr",
        "1HIM3xHkL2Z1rCnnA6OF3r8SmroL7EoQy",
        "1CqwYTwcD0lQ0VHJMJJ9iOmRGvjj3Eiuf",
        "1Y4sclYO4wViw-gH2nrLZ-XmLq0_FXpWf",
        "1H3S4bZQChIlJNAM5mttbjTAr7pnOk1PL",
        "1-hpF7UwA-cza2MpT75fyHEsKLe7xgpGc",
        "1FmDjRj66YXG4Hv8X1nagwmaSxhVC7Y7_",
    }


def test_download_a_name_prints_its_path(tmp_path, monkeypatch, capsys):
    (tmp_path / "mirror").mkdir()
    save_checkpoint(tmp_path / "mirror" / "refvos-davis.pth", make_tiny_model())
    monkeypatch.setenv("REFVOS_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("REFVOS_WEIGHTS_URL", str(tmp_path / "mirror"))
    assert main(["download", "davis", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == str(
        tmp_path / "cache" / "checkpoints" / "refvos-davis.pth"
    )
    assert main(["download", "nope"]) == 2
    assert "download --list" in capsys.readouterr().err
