"""The registry of released weights: seven entries with the reference's Drive ids and the paper's
numbers; the README's model zoo table is the registry's."""

from __future__ import annotations

from refvos.hub.registry import BERT_ZIP, CHECKPOINT, RELEASED, markdown_table, released, table
from tests.helpers import REPO_ROOT


def test_seven_released_files():
    kinds = [w.kind for w in RELEASED.values()]
    assert kinds.count(CHECKPOINT) == 5 and kinds.count(BERT_ZIP) == 2
    assert (
        len({w.drive_id for w in RELEASED.values()}) == 7
        and len({w.filename for w in RELEASED.values()}) == 7
    )
    assert RELEASED["refcoco"].paper == {
        "RefCOCO val": 59.45,
        "RefCOCO testA": 63.19,
        "RefCOCO testB": 54.17,
    }
    assert [w.max_tokens for w in RELEASED.values() if w.kind == CHECKPOINT] == [20, 20, 10, 10, 10]
    assert released("RefCOCO+") is RELEASED["refcoco+"] and released("nope") is None
    assert (
        RELEASED["davis"].drive_url
        == "https://drive.google.com/file/d/1H3S4bZQChIlJNAM5mttbjTAr7pnOk1PL/view"
    )
    assert [r["name"] for r in table()] == list(RELEASED)


def test_readme_zoo_is_the_registry():
    assert markdown_table() in (REPO_ROOT / "README.md").read_text()
