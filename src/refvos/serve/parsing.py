"""Request bodies -> :class:`SegmentRequest`: JSON documents and ``multipart/form-data`` (parsed
by python-multipart through Starlette, with caps on the number of parts and their sizes, so a
body of 100,000 tiny parts is refused after a few dozen instead of keeping a worker busy)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from .budget import check_expression_length
from .decoding import Frames, decode_upload, decode_video, frames_from_files, safe_name
from .limits import MAX_EXPRESSION_CHARS, MAX_EXPRESSIONS, Limits

FIELD_BYTES = 4 * MAX_EXPRESSION_CHARS + 64  # largest non-file part (an expression, in UTF-8)


@dataclass
class SegmentRequest:
    """``kind`` "image" (one frame) or "video"; ``frames`` not yet decoded (their sizes read and
    the request's work checked against the budget); ``expressions``."""

    kind: str
    frames: Frames
    expressions: list[str]


@dataclass
class FormParts:
    """A multipart body's parts: ``fields`` name -> [str], ``files`` name -> [(filename, bytes)]."""

    fields: dict[str, list[str]]
    files: dict[str, list[tuple[str, bytes]]]


def check_expressions(expressions: list[Any]) -> list[str]:
    if not expressions:
        raise InputError("no expression given: type a sentence that describes the object")
    if len(expressions) > MAX_EXPRESSIONS:
        raise InputError(
            f"at most {MAX_EXPRESSIONS} expressions per request, got {len(expressions)}"
        )
    out = []
    for e in expressions:
        if not isinstance(e, str):
            raise InputError("expression must be a string")
        e = e.strip()
        if not e:
            raise InputError("expression is empty: type a sentence that describes the object")
        out.append(check_expression_length(e))
    return out


def b64decode(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise InputError(f"'{field}' must be a base64 string")
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InputError(f"'{field}' is not valid base64") from e


def parse_json(body: bytes, limits: Limits) -> SegmentRequest:
    """``{"expression" | "expressions", "image" | "video" | "frames" (base64), "filename"}``."""
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"request body is not valid JSON: {e}") from e
    except (RecursionError, ValueError) as e:  # nesting too deep; an integer of thousands of digits
        raise InputError(f"request body is not acceptable JSON: {str(e)[:120]}") from e
    if not isinstance(doc, dict):
        raise InputError("request body must be a JSON object")
    exprs = doc.get("expressions", doc.get("expression"))
    exprs = [exprs] if isinstance(exprs, str) else (exprs if isinstance(exprs, list) else [])
    name = doc.get("filename") or "upload"
    if not isinstance(name, str):
        raise InputError("'filename' must be a string")
    given = [k for k in ("image", "video", "frames") if doc.get(k)]
    if len(given) != 1:
        raise InputError("give exactly one of 'image', 'video' or 'frames' (base64)")
    expressions = check_expressions(exprs)
    if given[0] == "image":
        frames = decode_upload(b64decode(doc["image"], "image"), name, limits)
    elif given[0] == "video":
        frames = decode_video(b64decode(doc["video"], "video"), name, limits)
    else:
        items = doc["frames"]
        if not isinstance(items, list):
            raise InputError("'frames' must be a list of base64 images")
        if len(items) > limits.max_frames:
            raise InputError(
                f"{len(items)} frames given, more than this server's limit of {limits.max_frames}"
            )
        frames = frames_from_files(
            [(f"frame {i:05d}", b64decode(x, f"frames[{i}]")) for i, x in enumerate(items)], limits
        )
    frames.check_work(limits, len(expressions))
    return SegmentRequest(frames.kind, frames, expressions)


async def read_form(content_type: str, body: bytes, limits: Limits) -> FormParts:
    """Split a ``multipart/form-data`` body into its parts (no decoding of pictures here).

    At most ``max_frames + 1`` file parts and ``MAX_EXPRESSIONS + 4`` other parts, each other part at
    most :data:`FIELD_BYTES`; more is an :class:`InputError` raised as soon as the parser sees it."""
    from starlette.datastructures import Headers, UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 1 << 16):
            yield body[i : i + (1 << 16)]

    parser = MultiPartParser(
        Headers({"content-type": content_type}),
        chunks(),
        max_files=limits.max_frames + 1,
        max_fields=MAX_EXPRESSIONS + 4,
        max_part_size=FIELD_BYTES,
    )
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise InputError(f"multipart body could not be parsed: {e.message}") from e
    parts = FormParts({}, {})
    try:
        for field, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                parts.files.setdefault(field, []).append((safe_name(value.filename or field), data))
            else:
                parts.fields.setdefault(field, []).append(value)
    finally:
        await form.close()
    return parts


def parse_form(parts: FormParts, limits: Limits) -> SegmentRequest:
    """Multipart parts -> request: ``expression`` (repeatable) and one of ``image`` (one file; a
    multi-frame file is a video), ``video`` (one file) or ``frames`` (several pictures)."""
    exprs: list[Any] = list(parts.fields.get("expression", []))
    exprs += [
        data.decode("utf-8", errors="replace") for _, data in parts.files.get("expression", [])
    ]
    files = parts.files
    given = [k for k in ("image", "video", "frames") if files.get(k)]
    if len(given) != 1:
        raise InputError("upload exactly one of 'image', 'video' or 'frames' (files)")
    expressions = check_expressions(exprs)
    k = given[0]
    if k == "frames" and len(files["frames"]) == 1:  # one file given as frames: a picture or a GIF
        k, files["image"] = "image", files["frames"]
    if k in ("image", "video") and len(files[k]) > 1:
        raise InputError(f"upload one '{k}' file (several pictures go in 'frames')")
    if k == "image":
        name, data = files["image"][0]
        frames = decode_upload(data, name, limits)
    elif k == "video":
        name, data = files["video"][0]
        frames = decode_video(data, name, limits)
    else:
        frames = frames_from_files(files["frames"], limits)
    frames.check_work(limits, len(expressions))
    return SegmentRequest(frames.kind, frames, expressions)
