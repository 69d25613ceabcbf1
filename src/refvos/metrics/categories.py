"""RefVOS's per-difficulty and per-category analysis of referring-segmentation results.

Per-sample results (one annotated frame with one expression of one object) are matched to the
categorisation records of :func:`refvos.data.annotations.load_categorization` by
``(video, instance_id)`` and the expression (compared case- and whitespace-insensitively; a
result without an expression matches on the object alone). Unmatched samples go to an explicit
``uncategorised`` bucket. Every bucket reports RefVOS's overall IoU, mean IoU and precision@0.5
(fractions in 0..1, ``None`` for an empty bucket) and its sample count.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from refvos.data.annotations import CATEGORIES, ExpressionCategory
from refvos.io import atomic_open, atomic_write_json
from refvos.metrics import RefSegMetrics

NOT_APPLICABLE = "Not Applicable"


@dataclass(frozen=True)
class SampleResult:
    """One evaluated sample: the object, its expression and the sample's I and U pixel counts."""

    video: str
    instance_id: int
    expression: str | None
    intersection: float
    union: float


def _norm(expression: str) -> str:
    return " ".join(expression.lower().split())


def _bucket(samples: list[SampleResult]) -> dict[str, Any]:
    m = RefSegMetrics()
    if samples:
        m.update_from_counts([s.intersection for s in samples], [s.union for s in samples])
    r = m.compute()
    empty = not samples
    return {
        "overall_iou": None if empty else r["overall_iou"],
        "mean_iou": None if empty else r["mean_iou"],
        "precision@0.5": None if empty else r["precision@0.5"],
        "num_samples": len(samples),
    }


def category_analysis(
    results: Iterable[SampleResult], records: Iterable[ExpressionCategory]
) -> dict[str, Any]:
    """Metrics per difficulty, information class and expression category.

    Returns a JSON-able dict; each ``bucket`` is ``{"overall_iou", "mean_iou", "precision@0.5",
    "num_samples"}``::

        {"all": bucket, "categorised": bucket, "uncategorised": bucket,
         "difficulty": {difficulty: bucket},
         "information": {information or "Not Applicable": bucket},
         "categories": {category: {"with": bucket, "without": bucket}},   # all 7, file order
         "num_records": int, "num_records_matched": int}

    Categorised samples whose record has no category annotation count in ``difficulty`` and
    ``information`` but in neither side of ``categories``.
    """
    records = list(records)
    by_object: dict[tuple[str, int], list[ExpressionCategory]] = {}
    for r in records:
        by_object.setdefault((r.video, int(r.instance_id)), []).append(r)

    def match(s: SampleResult) -> ExpressionCategory | None:
        candidates = by_object.get((s.video, int(s.instance_id)), [])
        if s.expression is not None:
            candidates = [r for r in candidates if _norm(r.expression) == _norm(s.expression)]
        return candidates[0] if len(candidates) == 1 else None

    results = list(results)
    matched: list[tuple[SampleResult, ExpressionCategory]] = []
    uncategorised: list[SampleResult] = []
    for s in results:
        r = match(s)
        if r is None:
            uncategorised.append(s)
        else:
            matched.append((s, r))

    difficulty: dict[str, list[SampleResult]] = {}
    information: dict[str, list[SampleResult]] = {}
    with_cat: dict[str, list[SampleResult]] = {c: [] for c in CATEGORIES}
    without_cat: dict[str, list[SampleResult]] = {c: [] for c in CATEGORIES}
    for s, r in matched:
        difficulty.setdefault(r.difficulty, []).append(s)
        information.setdefault(r.information or NOT_APPLICABLE, []).append(s)
        for c, present in r.categories.items():
            (with_cat if present else without_cat).setdefault(c, []).append(s)

    return {
        "all": _bucket(results),
        "categorised": _bucket([s for s, _ in matched]),
        "uncategorised": _bucket(uncategorised),
        "difficulty": {k: _bucket(v) for k, v in sorted(difficulty.items())},
        "information": {k: _bucket(v) for k, v in sorted(information.items())},
        "categories": {
            c: {"with": _bucket(with_cat.get(c, [])), "without": _bucket(without_cat.get(c, []))}
            for c in dict.fromkeys([*with_cat, *without_cat])
        },
        "num_records": len(records),
        "num_records_matched": len({id(r) for _, r in matched}),
    }


def write_category_analysis(analysis: dict[str, Any], path: str | os.PathLike) -> None:
    """Write the analysis as indented JSON, atomically."""
    atomic_write_json(path, analysis)


def _chart_bars(analysis: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(panel, label, bucket) for every bar group of the chart, in drawing order."""
    bars = [("difficulty", "all", analysis["all"])]
    bars += [("difficulty", k, v) for k, v in analysis["difficulty"].items()]
    bars.append(("difficulty", "uncategorised", analysis["uncategorised"]))
    for c, sides in analysis["categories"].items():
        bars += [
            ("categories", f"{c} (with)", sides["with"]),
            ("categories", f"{c} (without)", sides["without"]),
        ]
    return bars


def plot_category_analysis(analysis: dict[str, Any], path: str | os.PathLike) -> None:
    """Bar chart PNG of :func:`category_analysis`'s output, written atomically.

    Two panels of horizontal bars -- overall IoU and mean IoU in percent, sample count in the
    label -- one for the difficulty classes (with ``all`` and ``uncategorised``), one for each
    category with and without it. Empty buckets are drawn as 0. The plotted values are also
    stored in the PNG's ``Description`` text chunk as JSON ``[[panel, label, overall_iou,
    mean_iou, num_samples], ...]`` (fractions), so the chart's content can be checked.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    bars = _chart_bars(analysis)
    panels = ("difficulty", "categories")
    rows = {p: [b for b in bars if b[0] == p] for p in panels}
    fig = Figure(figsize=(10, 0.32 * sum(map(len, rows.values())) + 2.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 1, height_ratios=[max(len(rows[p]), 1) for p in panels])
    for ax, panel in zip(axes, panels):
        items = rows[panel]
        ys = range(len(items))
        for offset, key, color in (
            (-0.2, "overall_iou", "tab:blue"),
            (0.2, "mean_iou", "tab:orange"),
        ):
            values = [100 * (b[2][key] or 0.0) for b in items]
            ax.barh(
                [y + offset for y in ys],
                values,
                height=0.4,
                color=color,
                label=key.replace("_", " "),
            )
        ax.set_yticks(list(ys), [f"{b[1]} (n={b[2]['num_samples']})" for b in items])
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("IoU (%)")
        ax.set_title(f"per {panel}" if panel == "difficulty" else "per expression category")
        ax.legend(loc="lower right", fontsize="small")
    description = json.dumps(
        [[p, label, b["overall_iou"], b["mean_iou"], b["num_samples"]] for p, label, b in bars]
    )
    with atomic_open(path, "wb") as f:
        fig.savefig(
            f,
            format="png",
            dpi=100,
            metadata={"Title": "RefVOS category analysis", "Description": description},
        )
