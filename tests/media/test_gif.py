import numpy as np
import pytest
from PIL import Image

from refvos.media.gif import GifWriter


def test_frames_are_written_as_they_come_and_read_back(tmp_path):
    rng = np.random.default_rng(0)
    frames = [np.full((30, 50, 3), c, np.uint8) for c in (0, 120, 250)]
    frames[1][5:10, 5:20] = rng.integers(0, 256, (5, 15, 3))
    path = tmp_path / "a" / "v.gif"
    with GifWriter(path, fps=5) as gif:
        for i, f in enumerate(frames):
            gif.add(Image.fromarray(f))
            assert path.stat().st_size > 0 and gif.frames == i + 1  # on disk before the end
    with Image.open(path) as g:
        assert (
            g.n_frames == 3
            and g.size == (50, 30)
            and g.info["loop"] == 0
            and g.info["duration"] == 200
        )
        for i, f in enumerate(frames):
            g.seek(i)
            assert np.abs(np.asarray(g.convert("RGB")).astype(int) - f).mean() < 3


def test_an_error_or_no_frame_leaves_no_file(tmp_path):
    with pytest.raises(RuntimeError), GifWriter(tmp_path / "x.gif") as gif:
        gif.add(Image.new("RGB", (4, 4)))
        raise RuntimeError("stop")
    assert not (tmp_path / "x.gif").exists()
    with GifWriter(tmp_path / "y.gif"):
        pass
    assert not (tmp_path / "y.gif").exists()
