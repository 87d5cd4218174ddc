"""Galaxy-aware image transforms: rotation, crops, scale jitter and chirality-aware flips.

A galaxy's class does not change under rotation, so rotation by *any* angle is the main
augmentation. A mirror flip turns a clockwise spiral into an anticlockwise one: flips are only
applied together with a label (and vote-fraction) swap between the chiral classes, and are turned
off when the class names hold chirality that cannot be paired.

Normalisation uses the model's image processor settings (size, rescale factor, mean, std,
resampling), so the on-the-fly transforms give the same tensors as ``image_processor(images)`` on
unaugmented inputs::

    train_ds = dsd["train"].with_transform(GalaxyTransform(processor, class_names, train=True))
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

# (mirror-image partner tokens) used to pair chiral class names, e.g. clockwise_spiral <-> anticlockwise_spiral.
_CHIRAL_TOKEN_PAIRS: tuple[tuple[str, str], ...] = (
    ("anticlockwise", "clockwise"),
    ("counterclockwise", "clockwise"),
    ("acw", "cw"),
    ("s_wise", "z_wise"),
    ("swise", "zwise"),
)
_CHIRAL_TOKENS = {tok for pair in _CHIRAL_TOKEN_PAIRS for tok in pair}


def _tokens(name: str) -> list[str]:
    return name.lower().replace("-", "_").split("_")


def _is_chiral(name: str) -> bool:
    low = name.lower()
    return (
        any(tok in _CHIRAL_TOKENS for tok in _tokens(name)) or "clockwise" in low or "wise" in _tokens(name)
    )


def _partner(name: str) -> str | None:
    """The mirror-image class name of ``name`` (same spelling, chirality token swapped), or None."""
    toks = _tokens(name)
    joined = "_".join(toks)
    for a, b in _CHIRAL_TOKEN_PAIRS:
        for src, dst in ((a, b), (b, a)):
            if "_" in src:  # multi-token word like s_wise
                if f"_{src}_" in f"_{joined}_":
                    return f"_{joined}_".replace(f"_{src}_", f"_{dst}_").strip("_")
            elif src in toks:
                return "_".join(dst if t == src else t for t in toks)
    return None


def chirality_permutation(class_names: Sequence[str]) -> list[int] | None:
    """Label permutation applied by a mirror flip.

    Returns ``perm`` with ``perm[i]`` the class index a mirrored image of class ``i`` belongs to
    (the identity when no class holds chirality), or ``None`` when some class holds chirality but its
    mirror-image partner is not among ``class_names`` (flips must then be off).
    """
    norm = ["_".join(_tokens(n)) for n in class_names]
    index = {n: i for i, n in enumerate(norm)}
    perm = list(range(len(class_names)))
    for i, name in enumerate(norm):
        if not _is_chiral(name):
            continue
        partner = _partner(name)
        if partner is None or partner not in index or partner == name:
            return None
        perm[i] = index[partner]
    return perm


@dataclass
class AugmentConfig:
    """Training augmentation settings (all applied on the fly, per image).

    rotate: random rotation by any angle in [0, 360).
    rotation_fill: ``"black"`` (rotate, then crop the largest centred square with no black corners) or
        ``"reflect"`` (reflect-pad, rotate, crop back to the original size: the full field is kept).
    crop_scale: (min, max) fraction of the side kept by a random crop at a random position.
    scale_jitter: the crop side is further multiplied by a factor in [1 - j, 1 + j] (zoom in/out).
    flip: random mirror flip, only with a chirality-aware label swap (off when the swap is impossible).
    """

    rotate: bool = True
    rotation_fill: str = "black"
    crop_scale: tuple[float, float] = (0.85, 1.0)
    scale_jitter: float = 0.1
    flip: bool = True

    def __post_init__(self) -> None:
        if self.rotation_fill not in ("black", "reflect"):
            raise ValueError(f"rotation_fill must be 'black' or 'reflect', got {self.rotation_fill!r}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}")
        if not 0 <= self.scale_jitter < 1:
            raise ValueError(f"scale_jitter must be in [0, 1), got {self.scale_jitter}")


def _uniform(lo: float, hi: float) -> float:
    # torch's RNG: seeded by Trainer's set_seed and re-seeded per DataLoader worker.
    return lo + (hi - lo) * float(torch.rand(()))


def rotate_no_corners(image: Image.Image, angle: float, fill: str = "black") -> Image.Image:
    """Rotate ``image`` by ``angle`` degrees (counter-clockwise) so that no empty corner shows.

    ``fill="black"``: rotate in place and crop the largest centred axis-aligned square that lies inside
    the rotated frame (side ``s / (|cos| + |sin|)``). ``fill="reflect"``: reflect-pad first, rotate,
    crop back to the original size.
    """
    w, h = image.size
    resample = Image.Resampling.BILINEAR
    if fill == "reflect":
        pad = int(math.ceil(max(w, h) * (math.sqrt(2) - 1) / 2)) + 2
        arr = np.asarray(image)
        pad_width = ((pad, pad), (pad, pad)) + (((0, 0),) if arr.ndim == 3 else ())
        big = Image.fromarray(np.pad(arr, pad_width, mode="reflect"))
        rot = big.rotate(angle, resample=resample)
        return rot.crop((pad, pad, pad + w, pad + h))
    rot = image.rotate(angle, resample=resample, fillcolor=0)
    rad = math.radians(angle)
    factor = abs(math.cos(rad)) + abs(math.sin(rad))
    side_w, side_h = w / factor, h / factor
    left, top = (w - side_w) / 2, (h - side_h) / 2
    box = (math.ceil(left), math.ceil(top), math.floor(left + side_w), math.floor(top + side_h))
    return rot.crop(box)


class GalaxyAugment:
    """Random rotation, crop, scale jitter and chirality-aware flip of one galaxy image."""

    def __init__(self, class_names: Sequence[str], config: AugmentConfig | None = None) -> None:
        self.config = config or AugmentConfig()
        self.class_names = list(class_names)
        self.permutation: list[int] | None = None
        self.flip = False
        if self.config.flip:
            self.permutation = chirality_permutation(self.class_names)
            if self.permutation is None:
                logger.warning(
                    "Flip augmentation turned off: the classes %s hold chirality but the mirror-image "
                    "pairs cannot be matched, so a flip would mislabel spirals.",
                    self.class_names,
                )
            else:
                self.flip = True

    def __call__(
        self, image: Image.Image, label: int | None = None, votes: Sequence[float] | None = None
    ) -> tuple[Image.Image, int | None, np.ndarray | None]:
        """Augment one image; returns ``(image, label, votes)`` with label/votes swapped on a flip."""
        cfg = self.config
        votes_arr = None if votes is None else np.asarray(votes, dtype=np.float32)
        if cfg.rotate:
            image = rotate_no_corners(image, _uniform(0.0, 360.0), cfg.rotation_fill)
        w, h = image.size
        frac = _uniform(*cfg.crop_scale) * _uniform(1 - cfg.scale_jitter, 1 + cfg.scale_jitter)
        frac = min(frac, 1.0)
        cw, ch = max(1, round(w * frac)), max(1, round(h * frac))
        left = round(_uniform(0, w - cw))
        top = round(_uniform(0, h - ch))
        if (cw, ch) != (w, h):
            image = image.crop((left, top, left + cw, top + ch))
        if self.flip and float(torch.rand(())) < 0.5:
            image, label, votes_arr = self.mirror(image, label, votes_arr)
        return image, label, votes_arr

    def mirror(
        self, image: Image.Image, label: int | None = None, votes: np.ndarray | None = None
    ) -> tuple[Image.Image, int | None, np.ndarray | None]:
        """Mirror ``image`` left-right and swap the chiral classes' label and vote fractions."""
        if self.permutation is None:
            raise ValueError(f"cannot mirror: chiral classes in {self.class_names} cannot be paired")
        perm = self.permutation
        image = ImageOps.mirror(image)
        if label is not None and label >= 0:
            label = perm[label]
        if votes is not None:
            votes = np.asarray(votes, dtype=np.float32)[perm]
        return image, label, votes


@dataclass
class ProcessorSpec:
    """The normalisation settings read from an image processor."""

    height: int
    width: int
    mean: np.ndarray
    std: np.ndarray
    rescale_factor: float
    do_rescale: bool
    do_normalize: bool
    resample: int

    @classmethod
    def from_processor(cls, image_processor: Any) -> ProcessorSpec:
        """Read size, mean/std, rescale factor and resampling from a transformers image processor."""
        size = image_processor.size
        get = size.get if hasattr(size, "get") else lambda k, d=None: getattr(size, k, d)
        height, width = get("height"), get("width")
        if height is None or width is None:
            edge = get("shortest_edge") or get("longest_edge")
            if edge is None:
                raise ValueError(f"image processor size {size!r} has no height/width or shortest_edge")
            height = width = int(edge)
        mean = np.asarray(image_processor.image_mean or (0.0, 0.0, 0.0), dtype=np.float32)
        std = np.asarray(image_processor.image_std or (1.0, 1.0, 1.0), dtype=np.float32)
        resample = getattr(image_processor, "resample", None)
        return cls(
            height=int(height),
            width=int(width),
            mean=mean.reshape(3, 1, 1),
            std=std.reshape(3, 1, 1),
            rescale_factor=float(getattr(image_processor, "rescale_factor", 1 / 255)),
            do_rescale=bool(getattr(image_processor, "do_rescale", True)),
            do_normalize=bool(getattr(image_processor, "do_normalize", True)),
            resample=int(resample) if resample is not None else int(Image.Resampling.BILINEAR),
        )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Resize, rescale and normalise one PIL image to a float32 CHW tensor."""
        image = image.convert("RGB")
        if image.size != (self.width, self.height):
            image = image.resize((self.width, self.height), resample=self.resample)
        arr = np.asarray(image, dtype=np.float32).transpose(2, 0, 1)
        if self.do_rescale:
            arr = arr * np.float32(self.rescale_factor)
        if self.do_normalize:
            arr = (arr - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


class GalaxyTransform:
    """Batch transform for ``Dataset.with_transform``: images -> ``pixel_values``, label -> ``labels``.

    Keeps ``votes`` (float vote fractions; one-hot of the label when the dataset has none) and ``id``. With ``train=True`` each image goes
    through :class:`GalaxyAugment` first (flips swap labels/votes of the chiral classes).
    """

    def __init__(
        self,
        image_processor: Any,
        class_names: Sequence[str],
        *,
        train: bool = False,
        augment: AugmentConfig | None = None,
        image_column: str = "image",
        label_column: str = "label",
    ) -> None:
        self.spec = ProcessorSpec.from_processor(image_processor)
        self.n_classes = len(class_names)
        self.augment = GalaxyAugment(class_names, augment) if train else None
        self.image_column = image_column
        self.label_column = label_column

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        images = batch[self.image_column]
        n = len(images)
        labels = batch.get(self.label_column, [None] * n)
        votes = batch.get("votes", [None] * n)
        out: dict[str, list[Any]] = {"pixel_values": [], "labels": [], "votes": []}
        for img, lab, vot in zip(images, labels, votes):
            if self.augment is not None:
                img, lab, vot = self.augment(img, lab, vot)
            out["pixel_values"].append(self.spec(img))
            out["labels"].append(-100 if lab is None else int(lab))
            if vot is None and lab is not None and int(lab) >= 0:
                vot = np.eye(self.n_classes, dtype=np.float32)[int(lab)]  # no votes: one-hot stands in
            out["votes"].append(None if vot is None else torch.as_tensor(np.asarray(vot, dtype=np.float32)))
        if all(v is None for v in out["votes"]):
            del out["votes"]
        if all(lab == -100 for lab in out["labels"]):
            del out["labels"]
        if "id" in batch:
            out["id"] = list(batch["id"])
        return out


def rotate_pixel_values(pixel_values: torch.Tensor, angle: int) -> torch.Tensor:
    """Rotate a batch of CHW tensors by a multiple of 90 degrees (exact, used for test-time augmentation)."""
    if angle % 90 != 0:
        raise ValueError(f"TTA rotation angles must be multiples of 90 degrees, got {angle}")
    return torch.rot90(pixel_values, k=(angle // 90) % 4, dims=(-2, -1))
