"""The authors' released weights, by name (``refvos download --list``).

Five RefVOS checkpoints (the released ``.pth`` layout, loaded as any ``--checkpoint``) and two
BERTs masked-LM-pretrained on the training expressions (zips of a ``save_pretrained`` folder,
for ``--ck_bert``), shared on Google Drive by the authors (github.com/miriambellver/refvos).
``paper``: the numbers the RefVOS paper (Bellver et al. 2020, arXiv 2010.00263) reports for the
model (overall IoU x100 on RefCOCO / RefCOCO+, J&F on DAVIS-2017 val); empty where the paper
gives no number for that file. The files' sizes and hashes are not published: the SHA-256 is
recorded on first download (:mod:`refvos.hub.cache`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

CHECKPOINT = "checkpoint"  # a released .pth (model + bert_model + args)
BERT_ZIP = "bert-zip"  # a zip of a transformers save_pretrained BertModel folder


@dataclass(frozen=True)
class ReleasedWeights:
    """One released file: ``name`` (what users type), ``drive_id`` (Google Drive file id),
    ``filename`` (its name in the cache and on a mirror), ``kind`` (:data:`CHECKPOINT` or
    :data:`BERT_ZIP`), ``dataset`` it was trained on, ``variant`` (refvos_r101 or the BERT's
    architecture), ``max_tokens`` (the expression length it was trained with), ``paper``
    (metric -> the paper's number) and a one-line ``description``."""

    name: str
    drive_id: str
    filename: str
    kind: str
    dataset: str
    variant: str
    max_tokens: int
    description: str
    paper: dict[str, float] = field(default_factory=dict)

    @property
    def drive_url(self) -> str:
        """The page a person opens to download the file by hand."""
        return f"https://drive.google.com/file/d/{self.drive_id}/view"


RELEASED: dict[str, ReleasedWeights] = {
    w.name: w
    for w in (
        ReleasedWeights(
            "refcoco",
            "1VI2TixrkjDORirkGGi3eXDJj35CRoEVr",
            "refvos-refcoco.pth",
            CHECKPOINT,
            "RefCOCO",
            "refvos_r101",
            20,
            "RefVOS (ResNet-101 + BERT-base) trained on RefCOCO",
            {"RefCOCO val": 59.45, "RefCOCO testA": 63.19, "RefCOCO testB": 54.17},
        ),
        ReleasedWeights(
            "refcoco+",
            "1HIM3xHkL2Z1rCnnA6OF3r8SmroL7EoQy",
            "refvos-refcocoplus.pth",
            CHECKPOINT,
            "RefCOCO+",
            "refvos_r101",
            20,
            "RefVOS trained on RefCOCO+",
            {"RefCOCO+ val": 44.71, "RefCOCO+ testA": 49.73, "RefCOCO+ testB": 36.17},
        ),
        ReleasedWeights(
            "a2d",
            "1CqwYTwcD0lQ0VHJMJJ9iOmRGvjj3Eiuf",
            "refvos-a2d.pth",
            CHECKPOINT,
            "A2D-Sentences",
            "refvos_r101",
            10,
            "RefVOS trained on A2D-Sentences",
        ),
        ReleasedWeights(
            "refcoco-a2d",
            "1Y4sclYO4wViw-gH2nrLZ-XmLq0_FXpWf",
            "refvos-refcoco-a2d.pth",
            CHECKPOINT,
            "RefCOCO, then A2D-Sentences",
            "refvos_r101",
            10,
            "RefVOS trained on RefCOCO, then fine-tuned on A2D-Sentences",
        ),
        ReleasedWeights(
            "davis",
            "1H3S4bZQChIlJNAM5mttbjTAr7pnOk1PL",
            "refvos-davis.pth",
            CHECKPOINT,
            "DAVIS-2017",
            "refvos_r101",
            10,
            "RefVOS fine-tuned on DAVIS-2017 (from a RefCOCO model)",
            {"DAVIS-2017 val J&F (first-frame)": 44.5, "DAVIS-2017 val J&F (full-video)": 45.1},
        ),
        ReleasedWeights(
            "bert-refcoco",
            "1-hpF7UwA-cza2MpT75fyHEsKLe7xgpGc",
            "bert_pretrained_refcoco.zip",
            BERT_ZIP,
            "RefCOCO",
            "bert-base-uncased",
            20,
            "BERT-base masked-LM-pretrained on RefCOCO's training expressions (--ck_bert)",
        ),
        ReleasedWeights(
            "bert-refcoco+",
            "1FmDjRj66YXG4Hv8X1nagwmaSxhVC7Y7_",
            "bert_pretrained_refcocoplus.zip",
            BERT_ZIP,
            "RefCOCO+",
            "bert-base-uncased",
            20,
            "BERT-base masked-LM-pretrained on RefCOCO+'s training expressions (--ck_bert)",
        ),
    )
}


# What this implementation reproduces of each kind of file (the README's "reproduced here" column, which
# says what each means and which tests check it): the released layout loads into the original
# network; no accuracy has been measured on the real data sets.
REPRODUCED = {
    CHECKPOINT: "loads, original network; not measured",
    BERT_ZIP: "loads as `--ck_bert`; not measured",
}


def released(name: str) -> ReleasedWeights | None:
    """The released file called ``name`` (case-insensitive), or None."""
    return RELEASED.get(str(name).strip().lower())


def table() -> list[dict]:
    """The registry as rows (name, kind, dataset, variant, max_tokens, paper, drive_id, filename)
    for ``refvos download --list`` and the README's model zoo."""
    return [
        {
            "name": w.name,
            "kind": w.kind,
            "dataset": w.dataset,
            "variant": w.variant,
            "max_tokens": w.max_tokens,
            "paper": dict(w.paper),
            "drive_id": w.drive_id,
            "filename": w.filename,
            "description": w.description,
        }
        for w in RELEASED.values()
    ]


def markdown_table() -> str:
    """The model zoo as a Markdown table with what is reproduced here (the README's, checked
    against this registry by tests/hub/test_registry.py)."""
    lines = [
        "| name | file | trained on | tokens | the paper's numbers | reproduced here |",
        "|---|---|---|---|---|---|",
    ]
    for w in RELEASED.values():
        paper = ", ".join(f"{k} {v:g}" for k, v in w.paper.items()) or "-"
        kind = f"{w.variant} `.pth`" if w.kind == CHECKPOINT else f"{w.variant} zip (`--ck_bert`)"
        lines.append(
            f"| `{w.name}` | {kind} | {w.dataset} | {w.max_tokens} | {paper} | {REPRODUCED[w.kind]} |"
        )
    return "\n".join(lines)
