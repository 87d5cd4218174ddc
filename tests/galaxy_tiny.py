"""Helpers for the training tests: tiny images, tiny DatasetDicts with the project's schema, tiny ViTs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from hf_galaxy.data.catalogs.trees import GZ1_CLASSES as _GZ1_CLASSES

GZ1_CLASSES = list(_GZ1_CLASSES)

TINY_VIT = "vit-tiny"  # preset of hf_galaxy.models.CONFIG_PRESETS (hidden 32, 2 layers, 32 px, patch 8)


def draw_spiral(size: int = 48, clockwise: bool = True, arms: int = 2) -> Image.Image:
    """A drawn two-armed logarithmic spiral (white on black); ``clockwise`` sets the winding sense.

    The library's GZ1 convention (:mod:`hf_galaxy.data.synthetic`): a "clockwise" spiral is Z-wise, its arms
    followed outward turn *anticlockwise* on the displayed image (y down). Here ``a`` is the
    anticlockwise-positive azimuth on the display (``y = c - r sin a``), so it increases outward.
    """
    img = np.zeros((size, size, 3), dtype=np.uint8)
    c = (size - 1) / 2
    sign = 1.0 if clockwise else -1.0
    for arm in range(arms):
        for t in np.linspace(0.0, 3 * math.pi, 400):
            r = 1.5 * math.exp(0.25 * t)
            if r > c - 1:
                break
            a = sign * t + arm * 2 * math.pi / arms
            x, y = int(round(c + r * math.cos(a))), int(round(c - r * math.sin(a)))
            img[y, x] = (255, 255, 255)
    img[int(c) - 1 : int(c) + 2, int(c) - 1 : int(c) + 2] = 255
    return Image.fromarray(img)


def class_image(label: int, size: int, rng: np.random.Generator) -> Image.Image:
    """An easily separable image per class (distinct colour and shape), with noise."""
    colours = [(220, 160, 60), (60, 120, 230), (60, 230, 120), (230, 60, 200), (240, 240, 240), (200, 40, 40)]
    arr = rng.normal(15, 6, (size, size, 3)).clip(0, 255)
    yy, xx = np.mgrid[:size, :size]
    c = size / 2
    r = np.hypot(yy - c, xx - c)
    mask = r < size * (0.15 + 0.05 * (label % 3))
    if label == 3:
        mask = (np.abs(yy - c) < 2) & (np.abs(xx - c) < size * 0.4)
    arr[mask] = colours[label]
    return Image.fromarray(arr.astype(np.uint8))


def tiny_dataset_dict(n_per_class: int = 8, size: int = 32, seed: int = 0, with_votes: bool = True):
    """A ``DatasetDict`` with the project schema (image, label ClassLabel, votes, id) and train/validation/test."""
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Sequence, Value
    from datasets import Image as ImageFeature

    rng = np.random.default_rng(seed)
    feats = {"image": ImageFeature(), "label": ClassLabel(names=GZ1_CLASSES), "id": Value("string")}
    if with_votes:
        feats["votes"] = Sequence(Value("float32"))
    features = Features(feats)
    splits = {}
    for split, mult in (("train", 1.0), ("validation", 0.5), ("test", 0.5)):
        rows = {k: [] for k in feats}
        for label in range(len(GZ1_CLASSES)):
            for i in range(max(1, int(n_per_class * mult))):
                rows["image"].append(class_image(label, size, rng))
                rows["label"].append(label)
                rows["id"].append(f"{split}-{label}-{i}")
                if with_votes:
                    v = rng.dirichlet(np.ones(len(GZ1_CLASSES)) * 0.3) * 0.4
                    v[label] += 0.6
                    rows["votes"].append((v / v.sum()).astype(np.float32).tolist())
        splits[split] = Dataset.from_dict(rows, features=features)
    return DatasetDict(splits)


def save_tiny_dataset(path: Path, **kwargs) -> Path:
    """Save :func:`tiny_dataset_dict` with ``save_to_disk`` and return the directory."""
    tiny_dataset_dict(**kwargs).save_to_disk(str(path))
    return path


RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def load_recipe(name: str):
    """Import ``recipes/<name>.py`` as a module (the recipes are scripts, not a package)."""
    import importlib.util
    import sys

    mod_name = f"hf_galaxy_recipe_{name}"
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    spec = importlib.util.spec_from_file_location(mod_name, RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module  # dataclasses with postponed annotations look their module up
    spec.loader.exec_module(module)
    return module
