import io
import os
import pickle

import pytest

from refvos.errors import DataFormatError, UnsafePickleError
from refvos.io.safe_pickle import safe_load


class _CreatesFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class _RunsShell:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def test_builtin_containers_round_trip(tmp_path):
    obj = [
        {"ref_id": 1, "split": "train", "sentences": [{"sent": "a", "tokens": ["a"]}]},
        (1.5, None, True, b"x"),
        {1, 2},
        frozenset({"a"}),
        bytearray(b"ab"),
        3 + 4j,
    ]
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        p = tmp_path / f"ok{protocol}.p"
        p.write_bytes(pickle.dumps(obj, protocol=protocol))
        assert safe_load(p) == obj
        assert safe_load(io.BytesIO(p.read_bytes())) == obj


@pytest.mark.parametrize("payload_cls", [_CreatesFile, _RunsShell])
def test_malicious_pickle_runs_nothing(tmp_path, payload_cls):
    victim = tmp_path / "pwned"
    p = tmp_path / "refs(unc).p"
    p.write_bytes(pickle.dumps([{"ref_id": 1}, payload_cls(str(victim))], protocol=2))
    with pytest.raises(UnsafePickleError, match=r"refs\(unc\)\.p"):
        safe_load(p)
    assert not victim.exists()


def test_class_instances_are_refused(tmp_path):
    from collections import OrderedDict

    p = tmp_path / "od.p"
    p.write_bytes(pickle.dumps(OrderedDict(a=1)))
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        safe_load(p)


def test_corrupt_and_missing_files_name_the_file(tmp_path):
    p = tmp_path / "broken.p"
    p.write_bytes(pickle.dumps([1, 2, 3])[:-3])
    with pytest.raises(DataFormatError, match="broken.p"):
        safe_load(p)
    with pytest.raises(DataFormatError, match="missing.p"):
        safe_load(tmp_path / "missing.p")
