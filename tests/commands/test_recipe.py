"""``--recipe {refvos,paper}`` and the rule flags (refvos.commands.recipe): each of issue 21's
items with the switch and without it, the rules recorded by ``train`` and followed by ``test``."""

from __future__ import annotations

import json

import pytest
import torch

from refvos.checkpoint import read_checkpoint, save_checkpoint
from refvos.cli import main, parse
from refvos.commands import train_setup
from refvos.commands.recipe import RULES, recipe_of, resolve_rules, rules_for
from refvos.engine.trainer import Trainer, TrainResult
from refvos.errors import InputError
from tests.helpers import TINY_MODEL_ARGS, make_tiny_model, train_argv

PAPER = {rule: values["paper"] for rule, values in RULES.items()}
REFVOS = {rule: values["refvos"] for rule, values in RULES.items()}


def _train_args(root, tmp_path, dataset="refcoco", *extra):
    args = parse([*train_argv(root, tmp_path, "--dataset", dataset, *extra)])
    train_setup.check_arguments(args)
    return args


def _rules(args):
    return resolve_rules(args, rules_for(args.dataset, "train"))[0]


# ------------------------------------------------------------------ the switch sets every rule


@pytest.mark.parametrize("recipe, expected", [(None, REFVOS), ("refvos", REFVOS), ("paper", PAPER)])
@pytest.mark.parametrize("dataset", ["refcoco", "a2d", "davis"])
def test_recipe_sets_every_rule_that_applies(dataset, recipe, expected):
    args = parse(["train", "--dataset", dataset] + (["--recipe", recipe] if recipe else []))
    rules = resolve_rules(args, rules_for(dataset, "train"))[0]
    assert rules == {k: expected[k] for k in rules_for(dataset, "train")}
    assert recipe_of(rules) == (recipe or "refvos")


def test_a_rule_flag_overrides_the_recipe_for_that_rule_alone():
    args = parse(["train", "--dataset", "a2d", "--recipe", "paper", "--a2d-query", "full"])
    rules = resolve_rules(args, rules_for("a2d", "train"))[0]
    assert (
        rules["a2d_query"] == "full"
        and rules["a2d_repeats"] == "last"
        and recipe_of(rules) == "mixed"
    )
    args = parse(["train", "--dataset", "a2d", "--a2d-repeats", "last"])
    assert resolve_rules(args, rules_for("a2d", "train"))[0]["a2d_repeats"] == "last"


# ------------------------------------------------------------------ item 1: which checkpoint


@pytest.mark.parametrize("switch", [[], ["--recipe", "paper"], ["--selection", "paper"]])
def test_selection_rule_set_size_sentences_and_metric(tiny_synthetic, tmp_path, switch):
    """refvos: RefCOCO val with every sentence at the images' own size, overall IoU, and no
    selection on A2D; paper: one drawn sentence per ref at a 520 short side, mean IoU, and A2D
    selected on its test split (item 1)."""
    paper = bool(switch)
    args = _train_args(tiny_synthetic["refcoco"], tmp_path, "refcoco", *switch)
    rules = _rules(args)
    assert train_setup.training_config(args, tmp_path, rules).select_metric == (
        "mean_iou" if paper else "overall_iou"
    )
    opts = {"max_tokens": 20}
    _, val, split = train_setup.datasets(args, tiny_synthetic["refcoco"], opts, rules["selection"])
    sentences = sum(len(t.sentences) for t in val.targets)
    assert len(val.targets) < sentences  # refs with several sentences
    assert split == "val" and len(val) == (len(val.targets) if paper else sentences)
    assert min(val[0]["image"].shape[-2:]) == (520 if paper else 48)
    assert train_setup.input_size_of(val, 99) == 48  # the images' own size, recorded for predict

    args = _train_args(tiny_synthetic["a2d"], tmp_path, "a2d", *switch)
    rules = _rules(args)
    _, val, split = train_setup.datasets(
        args, tiny_synthetic["a2d"], {"max_tokens": 10}, rules["selection"]
    )
    assert split == "test" and (val is not None) == paper


def test_selection_picks_by_mean_iou(refcoco_root, tmp_path):
    """With the paper's rule the trainer keeps best.pth by validation mean IoU (item 1)."""
    seen = {}

    def fake_validate(model, dataset, *a, **k):
        seen["samples"] = len(dataset)
        return {"overall_iou": 0.9, "mean_iou": 0.1 * (len(seen) + 1)}

    from refvos.engine import trainer as trainer_module

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(trainer_module, "validate", fake_validate)
        assert (
            main(
                train_argv(
                    refcoco_root,
                    tmp_path,
                    "--epochs",
                    "1",
                    "--recipe",
                    "paper",
                    "--schedule",
                    "constant",
                )
            )
            == 0
        )
    best = read_checkpoint(tmp_path / "run" / "best.pth")
    assert best["best"]["metric"] == "mean_iou" and best["best"]["value"] == pytest.approx(0.2)
    assert best["args"]["selection"] == {
        "rule": "paper",
        "metric": "mean_iou",
        "split": "val",
        "size": 520,
        "sentences": "one drawn per target",
    }


# ------------------------------------------------------------------ item 2: precision


@pytest.mark.parametrize("switch", [[], ["--recipe", "paper"]])
def test_training_precision_and_tf32(refcoco_root, tmp_path, monkeypatch, switch):
    """paper: fp32, TF32 off for the whole run; refvos: precision auto, TF32 left as it is (item 2)."""
    seen = {}

    def fit(self, resume=None, checkpoint=None):
        seen.update(
            precision=self.config.precision,
            tf32=(torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32),
            args=self.args,
        )
        return TrainResult()

    monkeypatch.setattr(Trainer, "fit", fit)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert main(train_argv(refcoco_root, tmp_path, *switch)) == 0
    if switch:
        assert seen["precision"] == "fp32" and seen["tf32"] == (False, False)
        assert (
            seen["args"]["rules"]["precision"] == "fp32" and seen["args"]["rules"]["tf32"] == "off"
        )
    else:
        assert seen["precision"] == "auto" and seen["tf32"][1] is True
        assert seen["args"]["rules"]["tf32"] == "default"
    assert torch.backends.cudnn.allow_tf32 is True  # restored after the run


# ------------------------------------------------------------------ item 3: the original's flags


def test_paper_recipe_batch_and_weight_decay_are_the_papers_text():
    """args.py defaults to batch 6 and weight decay 1e-4; the paper (and refvos, with or without
    the switch) to 7 and 1e-6; the original's --base_size keeps its 0.8 factor either way (item 3)."""
    for switch in ([], ["--recipe", "paper"]):
        args = parse(["train", *switch])
        assert (args.batch_size, args.weight_decay) == (7, 1e-6)
        args = parse(["train", *switch, "--base_size", "520"])
        assert train_setup.base_side(args) == 416 and train_setup.selection_size(args) == 520


# ------------------------------------------------------------------ item 4: rules carried to test


@pytest.fixture
def recorded_checkpoint(tmp_path):
    """The tiny network with a training run's args recording the original mask and truncation."""
    model = make_tiny_model().eval()
    model.config.truncation = "original"
    args = {
        "dataset": "refcoco",
        "rules": {
            "truncation": "original",
            "refcoco_mask": "original",
            "tf32": "off",
            "selection": "paper",
            "precision": "fp32",
        },
    }
    return save_checkpoint(tmp_path / "recorded.pth", model, args=args)


def _test(ckpt, root, out, *extra):
    return [
        "test",
        "--dataset",
        "refcoco",
        "--resume",
        str(ckpt),
        "--refer_data_root",
        str(root),
        "--output-dir",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
        *extra,
    ]


def test_test_follows_the_recorded_rules_and_names_a_contradicting_flag(
    recorded_checkpoint, tiny_checkpoint, tiny_synthetic, tmp_path, capsys
):
    root = tiny_synthetic["refcoco"]
    assert main(_test(recorded_checkpoint, root, tmp_path / "a")) == 0
    run = json.loads((tmp_path / "a" / "metrics.json").read_text())["run"]
    assert run["rules"] == {"truncation": "original", "refcoco_mask": "original", "tf32": "off"}
    assert "trained under other rules" not in capsys.readouterr().err
    # a flag that contradicts the recorded rule wins, named in one line
    assert main(_test(recorded_checkpoint, root, tmp_path / "b", "--refcoco-mask", "union")) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "--refcoco-mask union" in notes[0] and "records original" in notes[0]
    run = json.loads((tmp_path / "b" / "metrics.json").read_text())["run"]
    assert run["rules"]["refcoco_mask"] == "union" and run["recipe"] == "mixed"
    # a checkpoint recording nothing: refvos's rules, or the paper's with the switch
    for switch, expected in (([], "union"), (["--recipe", "paper"], "original")):
        assert main(_test(tiny_checkpoint, root, tmp_path / "c", *switch)) == 0
        run = json.loads((tmp_path / "c" / "metrics.json").read_text())["run"]
        assert run["rules"]["refcoco_mask"] == expected and run["precision"] == "fp32"


def test_resume_keeps_the_runs_rules(refcoco_root, tmp_path, capsys):
    assert (
        main(
            train_argv(
                refcoco_root,
                tmp_path,
                "--epochs",
                "1",
                "--recipe",
                "paper",
                "--schedule",
                "constant",
            )
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            train_argv(
                refcoco_root,
                tmp_path,
                "--epochs",
                "2",
                "--resume",
                "auto",
                "--refcoco-mask",
                "union",
            )
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--refcoco-mask original, not union" in err[0]


# ------------------------------------------------------------------ items 5, 6 and the round trip


@pytest.mark.parametrize(
    "switch, overlap",
    [([], "confident"), (["--recipe", "paper"], "last"), (["--davis-overlap", "last"], "last")],
)
def test_davis_overlap_rule_reaches_the_evaluation(
    tiny_checkpoint, tiny_synthetic, tmp_path, monkeypatch, switch, overlap
):
    """item 5: the merged label map of J / F and --submission under each rule."""
    from refvos.engine import evaluator

    seen = {}
    real = evaluator.evaluate
    monkeypatch.setattr(evaluator, "evaluate", lambda *a, **k: seen.update(k) or real(*a, **k))
    argv = [
        "test",
        "--dataset",
        "davis",
        "--resume",
        str(tiny_checkpoint),
        "--davis_root",
        str(tiny_synthetic["davis"]),
        "--output-dir",
        str(tmp_path),
        "--device",
        "cpu",
        "--no-progress",
        "--protocol",
        "refvos",
        *switch,
    ]
    assert main(argv) == 0
    assert seen["davis_overlap"] == overlap
    assert (
        json.loads((tmp_path / "metrics.json").read_text())["run"]["rules"]["davis_overlap"]
        == overlap
    )


def test_flags_of_another_data_set_are_refused(tiny_checkpoint, capsys):
    assert main(["test", "--resume", str(tiny_checkpoint), "--davis-overlap", "last"]) == 2
    assert "--davis-overlap applies to --dataset davis" in capsys.readouterr().err
    with pytest.raises(InputError, match="--a2d-repeats applies"):
        train_setup.check_arguments(parse(["train", "--a2d-repeats", "last"]))


def test_train_then_test_round_trip_with_the_paper_recipe(tiny_synthetic, tmp_path, capsys):
    """A2D: train --recipe paper records every rule and selects on the test split by mean IoU;
    test of its best.pth, without flags, runs under the recorded rules (item 6: repeated rows)."""
    root = tiny_synthetic["a2d"]
    argv = [
        "train",
        "--dataset",
        "a2d",
        "--a2d_root",
        str(root),
        *TINY_MODEL_ARGS,
        "--recipe",
        "paper",
        "--schedule",
        "a2d",
        "--epochs",
        "1",
        "-b",
        "2",
        "--base-size",
        "48",
        "--crop-size",
        "48",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--output-dir",
        str(tmp_path),
        "--model_id",
        "a2d",
    ]
    assert main(argv) == 0
    best = read_checkpoint(tmp_path / "a2d" / "best.pth")
    args = best["args"]
    assert args["recipe"] == "paper" and best["config"]["truncation"] == "original"
    assert args["rules"] == {k: PAPER[k] for k in rules_for("a2d", "train")}
    assert args["selection"]["split"] == "test" and best["best"]["metric"] == "mean_iou"
    assert args["precision"] == "fp32" and (args["batch_size"], args["weight_decay"]) == (2, 1e-6)
    out = tmp_path / "test"
    assert (
        main(
            [
                "test",
                "--dataset",
                "a2d",
                "--a2d_root",
                str(root),
                "--resume",
                str(tmp_path / "a2d" / "best.pth"),
                "--output-dir",
                str(out),
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    run = json.loads((out / "metrics.json").read_text())["run"]
    assert run["recipe"] == "paper" and run["precision"] == "fp32"
    assert run["rules"] == {k: PAPER[k] for k in rules_for("a2d", "test")}
    assert run["a2d_query"] == "original" and run["a2d_queries_cut"] > 0
    assert "trained under other rules" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, mask",
    [
        ([], "union"),
        (["--protocol", "refvos"], "original"),
        (["--protocol", "refvos", "--refcoco-mask", "union"], "union"),
    ],
)
def test_protocol_refvos_scores_refcoco_on_the_authors_masks(
    tiny_checkpoint, tiny_synthetic, tmp_path, extra, mask
):
    assert main(_test(tiny_checkpoint, tiny_synthetic["refcoco"], tmp_path, *extra)) == 0
    assert (
        json.loads((tmp_path / "metrics.json").read_text())["run"]["rules"]["refcoco_mask"] == mask
    )
