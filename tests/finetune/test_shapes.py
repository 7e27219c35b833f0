"""Shape generator: deterministic per seed, independent per class, classes distinct and inside the image."""

import itertools
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from dlatoms.finetune.data import ImageSet, load_image_set, save_image_set, training_subset
from dlatoms.finetune.shapes import (
    SHAPES,
    ShapeStyle,
    check_shape_names,
    draw_shape,
    generate_shapes,
    outline,
)

STYLE = ShapeStyle()


def test_same_seed_same_images_other_seed_other_images():
    first = generate_shapes(["triangle", "ring"], {"train": 5, "test": 3}, 16, STYLE, seed=7)
    again = generate_shapes(["triangle", "ring"], {"train": 5, "test": 3}, 16, STYLE, seed=7)
    other = generate_shapes(["triangle", "ring"], {"train": 5, "test": 3}, 16, STYLE, seed=8)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    assert not np.array_equal(first["train_images"], other["train_images"])
    assert first["train_images"].shape == (10, 3, 16, 16) and first["train_images"].dtype == np.uint8
    assert first["test_images"].shape == (6, 3, 16, 16)
    assert first["train_labels"].tolist() == [0] * 5 + [1] * 5


def test_a_class_draws_the_same_images_whatever_the_other_classes():
    alone = generate_shapes(["ring"], {"train": 4}, 16, STYLE, seed=3)
    with_others = generate_shapes(["triangle", "ring", "heart"], {"train": 4}, 16, STYLE, seed=3)
    np.testing.assert_array_equal(alone["train_images"], with_others["train_images"][4:8])
    train_and_test = generate_shapes(["ring"], {"train": 4, "test": 2}, 16, STYLE, seed=3)
    np.testing.assert_array_equal(alone["train_images"], train_and_test["train_images"])
    assert not np.array_equal(train_and_test["train_images"][:2], train_and_test["test_images"])


def canonical_mask(name: str, angle: float, size: int = 96) -> np.ndarray:
    """The filled outline at a fixed scale and position, rotated by `angle`, as a boolean mask."""
    image = Image.new("L", (size, size), 0)
    pen = ImageDraw.Draw(image)
    cos, sin = math.cos(angle), math.sin(angle)
    radius = 0.45 * size
    for polygon, hole in outline(name):
        points = [
            (size / 2 + radius * (cos * x - sin * y), size / 2 + radius * (sin * x + cos * y))
            for x, y in polygon
        ]
        pen.polygon(points, fill=0 if hole else 255)
    return np.asarray(image) > 127


def test_classes_are_distinct_under_any_rotation():
    """No two classes overlap almost entirely, however one of them is turned (poses are random).

    The closest pair, pentagon and hexagon, overlaps 0.87: 13% of the area differs, about 40 pixels of a
    shape of radius 10 px, which a network learns (source accuracy 0.99 with hexagon and circle).
    """
    angles = [2 * math.pi * k / 72 for k in range(72)]
    masks = {name: [canonical_mask(name, angle) for angle in angles] for name in SHAPES}
    for first, second in itertools.combinations(SHAPES, 2):
        reference = masks[first][0]
        best = max((reference & turned).sum() / (reference | turned).sum() for turned in masks[second])
        assert best < 0.9, f"{first} and {second} overlap {best:.2f} at their best rotation"


@pytest.mark.parametrize("name", list(SHAPES))
def test_every_shape_stays_inside_the_image(name):
    """With a uniform background and no noise, the border pixels keep the background colour."""
    style = ShapeStyle(scale=(0.45, 0.45), aspect=(0.75, 0.75), noise_std=0.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        image = draw_shape(name, 32, style, rng)
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        assert (border == border[0]).all(), name


def test_classes_are_learnable_from_simple_pixels():
    """A linear classifier on raw pixels beats chance by far on a few classes: the labels carry the shape."""
    from sklearn.linear_model import LogisticRegression

    style = ShapeStyle(noise_std=0.0)
    classes = ["circle", "cross", "ring", "two_discs"]
    data = generate_shapes(classes, {"train": 150, "test": 50}, 16, style, seed=0)

    def features(images):
        # Colour-free: distance of each pixel from the image's border colour (shape mask, roughly).
        images = images.astype(np.float32)
        corner = images[:, :, :1, :1]
        return np.abs(images - corner).sum(1).reshape(len(images), -1)

    model = LogisticRegression(max_iter=2000).fit(features(data["train_images"]), data["train_labels"])
    accuracy = model.score(features(data["test_images"]), data["test_labels"])
    assert accuracy > 0.6


def test_unknown_shape_is_named():
    with pytest.raises(ValueError, match=r"classes\[1\]: unknown shape 'hexagonn'"):
        check_shape_names(["circle", "hexagonn"], "classes")


def test_image_set_round_trip_and_subsets(tmp_path):
    arrays = generate_shapes(["circle", "cross"], {"train": 6, "test": 2}, 8, STYLE, seed=0)
    image_set = ImageSet(**arrays, classes=("circle", "cross"), dataset="shapes")
    save_image_set(image_set, tmp_path / "set.safetensors")
    loaded = load_image_set(tmp_path / "set.safetensors")
    assert loaded.classes == ("circle", "cross") and loaded.dataset == "shapes" and loaded.image_size == 8
    np.testing.assert_array_equal(loaded.train_images, image_set.train_images)
    rows = training_subset(loaded.train_labels, 2, seed=0)
    assert np.bincount(loaded.train_labels[rows]).tolist() == [2, 2]
    assert training_subset(loaded.train_labels, 2, seed=0).tolist() == rows.tolist()
    assert training_subset(loaded.train_labels, 2, seed=1).tolist() != rows.tolist()
    assert sorted(training_subset(loaded.train_labels, 6, seed=5)) == list(range(12))
