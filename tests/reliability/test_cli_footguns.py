"""CLI footguns of the second hostile-input round: every output checked writable before any
work, outputs that would overwrite an input or each other refused, stale video masks removed,
run folders locked, finished runs not silently overwritten, resume with another network refused,
out-of-range / NUL arguments refused, all as one line and status 2."""

from __future__ import annotations

import json
import shutil

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
    argv = [
        "predict",
        "--checkpoint",
        str(tiny_checkpoint),
        "--image",
        str(image(tmp_path)),
        "-e",
        "x",
        "--out",
        str(tmp_path / "o.png"),
        "--mask-out",
        str(tmp_path / "ro" / "m.png"),
    ]
    assert main(argv) == 2
    assert "ro" in one_error_line(capsys) and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("which", ["out_is_image", "out_is_mask", "out_is_mask_suffixed"])
def test_outputs_that_collide_are_refused(tmp_path, tiny_checkpoint, capsys, which):
    photo = image(tmp_path)
    before = photo.read_bytes()
    extra = {
        "out_is_image": ["--out", str(photo)],
        "out_is_mask": ["--out", str(tmp_path / "a.png"), "--mask-out", str(tmp_path / "a.png")],
        "out_is_mask_suffixed": [
            "-e",
            "y",
            "--out",
            str(tmp_path / "a.png"),
            "--mask-out",
            str(tmp_path / "sub" / ".." / "a.png"),
        ],
    }[which]
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(tiny_checkpoint),
                "--image",
                str(photo),
                "-e",
                "x",
                *extra,
            ]
        )
        == 2
    )
    line = one_error_line(capsys)
    assert "input file" in line if which == "out_is_image" else "same file" in line
    assert photo.read_bytes() == before and not (tmp_path / "a.png").exists()


def test_reused_video_out_dir_keeps_no_stale_masks(tmp_path, tiny_checkpoint):
    out = tmp_path / "out"
    long = frames_folder(tmp_path / "long", [(32, 40)] * 3)
    short = frames_folder(tmp_path / "short", [(32, 40)] * 2)
    (short / "00000.png").rename(short / "a.png")
    (short / "00001.png").rename(short / "b.png")
    base = [
        "predict",
        "--checkpoint",
        str(tiny_checkpoint),
        "-e",
        "x",
        "--out-dir",
        str(out),
        "--max-size",
        "32",
    ]
    assert main([*base, "--video", str(long)]) == 0
    assert sorted(p.name for p in (out / "expr_0" / "masks").iterdir()) == [
        "00000.png",
        "00001.png",
        "00002.png",
    ]
    assert main([*base, "--video", str(short)]) == 0
    assert sorted(p.name for p in (out / "expr_0" / "masks").iterdir()) == ["a.png", "b.png"]


@pytest.mark.parametrize(
    "argv,words",
    [
        (["train", "--dataset", "refcoco", "--seed", "-1"], "--seed must be in 0.."),
        (["train", "--dataset", "refcoco", "--seed", str(2**70)], "--seed must be in 0.."),
        (
            ["train", "--dataset", "refcoco", "--model_id", "../../x"],
            "--model_id '../../x' must name a sub-folder",
        ),
        (["train", "--dataset", "refcoco", "--model_id", "/abs"], "must name a sub-folder"),
        (["serve", "--checkpoint", "c.pth", "--max-upload-mb", "nan"], "--max-upload-mb must be"),
        (["serve", "--checkpoint", "c.pth", "--max-upload-mb", "inf"], "--max-upload-mb must be"),
        (
            [
                "predict",
                "--checkpoint",
                "c.pth",
                "--image",
                "p.png",
                "-e",
                "x",
                "--out",
                "o\x00.png",
            ],
            "NUL",
        ),
    ],
)
def test_bad_arguments_one_line(tmp_path, capsys, monkeypatch, argv, words):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert words in one_error_line(capsys)
    assert not (tmp_path / "x").exists() and not (tmp_path.parent / "x").exists()


def test_metrics_json_checked_before_evaluating(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "ro").write_text("a file")
    argv = [
        "test",
        "--dataset",
        "refcoco",
        "--resume",
        str(tiny_checkpoint),
        "--data-root",
        str(tmp_path / "nodata"),
        "--metrics-json",
        str(tmp_path / "ro" / "m.json"),
        "--output-dir",
        str(tmp_path / "eval"),
    ]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "m.json" in line and "nodata" not in line  # refused before the data set is even opened


def _train(root, out, *extra):
    return train_argv(root, out, "--epochs", "1", *extra)


@pytest.mark.slow
def test_run_folder_lock_overwrite_and_resume_mismatch(
    tmp_path, refcoco_root, tiny_checkpoint, capsys
):
    run = tmp_path / "run"
    with run_lock(run):  # another training holds the folder
        assert main(_train(refcoco_root, tmp_path)) == 2
        line = one_error_line(capsys)
        assert "in use by another training" in line and LOCK_NAME in line
    assert not (run / "last.pth").exists() and not (run / "log.jsonl").exists()

    (run / "last.pth").write_bytes(
        tiny_checkpoint.read_bytes()
    )  # a previous run's refvos_lite checkpoint
    finished = (run / "last.pth").read_bytes()
    assert main(_train(refcoco_root, tmp_path)) == 2  # a plain new run over it
    assert "already holds a run (last.pth" in one_error_line(capsys)

    wrong_model = _train(refcoco_root, tmp_path, "--resume", "auto")
    wrong_model[wrong_model.index("refvos_lite")] = "refvos_r101"
    assert main(wrong_model) == 2
    assert "holds a refvos_lite, not --model refvos_r101" in one_error_line(capsys)
    wrong_text = _train(refcoco_root, tmp_path, "--resume", "auto")
    wrong_text[wrong_text.index("--text-config") + 1] = json.dumps(
        {**TINY_TEXT_CONFIG, "num_hidden_layers": 3}
    )
    assert main(wrong_text) == 2
    assert "num_hidden_layers" in one_error_line(capsys)
    assert (run / "last.pth").read_bytes() == finished

    assert main(_train(refcoco_root, tmp_path, "--overwrite")) == 0  # asked for: replaced
    assert (run / "last.pth").read_bytes() != finished


@pytest.mark.parametrize(
    "change,words",
    [
        ({"num_hidden_layers": 49}, "num_hidden_layers must be an integer in [1, 48]"),
        (
            {"max_position_embeddings": 8},
            "max_tokens must not exceed text_config.max_position_embeddings",
        ),
    ],
)
def test_text_config_that_could_not_be_loaded_is_refused_before_training(
    tmp_path, refcoco_root, capsys, change, words
):
    """A --text-config the checkpoint loader would refuse (49 layers; position embeddings fewer
    than the data set's 20 tokens, an IndexError mid-training) is refused before anything is
    built or written: the loader's own checks (RefVOSConfig.validate)."""
    argv = _train(refcoco_root, tmp_path)
    argv[argv.index("--text-config") + 1] = json.dumps({**TINY_TEXT_CONFIG, **change})
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "--text-config" in line and words in line, line
    assert not (tmp_path / "run").exists()


def test_pretrained_text_encoder_that_could_not_be_loaded_is_refused_before_training(
    tmp_path, refcoco_root, capsys
):
    """--ck_bert DIR holding a 49-layer BERT: the new network fails the loader's checks
    (refvos.checkpoint.check_config) after it is built and before the first step; no checkpoint."""
    from transformers import BertConfig, BertModel

    from refvos.modeling.config import BERT_CONFIG_KEYS
    from refvos.tokenization import get_tokenizer

    config = {
        k: v
        for k, v in {
            **TINY_TEXT_CONFIG,
            "num_hidden_layers": 49,
            "hidden_size": 16,
            "num_attention_heads": 1,
            "intermediate_size": 16,
        }.items()
        if k in BERT_CONFIG_KEYS
    }
    BertModel(BertConfig(**config)).save_pretrained(tmp_path / "bert49")
    shutil.copyfile(get_tokenizer().vocab_file, tmp_path / "bert49" / "vocab.txt")
    capsys.readouterr()  # save_pretrained's progress bar
    argv = _train(refcoco_root, tmp_path)
    i = argv.index("--text-encoder")
    del argv[i : i + 4]  # --text-encoder none --text-config JSON
    argv += ["--ck_bert", str(tmp_path / "bert49")]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "the new refvos_lite network" in line and "num_hidden_layers" in line, line
    assert not list(tmp_path.glob("run/*.pth"))


def _pretrain(root, out, *extra) -> list[str]:
    return [
        "pretrain-bert",
        "--dataset",
        "refcoco",
        "--refer_data_root",
        str(root),
        "--out",
        str(out),
        "--bert",
        "none",
        "--text-config",
        json.dumps(TINY_TEXT_CONFIG),
        "--epochs",
        "1",
        "-b",
        "16",
        "--device",
        "cpu",
        *extra,
    ]


@pytest.mark.parametrize("which", ["data_root", "parent_of_data_root", "other_folder", "file"])
def test_pretrain_bert_never_replaces_a_folder_it_did_not_write(
    tmp_path, refcoco_root, capsys, which
):
    """--out naming the data root, a folder holding it, any non-empty folder without
    pretrain_bert.json, or a file: one line, status 2, nothing deleted or written."""
    root = tmp_path / "data"
    shutil.copytree(refcoco_root, root)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "thesis.tex").write_text("years of work")
    (tmp_path / "model.bin").write_bytes(b"weights")
    out = {
        "data_root": root,
        "parent_of_data_root": tmp_path,
        "other_folder": tmp_path / "notes",
        "file": tmp_path / "model.bin",
    }[which]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert main(_pretrain(root, out)) == 2
    line = one_error_line(capsys)
    assert "--out" in line and str(out) in line, line
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_pretrain_bert_replaces_its_own_earlier_output(tmp_path, refcoco_root):
    out = tmp_path / "bert"
    assert main(_pretrain(refcoco_root, out)) == 0
    first = (out / "pretrain_bert.json").read_text()
    assert main(_pretrain(refcoco_root, out, "--seed", "1")) == 0
    assert (out / "pretrain_bert.json").read_text() != first and (out / "config.json").is_file()


@pytest.mark.parametrize(
    "case,words",
    [
        ("out_is_checkpoint", "is the input file"),
        ("out_is_folder", "it is a folder"),
        ("out_is_text_encoder_out", "are the same file"),
        ("opset_99", "--opset 99: the installed torch and onnx export opsets 9.."),
        ("opset_1", "--opset 1:"),
        ("height_12000", "--height/--width must be in 16..4096, got 480x12000"),
        ("width_99999", "must be in 16..4096"),
    ],
)
def test_export_outputs_and_sizes_are_checked_first(tmp_path, tiny_checkpoint, capsys, case, words):
    """`refvos export` refuses, in one line and before the checkpoint is read or anything
    allocated, an --out that is the checkpoint, a folder or the --text-encoder-out, an opset
    the installed torch / onnx cannot write and an example size over 4096; nothing is written
    and the checkpoint is unchanged."""
    ckpt = tmp_path / "model.pth"
    ckpt.write_bytes(tiny_checkpoint.read_bytes())
    before = ckpt.read_bytes()
    (tmp_path / "folder.onnx").mkdir()
    extra = {
        "out_is_checkpoint": ["--out", str(ckpt)],
        "out_is_folder": ["--out", str(tmp_path / "folder.onnx")],
        "out_is_text_encoder_out": [
            "--out",
            str(tmp_path / "a.onnx"),
            "--text-encoder-out",
            str(tmp_path / "a.onnx"),
        ],
        "opset_99": ["--opset", "99"],
        "opset_1": ["--opset", "1"],
        "height_12000": ["--height", "12000"],
        "width_99999": ["--width", "99999"],
    }[case]
    argv = [
        "export",
        "--checkpoint",
        str(ckpt),
        "--out",
        str(tmp_path / "m.onnx"),
        "--no-check",
        *extra,
    ]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert words in line, line
    assert ckpt.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "folder.onnx",
        "model.pth",
    ]


def test_export_help_states_the_size_limit(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    assert "16..4096" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["make-synthetic", "--out", "{file}"],
        ["demo", "--out", "{file}", "--preset", "tiny"],
        ["export-original", "--checkpoint", "{ckpt}", "--out", "{ckpt}"],
        ["export-original", "--checkpoint", "{ckpt}", "--out", "{folder}"],
    ],
)
def test_every_writing_command_checks_its_output_first(tmp_path, tiny_checkpoint, capsys, argv):
    (tmp_path / "f.txt").write_text("keep")
    (tmp_path / "folder").mkdir()
    ckpt = tmp_path / "c.pth"
    ckpt.write_bytes(tiny_checkpoint.read_bytes())
    argv = [a.format(file=tmp_path / "f.txt", ckpt=ckpt, folder=tmp_path / "folder") for a in argv]
    assert main(argv) == 2
    one_error_line(capsys)
    assert (
        tmp_path / "f.txt"
    ).read_text() == "keep" and ckpt.read_bytes() == tiny_checkpoint.read_bytes()
    assert not any((tmp_path / "folder").iterdir())


def _outputs(folder):
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize("kill_at", [1, 2])
def test_sigkill_during_the_final_move_leaves_no_mix_and_the_next_run_cleans_up(
    tmp_path, tiny_checkpoint, kill_at
):
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
    base = [
        "predict",
        "--checkpoint",
        str(tiny_checkpoint),
        "-e",
        "x",
        "--out-dir",
        str(out),
        "--max-size",
        "32",
        "--precision",
        "fp32",
        "--compile",
        "off",
    ]
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
    proc = subprocess.run(
        [sys.executable, "-c", script, str(out), str(kill_at), *base, "--video", str(new_video)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": f"{repo / 'src'}:{repo}"},
    )
    new_names = [f"{i:05d}.png" for i in range(4)]
    if proc.returncode == 0:  # fewer renames into the folder than kill_at: the whole new result
        assert sorted(p.name for p in (out / "expr_0" / "masks").iterdir()) == new_names
    else:
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
        assert not out.exists() or _outputs(out) == previous  # never a mix of two runs
    assert main([*base, "--video", str(new_video)]) == 0
    assert (
        sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    )  # no staging left
    assert sorted(p.name for p in (out / "expr_0" / "masks").iterdir()) == new_names


def test_out_dir_with_foreign_files_is_refused(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    video = frames_folder(tmp_path / "v", [(32, 40)] * 2)
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(tiny_checkpoint),
                "-e",
                "x",
                "--out-dir",
                str(out),
                "--video",
                str(video),
            ]
        )
        == 2
    )
    assert "holds files refvos predict did not write (notes.txt)" in one_error_line(capsys)
    assert (out / "notes.txt").read_text() == "mine"


def test_a_full_disk_under_the_run_lock_is_one_error(tmp_path):
    """The lock file on a full device (/dev/full: every write fails with ENOSPC): one InputError."""
    from refvos.errors import InputError

    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).symlink_to("/dev/full")
    with (
        pytest.raises(InputError, match=r"cannot write the run lock .*: No space left on device"),
        run_lock(run),
    ):
        pass
