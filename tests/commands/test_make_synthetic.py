"""``refvos make-synthetic``: the built-in data written in a data set's layout, sizes checked."""

from refvos.cli import main
from refvos.data import REFER


def test_make_synthetic_command(tmp_path, capsys):
    assert (
        main(
            [
                "make-synthetic",
                "--out",
                str(tmp_path),
                "--kind",
                "refcoco",
                "--num-images",
                "20",
                "--image-size",
                "48",
            ]
        )
        == 0
    )
    assert "refcoco:" in capsys.readouterr().out
    refer = REFER(tmp_path)
    assert len(refer.Imgs) == 20
    assert {r["split"] for r in refer.data["refs"]} == {"train", "val", "testA", "testB"}
    # too few images or videos would leave splits empty: refused, naming the flag
    assert (
        main(
            [
                "make-synthetic",
                "--out",
                str(tmp_path / "few"),
                "--kind",
                "refcoco",
                "--num-images",
                "19",
            ]
        )
        == 2
    )
    assert "--num-images 19" in capsys.readouterr().err and not (tmp_path / "few").exists()
    assert (
        main(
            [
                "make-synthetic",
                "--out",
                str(tmp_path / "few"),
                "--kind",
                "davis",
                "--num-videos",
                "4",
            ]
        )
        == 2
    )
    assert "--num-videos 4" in capsys.readouterr().err
    assert main(["make-synthetic", "--out", str(tmp_path), "--image-size", "8"]) == 2
