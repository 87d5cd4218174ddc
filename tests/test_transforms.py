"""Galaxy-aware augmentation: rotation without corners, crops, chirality-aware flips, normalisation."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from hf_galaxy.models import default_image_processor
from hf_galaxy.transforms import (
    AugmentConfig,
    GalaxyAugment,
    GalaxyTransform,
    ProcessorSpec,
    chirality_permutation,
    rotate_no_corners,
    rotate_pixel_values,
)
from tests.galaxy_tiny import GZ1_CLASSES, draw_spiral


def _overlap(a: Image.Image, b: Image.Image) -> float:
    """Intersection over union of the bright pixels of two drawings."""
    x, y = np.asarray(a.convert("L")) > 128, np.asarray(b.convert("L")) > 128
    return float((x & y).sum() / (x | y).sum())


def test_gz1_chirality_pairs_are_swapped():
    perm = chirality_permutation(GZ1_CLASSES)
    assert perm == [0, 2, 1, 3, 4, 5]
    assert chirality_permutation(["elliptical", "spiral", "edge_on"]) == [0, 1, 2]
    assert chirality_permutation(["spiral_cw", "spiral_acw", "other"]) == [1, 0, 2]
    # chirality present but the mirror partner missing: flips must be off
    assert chirality_permutation(["elliptical", "clockwise_spiral"]) is None


def test_flip_turns_clockwise_spiral_into_anticlockwise_with_swapped_votes():
    cw, acw = GZ1_CLASSES.index("clockwise_spiral"), GZ1_CLASSES.index("anticlockwise_spiral")
    img = draw_spiral(48, clockwise=True)
    acw_drawing = draw_spiral(48, clockwise=False)
    assert _overlap(img, acw_drawing) < 0.3  # the two drawings differ
    votes = np.array([0.05, 0.7, 0.1, 0.05, 0.05, 0.05], dtype=np.float32)
    aug = GalaxyAugment(GZ1_CLASSES, AugmentConfig(rotate=False, crop_scale=(1.0, 1.0), scale_jitter=0.0))
    flipped, label, new_votes = aug.mirror(img, cw, votes)
    assert label == acw
    assert new_votes[acw] == pytest.approx(0.7) and new_votes[cw] == pytest.approx(0.1)
    assert new_votes[0] == pytest.approx(0.05) and new_votes.sum() == pytest.approx(votes.sum())
    np.testing.assert_array_equal(np.asarray(flipped), np.asarray(img)[:, ::-1])
    # the mirrored drawing is the anticlockwise spiral (up to pixel rounding)
    assert _overlap(flipped, acw_drawing) > 0.95
    # and mirroring twice gives back the original label and votes
    _, label2, votes2 = aug.mirror(flipped, label, new_votes)
    assert label2 == cw and np.allclose(votes2, votes)


def test_random_flips_keep_label_consistent_with_image():
    torch.manual_seed(0)
    cw = GZ1_CLASSES.index("clockwise_spiral")
    img = draw_spiral(48, clockwise=True)
    aug = GalaxyAugment(GZ1_CLASSES, AugmentConfig(rotate=False, crop_scale=(1.0, 1.0), scale_jitter=0.0))
    seen = set()
    for _ in range(30):
        out, label, votes = aug(img, cw, np.eye(6, dtype=np.float32)[cw])
        mirrored = np.array_equal(np.asarray(out), np.asarray(img)[:, ::-1])
        assert label == (2 if mirrored else 1)
        assert votes.argmax() == label
        seen.add(label)
    assert seen == {1, 2}


def test_flips_off_when_chirality_cannot_be_swapped(caplog):
    names = ["elliptical", "clockwise_spiral", "other"]
    with caplog.at_level(logging.WARNING, logger="hf_galaxy.transforms"):
        aug = GalaxyAugment(names, AugmentConfig(rotate=False, crop_scale=(1.0, 1.0), scale_jitter=0.0))
    assert not aug.flip and "Flip augmentation turned off" in caplog.text
    img = draw_spiral(32)
    for _ in range(20):
        out, label, _ = aug(img, 1, None)
        assert label == 1
        np.testing.assert_array_equal(np.asarray(out), np.asarray(img))
    with pytest.raises(ValueError, match="cannot mirror"):
        aug.mirror(img, 1)


@pytest.mark.parametrize("angle", [17.0, 45.0, 90.0, 133.0, 260.0])
def test_rotation_black_fill_shows_no_corners(angle):
    white = Image.new("RGB", (64, 64), (255, 255, 255))
    out = rotate_no_corners(white, angle, "black")
    arr = np.asarray(out)
    assert arr.min() > 200, f"black corners visible after rotating by {angle}"
    expected = 64 / (abs(np.cos(np.radians(angle))) + abs(np.sin(np.radians(angle))))
    assert abs(out.size[0] - expected) <= 2


def test_rotation_reflect_keeps_size_and_full_field():
    white = Image.new("RGB", (40, 40), (255, 255, 255))
    out = rotate_no_corners(white, 30.0, "reflect")
    assert out.size == (40, 40) and np.asarray(out).min() > 200
    with pytest.raises(ValueError, match="rotation_fill"):
        AugmentConfig(rotation_fill="zero")
    with pytest.raises(ValueError, match="crop_scale"):
        AugmentConfig(crop_scale=(0.0, 1.0))


def test_normalisation_matches_image_processor():
    processor = default_image_processor("vit", 32, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.25, 0.3])
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (50, 50, 3), dtype=np.uint8))
    ours = ProcessorSpec.from_processor(processor)(img)
    theirs = processor(img, return_tensors="pt")["pixel_values"][0]
    assert ours.shape == theirs.shape == (3, 32, 32)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def test_batch_transform_outputs_and_one_hot_votes():
    processor = default_image_processor("vit", 32)
    imgs = [draw_spiral(48), draw_spiral(40, clockwise=False)]
    train_tf = GalaxyTransform(processor, GZ1_CLASSES, train=True)
    out = train_tf({"image": imgs, "label": [1, 2], "id": ["a", "b"]})
    assert [t.shape for t in out["pixel_values"]] == [(3, 32, 32)] * 2
    assert set(out["labels"]) <= {1, 2} and out["id"] == ["a", "b"]
    # no votes column: one-hot votes stand in, aligned with the (possibly swapped) label
    for lab, v in zip(out["labels"], out["votes"]):
        assert int(v.argmax()) == lab and float(v.sum()) == 1.0
    eval_tf = GalaxyTransform(processor, GZ1_CLASSES, train=False)
    a, b = eval_tf({"image": imgs, "label": [1, 2]}), eval_tf({"image": imgs, "label": [1, 2]})
    torch.testing.assert_close(a["pixel_values"][0], b["pixel_values"][0])
    assert a["labels"] == [1, 2]
    unlabelled = eval_tf({"image": imgs})
    assert "labels" not in unlabelled and "votes" not in unlabelled


def test_rotate_pixel_values_for_tta():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    torch.testing.assert_close(rotate_pixel_values(x, 90), torch.rot90(x, 1, (-2, -1)))
    torch.testing.assert_close(rotate_pixel_values(x, 360), x)
    with pytest.raises(ValueError, match="multiples of 90"):
        rotate_pixel_values(x, 45)
