"""Galaxy-aware augmentation: rotation without corners, crops, chirality-aware flips, normalisation."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from hf_galaxy.data.synthetic import render_galaxy, sample_galaxy_params
from hf_galaxy.data.transforms import (
    AugmentConfig,
    GalaxyAugment,
    GalaxyTransform,
    ProcessorSpec,
    chirality_permutation,
    rotate_no_corners,
    rotate_pixel_values,
    zoom_crop,
)
from hf_galaxy.models import default_image_processor
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


def _rendered(cls: str, params: dict, size: int = 64) -> Image.Image:
    """``render_galaxy`` bands (g, r, i) as an RGB image (i, r, g -> R, G, B through a Lupton stretch)."""
    from astropy.visualization import make_lupton_rgb

    bands = render_galaxy(cls, params, size) + np.float32(0.01)  # no all-zero pixels (0/0 in the stretch)
    return Image.fromarray(make_lupton_rgb(bands[2], bands[1], bands[0], minimum=0.0, stretch=5.0, Q=8.0))


def _winding(gray: np.ndarray, radii: np.ndarray) -> float:
    """Mean slope of the two-armed pattern's azimuth (clockwise-positive, y down) with radius."""
    size = gray.shape[0]
    c = (size - 1) / 2
    y, x = np.mgrid[0:size, 0:size]
    r, phi = np.hypot(x - c, y - c), np.arctan2(y - c, x - c)
    phase = [
        -np.angle((gray[ring] * np.exp(-2j * phi[ring])).sum())
        for ring in ((r >= r0 - 1.0) & (r < r0 + 1.0) for r0 in radii)
    ]
    return float(np.diff(np.unwrap(np.array(phase))).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mirror_of_rendered_clockwise_spiral_is_the_anticlockwise_rendering(seed):
    cw, acw = GZ1_CLASSES.index("clockwise_spiral"), GZ1_CLASSES.index("anticlockwise_spiral")
    params = sample_galaxy_params("clockwise_spiral", np.random.default_rng(seed), clarity=1.0)
    img, acw_img = _rendered("clockwise_spiral", params), _rendered("anticlockwise_spiral", params)
    assert np.abs(np.asarray(img, dtype=int) - np.asarray(acw_img, dtype=int)).max() > 20  # they differ
    votes = np.array([0.05, 0.7, 0.1, 0.05, 0.05, 0.05], dtype=np.float32)
    aug = GalaxyAugment(GZ1_CLASSES, AugmentConfig(rotate=False, crop_scale=(1.0, 1.0), scale_jitter=0.0))
    flipped, label, new_votes = aug.mirror(img, cw, votes)
    np.testing.assert_allclose(np.asarray(flipped, dtype=int), np.asarray(acw_img, dtype=int), atol=1)
    assert label == acw
    assert new_votes[acw] == pytest.approx(0.7) and new_votes[cw] == pytest.approx(0.1)
    np.testing.assert_allclose(np.delete(new_votes, [cw, acw]), np.delete(votes, [cw, acw]))
    # and mirroring twice gives back the original label and votes
    _, label2, votes2 = aug.mirror(flipped, label, new_votes)
    assert label2 == cw and np.allclose(votes2, votes)


def test_draw_spiral_winds_like_the_library_convention():
    # GZ1 clockwise = Z-wise (hf_galaxy.data.synthetic): followed outward, the arms turn anticlockwise on the
    # displayed image, so the clockwise-positive azimuth decreases with radius.
    params = sample_galaxy_params("clockwise_spiral", np.random.default_rng(0), clarity=1.0)
    params.update(q=1.0, arms=2)
    rendered = render_galaxy("clockwise_spiral", params, 96).mean(axis=0)
    r_eff = params["r_eff"] * 96 / 424
    assert _winding(rendered, np.linspace(0.8 * r_eff, 2.2 * r_eff, 10)) < 0
    radii = np.linspace(8, 20, 7)
    assert _winding(np.asarray(draw_spiral(48, clockwise=True).convert("L"), dtype=float), radii) < 0
    assert _winding(np.asarray(draw_spiral(48, clockwise=False).convert("L"), dtype=float), radii) > 0


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
    with caplog.at_level(logging.WARNING, logger="hf_galaxy.data.transforms"):
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
    with pytest.raises(ValueError, match="crop_scale"):
        AugmentConfig(crop_scale=(1.2, 1.1))


def test_normalisation_matches_image_processor():
    processor = default_image_processor("vit", 32, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.25, 0.3])
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (50, 50, 3), dtype=np.uint8))
    ours = ProcessorSpec.from_processor(processor)(img)
    theirs = processor(img, return_tensors="pt")["pixel_values"][0]
    assert ours.shape == theirs.shape == (3, 32, 32)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=1e-4)


def _processors():
    from transformers import ConvNextImageProcessorPil, DeiTImageProcessorPil, ViTImageProcessorPil

    return {
        "vit": ViTImageProcessorPil(),  # size 224x224, no crop
        "deit": DeiTImageProcessorPil(),  # resize 256x256, centre crop 224x224
        # ConvNeXt below 384 px: resize to 224 / crop_pct = 256, then crop 224
        "convnext-224": ConvNextImageProcessorPil(size={"shortest_edge": 224}),
        "convnext-384": ConvNextImageProcessorPil(),  # 384, no crop
    }


@pytest.mark.parametrize("name", ["vit", "deit", "convnext-224", "convnext-384"])
def test_geometry_and_normalisation_match_the_processor(name):
    processor = _processors()[name]
    spec = ProcessorSpec.from_processor(processor)
    rng = np.random.default_rng(0)
    square = Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8))
    theirs = processor(square, return_tensors="pt")["pixel_values"][0]
    ours = spec(square)
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    # a non-square cutout is centre-cropped to a square first (as at dataset preparation), then processed
    wide = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    expected = processor(wide.crop((50, 0, 350, 300)), return_tensors="pt")["pixel_values"][0]
    torch.testing.assert_close(spec(wide), expected, atol=1e-5, rtol=1e-5)
    if name == "deit":
        assert spec(wide).shape == (3, 224, 224) and (spec.resize_height, spec.resize_width) == (256, 256)


def test_convnext_crop_pct_then_crop_size():
    from transformers import ConvNextImageProcessorPil

    img = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    both = ConvNextImageProcessorPil(size={"shortest_edge": 48}, do_center_crop=True, crop_size=40)
    torch.testing.assert_close(
        ProcessorSpec.from_processor(both)(img), both(img, return_tensors="pt")["pixel_values"][0]
    )
    too_big = ConvNextImageProcessorPil(size={"shortest_edge": 48}, do_center_crop=True, crop_size=50)
    with pytest.raises(ValueError, match="crop_size 50x50 after the crop_pct crop to 48x48"):
        ProcessorSpec.from_processor(too_big)


def _mean_kept_side(config: AugmentConfig, draws: int = 300) -> float:
    torch.manual_seed(0)
    aug = GalaxyAugment(["a", "b"], config)
    img = Image.new("RGB", (64, 64), (255, 255, 255))
    return float(np.mean([aug(img)[0].size[0] / 64 for _ in range(draws)]))


def test_default_augmentation_shows_the_full_field_on_average():
    # evaluation shows the whole cutout: training must not zoom in on average (galaxies ~1.37x larger before)
    cfg = AugmentConfig(flip=False)
    assert cfg.rotation_fill == "reflect"
    assert abs(_mean_kept_side(cfg) - 1.0) < 0.03
    # the black-corner crop is still available, and it is the biased one
    assert _mean_kept_side(AugmentConfig(flip=False, rotation_fill="black", crop_scale=(0.85, 1.0))) < 0.8


def test_zoom_out_pads_by_reflection_and_keeps_the_whole_image():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    for _ in range(10):
        out = zoom_crop(img, 1.2)
        assert out.size == (48, 48)
        arr, src = np.asarray(out), np.asarray(img)
        hits = [
            (y, x) for y in range(9) for x in range(9) if np.array_equal(arr[y : y + 40, x : x + 40], src)
        ]
        assert hits, "the zoomed-out window must contain the whole original image"


def test_reflect_rotation_keeps_the_centre_unmirrored():
    # only the corners outside the inscribed circle are reflected sky: the centred galaxy is rotated, not mirrored
    img = _rendered("clockwise_spiral", sample_galaxy_params("clockwise_spiral", np.random.default_rng(0)))
    plain = np.asarray(img.rotate(33.0, resample=Image.Resampling.BILINEAR), dtype=int)
    ours = np.asarray(rotate_no_corners(img, 33.0), dtype=int)
    y, x = np.mgrid[0:64, 0:64]
    inside = np.hypot(x - 31.5, y - 31.5) < 30
    assert np.abs(ours - plain)[inside].max() <= 1


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
