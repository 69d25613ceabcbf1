"""A released BERT zip is unpacked safely: no path outside the folder, no link, size limits."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from refvos.errors import CheckpointError
from refvos.hub import archive


def _zip(path, members: dict[str, bytes], link: str | None = None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            z.writestr(info, "/etc/passwd")
    path.write_bytes(buf.getvalue())
    return path


def test_unpack_finds_the_save_pretrained_folder(tmp_path):
    src = _zip(
        tmp_path / "b.zip",
        {"bert/config.json": b"{}", "bert/pytorch_model.bin": b"x", "bert/vocab.txt": b"a"},
    )
    dest = archive.unpack_bert(src, tmp_path / "out")
    assert sorted(p.name for p in dest.iterdir()) == [
        "config.json",
        "pytorch_model.bin",
        "vocab.txt",
    ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("members", "link", "match"),
    [
        ({"../evil/config.json": b"{}"}, None, "outside"),
        ({"/abs/config.json": b"{}"}, None, "outside"),
        ({"bert/config.json": b"{}"}, "bert/pytorch_model.bin", "symbolic link"),
        (
            {
                "a/config.json": b"{}",
                "a/model.safetensors": b"x",
                "b/config.json": b"{}",
                "b/model.safetensors": b"x",
            },
            None,
            "found 2",
        ),
        ({"readme.txt": b"no model"}, None, "found 0"),
    ],
)
def test_unsafe_or_wrong_archives_are_refused(tmp_path, members, link, match):
    src = _zip(tmp_path / "b.zip", members, link)
    with pytest.raises(CheckpointError, match=match):
        archive.unpack_bert(src, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil").exists()
    assert not (tmp_path / ".out.unpacking").exists()


def test_size_limits(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "MAX_TOTAL_BYTES", 10)
    src = _zip(tmp_path / "b.zip", {"bert/config.json": b"{}" * 20})
    with pytest.raises(CheckpointError, match="more than"):
        archive.unpack_bert(src, tmp_path / "out")
    (tmp_path / "n.zip").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a readable zip"):
        archive.unpack_bert(tmp_path / "n.zip", tmp_path / "out")
