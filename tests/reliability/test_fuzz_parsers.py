"""Fuzzing every annotation parser with hypothesis: it parses or raises the project's own error
(a :class:`RefVOSError` subclass); never another exception, never a hang (each example has a
deadline, and the whole file runs in well under a minute)."""

from __future__ import annotations

import io
import json
import pickle
import tempfile
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from refvos.errors import RefVOSError

FUZZ = settings(
    max_examples=100,
    deadline=timedelta(seconds=5),
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)
_DIR = Path(tempfile.mkdtemp(prefix="refvos-fuzz-"))


def _parses_or_refuses(fn, *args):
    """Call ``fn``; a RefVOSError is a valid outcome, anything else fails the test."""
    try:
        return fn(*args)
    except RefVOSError as e:
        assert str(e), "an error without a message"
        return None


def _file(name: str, data: bytes | str) -> Path:
    path = _DIR / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", errors="surrogatepass")
    else:
        path.write_bytes(data)
    return path


# Text that looks like the formats: their separators and digits are common, so the fuzzer
# reaches past the first check.
_ALPHABET = st.sampled_from(
    list(" ,;\"'\t\r\n0123456789-.abcvX_")
    + ["video_id", "instance_id", "query", "é", "\x00", "\u2028", "²", "١"]
)
format_text = st.lists(_ALPHABET, max_size=120).map("".join)
any_text = st.one_of(format_text, st.text(max_size=200))


# ------------------------------------------------------------------------------ pickles


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.binary(max_size=20),
)
py_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=4),
    ),
    max_leaves=20,
)


@FUZZ
@given(data=st.binary(max_size=300))
def test_safe_load_random_bytes(data):
    from refvos.io.safe_pickle import safe_load

    _parses_or_refuses(safe_load, io.BytesIO(data))


@FUZZ
@given(value=py_values, protocol=st.integers(0, 5), cut=st.integers(0, 400))
def test_safe_load_mutated_pickles(value, protocol, cut):
    from refvos.io.safe_pickle import safe_load

    data = pickle.dumps(value, protocol=protocol)
    # repr compares NaN (and -0.0) exactly, where == would say [nan] != [nan] for distinct objects
    assert repr(_parses_or_refuses(safe_load, io.BytesIO(data))) == repr(value)
    broken = data[:cut] + bytes([cut % 256]) + data[cut + 1 :]
    _parses_or_refuses(safe_load, _file("refs(unc).p", broken))


# ------------------------------------------------------------------------------ REFER


_ids = st.integers(-1, 3)
_seg = st.one_of(
    st.lists(st.lists(st.floats(-5, 50, allow_nan=False), max_size=8), max_size=2),
    st.fixed_dictionaries(
        {
            "size": st.lists(st.integers(0, 20), min_size=0, max_size=3),
            "counts": st.one_of(st.text(max_size=10), st.lists(st.integers(0, 30), max_size=5)),
        }
    ),
    py_values,
)
_image = st.fixed_dictionaries(
    {
        "id": _ids,
        "file_name": st.text(max_size=5),
        "height": st.integers(0, 20),
        "width": st.integers(0, 20),
    }
)
_ann = st.fixed_dictionaries(
    {"id": _ids, "image_id": _ids, "category_id": _ids, "segmentation": _seg}
)
_sentence = st.one_of(
    st.fixed_dictionaries({"sent_id": _ids, "sent": any_text, "raw": any_text}), py_values
)
_ref = st.one_of(
    st.fixed_dictionaries(
        {
            "ref_id": _ids,
            "ann_id": _ids,
            "image_id": _ids,
            "category_id": _ids,
            "split": st.sampled_from(["train", "val", "testA", "testB", "", 3]),
            "sentences": st.one_of(st.lists(_sentence, max_size=3), py_values),
        }
    ),
    py_values,
)
_instances = st.one_of(
    st.fixed_dictionaries(
        {
            "images": st.one_of(st.lists(_image, max_size=3), py_values),
            "annotations": st.one_of(st.lists(_ann, max_size=3), py_values),
            "categories": st.one_of(
                st.lists(
                    st.fixed_dictionaries({"id": _ids, "name": st.text(max_size=5)}), max_size=2
                ),
                py_values,
            ),
        }
    ),
    py_values.filter(lambda v: not isinstance(v, (bytes, tuple))),
)


def _jsonable(v):
    try:
        return json.dumps(v)
    except (TypeError, ValueError):
        return None


@FUZZ
@given(
    instances=_instances,
    refs=st.one_of(st.lists(_ref, max_size=4), py_values),
    raw=st.booleans(),
    text=any_text,
)
def test_refer_random_annotations(instances, refs, raw, text):
    from refvos.data.refer import REFER

    root = _DIR / "refer"
    _file("refer/refcoco/refs(unc).p", pickle.dumps(refs, protocol=2))
    body = _jsonable(instances)
    _file("refer/refcoco/instances.json", text if raw or body is None else body)
    refer = _parses_or_refuses(REFER, root, "refcoco", "unc")
    if refer is None:
        return
    for split in ("train", "val", "test", "testA"):
        _parses_or_refuses(refer.getRefIds, [], [], [], split)
    for ref in list(refer.Refs.values())[:3]:
        _parses_or_refuses(refer.getMask, ref)


# ------------------------------------------------------------------------------ A2D


@FUZZ
@given(text=any_text, header=st.booleans())
def test_a2d_query_file(text, header):
    from refvos.data.a2d import read_queries

    _parses_or_refuses(
        read_queries,
        _file("a2d_annotation.txt", ("video_id,instance_id,query\n" if header else "") + text),
    )


@FUZZ
@given(data=st.binary(max_size=200))
def test_a2d_query_file_bytes(data):
    from refvos.data.a2d import read_queries, read_videoset

    _parses_or_refuses(read_queries, _file("a2d_annotation.txt", data))
    _parses_or_refuses(read_videoset, _file("videoset.csv", data))


@FUZZ
@given(text=any_text)
def test_a2d_videoset(text):
    from refvos.data.a2d import read_videoset

    _parses_or_refuses(read_videoset, _file("videoset.csv", text))


_h5_arrays = st.one_of(
    st.tuples(
        st.sampled_from(["f8", "u1", "i4", "bool", "f4"]),
        st.lists(st.integers(0, 4), min_size=0, max_size=4),
    ),
    st.sampled_from(["group", "string", "scalar"]),
)


@FUZZ
@given(
    instance=_h5_arrays,
    remask=_h5_arrays,
    names=st.sets(st.sampled_from(["instance", "reMask", "other"])),
    garbage=st.binary(max_size=64),
    raw=st.booleans(),
)
def test_a2d_h5_masks(instance, remask, names, garbage, raw):
    from refvos.data.a2d import read_instance_masks

    path = _DIR / "frame.h5"
    if raw:
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + garbage)
    else:
        with h5py.File(path, "w") as f:
            for name, spec in (("instance", instance), ("reMask", remask), ("other", remask)):
                if name not in names:
                    continue
                if spec == "group":
                    f.create_group(name)
                elif spec == "string":
                    f[name] = "a string"
                elif spec == "scalar":
                    f[name] = 3.0
                else:
                    dtype, shape = spec
                    f[name] = np.ones(shape, dtype=dtype)
    _parses_or_refuses(read_instance_masks, path)


# ------------------------------------------------------------------------------ DAVIS


@FUZZ
@given(text=any_text, data=st.binary(max_size=200))
def test_davis_expression_file(text, data):
    from refvos.data.davis import read_expressions

    _parses_or_refuses(read_expressions, _file("Davis17_annot1.txt", text))
    _parses_or_refuses(read_expressions, _file("Davis17_annot2.txt", data))


def _image_bytes(mode: str, size: tuple[int, int], fmt: str) -> bytes:
    buf = io.BytesIO()
    img = Image.new("RGB", size, (10, 200, 30)).convert(mode if mode != "I;16" else "I")
    if mode == "I;16":
        img = Image.fromarray(np.zeros(size[::-1], np.uint16))
    img.save(buf, fmt)
    return buf.getvalue()


_FORMAT_MODES = {
    "PNG": ["P", "L", "RGB", "RGBA", "1", "I;16"],
    "BMP": ["P", "L", "RGB", "1"],
    "TIFF": ["P", "L", "RGB", "RGBA", "1", "I;16"],
    "GIF": ["P", "L"],
    "JPEG": ["L", "RGB", "CMYK"],
}
_valid_images = st.sampled_from(sorted(_FORMAT_MODES)).flatmap(
    lambda fmt: st.builds(
        _image_bytes,
        st.sampled_from(_FORMAT_MODES[fmt]),
        st.tuples(st.integers(1, 12), st.integers(1, 12)),
        st.just(fmt),
    )
)


def _mutate(data: bytes, positions: list[int], cut: int | None) -> bytes:
    b = bytearray(data)
    for p in positions:
        if b:
            b[p % len(b)] ^= 0xFF
    return bytes(b[:cut] if cut is not None else b)


_mutated_images = st.builds(
    _mutate,
    _valid_images,
    st.lists(st.integers(0, 10_000), max_size=3),
    st.one_of(st.none(), st.integers(0, 400)),
)


@FUZZ
@given(data=st.one_of(_mutated_images, st.binary(max_size=200)))
def test_davis_palette_png(data):
    from refvos.data.davis import read_object_ids

    _parses_or_refuses(read_object_ids, _file("anno.png", data))


# ------------------------------------------------------------------------------ RefVOS annotation files


@FUZZ
@given(
    rows=st.lists(
        st.lists(
            st.one_of(format_text, st.sampled_from(["1", "0", "1.0", "0.0", ""])), max_size=13
        ),
        max_size=4,
    ),
    header=st.booleans(),
    text=any_text,
)
def test_categorization_csv(rows, header, text):
    from refvos.data.annotations import CATEGORIZATION_HEADER, load_categorization

    body = "\r\n".join(";".join(r) for r in rows)
    head = ";".join(CATEGORIZATION_HEADER) + "\r\n" if header else ""
    _parses_or_refuses(load_categorization, _file("cats.csv", head + body))
    _parses_or_refuses(load_categorization, _file("cats2.csv", head + text))


@FUZZ
@given(text=any_text, header=st.booleans(), data=st.binary(max_size=100))
def test_augmented_expressions(text, header, data):
    from refvos.data.annotations import load_augmented_expressions

    head = "video_id,instance_id,query\n" if header else ""
    _parses_or_refuses(load_augmented_expressions, _file("new.txt", head + text))
    _parses_or_refuses(load_augmented_expressions, _file("new2.txt", head.encode() + data))


# ------------------------------------------------------------------------------ tokenizer and images


@FUZZ
@given(text=st.text(max_size=300), legacy=st.booleans(), max_tokens=st.integers(-1, 40))
def test_tokenizer_arbitrary_unicode(text, legacy, max_tokens):
    from refvos.tokenization import get_tokenizer

    out = _parses_or_refuses(get_tokenizer().encode, [text], max_tokens, legacy)
    if out is not None:
        ids, mask = out
        assert ids.shape == mask.shape == (1, max_tokens) and 3 <= int(mask.sum()) <= max_tokens


@FUZZ
@given(text=st.text(alphabet=st.characters(codec="utf-8"), min_size=2000, max_size=6000))
def test_tokenizer_long_text(text):
    from refvos.tokenization import get_tokenizer

    _parses_or_refuses(get_tokenizer().encode, [text], 20)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), _mutated_images))
def test_load_image_random_bytes(data):
    from refvos.media.image import load_image

    out = _parses_or_refuses(load_image, _file("img.bin", data))
    if out is not None:
        assert out.ndim == 3 and out.shape[2] == 3 and out.dtype == np.uint8


@FUZZ
@given(
    shape=st.lists(st.integers(0, 5), max_size=4),
    dtype=st.sampled_from(["u1", "u2", "f4", "f8", "i4", "bool", "c8"]),
)
def test_load_image_arrays(shape, dtype):
    from refvos.media.image import load_image

    _parses_or_refuses(load_image, np.ones(shape, dtype=dtype))


@pytest.fixture(scope="module", autouse=True)
def _cleanup():
    yield
    import shutil

    shutil.rmtree(_DIR, ignore_errors=True)
