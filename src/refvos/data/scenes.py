"""The synthetic scenes behind :mod:`refvos.data.synthetic`: shapes, pictures, videos, expressions.

Images hold 2-6 solid-coloured shapes on a mildly textured background; a shape may partly hide
another. Every (colour, shape) pair is unique in an image or video, so "the <colour> <shape>"
always singles out its object; other expressions (category, size, location, relations, motion)
are kept only where they are unambiguous, each tagged with its RefVOS categories. Everything is
deterministic for a generator (``numpy.random.default_rng``). Nothing here writes files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils
from skimage.measure import approximate_polygon, find_contours

from ..errors import InputError

SHAPES = ("circle", "square", "triangle", "star", "diamond", "hexagon")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (30, 160, 50),
    "blue": (35, 70, 215),
    "yellow": (240, 215, 30),
    "purple": (140, 50, 180),
    "orange": (250, 130, 20),
}
SIZES = {"small": 0.10, "big": 0.17}  # radius as a fraction of the image side
MOTIONS = ("left", "right", "up", "down", "stops", "static")
# the motions that move in a straight line, as (dx, dy)
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


@dataclass
class Shape:
    """One object: its kind, colour, size class, centre ``(cx, cy)`` and radius in pixels."""

    shape: str
    color: str
    size: str
    cx: float
    cy: float
    r: float


@dataclass
class Expression:
    text: str
    categories: tuple[str, ...]


# ---------------------------------------------------------------- drawing


def shape_polygon(s: Shape) -> list[float]:
    """The outline of ``s`` as a flat COCO polygon ``[x0, y0, x1, y1, ...]``."""
    if s.shape == "circle":
        angles, radii = np.linspace(0, 2 * np.pi, 32, endpoint=False), [s.r] * 32
    elif s.shape == "square":
        angles, radii = np.pi / 4 + np.arange(4) * np.pi / 2, [s.r * 1.0] * 4
    elif s.shape == "diamond":
        angles, radii = np.arange(4) * np.pi / 2, [s.r * 1.05] * 4
    elif s.shape == "triangle":
        angles, radii = -np.pi / 2 + np.arange(3) * 2 * np.pi / 3, [s.r * 1.15] * 3
    elif s.shape == "hexagon":
        angles, radii = np.arange(6) * np.pi / 3, [s.r] * 6
    elif s.shape == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        radii = [s.r * (1.2 if k % 2 == 0 else 0.5) for k in range(10)]
    else:
        raise InputError(f"unknown shape {s.shape!r}; expected one of {SHAPES}")
    pts = [(s.cx + r * math.cos(a), s.cy + r * math.sin(a)) for a, r in zip(angles, radii)]
    return [float(round(v, 2)) for p in pts for v in p]


def rasterize(polygons: list[list[float]], h: int, w: int) -> np.ndarray:
    """bool ``(H, W)``: the union of COCO polygons, rasterised as pycocotools does."""
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polygons, h, w))).astype(bool)


def mask_to_polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO polygons tracing the outlines of a bool ``(H, W)`` mask."""
    polys = []
    for c in find_contours(np.pad(mask, 1).astype(float), 0.5):
        c = approximate_polygon(c, tolerance=0.4)
        if len(c) >= 4:
            polys.append([float(round(v - 0.5, 2)) for y, x in c[:-1] for v in (x, y)])
    return polys


def background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """uint8 ``(H, W, 3)``: a light tinted base with soft noise and faint stripes."""
    base = rng.uniform(150, 215, size=3)
    noise = rng.normal(0, 10, size=(h // 8 + 2, w // 8 + 2, 3))
    noise = (
        np.asarray(
            Image.fromarray(np.clip(noise + 128, 0, 255).astype(np.uint8)).resize(
                (w, h), Image.BILINEAR
            ),
            dtype=np.float32,
        )
        - 128
    )
    yy, xx = np.mgrid[0:h, 0:w]
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 16)
    stripes = 6 * np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * np.pi / period)
    img = base + noise + stripes[..., None] + rng.normal(0, 3, size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def render(shapes: list[Shape], bg: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Paint ``shapes`` in order (later ones on top) onto ``bg``.

    Returns the image uint8 ``(H, W, 3)`` and each shape's visible mask bool ``(H, W)``."""
    h, w = bg.shape[:2]
    img = bg.copy()
    full = [rasterize([shape_polygon(s)], h, w) for s in shapes]
    covered = np.zeros((h, w), bool)
    visible = [None] * len(shapes)
    for i in range(len(shapes) - 1, -1, -1):
        visible[i] = full[i] & ~covered
        covered |= full[i]
    for s, m in zip(shapes, full):
        img[m] = COLORS[s.color]
    return img, visible


# ---------------------------------------------------------------- scenes and expressions


def _distinct_kinds(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    return [pairs[i] for i in rng.choice(len(pairs), size=n, replace=False)]


def sample_scene(rng: np.random.Generator, n: int, size: int, tries: int = 200) -> list[Shape]:
    """``n`` shapes with distinct (colour, shape), each at least 65% visible, none inside another."""
    shapes: list[Shape] = []
    for color, kind in _distinct_kinds(rng, n):
        sz = str(rng.choice(list(SIZES)))
        r = SIZES[sz] * size
        for _ in range(tries):
            cx, cy = rng.uniform(r * 1.2, size - r * 1.2, size=2)
            cand = Shape(kind, color, sz, float(cx), float(cy), float(r))
            # no centre inside another shape: overlaps stay partial and masks hole-free
            if all(math.hypot(cx - o.cx, cy - o.cy) > 0.75 * (r + o.r) for o in shapes):
                shapes.append(cand)
                break
        else:
            shapes.append(cand)  # crowded: accept; the visibility check below may drop it
    return shapes


def _unique(objs: list[Shape], t: Shape, pred) -> bool:
    return pred(t) and not any(pred(o) for o in objs if o is not t)


def image_expressions(objs: list[Shape], t: Shape, size: int) -> list[Expression]:
    """Expressions that single out ``t`` among ``objs`` in one image."""
    out = [Expression(f"the {t.color} {t.shape}", ("appearance", "category"))]
    if _unique(objs, t, lambda o: o.shape == t.shape):
        out.append(Expression(f"the {t.shape}", ("category",)))
    if _unique(objs, t, lambda o: o.color == t.color):
        out.append(Expression(f"the {t.color} object", ("appearance",)))
    same = [o for o in objs if o.shape == t.shape]
    if len(same) > 1:
        if _unique(same, t, lambda o: o.size == t.size):
            out.append(Expression(f"the {t.size} {t.shape}", ("appearance", "category")))
        margin = 0.08 * size
        others = [o for o in same if o is not t]
        for word, key, sign in (
            ("leftmost", "cx", 1),
            ("rightmost", "cx", -1),
            ("topmost", "cy", 1),
            ("bottom", "cy", -1),
        ):
            if all(sign * (getattr(o, key) - getattr(t, key)) > margin for o in others):
                text = f"the {word} {t.shape}"
                if len(same) == 2 and word in ("leftmost", "rightmost"):
                    text = f"the {t.shape} on the {word[:-4]}"
                out.append(Expression(text, ("location", "category")))
        for ref in objs:
            if ref is t:
                continue
            rel = _relation(t, ref, margin)
            if rel and all(_relation(o, ref, margin) != rel for o in others):
                out.append(
                    Expression(
                        f"the {t.shape} {rel} the {ref.color} {ref.shape}",
                        ("location", "category", "appearance"),
                    )
                )
                break
    return out


def _relation(a: Shape, b: Shape, margin: float) -> str | None:
    dx, dy = a.cx - b.cx, a.cy - b.cy
    if abs(dy) > abs(dx) and abs(dy) > margin:
        return "above" if dy < 0 else "below"
    if abs(dx) > margin:
        return "left of" if dx < 0 else "right of"
    return None


def make_image(rng: np.random.Generator, size: int, min_objects: int, max_objects: int):
    """One image: (uint8 (H,W,3), shapes, COCO polygons per shape, union masks per shape)."""
    while True:
        n = int(rng.integers(min_objects, max_objects + 1))
        shapes = sample_scene(rng, n, size)
        img, visible = render(shapes, background(rng, size, size))
        polys, masks = [], []
        for s, vis in zip(shapes, visible):
            full = rasterize([shape_polygon(s)], size, size)
            if vis.sum() < 0.65 * full.sum():
                break
            p = [shape_polygon(s)] if (vis == full).all() else mask_to_polygons(vis)
            m = rasterize(p, size, size) if p else np.zeros_like(vis)
            if (m & vis).sum() < 0.9 * (m | vis).sum():  # outline does not match (a hole)
                break
            polys.append(p)
            masks.append(m)
        else:
            return img, shapes, polys, masks


# ---------------------------------------------------------------- videos


@dataclass
class Track:
    """A moving shape: its look, its motion word and its centre in every frame."""

    shape: Shape
    motion: str
    centers: list[tuple[float, float]]

    def at(self, t: int) -> Shape:
        cx, cy = self.centers[t]
        s = self.shape
        return Shape(s.shape, s.color, s.size, cx, cy, s.r)


def sample_video(
    rng: np.random.Generator, num_objects: int, num_frames: int, size: int
) -> list[Track]:
    """Tracks with distinct (colour, shape) and distinct motions that stay inside the frame."""
    motions = [MOTIONS[i] for i in rng.choice(len(MOTIONS), size=num_objects, replace=False)]
    first = sample_scene(rng, num_objects, size)
    tracks = []
    for s, motion in zip(first, motions):
        speed = 0.3 * size / max(num_frames - 1, 1)
        if motion in DIRECTIONS:
            dx, dy = DIRECTIONS[motion]
        elif motion == "stops":
            dx, dy = DIRECTIONS[str(rng.choice(list(DIRECTIONS)))]
        else:
            dx = dy = 0
        lo, hi = s.r * 1.1, size - s.r * 1.1
        # start so that the whole path stays inside the frame
        travel = speed * (num_frames - 1) * (0.5 if motion == "stops" else 1.0)
        cx = float(np.clip(s.cx, lo + max(0, -dx) * travel, hi - max(0, dx) * travel))
        cy = float(np.clip(s.cy, lo + max(0, -dy) * travel, hi - max(0, dy) * travel))
        centers = []
        for t in range(num_frames):
            k = min(t, (num_frames - 1) // 2) if motion == "stops" else t
            centers.append((cx + dx * speed * k, cy + dy * speed * k))
        tracks.append(Track(Shape(s.shape, s.color, s.size, cx, cy, s.r), motion, centers))
    return tracks


def motion_expressions(tracks: list[Track], t: Track, annotator: int = 1) -> list[Expression]:
    """Full-video expressions of ``t``; annotator 2 phrases them differently."""
    s = t.shape
    unique_shape = _unique([x.shape for x in tracks], s, lambda o: o.shape == s.shape)
    what = f"the {s.shape}" if unique_shape else f"the {s.color} {s.shape}"
    cats = ("category",) if unique_shape else ("appearance", "category")
    if annotator == 2:
        what = f"a {s.color} {s.shape}"
        cats = ("appearance", "category")
    if t.motion in DIRECTIONS:
        verb = f"moving {t.motion}" if annotator == 1 else f"going {t.motion}"
        return [Expression(f"{what} {verb}", (*cats, "motion"))]
    if t.motion == "stops":
        verb = "that stops" if annotator == 1 else "that stops moving"
        return [Expression(f"{what} {verb}", (*cats, "motion"))]
    verb = "that does not move" if annotator == 1 else "standing still"
    return [Expression(f"{what} {verb}", (*cats, "static"))]


def render_video(tracks: list[Track], bg: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Frames uint8 ``(H, W, 3)`` and object ids uint8 ``(T, H, W)`` (0 background, 1..N)."""
    frames, labels = [], []
    for t in range(len(tracks[0].centers)):
        img, visible = render([tr.at(t) for tr in tracks], bg)
        lab = np.zeros(bg.shape[:2], np.uint8)
        for k, v in enumerate(visible):
            lab[v] = k + 1
        frames.append(img)
        labels.append(lab)
    return frames, np.stack(labels)


def videos(
    seed: int, num_videos: int, num_frames: int, size: int, min_objects: int, max_objects: int
):
    """``(index, rng, tracks, frames, labels)`` per video of :func:`render_video`, for a seed."""
    rng = np.random.default_rng(seed)
    for v in range(num_videos):
        n = int(rng.integers(min_objects, max_objects + 1))
        tracks = sample_video(rng, n, num_frames, size)
        frames, labels = render_video(tracks, background(rng, size, size))
        yield v, rng, tracks, frames, labels


def make_video_clip(num_frames: int = 8, size: int = 128, seed: int = 0):
    """An in-memory clip: (frames: list of uint8 (H,W,3), masks: list of bool (H,W), expression)."""
    rng = np.random.default_rng(seed)
    tracks = sample_video(rng, 3, num_frames, size)
    frames, labels = render_video(tracks, background(rng, size, size))
    target = next((k for k, tr in enumerate(tracks) if tr.motion != "static"), 0)
    expression = motion_expressions(tracks, tracks[target])[0].text
    return frames, [lab == target + 1 for lab in labels], expression
