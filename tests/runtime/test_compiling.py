import pytest
import torch

from refvos.errors import InputError
from refvos.runtime.compiling import SegmenterRunner, check_compile


@pytest.mark.parametrize(("given", "expected"), [("auto", "auto"), (True, True), (False, False), ("on", True),
                                                 ("off", False), ("True", True), ("false", False)])
def test_compile_settings(given, expected):
    assert check_compile(given) is expected if isinstance(expected, bool) else check_compile(given) == expected


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
    assert runner.report() == {"setting": False, "compiled": False, "compile_s": 0.0, "compiled_sizes": [],
                               "fallback": None}
