"""refvos.serve.parsing: request bodies (JSON or multipart parts) -> SegmentRequest, every bad
field a one-line InputError."""

from __future__ import annotations

import base64
import json

import pytest

from refvos.errors import InputError
from refvos.serve.limits import MAX_EXPRESSIONS, Limits
from refvos.serve.parsing import FormParts, b64decode, check_expressions, parse_form, parse_json
from tests.helpers import gif_bytes, png_bytes


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def test_expressions_are_stripped_and_checked():
    assert check_expressions(["  the dog ", "a cat"]) == ["the dog", "a cat"]
    with pytest.raises(InputError, match="no expression given"):
        check_expressions([])
    with pytest.raises(InputError, match="expression is empty"):
        check_expressions(["   "])
    with pytest.raises(InputError, match="expression must be a string"):
        check_expressions([3])
    with pytest.raises(InputError, match=f"at most {MAX_EXPRESSIONS} expressions"):
        check_expressions(["x"] * (MAX_EXPRESSIONS + 1))
    with pytest.raises(InputError):
        check_expressions(["word " * 1000])


def test_base64_fields_accept_a_data_url_and_name_the_bad_field():
    assert b64decode("data:image/png;base64," + b64(b"abc"), "image") == b"abc"
    with pytest.raises(InputError, match="'frames\\[2\\]' is not valid base64"):
        b64decode("not base64!", "frames[2]")
    with pytest.raises(InputError, match="'image' must be a base64 string"):
        b64decode(12, "image")


def test_json_picture_request():
    req = parse_json(
        json.dumps({"expression": "the dog", "image": b64(png_bytes(20, 30))}).encode(), Limits()
    )
    assert req.kind == "image" and req.expressions == ["the dog"]
    video = parse_json(
        json.dumps(
            {"expressions": ["a", "b"], "video": b64(gif_bytes(3, 20, 30)), "filename": "clip.gif"}
        ).encode(),
        Limits(),
    )
    assert video.kind == "video" and video.expressions == ["a", "b"]


@pytest.mark.parametrize(
    "body, words",
    [
        (b"{not json", "request body is not valid JSON"),
        (b"[1, 2]", "request body must be a JSON object"),
        (
            json.dumps({"expression": "x"}).encode(),
            "give exactly one of 'image', 'video' or 'frames'",
        ),
        (
            json.dumps({"expression": "x", "image": "aGk=", "video": "aGk="}).encode(),
            "give exactly one of",
        ),
        (
            json.dumps({"expression": "x", "image": "aGk=", "filename": 5}).encode(),
            "'filename' must be a string",
        ),
        (
            json.dumps({"expression": "x", "frames": "aGk="}).encode(),
            "'frames' must be a list of base64 images",
        ),
    ],
)
def test_bad_json_bodies_are_one_line(body, words):
    with pytest.raises(InputError, match=words):
        parse_json(body, Limits())


def test_too_many_frames_are_refused_before_decoding():
    body = json.dumps({"expression": "x", "frames": ["!"] * 5}).encode()
    with pytest.raises(InputError, match="5 frames given, more than this server's limit of 4"):
        parse_json(body, Limits(max_frames=4))


def test_form_parts():
    picture = png_bytes(20, 30)
    req = parse_form(
        FormParts({"expression": ["the dog", " a cat "]}, {"image": [("p.png", picture)]}), Limits()
    )
    assert req.kind == "image" and req.expressions == ["the dog", "a cat"]
    one_frame = parse_form(
        FormParts({"expression": ["x"]}, {"frames": [("p.png", picture)]}), Limits()
    )
    assert one_frame.kind == "image"  # one file given as frames is a picture
    with pytest.raises(InputError, match="upload one 'image' file"):
        parse_form(
            FormParts({"expression": ["x"]}, {"image": [("a.png", picture), ("b.png", picture)]}),
            Limits(),
        )
    with pytest.raises(InputError, match="upload exactly one of"):
        parse_form(FormParts({"expression": ["x"]}, {}), Limits())
