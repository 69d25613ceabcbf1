import pytest
import torch

from refvos.errors import InputError
from refvos.runtime.compiling import SegmenterRunner, check_compile


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("auto", "auto"),
        (True, True),
        (False, False),
        ("on", True),
        ("off", False),
        ("True", True),
        ("false", False),
    ],
)
def test_compile_settings(given, expected):
    assert (
        check_compile(given) is expected
        if isinstance(expected, bool)
        else check_compile(given) == expected
    )


@pytest.mark.parametrize("bad", ["sometimes", 1, None])
def test_bad_compile_settings(bad):
    with pytest.raises(InputError, match="compile must be"):
        check_compile(bad)


def test_eager_runner_is_the_segmenter(tiny_model):
    runner = SegmenterRunner(tiny_model.segmenter, compile=False)
    x, t = torch.randn(2, 3, 32, 40), torch.randn(1, tiny_model.config.text_dim)
    with torch.no_grad():
        got = runner.decode(runner.encode(x), t, (32, 40))
        torch.testing.assert_close(got, tiny_model.segmenter(x, t), rtol=0, atol=0)
    assert runner.report() == {
        "setting": False,
        "compiled": False,
        "compile_s": 0.0,
        "compiled_sizes": [],
        "fallback": None,
    }


def test_pays_back_weighs_the_saving_over_the_frames_ahead_against_the_compile_time():
    from refvos.runtime.compiling import pays_back

    # refvos_r101 on a CPU: 0.94 s a frame, 3 % saved, a 60 s compile: thousands of frames needed
    assert not pays_back(0.94, 1000, 60.0, saving=0.03)
    assert pays_back(0.94, 3000, 60.0, saving=0.03)
    assert not pays_back(1.0, 0, 0.5)


class _ClockedSegmenter(torch.nn.Module):
    """The tiny segmenter, its encode advancing a simulated clock by ``seconds`` per frame."""

    def __init__(self, segmenter, seconds):
        super().__init__()
        self.inner, self.seconds, self.now = segmenter, seconds, 0.0

    def encode(self, images):
        self.now += self.seconds * images.shape[0]
        return self.inner.encode(images)

    def decode(self, features, text, size):
        return self.inner.decode(features, text, size)


def _fake_compile(monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compiled.append(fn.__name__) or fn)
    return compiled


@pytest.mark.parametrize(
    ("seconds", "expected", "compiles"),
    [(0.01, 10_000, False), (1.0, 10_000, True), (1.0, 100, False)],
)
def test_auto_compiles_where_the_simulated_timings_pay_back(
    tiny_model, monkeypatch, seconds, expected, compiles
):
    compiled = _fake_compile(monkeypatch)
    net = _ClockedSegmenter(tiny_model.segmenter, seconds)
    runner = SegmenterRunner(net, "auto", clock=lambda: net.now, compile_cost_s=60.0, saving=0.05)
    runner.expect_frames(expected)
    with torch.no_grad():
        for _ in range(3):
            runner.encode(torch.randn(1, 3, 32, 40))
    assert bool(compiled) is compiles and runner.report()["compiled"] is compiles


def test_auto_with_no_known_length_compiles_once_as_many_frames_again_would_pay_back(
    tiny_model, monkeypatch
):
    compiled = _fake_compile(monkeypatch)
    net = _ClockedSegmenter(tiny_model.segmenter, 1.0)
    # no compile measured yet: the conservative default compile time (60 s) at a 5 % saving
    runner = SegmenterRunner(net, "auto", clock=lambda: net.now)
    frames = 0
    with torch.no_grad():
        while not compiled and frames < 1300:
            runner.encode(torch.randn(1, 3, 8, 8))
            frames += 1
    assert compiled and 1150 <= frames <= 1250  # 1200 frames run: 1200 more x 1 s x 5 % = 60 s


def test_frozen_runner_never_compiles_a_new_shape(tiny_model, monkeypatch):
    compiled = _fake_compile(monkeypatch)
    runner = SegmenterRunner(tiny_model.segmenter, True)
    runner.freeze()
    with torch.no_grad():
        features = runner.encode(torch.randn(2, 3, 32, 40))
        runner.decode(features, torch.randn(1, tiny_model.config.text_dim), (32, 40))
    assert not compiled and not runner.report()["compiled"]
