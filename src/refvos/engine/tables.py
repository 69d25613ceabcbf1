"""Metrics as text: the table ``refvos test`` prints (:func:`format_table`, the metrics of
:func:`refvos.engine.evaluator.evaluate`) and the trainer's line per epoch (:func:`epoch_line`)."""

from __future__ import annotations

import sys
from typing import Any


def format_table(metrics: dict[str, Any]) -> str:
    """The metrics as a plain-text table, as fractions in 0..1 like ``metrics.json`` (the
    original printed them x100, as the paper's tables)."""
    lines = []

    def row(label: str, value: Any) -> None:
        text = "n/a" if value is None else f"{value:6.4f}"
        lines.append(f"  {label:<28s}{text}")

    def iou_block(title: str, m: dict[str, Any]) -> None:
        lines.append(f"{title} ({m['num_samples']} samples)")
        row("overall IoU", m["overall_iou"])
        row("mean IoU", m["mean_iou"])
        for k, v in m.items():
            if k.startswith("precision@"):
                row(k, v)

    iou_block(f"{metrics['dataset']}: RefVOS protocol", metrics["refvos"])
    if "mttr" in metrics:
        iou_block(
            "A2D-Sentences: MTTR protocol (frames without the referred instance left out)",
            metrics["mttr"],
        )
        lines.append("A2D-Sentences: COCO mask AP (useCats=0)")
        for k, v in metrics["a2d_map"].items():
            if k != "num_samples":
                row(k, v)
    if "davis" in metrics:
        d = metrics["davis"]
        for kind, m in d["iou_by_kind"].items():
            iou_block(f"DAVIS {kind}: RefVOS protocol", m)
        for kind, s in d["summary"].items():
            lines.append(f"DAVIS {kind}: J / F / J&F ({d['frames']} frames)")
            for annotator, a in sorted(s["per_annotator"].items()):
                lines.append(
                    f"  annotator {annotator:<18s}{a['J']:6.4f} {a['F']:6.4f} {a['J&F']:6.4f}"
                )
            m = s["mean"]
            lines.append(f"  {'mean':<28s}{m['J']:6.4f} {m['F']:6.4f} {m['J&F']:6.4f}")
    if "categories" in metrics:
        c = metrics["categories"]
        lines.append("categories: overall IoU / mean IoU")
        for label, b in [
            ("all", c["all"]),
            *c["difficulty"].items(),
            ("uncategorised", c["uncategorised"]),
        ]:
            o, m = b["overall_iou"], b["mean_iou"]
            lines.append(
                f"  {label:<28s}{'n/a' if o is None else f'{o:6.4f}'} "
                f"{'n/a' if m is None else f'{m:6.4f}'}  (n={b['num_samples']})"
            )
    return "\n".join(lines)


def print_table(metrics: dict[str, Any], file=None) -> None:
    print(format_table(metrics), file=file or sys.stdout)


def epoch_line(summary: dict[str, Any], new_best: dict[str, Any] | None = None) -> str:
    """One console line per epoch: mean loss, learning rate and the validation metrics, as
    fractions in 0..1 like ``log.jsonl`` and ``metrics.json``."""
    line = f"epoch {summary['epoch']}: loss {summary['loss']:.4f}, lr {summary['lr']:.3g}"
    val = summary.get("val")
    if val:
        shown = ("overall_iou", "mean_iou", "precision@0.5", "precision@0.9")
        line += "; val " + ", ".join(
            f"{k.replace('_', ' ')} {val[k]:.4f}" for k in shown if k in val
        )
    if new_best is not None:
        line += f" (new best {new_best['metric'].replace('_', ' ')}: best.pth)"
    return line
