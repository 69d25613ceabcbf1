"""CLI footguns of the second hostile-input round: every output checked writable before any
work, outputs that would overwrite an input or each other refused, stale video masks removed,
run folders locked, finished runs not silently overwritten, resume with another network refused,
out-of-range / NUL arguments refused, all as one line and status 2."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from refvos.cli import main
from refvos.engine.run_lock import LOCK_NAME, run_lock
from tests.helpers import TINY_TEXT_CONFIG, frames_folder, rgb, train_argv


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def image(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(rgb(32, 40)).save(path)
    return path


def test_unwritable_mask_out_leaves_no_overlay(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "ro").write_text("a file where a folder should be")  # unwritable even for root
    argv = ["predict", "--checkpoint", str(tiny_checkpoint), "--image", str(image(tmp_path)), "-e", "x",
            "--out", str(tmp_path / "o.png"), "--mask-out", str(tmp_path / "ro" / "m.png")]
    assert main(argv) == 2
    assert "ro" in one_error_line(capsys) and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("which", ["out_is_image", "out_is_mask", "out_is_mask_suffixed"])
def test_outputs_that_collide_are_refused(tmp_path, tiny_checkpoint, capsys, which):
    photo = image(tmp_path)
    before = photo.read_bytes()
    extra = {"out_is_image": ["--out", str(photo)],
             "out_is_mask": ["--out", str(tmp_path / "a.png"), "--mask-out", str(tmp_path / "a.png")],
             "out_is_mask_suffixed": ["-e", "y", "--out", str(tmp_path / "a.png"),
                                      "--mask-out", str(tmp_path / "sub" / ".." / "a.png")]}[which]
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "--image", str(photo), "-e", "x", *extra]) == 2
    line = one_error_line(capsys)
    assert "input file" in line if which == "out_is_image" else "same file" in line
    assert photo.read_bytes() == before and not (tmp_path / "a.png").exists()


def test_reused_video_out_dir_keeps_no_stale_masks(tmp_path, tiny_checkpoint):
    out = tmp_path / "out"
    long = frames_folder(tmp_path / "long", [(32, 40)] * 3)
    short = frames_folder(tmp_path / "short", [(32, 40)] * 2)
    (short / "00000.png").rename(short / "a.png")
    (short / "00001.png").rename(short / "b.png")
    base = ["predict", "--checkpoint", str(tiny_checkpoint), "-e", "x", "--out-dir", str(out), "--max-size", "32"]
    assert main([*base, "--video", str(long)]) == 0
    assert sorted(p.name for p in (out / "expr_0" / "masks").iterdir()) == ["00000.png", "00001.png", "00002.png"]
    assert main([*base, "--video", str(short)]) == 0
    assert sorted(p.name for p in (out / "expr_0" / "masks").iterdir()) == ["a.png", "b.png"]


@pytest.mark.parametrize("argv,words", [
    (["train", "--dataset", "refcoco", "--seed", "-1"], "--seed must be in 0.."),
    (["train", "--dataset", "refcoco", "--seed", str(2**70)], "--seed must be in 0.."),
    (["train", "--dataset", "refcoco", "--model_id", "../../x"], "--model_id '../../x' must name a sub-folder"),
    (["train", "--dataset", "refcoco", "--model_id", "/abs"], "must name a sub-folder"),
    (["serve", "--checkpoint", "c.pth", "--max-upload-mb", "nan"], "--max-upload-mb must be"),
    (["serve", "--checkpoint", "c.pth", "--max-upload-mb", "inf"], "--max-upload-mb must be"),
    (["predict", "--checkpoint", "c.pth", "--image", "p.png", "-e", "x", "--out", "o\x00.png"], "NUL"),
])
def test_bad_arguments_one_line(tmp_path, capsys, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert words in one_error_line(capsys)
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


def test_metrics_json_checked_before_evaluating(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "ro").write_text("a file")
    argv = ["test", "--dataset", "refcoco", "--resume", str(tiny_checkpoint), "--data-root", str(tmp_path / "nodata"),
            "--metrics-json", str(tmp_path / "ro" / "m.json"), "--output-dir", str(tmp_path / "eval")]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "m.json" in line and "nodata" not in line  # refused before the data set is even opened


def _train(root, out, *extra):
    return train_argv(root, out, "--epochs", "1", *extra)


@pytest.mark.slow
def test_run_folder_lock_overwrite_and_resume_mismatch(tmp_path, refcoco_root, tiny_checkpoint, capsys):
    run = tmp_path / "run"
    with run_lock(run):  # another training holds the folder
        assert main(_train(refcoco_root, tmp_path)) == 2
        line = one_error_line(capsys)
        assert "in use by another training" in line and LOCK_NAME in line
    assert not (run / "last.pth").exists() and not (run / "log.jsonl").exists()

    (run / "last.pth").write_bytes(tiny_checkpoint.read_bytes())  # a previous run's refvos_lite checkpoint
    finished = (run / "last.pth").read_bytes()
    assert main(_train(refcoco_root, tmp_path)) == 2  # a plain new run over it
    assert "already holds a run (last.pth" in one_error_line(capsys)

    wrong_model = _train(refcoco_root, tmp_path, "--resume", "auto")
    wrong_model[wrong_model.index("refvos_lite")] = "refvos_r101"
    assert main(wrong_model) == 2
    assert "holds a refvos_lite, not --model refvos_r101" in one_error_line(capsys)
    wrong_text = _train(refcoco_root, tmp_path, "--resume", "auto")
    wrong_text[wrong_text.index("--text-config") + 1] = json.dumps({**TINY_TEXT_CONFIG, "num_hidden_layers": 3})
    assert main(wrong_text) == 2
    assert "num_hidden_layers" in one_error_line(capsys)
    assert (run / "last.pth").read_bytes() == finished

    assert main(_train(refcoco_root, tmp_path, "--overwrite")) == 0  # asked for: replaced
    assert (run / "last.pth").read_bytes() != finished


def _outputs(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kill_at", [1, 2])
def test_sigkill_during_the_final_move_leaves_no_mix_and_the_next_run_cleans_up(tmp_path, tiny_checkpoint, kill_at):
    """``predict --out-dir`` killed (SIGKILL) when it moves its result into place, at the first or
    second rename into the folder: the folder holds the previous run's files only (or is being
    swapped: then the next run puts the previous one back), and the next run removes the hidden
    staging folders and writes a whole new result."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "out"
    old_video = frames_folder(tmp_path / "old", [(32, 40)] * 3)
    new_video = frames_folder(tmp_path / "new", [(32, 40)] * 4)
    base = ["predict", "--checkpoint", str(tiny_checkpoint), "-e", "x", "--out-dir", str(out), "--max-size", "32",
            "--precision", "fp32", "--compile", "off"]
    assert main([*base, "--video", str(old_video)]) == 0
    previous = _outputs(out)
    script = textwrap.dedent("""
        import os, signal, sys
        from pathlib import Path
        out, kill_at = Path(sys.argv[1]).resolve(), int(sys.argv[2])
        moves = [0]
        def killing(real):
            def move(src, dst, *a, **k):
                dst = Path(dst).resolve()
                if dst == out or out in dst.parents:
                    moves[0] += 1
                    if moves[0] == kill_at:
                        os.kill(os.getpid(), signal.SIGKILL)
                return real(src, dst, *a, **k)
            return move
        os.replace, os.rename = killing(os.replace), killing(os.rename)
        from refvos.cli import main
        sys.exit(main(sys.argv[3:]))
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(out), str(kill_at), *base, "--video", str(new_video)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": f"{repo / 'src'}:{repo}"})
    new_names = [f"{i:05d}.png" for i in range(4)]
    if proc.returncode == 0:  # fewer renames into the folder than kill_at: the whole new result
        assert sorted(p.name for p in (out / "expr_0" / "masks").iterdir()) == new_names
    else:
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
        assert not out.exists() or _outputs(out) == previous  # never a mix of two runs
    assert main([*base, "--video", str(new_video)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging left
    assert sorted(p.name for p in (out / "expr_0" / "masks").iterdir()) == new_names


def test_out_dir_with_foreign_files_is_refused(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    video = frames_folder(tmp_path / "v", [(32, 40)] * 2)
    assert main(["predict", "--checkpoint", str(tiny_checkpoint), "-e", "x", "--out-dir", str(out),
                 "--video", str(video)]) == 2
    assert "holds files refvos predict did not write (notes.txt)" in one_error_line(capsys)
    assert (out / "notes.txt").read_text() == "mine"


def test_a_full_disk_under_the_run_lock_is_one_error(tmp_path):
    """The lock file on a full device (/dev/full: every write fails with ENOSPC): one InputError."""
    from refvos.errors import InputError

    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).symlink_to("/dev/full")
    with pytest.raises(InputError, match=r"cannot write the run lock .*: No space left on device"), run_lock(run):
        pass
