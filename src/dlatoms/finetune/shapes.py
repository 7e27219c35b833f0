"""Procedurally generated shape images: the source task of question 4 and its similar target.

Each class is a filled outline (polygons, with holes drawn in the background colour) looked up by name
from SHAPES. An image draws it at a random rotation, scale, aspect, position and pair of colours on a
canvas `supersample` times larger, shrinks it with a box filter (clean anti-aliased edges) and adds
Gaussian pixel noise. Every (seed, class, split) has its own random stream, so adding a class or
images never changes the images already drawn.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from dlatoms.core.seeding import stream_seed

# A shape is a list of (polygon, hole) in unit coordinates (about radius 1 around the origin);
# holes are painted in the background colour after the filled parts.
Polygon = list[tuple[float, float]]
Outline = list[tuple[Polygon, bool]]
SHAPES: dict[str, Callable[[], Outline]] = {}


def register(name: str) -> Callable[[Callable[[], Outline]], Callable[[], Outline]]:
    def wrap(fn: Callable[[], Outline]) -> Callable[[], Outline]:
        SHAPES[name] = fn
        return fn

    return wrap


def regular(sides: int, radius: float = 1.0, phase: float = 0.0, center=(0.0, 0.0)) -> Polygon:
    return [
        (
            center[0] + radius * math.cos(phase + 2 * math.pi * k / sides),
            center[1] + radius * math.sin(phase + 2 * math.pi * k / sides),
        )
        for k in range(sides)
    ]


def star(points: int, inner: float) -> Polygon:
    return [
        (
            (1.0 if k % 2 == 0 else inner) * math.cos(-math.pi / 2 + math.pi * k / points),
            (1.0 if k % 2 == 0 else inner) * math.sin(-math.pi / 2 + math.pi * k / points),
        )
        for k in range(2 * points)
    ]


def disc(radius: float = 1.0, center=(0.0, 0.0)) -> Polygon:
    return regular(48, radius, 0.0, center)


def scaled(polygon: Polygon, factor: float) -> Polygon:
    return [(factor * x, factor * y) for x, y in polygon]


@register("triangle")
def _triangle() -> Outline:
    return [(regular(3, 1.0, -math.pi / 2), False)]


@register("square")
def _square() -> Outline:
    return [(regular(4, 1.0, math.pi / 4), False)]


@register("pentagon")
def _pentagon() -> Outline:
    return [(regular(5, 1.0, -math.pi / 2), False)]


@register("hexagon")
def _hexagon() -> Outline:
    return [(regular(6, 1.0), False)]


@register("circle")
def _circle() -> Outline:
    return [(disc(), False)]


@register("star4")
def _star4() -> Outline:
    return [(star(4, 0.38), False)]


@register("star5")
def _star5() -> Outline:
    return [(star(5, 0.45), False)]


@register("star6")
def _star6() -> Outline:
    return [(star(6, 0.55), False)]


@register("cross")
def _cross() -> Outline:
    w = 0.33
    return [([(-w, -1), (w, -1), (w, -w), (1, -w), (1, w), (w, w), (w, 1), (-w, 1), (-w, w), (-1, w),
              (-1, -w), (-w, -w)], False)]  # fmt: skip


@register("ring")
def _ring() -> Outline:
    return [(disc(), False), (disc(0.55), True)]


@register("square_frame")
def _square_frame() -> Outline:
    return [(regular(4, 1.0, math.pi / 4), False), (regular(4, 0.55, math.pi / 4), True)]


@register("triangle_frame")
def _triangle_frame() -> Outline:
    return [(regular(3, 1.0, -math.pi / 2), False), (regular(3, 0.45, -math.pi / 2), True)]


@register("semicircle")
def _semicircle() -> Outline:
    arc = [(math.cos(math.pi * k / 24), -0.5 + math.sin(math.pi * k / 24)) for k in range(25)]
    return [(scaled(arc, 1.1), False)]


@register("crescent")
def _crescent() -> Outline:
    return [(disc(), False), (disc(0.85, (0.5, -0.1)), True)]


@register("arrow")
def _arrow() -> Outline:
    return [([(-1, -0.25), (0.1, -0.25), (0.1, -0.7), (1, 0), (0.1, 0.7), (0.1, 0.25), (-1, 0.25)], False)]


@register("L_shape")
def _l_shape() -> Outline:
    return [([(-0.7, -1), (-0.2, -1), (-0.2, 0.5), (0.7, 0.5), (0.7, 1), (-0.7, 1)], False)]


@register("T_shape")
def _t_shape() -> Outline:
    return [([(-1, -1), (1, -1), (1, -0.5), (0.25, -0.5), (0.25, 1), (-0.25, 1), (-0.25, -0.5), (-1, -0.5)],
             False)]  # fmt: skip


@register("heart")
def _heart() -> Outline:
    points = []
    for k in range(48):
        t = 2 * math.pi * k / 48
        x = 16 * math.sin(t) ** 3
        y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
        points.append((x / 16, (y + 2) / 16))
    return [(points, False)]


@register("hourglass")
def _hourglass() -> Outline:
    return [([(-0.8, -1), (0.8, -1), (0.08, 0), (0.8, 1), (-0.8, 1), (-0.08, 0)], False)]


@register("chevron")
def _chevron() -> Outline:
    return [([(-1, -0.6), (-0.55, -0.9), (0, -0.2), (0.55, -0.9), (1, -0.6), (0, 0.8)], False)]


@register("H_shape")
def _h_shape() -> Outline:
    return [([(-0.9, -1), (-0.45, -1), (-0.45, -0.22), (0.45, -0.22), (0.45, -1), (0.9, -1), (0.9, 1),
              (0.45, 1), (0.45, 0.22), (-0.45, 0.22), (-0.45, 1), (-0.9, 1)], False)]  # fmt: skip


@register("two_discs")
def _two_discs() -> Outline:
    return [(disc(0.45, (-0.55, 0.0)), False), (disc(0.45, (0.55, 0.0)), False)]


@functools.cache
def outline(name: str) -> Outline:
    """The outline of shape `name`, scaled so that its farthest vertex lies at radius 1."""
    parts = SHAPES[name]()
    reach = max(math.hypot(x, y) for polygon, _ in parts for x, y in polygon)
    return [(scaled(polygon, 1 / reach), hole) for polygon, hole in parts]


@dataclass(frozen=True)
class ShapeStyle:
    """How shapes are drawn (config `finetune.shapes`)."""

    supersample: int = 4
    scale: tuple[float, float] = (0.28, 0.45)
    aspect: tuple[float, float] = (0.75, 1.33)
    noise_std: float = 8.0
    min_contrast: float = 80.0

    @classmethod
    def from_params(cls, params: dict) -> ShapeStyle:
        return cls(
            supersample=int(params.get("supersample", cls.supersample)),
            scale=tuple(params.get("scale", cls.scale)),
            aspect=tuple(params.get("aspect", cls.aspect)),
            noise_std=float(params.get("noise_std", cls.noise_std)),
            min_contrast=float(params.get("min_contrast", cls.min_contrast)),
        )


def check_shape_names(names: Sequence[str], where: str) -> None:
    """Raise ValueError naming `where` for an unknown shape name."""
    for i, name in enumerate(names):
        if name not in SHAPES:
            raise ValueError(f"{where}[{i}]: unknown shape {name!r}; choose from {', '.join(SHAPES)}")


def _colours(rng: np.random.Generator, min_contrast: float) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A background and foreground colour at least `min_contrast` apart (Euclidean, 0-255 RGB)."""
    while True:
        background, foreground = rng.integers(0, 256, size=(2, 3))
        if np.linalg.norm(background - foreground) >= min_contrast:
            return tuple(int(v) for v in background), tuple(int(v) for v in foreground)


def draw_shape(name: str, image_size: int, style: ShapeStyle, rng: np.random.Generator) -> np.ndarray:
    """One (image_size, image_size, 3) uint8 image of shape `name` with random pose, colours and noise."""
    canvas = image_size * style.supersample
    radius = rng.uniform(*style.scale) * canvas
    aspect = math.exp(rng.uniform(math.log(style.aspect[0]), math.log(style.aspect[1])))
    angle = rng.uniform(0, 2 * math.pi)
    # Keep the (unit-radius) outline inside the canvas with a one-pixel margin: shrink a shape too large
    # for it, and place its centre at least one stretched radius from the edges.
    stretch = max(math.sqrt(aspect), 1 / math.sqrt(aspect))
    margin = style.supersample + 1
    radius = min(radius, (canvas / 2 - margin) / stretch)
    reach = radius * stretch
    cx, cy = rng.uniform(reach + margin, canvas - reach - margin, size=2)
    background, foreground = _colours(rng, style.min_contrast)
    cos, sin = math.cos(angle), math.sin(angle)
    sx, sy = radius * math.sqrt(aspect), radius / math.sqrt(aspect)

    def place(polygon: Polygon) -> list[tuple[float, float]]:
        return [(cx + cos * sx * x - sin * sy * y, cy + sin * sx * x + cos * sy * y) for x, y in polygon]

    image = Image.new("RGB", (canvas, canvas), background)
    pen = ImageDraw.Draw(image)
    for polygon, hole in outline(name):
        pen.polygon(place(polygon), fill=background if hole else foreground)
    small = np.asarray(image.resize((image_size, image_size), Image.Resampling.BOX), dtype=np.float32)
    if style.noise_std > 0:
        small = small + rng.normal(0.0, style.noise_std, size=small.shape)
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


SPLITS = {"train": 0, "test": 1}


def class_rng(seed: int, name: str, split: str) -> np.random.Generator:
    """The random stream of one (seed, class, split): independent of the other classes and splits."""
    name_key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.default_rng([stream_seed(seed, "data"), name_key, SPLITS[split]])


def generate_shapes(
    classes: Sequence[str], per_class: dict[str, int], image_size: int, style: ShapeStyle, seed: int
) -> dict[str, np.ndarray]:
    """Images (N, 3, H, W) uint8 and labels (N,) int64 of each split; label i is classes[i].

    `per_class` maps split name (train, test) to images per class. Rows are grouped by class.
    """
    check_shape_names(classes, "classes")
    arrays: dict[str, np.ndarray] = {}
    for split, count in per_class.items():
        images = np.empty((len(classes) * count, 3, image_size, image_size), dtype=np.uint8)
        for label, name in enumerate(classes):
            rng = class_rng(seed, name, split)
            for i in range(count):
                images[label * count + i] = draw_shape(name, image_size, style, rng).transpose(2, 0, 1)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = np.repeat(np.arange(len(classes), dtype=np.int64), count)
    return arrays
