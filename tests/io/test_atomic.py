import json
import os
import stat

import pytest

from refvos.io import atomic_open, atomic_write_json


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_files_get_the_permissions_of_a_plain_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        with open(tmp_path / "plain.json", "w") as f:
            f.write("{}")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "a.json").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.json").stat().st_mode) == 0o666 & ~umask
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"version": 1})
    with pytest.raises(RuntimeError), atomic_open(target, "w") as f:
        f.write('{"version": 2')
        raise RuntimeError("disk gone")
    assert json.loads(target.read_text()) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def _folder(path, files):
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_staged_folder_replaces_the_target_whole_or_not_at_all(tmp_path):
    from refvos.io import staged_folder

    target = _folder(tmp_path / "out", {"a": "old", "b": "old"})
    with pytest.raises(RuntimeError), staged_folder(target) as stage:
        (stage / "a").write_text("new")
        raise RuntimeError("a bad frame half-way")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert {p.name: p.read_text() for p in target.iterdir()} == {"a": "old", "b": "old"}
    with staged_folder(target) as stage:
        (stage / "a").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing hidden left
    assert {p.name: p.read_text() for p in target.iterdir()} == {"a": "new"}


def test_stale_staging_of_killed_runs_is_removed_a_live_one_kept(tmp_path):
    """SIGKILL leaves ``.out.*.tmp`` folders (nothing can clean up); the next run removes those no
    live process holds, and a killed swap's previous folder is put back when the target is gone."""
    import fcntl

    from refvos.io import clean_stale_staging, staged_folder

    target = tmp_path / "out"
    _folder(tmp_path / ".out.k1ll3d.tmp", {"00001.png": "half"})
    live = _folder(tmp_path / ".out.l1ve.tmp", {"x": "being written"})
    _folder(tmp_path / ".out.sw4p.old.tmp", {"a": "previous"})  # killed between the two renames
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a running staged_folder holds it
    try:
        clean_stale_staging(target)
        assert sorted(p.name for p in tmp_path.iterdir()) == [".out.l1ve.tmp", "out"]
        assert (target / "a").read_text() == "previous"
        with staged_folder(target) as stage:
            (stage / "a").write_text("new")
        assert sorted(p.name for p in tmp_path.iterdir()) == [".out.l1ve.tmp", "out"]
    finally:
        os.close(fd)
    clean_stale_staging(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
