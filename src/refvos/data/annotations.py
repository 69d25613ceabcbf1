"""RefVOS's own annotation files: expression categorisation CSVs and augmented A2D expressions.

Categorisation CSV (``A2D_RE_categorization.csv``, ``DAVIS17_RE_categorization.csv``):
``;``-separated, CRLF, header ``video_id;instance_id;ref_exp;ref_exp_difficulty;
ref_exp_information;appearance;obj-static;category;location;motion;obj-motion;static``; category
cells are ``1``/``1.0``/``0``/``0.0`` or all empty when the expression was not categorised.

Augmented expressions (``New_REs/A2D_*_new_format_all_non_trivial.txt``): a comma-separated
header ``video_id,instance_id,query`` and ``;``-separated rows ``video;instance;query``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataFormatError

CATEGORIES: tuple[str, ...] = (
    "appearance",
    "obj-static",
    "category",
    "location",
    "motion",
    "obj-motion",
    "static",
)
CATEGORIZATION_HEADER: tuple[str, ...] = (
    "video_id",
    "instance_id",
    "ref_exp",
    "ref_exp_difficulty",
    "ref_exp_information",
    *CATEGORIES,
)
_TRUE = {"1", "1.0"}
_FALSE = {"0", "0.0"}


@dataclass(frozen=True)
class ExpressionCategory:
    """One categorised expression.

    ``information`` is ``None`` where the file says ``Not Applicable`` (or nothing);
    ``categories`` maps each of :data:`CATEGORIES` to a bool, and is empty when the row carries
    no category annotation (trivial and incorrect expressions).
    """

    video: str
    instance_id: int
    expression: str
    difficulty: str
    information: str | None
    categories: dict[str, bool] = field(default_factory=dict)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as e:
        raise DataFormatError(f"{path}: file not found") from e
    except UnicodeDecodeError:
        return path.read_text(encoding="latin-1")


def _instance_id(value: str, path: Path, lineno: int) -> int:
    try:
        return int(value)
    except ValueError as e:
        raise DataFormatError(f"{path}:{lineno}: instance_id {value!r} is not an integer") from e


def load_categorization(path: str | os.PathLike) -> list[ExpressionCategory]:
    """Parse a RefVOS categorisation CSV into one record per row, in file order."""
    path = Path(path)
    rows = list(csv.reader(_read_text(path).splitlines(), delimiter=";"))
    expected = ";".join(CATEGORIZATION_HEADER)
    if not rows or tuple(c.strip() for c in rows[0]) != CATEGORIZATION_HEADER:
        raise DataFormatError(f"{path}:1: expected the header {expected!r}")
    out: list[ExpressionCategory] = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(CATEGORIZATION_HEADER):
            raise DataFormatError(
                f"{path}:{lineno}: expected {len(CATEGORIZATION_HEADER)} ';'-separated fields "
                f"({expected}), got {len(row)}"
            )
        video, inst, expr, difficulty, information, *cells = (c.strip() for c in row)
        categories: dict[str, bool] = {}
        if any(cells):
            for name, cell in zip(CATEGORIES, cells):
                if cell in _TRUE:
                    categories[name] = True
                elif cell in _FALSE:
                    categories[name] = False
                else:
                    raise DataFormatError(
                        f"{path}:{lineno}: category {name!r} is {cell!r}, expected 0, 1, 0.0 or 1.0"
                    )
        out.append(
            ExpressionCategory(
                video=video,
                instance_id=_instance_id(inst, path, lineno),
                expression=expr,
                difficulty=difficulty,
                information=None if information in ("", "Not Applicable") else information,
                categories=categories,
            )
        )
    return out


def write_categorization(path: str | os.PathLike, records: list[ExpressionCategory]) -> None:
    """Write records in the RefVOS categorisation format (``;``-separated, CRLF)."""
    from ..io import atomic_open

    with atomic_open(path, "w") as f:
        w = csv.writer(f, delimiter=";", lineterminator="\r\n")
        w.writerow(CATEGORIZATION_HEADER)
        for r in records:
            cells = [
                ("1.0" if r.categories[c] else "0.0") if r.categories else "" for c in CATEGORIES
            ]
            w.writerow(
                [
                    r.video,
                    r.instance_id,
                    r.expression,
                    r.difficulty,
                    r.information or "Not Applicable",
                    *cells,
                ]
            )


def load_augmented_expressions(path: str | os.PathLike) -> dict[tuple[str, int], str | list[str]]:
    """Parse an augmented A2D expression file into ``{(video, instance_id): query}``.

    A (video, instance) that occurs on several rows maps to the list of its queries in file order.
    """
    path = Path(path)
    lines = _read_text(path).splitlines()
    if not lines or [c.strip() for c in lines[0].split(",")] != [
        "video_id",
        "instance_id",
        "query",
    ]:
        raise DataFormatError(f"{path}:1: expected the header 'video_id,instance_id,query'")
    out: dict[tuple[str, int], str | list[str]] = {}
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(";", 2)
        if len(parts) != 3 or not parts[2].strip():
            raise DataFormatError(
                f"{path}:{lineno}: expected 'video;instance_id;query', got {line!r}"
            )
        key = (parts[0].strip(), _instance_id(parts[1].strip(), path, lineno))
        query = parts[2].strip()
        if key not in out:
            out[key] = query
        elif isinstance(out[key], list):
            out[key].append(query)
        else:
            out[key] = [out[key], query]
    return out
