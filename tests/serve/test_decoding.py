"""Upload decoding of ``refvos serve``: every frame of a GIF / TIFF is checked against the pixel
limit before it is decoded, renamed files go to a size-checked decoder, float TIFFs in [0, 1] are
scaled right and NaN ones refused; no bomb of at most 20 MB raises peak memory by 1 GB."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from refvos.errors import InputError
from refvos.media.image import load_image
from refvos.serve.decoding import decode_image, decode_upload, decode_video, safe_name
from refvos.serve.limits import Limits
from tests.helpers import (
    flat_gif,
    gif_with_huge_second_frame,
    many_page_tiff,
    tiff_pages,
    tiff_with_bad_second_page,
)

REPO = Path(__file__).resolve().parents[2]


def decoded(frames, expressions: int = 1, limits: Limits | None = None) -> list:
    """Every frame of an upload's :class:`Frames`, decoded (errors found while decoding raised)."""
    return list(frames.iter(limits or Limits(), expressions))


@pytest.mark.parametrize("kind", ["gif", "tiff"])
def test_huge_later_frame_refused_before_decoding(kind):
    data = gif_with_huge_second_frame() if kind == "gif" else tiff_pages([(40, 48), (13300, 13300)])
    with pytest.raises(
        InputError, match=r"up\.x frame 1: image is 13300x13300 pixels, more than the limit"
    ):
        decode_upload(data, "up.x", Limits())


def test_float_tiff_named_as_video_goes_through_the_checked_decoder():
    data = tiff_pages([(13300, 13300)], "float32")
    with pytest.raises(InputError, match="13300x13300 pixels") as e:
        decode_video(data, "clip.mp4", Limits())
    assert "/tmp" not in str(e.value)


def test_unknown_video_bytes_name_no_temporary_path():
    with pytest.raises(InputError) as e:
        decoded(decode_video(b"\x00" * 64, "v.mp4", Limits()))
    assert (
        "v.mp4" in str(e.value)
        and "/tmp" not in str(e.value)
        and "refvos-serve" not in str(e.value)
    )


def test_float_tiff_in_unit_range_is_scaled_and_nan_refused(tmp_path):
    rgb = decode_image(tiff_pages([(16, 20)], "float32", 0.5), "half.tif", Limits())
    assert rgb.shape == (16, 20, 3) and (rgb == 128).all()
    path = tmp_path / "half.tif"
    path.write_bytes(tiff_pages([(16, 20)], "float32", 0.5))
    assert (load_image(path) == 128).all()  # the CLI's path reads it the same way
    with pytest.raises(InputError, match="NaN"):
        decode_image(tiff_pages([(16, 20)], "float32", float("nan")), "nan.tif", Limits())
    path.write_bytes(tiff_pages([(16, 20)], "float32", float("nan")))
    with pytest.raises(InputError, match="NaN"):
        load_image(path)


def test_safe_name_escapes_control_characters():
    assert safe_name("a\x00b\nc\x1b[31m") == "a?b?c?[31m"
    assert len(safe_name("x" * 500)) == 100


def test_bombs_raise_peak_memory_by_less_than_1gb():
    """In a fresh process: peak RSS before and after decoding each bomb (GIF frame, TIFF page,
    float TIFF as video, a picture at the pixel limit) rises by less than 1 GB."""
    script = textwrap.dedent("""
        import json, resource, sys
        sys.path.insert(0, sys.argv[1])
        from refvos.errors import InputError
        from refvos.serve.decoding import decode_upload, decode_video
        from refvos.serve.limits import Limits
        from tests.helpers import gif_with_huge_second_frame, tiff_pages
        bombs = [("upload", "a.gif", gif_with_huge_second_frame()),
                 ("upload", "b.tif", tiff_pages([(40, 48), (13300, 13300)])),
                 ("video", "c.mp4", tiff_pages([(13300, 13300)], "float32")),
                 ("upload", "d.tif", tiff_pages([(6000, 6600)], "uint8", 7.0))]  # 39.6 MP: allowed
        assert all(len(b[2]) <= 20 * 2**20 for b in bombs)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        out = {}
        for how, name, data in bombs:
            try:
                frames = (decode_video if how == "video" else decode_upload)(data, name, Limits())
                list(frames.iter(Limits(), 1))
                out[name] = "ok"
            except InputError as e:
                out[name] = str(e)
        out["rise_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
        print(json.dumps(out))
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script, str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": f"{REPO / 'src'}:{REPO}", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "frame 1" in out["a.gif"] and "frame 1" in out["b.tif"] and "13300x13300" in out["c.mp4"]
    assert out["d.tif"] == "ok"
    assert out["rise_kb"] < 1024 * 1024, out


@pytest.mark.parametrize(("defect", "words"), [("compression", "KeyError"), ("width", "TypeError")])
def test_tiff_with_a_corrupt_second_page_is_one_input_error(defect, words):
    data = tiff_with_bad_second_page(defect)
    with pytest.raises(InputError, match=rf"t\.tif frame 1 is truncated or corrupt: {words}"):
        decoded(decode_upload(data, "t.tif", Limits()))
    with pytest.raises(InputError, match="frame 1"):
        decoded(decode_video(data, "t.gif", Limits()))


def test_frames_are_counted_by_seeking_to_the_cap_never_n_frames(monkeypatch):
    """A TIFF of 3000 one-pixel pages: Pillow's n_frames (quadratic in the page count) is never
    asked, and no more than cap + 1 pages are visited before the refusal."""
    from PIL import GifImagePlugin, TiffImagePlugin

    def forbidden(self):
        raise AssertionError("n_frames called on an upload")

    seeks = []
    seek = TiffImagePlugin.TiffImageFile.seek
    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "n_frames", property(forbidden))
    monkeypatch.setattr(GifImagePlugin.GifImageFile, "n_frames", property(forbidden))
    monkeypatch.setattr(
        TiffImagePlugin.TiffImageFile, "seek", lambda self, i: seeks.append(i) or seek(self, i)
    )
    limits = Limits(max_frames=48)
    with pytest.raises(InputError, match="49 or more frames, more than the limit of 48"):
        decode_upload(many_page_tiff(3000), "pages.tif", limits)
    assert max(seeks) == 48
    frames = decode_upload(flat_gif(5, 8, 8), "five.gif", limits)
    assert frames.kind == "video" and frames.sizes == [(8, 8)] * 5 and len(decoded(frames)) == 5
    with pytest.raises(InputError, match="49 or more frames"):
        decode_upload(flat_gif(60, 8, 8), "sixty.gif", limits)


def test_request_over_the_work_budget_is_refused_before_decoding(monkeypatch):
    """48 frames of 1024 x 1024 (a 128 kB GIF) with 8 expressions: refused from the headers,
    saying the budget and the work asked; with one expression it is within a budget of 120 million."""
    import refvos.serve.decoding
    from refvos.serve.budget import WorkBudgetError

    def no_decoding(*a, **k):
        raise AssertionError("decoded before the budget was checked")

    data = flat_gif(48, 1024, 1024)
    monkeypatch.setattr(refvos.serve.decoding, "pil_frames", no_decoding)
    frames = decode_upload(data, "big.gif", Limits(max_size=1024))
    with pytest.raises(
        WorkBudgetError,
        match=r"big\.gif: 48 frames of 1024x1024 with 8 expressions is "
        r"452,984,832 pixels of work, more than the budget of 60,000,000",
    ) as e:
        frames.check_work(Limits(max_size=1024), 8)
    assert (e.value.budget, e.value.asked) == (60_000_000, 48 * 1024 * 1024 * 9)
    frames.check_work(Limits(max_size=1024, max_work=120_000_000), 1)
    # the decoded pixels count too: 48 frames of 4000 x 4000 are over budget at any --max-size
    with pytest.raises(WorkBudgetError, match=r"processed at 64x64"):
        decode_upload(flat_gif(48, 4000, 4000), "huge.gif", Limits(max_size=64)).check_work(
            Limits(max_size=64), 1
        )
