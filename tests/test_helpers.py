"""The shared test helpers: a missing data folder fails under CI and is skipped elsewhere."""

from pathlib import Path

import pytest

from tests.helpers import SHARED, shared_dataset_file


def test_missing_shared_data_fails_in_ci_and_skips_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setattr("tests.helpers.paths.SHARED", tmp_path)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="refvos-dataset"):
        shared_dataset_file("RE_categorization", "A2D_RE_categorization.csv")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="refvos-dataset"):
        shared_dataset_file("RE_categorization", "A2D_RE_categorization.csv")


def test_shared_data_is_found_relative_to_the_repository():
    assert Path(__file__).resolve().parents[1].parent / "shared" == SHARED
