"""Galaxy-aware image transforms: rotation, crops, scale jitter and chirality-aware flips, for classification
(:class:`GalaxyTransform`) and detection (:class:`DetectionTransform`, boxes follow the image).

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
    rotation_fill: ``"reflect"`` (default: reflect-pad, rotate, crop back to the original size, so the
        full field is kept; only the corners beyond the inscribed circle are mirrored sky, the centred
        target galaxy is not mirrored, so its chirality is untouched) or ``"black"`` (rotate, then crop the
        largest centred square with no black corners: keeps ``1 / (|cos| + |sin|)`` of the side, ~0.79 on
        average, so training images then show galaxies larger than evaluation images do).
    crop_scale: (min, max) fraction of the side kept by a random crop at a random position; a fraction
        above 1 zooms out (the image is padded, by reflection, then cropped). The default (0.9, 1.1) is
        centred on 1, so on average training images show the same field (and galaxy size) as the
        unaugmented evaluation images. With ``rotation_fill="black"`` fractions above 1 are clipped to 1.
    scale_jitter: the side fraction is further multiplied by a factor in [1 - j, 1 + j] (mean 1).
    flip: random mirror flip, only with a chirality-aware label swap (off when the swap is impossible).
    """

    rotate: bool = True
    rotation_fill: str = "reflect"
    crop_scale: tuple[float, float] = (0.9, 1.1)
    scale_jitter: float = 0.1
    flip: bool = True

    def __post_init__(self) -> None:
        if self.rotation_fill not in ("black", "reflect"):
            raise ValueError(f"rotation_fill must be 'black' or 'reflect', got {self.rotation_fill!r}")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 2:
            raise ValueError(f"crop_scale must satisfy 0 < min <= max <= 2, got {self.crop_scale}")
        if not 0 <= self.scale_jitter < 1:
            raise ValueError(f"scale_jitter must be in [0, 1), got {self.scale_jitter}")


def _uniform(lo: float, hi: float) -> float:
    # torch's RNG: seeded by Trainer's set_seed and re-seeded per DataLoader worker.
    return lo + (hi - lo) * float(torch.rand(()))


def rotate_no_corners(image: Image.Image, angle: float, fill: str = "reflect") -> Image.Image:
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


def zoom_crop(image: Image.Image, frac: float) -> Image.Image:
    """A random-position crop whose side is ``frac`` times the image side.

    ``frac < 1`` zooms in (crop inside the image); ``frac > 1`` zooms out: the image is reflect-padded and
    a window holding the whole image at a random offset is cropped.
    """
    w, h = image.size
    cw, ch = max(1, round(w * frac)), max(1, round(h * frac))
    if (cw, ch) == (w, h):
        return image
    if cw <= w and ch <= h:
        left, top = round(_uniform(0, w - cw)), round(_uniform(0, h - ch))
        return image.crop((left, top, left + cw, top + ch))
    px, py = max(0, cw - w), max(0, ch - h)
    arr = np.asarray(image)
    pad_width = ((py, py), (px, px)) + (((0, 0),) if arr.ndim == 3 else ())
    big = Image.fromarray(np.pad(arr, pad_width, mode="reflect"))
    # the original occupies [px, px + w) of the padded image; the window starts up to px before it
    left = px - round(_uniform(0, px)) + (round(_uniform(0, w - cw)) if cw < w else 0)
    top = py - round(_uniform(0, py)) + (round(_uniform(0, h - ch)) if ch < h else 0)
    return big.crop((left, top, left + cw, top + ch))


def flip_permutation(names: Sequence[str]) -> list[int] | None:
    """:func:`chirality_permutation` for a flip augmentation: None (flips off, with a logged notice) when the
    names hold chirality whose mirror-image pairs cannot be matched, since a flip would mislabel spirals."""
    permutation = chirality_permutation(names)
    if permutation is None:
        logger.warning(
            "Flip augmentation turned off: the classes %s hold chirality but the mirror-image pairs cannot "
            "be matched, so a flip would mislabel spirals.",
            list(names),
        )
    return permutation


class GalaxyAugment:
    """Random rotation, crop, scale jitter and chirality-aware flip of one galaxy image."""

    def __init__(self, class_names: Sequence[str], config: AugmentConfig | None = None) -> None:
        self.config = config or AugmentConfig()
        self.class_names = list(class_names)
        self.permutation = flip_permutation(self.class_names) if self.config.flip else None
        self.flip = self.permutation is not None

    def __call__(
        self, image: Image.Image, label: int | None = None, votes: Sequence[float] | None = None
    ) -> tuple[Image.Image, int | None, np.ndarray | None]:
        """Augment one image; returns ``(image, label, votes)`` with label/votes swapped on a flip."""
        cfg = self.config
        votes_arr = None if votes is None else np.asarray(votes, dtype=np.float32)
        if cfg.rotate:
            image = rotate_no_corners(image, _uniform(0.0, 360.0), cfg.rotation_fill)
        frac = _uniform(*cfg.crop_scale) * _uniform(1 - cfg.scale_jitter, 1 + cfg.scale_jitter)
        if cfg.rotation_fill == "black":
            frac = min(frac, 1.0)
        image = zoom_crop(image, frac)
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


def center_square(image: Image.Image) -> Image.Image:
    """Centre-crop ``image`` to a square of side ``min(width, height)`` (cutouts are centred on the galaxy).

    The same crop as :func:`hf_galaxy.data.dataset.load_galaxy_dataset` applies at preparation (``image_size``).
    """
    w, h = image.size
    if w == h:
        return image
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return image.crop((left, top, left + s, top + s))


def _size_get(size: Any, key: str) -> Any:
    return size.get(key) if hasattr(size, "get") else getattr(size, key, None)


@dataclass
class ProcessorSpec:
    """The preprocessing settings read from an image processor.

    ``height``/``width`` are the output size. The geometry is the processor's own for a square input: resize
    to ``resize_height`` x ``resize_width`` (``size``; ``shortest_edge`` / ``crop_pct`` rules included), then
    centre-crop to ``height`` x ``width`` (``crop_size`` when ``do_center_crop``). A non-square input is first
    centre-cropped to a square (:func:`center_square`), as the dataset preparation does.
    """

    height: int
    width: int
    mean: np.ndarray
    std: np.ndarray
    rescale_factor: float
    do_rescale: bool
    do_normalize: bool
    resample: int
    resize_height: int | None = None
    resize_width: int | None = None

    def __post_init__(self) -> None:
        if self.resize_height is None:
            self.resize_height = self.height
        if self.resize_width is None:
            self.resize_width = self.width

    def key(self) -> tuple:
        """A hashable summary: two specs with the same key give the same tensors for the same image."""
        return (
            self.height,
            self.width,
            self.resize_height,  # the same output size can hide a different resize-then-crop
            self.resize_width,
            tuple(np.asarray(self.mean).ravel().tolist()),
            tuple(np.asarray(self.std).ravel().tolist()),
            float(self.rescale_factor),
            bool(self.do_rescale),
            bool(self.do_normalize),
            int(self.resample),
        )

    @classmethod
    def from_processor(cls, image_processor: Any) -> ProcessorSpec:
        """Read size, crop, mean/std, rescale factor and resampling from a transformers image processor.

        Supported ``size`` forms: ``height``/``width``, ``shortest_edge`` (a square input keeps its aspect,
        so both sides become the edge; ConvNeXt's ``crop_pct`` rule below 384 px and PoolFormer's
        ``size / crop_pct`` are followed) and ``longest_edge``. ``crop_size`` applies when ``do_center_crop``.
        """
        size = image_processor.size
        height, width = _size_get(size, "height"), _size_get(size, "width")
        crop_pct = getattr(image_processor, "crop_pct", None)
        name = type(image_processor).__name__
        out: tuple[int, int] | None = None
        if height is not None and width is not None:
            rh, rw = int(height), int(width)
            if crop_pct and name.startswith("PoolFormer"):  # PoolFormer: resize to size / crop_pct
                rh, rw = int(rh / crop_pct), int(rw / crop_pct)
        else:
            edge = _size_get(size, "shortest_edge")
            longest = _size_get(size, "longest_edge")
            if edge is None and longest is None:
                raise ValueError(
                    f"image processor size {size!r} has no height/width, shortest_edge or longest_edge"
                )
            edge = int(edge if edge is not None else longest)
            if longest is not None:
                edge = min(edge, int(longest))
            rh = rw = edge
            if crop_pct and name.startswith("ConvNext"):
                if edge < 384:  # ConvNeXt: resize to edge / crop_pct, then crop the edge x edge centre
                    rh = rw = int(edge / crop_pct)
                    out = (edge, edge)
            elif crop_pct and name.startswith("PoolFormer"):
                rh = rw = int(edge / crop_pct)
        if out is None:
            out = (rh, rw)
        crop_size = getattr(image_processor, "crop_size", None)
        if getattr(image_processor, "do_center_crop", False) and crop_size is not None:
            ch, cw = _size_get(crop_size, "height"), _size_get(crop_size, "width")
            if ch is None or cw is None:
                raise ValueError(f"image processor crop_size {crop_size!r} has no height/width")
            ch, cw = int(ch), int(cw)
            if out != (rh, rw) and (ch > out[0] or cw > out[1] or (rh - out[0]) % 2 or (rw - out[1]) % 2):
                # two centre crops are one crop only when the first removes an even margin and the second fits
                raise ValueError(
                    f"{name}: crop_size {ch}x{cw} after the crop_pct crop to {out[0]}x{out[1]} (resized to "
                    f"{rh}x{rw}) is not supported; use do_center_crop=False or a smaller crop_size"
                )
            out = (ch, cw)
        mean = np.asarray(image_processor.image_mean or (0.0, 0.0, 0.0), dtype=np.float32)
        std = np.asarray(image_processor.image_std or (1.0, 1.0, 1.0), dtype=np.float32)
        resample = getattr(image_processor, "resample", None)
        return cls(
            height=out[0],
            width=out[1],
            mean=mean.reshape(3, 1, 1),
            std=std.reshape(3, 1, 1),
            rescale_factor=float(getattr(image_processor, "rescale_factor", 1 / 255)),
            do_rescale=bool(getattr(image_processor, "do_rescale", True)),
            do_normalize=bool(getattr(image_processor, "do_normalize", True)),
            resample=int(resample) if resample is not None else int(Image.Resampling.BILINEAR),
            resize_height=rh,
            resize_width=rw,
        )

    def geometry(self, image: Image.Image) -> Image.Image:
        """Square centre crop, resize and centre crop of one PIL image (RGB), as the processor does."""
        image = center_square(image.convert("RGB"))
        if image.size != (self.resize_width, self.resize_height):
            image = image.resize((self.resize_width, self.resize_height), resample=self.resample)
        if (self.width, self.height) != image.size:
            w, h = image.size
            top, left = (h - self.height) // 2, (w - self.width) // 2
            image = image.crop((left, top, left + self.width, top + self.height))  # zero-pads if larger
        return image

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """Crop, resize, rescale and normalise one PIL image to a float32 CHW tensor."""
        arr = np.asarray(self.geometry(image), dtype=np.float32).transpose(2, 0, 1)
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


class TreeTransform(GalaxyTransform):
    """:class:`GalaxyTransform` for whole-tree datasets: images -> ``pixel_values``, ``counts`` (the vote count
    of every answer, laid out by ``answer_names``) -> float ``counts``. A training flip swaps the counts of
    mirror-image answers (clockwise <-> anticlockwise) as it swaps chiral classes. Its ``class_names`` are the
    tree's answer names."""

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        images = batch[self.image_column]
        counts = batch.get("counts", [None] * len(images))
        out: dict[str, list[Any]] = {"pixel_values": [], "counts": []}
        for img, cnt in zip(images, counts):
            if self.augment is not None:
                img, _, cnt = self.augment(img, None, cnt)
            out["pixel_values"].append(self.spec(img))
            out["counts"].append(None if cnt is None else torch.as_tensor(np.asarray(cnt, dtype=np.float32)))
        if all(c is None for c in out["counts"]):
            del out["counts"]
        if "id" in batch:
            out["id"] = list(batch["id"])
        return out


def parse_rotations(spec: str | Sequence[int]) -> list[int]:
    """Parse TTA angles (``"0,90,180,270"`` or a list); each must be a multiple of 90 degrees."""
    angles = [int(a) for a in (spec.split(",") if isinstance(spec, str) else spec) if str(a).strip() != ""]
    if not angles:
        raise ValueError("TTA needs at least one rotation angle")
    bad = [a for a in angles if a % 90]
    if bad:
        raise ValueError(f"TTA rotation angles must be multiples of 90 degrees, got {bad}")
    return angles


def rotate_pixel_values(pixel_values: torch.Tensor, angle: int) -> torch.Tensor:
    """Rotate a batch of CHW tensors by a multiple of 90 degrees (exact, used for test-time augmentation)."""
    if angle % 90 != 0:
        raise ValueError(f"TTA rotation angles must be multiples of 90 degrees, got {angle}")
    return torch.rot90(pixel_values, k=(angle // 90) % 4, dims=(-2, -1))


# --------------------------------------------------------------------------------------------- detection
@dataclass
class DetectionAugmentConfig:
    """Box-aware augmentation: ``rotate90`` (k x 90 degrees), ``flip`` (with the chirality-aware category swap),
    ``scale_jitter`` j (the processed image side is multiplied by a factor in [1 - j, 1 + j])."""

    rotate90: bool = True
    flip: bool = True
    scale_jitter: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.scale_jitter < 1:
            raise ValueError(f"scale_jitter must be in [0, 1), got {self.scale_jitter}")


class DetectionAugment:
    """Random k x 90 degree rotation and chirality-aware mirror flip of an image with its boxes."""

    def __init__(self, categories: Sequence[str], config: DetectionAugmentConfig | None = None) -> None:
        self.config = config or DetectionAugmentConfig()
        self.categories = list(categories)
        self.permutation = flip_permutation(self.categories) if self.config.flip else None
        self.flip = self.permutation is not None

    def rotate(
        self, image: Image.Image, boxes: Sequence[Sequence[float]], k: int
    ) -> tuple[Image.Image, list]:
        """Rotate by ``k`` x 90 degrees counter-clockwise (as displayed); boxes follow exactly."""
        from hf_galaxy.data.detection import rot90_box

        k %= 4
        if k == 0:
            return image, [list(b) for b in boxes]
        w, h = image.size
        ops = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180, 3: Image.Transpose.ROTATE_270}
        return image.transpose(ops[k]), [rot90_box(b, k, w, h)[0] for b in boxes]

    def mirror(
        self, image: Image.Image, boxes: Sequence[Sequence[float]], categories: Sequence[int]
    ) -> tuple[Image.Image, list, list[int]]:
        """Left-right mirror; boxes mirrored and chiral categories swapped (clockwise <-> anticlockwise)."""
        if self.permutation is None:
            raise ValueError(f"cannot mirror: chiral categories in {self.categories} cannot be paired")
        w = image.size[0]
        out = [[w - b[0] - b[2], b[1], b[2], b[3]] for b in boxes]
        return (
            image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
            out,
            [self.permutation[c] for c in categories],
        )

    def __call__(
        self, image: Image.Image, boxes: Sequence[Sequence[float]], categories: Sequence[int]
    ) -> tuple[Image.Image, list, list[int], float]:
        """Augment one example; returns ``(image, boxes, categories, scale)``; ``scale`` is for the resize."""
        cats = list(categories)
        out = [list(b) for b in boxes]
        if self.config.rotate90:
            image, out = self.rotate(image, out, int(torch.randint(0, 4, ())))
        if self.flip and float(torch.rand(())) < 0.5:
            image, out, cats = self.mirror(image, out, cats)
        j = self.config.scale_jitter
        scale = 1.0 + j * (2 * float(torch.rand(())) - 1) if j else 1.0
        return image, out, cats, scale


def _scaled_size(size: Any, scale: float) -> dict[str, int]:
    get = size.get if hasattr(size, "get") else lambda k, d=None: getattr(size, k, d)
    out = {}
    for key in ("height", "width", "shortest_edge", "longest_edge", "max_height", "max_width"):
        v = get(key)
        if v:
            out[key] = max(16, int(round(v * scale)))
    return out


class DetectionTransform:
    """``Dataset.with_transform`` for the detection layout -> ``pixel_values`` and DETR-style ``labels``.

    Labels hold ``class_labels``, ``boxes`` (normalised cx, cy, w, h relative to the processed image),
    ``size``, ``orig_size`` (pixels of the stored image), ``image_id``, ``area`` and ``iscrowd``.
    """

    def __init__(
        self,
        image_processor: Any,
        categories: Sequence[str],
        *,
        train: bool = False,
        augment: DetectionAugmentConfig | None = None,
    ) -> None:
        self.processor = image_processor
        self.augment = DetectionAugment(categories, augment) if train and augment is not None else None

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"pixel_values": [], "labels": []}
        for image, objects, image_id in zip(batch["image"], batch["objects"], batch["image_id"]):
            image = image.convert("RGB")
            boxes, cats, scale = objects["bbox"], objects["category"], 1.0
            if self.augment is not None:
                image, boxes, cats, scale = self.augment(image, boxes, cats)
            annotation = {
                "image_id": int(image_id),
                "annotations": [
                    {"bbox": list(b), "category_id": int(c), "area": float(b[2] * b[3]), "iscrowd": 0}
                    for b, c in zip(boxes, cats)
                ],
            }
            kwargs: dict[str, Any] = {"do_pad": False, "return_tensors": "pt"}
            if scale != 1.0:
                kwargs["size"] = _scaled_size(self.processor.size, scale)
            enc = self.processor(images=[image], annotations=[annotation], **kwargs)
            out["pixel_values"].append(enc["pixel_values"][0])
            out["labels"].append({k: v for k, v in enc["labels"][0].items()})
        return out


PAD_MULTIPLE = 32
"""Batches are padded to a multiple of the largest backbone stride (RT-DETR's FPN needs it)."""


class DetectionCollator:
    """Pad ``pixel_values`` to the batch maximum (bottom/right, zeros) and build ``pixel_mask`` (1 = image).

    ``pixel_mask=False`` (models that do not use it: YOLOS, RT-DETR; see :func:`hf_galaxy.models.detection.accepts_pixel_mask`) leaves it
    out and re-expresses the normalised boxes relative to the padded canvas, which is all such a model sees. Every label gets
    ``target_size``: the (height, width) to multiply normalised predictions by to get pixels of the original
    image (``orig_size``, scaled by canvas/size when boxes are canvas-relative).
    """

    def __init__(self, pixel_mask: bool = True, pad_to_multiple_of: int | None = None) -> None:
        self.pixel_mask = pixel_mask
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, Any]:
        values = [e["pixel_values"] for e in examples]
        hmax = max(int(v.shape[-2]) for v in values)
        wmax = max(int(v.shape[-1]) for v in values)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            hmax, wmax = math.ceil(hmax / m) * m, math.ceil(wmax / m) * m
        batch_values = torch.zeros((len(values), values[0].shape[0], hmax, wmax), dtype=values[0].dtype)
        mask = torch.zeros((len(values), hmax, wmax), dtype=torch.long)
        labels = []
        for i, (v, e) in enumerate(zip(values, examples)):
            h, w = int(v.shape[-2]), int(v.shape[-1])
            batch_values[i, :, :h, :w] = v
            mask[i, :h, :w] = 1
            lab = dict(e["labels"])
            orig = torch.as_tensor(lab["orig_size"], dtype=torch.float32)
            if self.pixel_mask:
                lab["target_size"] = orig
            else:
                sx, sy = w / wmax, h / hmax
                boxes = torch.as_tensor(lab["boxes"], dtype=torch.float32).reshape(-1, 4).clone()
                boxes *= torch.tensor([sx, sy, sx, sy])
                lab["boxes"] = boxes
                lab["target_size"] = orig * torch.tensor([hmax / h, wmax / w])
            labels.append(lab)
        batch: dict[str, Any] = {"pixel_values": batch_values, "labels": labels}
        if self.pixel_mask:
            batch["pixel_mask"] = mask
        return batch
