"""The original RefVOS's flags (its ``args.py``, shared by ``train.py`` and ``test.py``) that
have no flag of the same name here. ``tests/commands/test_original_flags.py`` holds the table of
every flag of ``args.py``: its original meaning and what ``refvos train`` / ``refvos test`` do
with it.

Flags whose meaning carried over are real aliases where they are defined (``--a2d_data_root``
= ``--a2d_root``, ``--results_folder`` = ``refvos test --output-dir``, ...). The others are
added, hidden, to ``refvos train`` and ``refvos test``: a few are accepted and ignored (they
ask for what is done anyway), the rest stop with one line saying where their meaning went.
"""

from __future__ import annotations

import argparse

# Accepted and ignored: what they ask for is what refvos does, or the original never read them.
IGNORED: dict[str, str] = {
    "--local_rank": "torch.distributed.launch passes it; refvos reads LOCAL_RANK from the environment",
    "--multiply_feats": "multiplication is RefVOS's (and refvos's only) fusion",
    "--optimizer": "the original never read it (SGD always); refvos trains with SGD",
    "--load_optimizer": "the original never read it; refvos train --resume restores the optimizer",
    "--size_a2d_x": "the original stored it and never used it (A2D frames are read at their own size)",
    "--size_a2d_y": "the original stored it and never used it (A2D frames are read at their own size)",
    "--refer_dataset": "only the original's GloVe baseline read it; RefCOCO is chosen by --dataset",
    "--davis_annotations_file": "the original's test.py read it only for --display captions, a branch that "
    "never ran; refvos reads the expressions from <--davis_root>",
}

# The original's flag -> where its meaning went (for both train and test unless the command has it).
POINTERS: dict[str, str] = {
    "--aux-loss": "RefVOS's networks are trained without the auxiliary loss; refvos does not offer it",
    "--pretrained": "the COCO-trained DeepLabv3 is not offered; the backbone starts from ImageNet "
    "(refvos train --backbone-weights)",
    "--test-only": "evaluate with refvos test --checkpoint CKPT",
    "--addition": "only RefVOS's multiplication fusion is implemented",
    "--fixed_lr": "that is a refvos train flag (--schedule fixed)",
    "--linear_lr": "use refvos train --schedule refcoco|davis|a2d (RefVOS's recipes)",
    "--lr_specific": "that is a refvos train flag (the factor of --schedule fixed)",
    "--lr_specific_decrease": "RefVOS's per-epoch recipes are refvos train --schedule refcoco|davis|a2d",
    "--baseline_bilstm": "the BiLSTM baseline is not implemented",
    "--bert_tokenizer": "the tokenizer is the text encoder's (bert-base-uncased WordPiece)",
    "--glove_dict": "the GloVe baseline is not implemented",
    "--emb_type": "refvos train draws DAVIS expressions from both annotators' first-frame files and "
    "selects on annotator 1's, as the original's default first_mask; refvos test "
    "--expressions first_frame|full_video chooses the kind",
    "--a2d_annotations_file": "the annotations are read from <--a2d_root> (Release/)",
    # flags of the other command
    "--results_folder": "that is refvos test --output-dir",
    "--submission_path": "that is refvos test --submission DIR",
    "--display": "that is refvos test --display",
    "--split": "that is refvos test --split (refvos train uses the training split and selects on val)",
    "--model_id": "that is refvos train's run name; refvos test writes to --output-dir",
    "--model": "refvos test builds the network the checkpoint records",
    "--ck_bert": "refvos test loads the text encoder from the checkpoint",
    "--base_size": "refvos test evaluates at the images' own size, as the original",
    "--crop_size": "refvos test evaluates at the images' own size, as the original",
    "--epochs": "that is a refvos train flag",
    "--lr": "that is a refvos train flag",
    "--momentum": "that is a refvos train flag",
    "--wd": "that is a refvos train flag",
    "--weight-decay": "that is a refvos train flag",
    "--print-freq": "that is a refvos train flag",
    "--pretrained_refvos": "that is a refvos train flag",
    "--ck_pretrained_refvos": "that is a refvos train flag",
}

# flags a command accepts and ignores although the original used them for something else
ACCEPTED: dict[str, tuple[str, ...]] = {"test": ("--test-only",)}


class _Pointer(argparse.Action):
    """Stops parsing with one line naming the flag's counterpart."""

    def __init__(self, option_strings, dest, pointer: str, **kwargs):
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)
        self.pointer = pointer

    def __call__(self, parser, namespace, values, option_string=None):
        from ..errors import InputError

        raise InputError(f"{option_string} is a flag of the original RefVOS: {self.pointer}")


def _dest(flag: str) -> str:
    return "_original_" + flag.strip("-").replace("-", "_")


def add_original_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the original's flags that ``parser`` (of ``refvos <command>``) lacks, hidden. Only
    ``train`` and ``test`` took the original's ``args.py``."""
    if command not in ("train", "test"):
        return
    known = {s.replace("_", "-") for action in parser._actions for s in action.option_strings}
    for flag in (*IGNORED, *ACCEPTED.get(command, ())):
        if flag.replace("_", "-") not in known:
            parser.add_argument(
                flag, nargs="?", const=True, dest=_dest(flag), help=argparse.SUPPRESS
            )
    for flag, pointer in POINTERS.items():
        if flag.replace("_", "-") not in known and flag not in ACCEPTED.get(command, ()):
            parser.add_argument(flag, action=_Pointer, dest=_dest(flag), pointer=pointer)
