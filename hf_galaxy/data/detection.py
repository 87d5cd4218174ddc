"""Galaxy Zoo cutouts as object-detection sets: boxes, mosaic fields, the HF detection layout, COCO files.

Galaxy Zoo has votes, not boxes. :func:`to_detection` gives every cutout's galaxy a box and takes the
box's category from the vote-derived label; other sources in the cutout can be added as extra objects.

Where each box comes from (``BoxConfig.source``)
    ``"catalog"``: the catalogue radius. For GZ DECaLS the canonical table carries ``petro_th50`` /
    ``petro_th90`` (arcsec) and the cutout scale ``pixel_scale`` = max(min(0.04 th50, 0.02 th90), 0.1)
    arcsec/px of the 424 px cutout (Walmsley et al. 2022, eq. 1), so ``r_px = theta / pixel_scale``
    (times ``image_width / native_size`` when the images were resized). The box is the square
    ``[W/2 - k r, H/2 - k r, 2 k r, 2 k r]`` clipped to the image (``k = BoxConfig.k``, radius
    ``BoxConfig.radius`` = ``r90`` or ``r50``). GZ2 / Kaggle cutouts are scaled so that petroR90 always
    spans 50 px: a radius-only box is the same for every galaxy there, so those releases (and any row
    without a radius, or flagged ``wrong_size_warning``) use segmentation.
    ``"segmentation"``: source extraction with ``sep`` (SExtractor's algorithms) on the grey
    (channel-mean) image: background from ``sep.Background``, detection at ``thresh`` x background rms
    with the default 3x3 filter and multi-threshold deblending. The galaxy is the segment under the
    image centre (else the nearest segment within ``centre_radius`` of it); its box is the bounding
    box of that segment's pixels, i.e. the isophote at ``thresh`` sigma. A galaxy whose label is a
    merger (``merger_categories``) is one system: its box is the blob under the centre *before*
    deblending, so both nuclei and the tails are inside. All other segments (after deblending) with at
    least ``extra_min_area`` pixels (on the 424 px grid) above ``extra_min_peak`` sigma become extra
    objects (this rejects JPEG noise blobs):
    ``"star"`` when compact and round (rms semi-major axis ``a <= star_max_a`` px on the 424 px grid,
    ``b/a >= star_min_axis_ratio``), else ``"neighbour"``.
    ``"auto"`` (default): ``"catalog"`` for rows with a usable radius, else ``"segmentation"``.

Layout (the transformers object-detection layout, e.g. the cppe-5 dataset)
    ``image_id`` (int64), ``image`` (Image), ``width``/``height`` (int32), ``objects`` = {``id`` (int64),
    ``area`` (float32), ``bbox`` ([x, y, w, h] float32, absolute pixels, origin at the top-left corner of
    the top-left pixel), ``category`` (ClassLabel)}, plus ``id`` (string: the galaxy or field id).
    Categories are the label's class names followed by ``neighbour`` and ``star`` (when extra objects
    are on). ``area`` is the box area ``w * h`` (boxes only, no masks).

COCO
    :func:`export_coco` writes ``annotations/instances_<split>.json`` (``info``, ``licenses``, ``images``,
    ``annotations``, ``categories``) and ``<split>/<image_id>.<ext>``; category ids are the ClassLabel
    indices (0-based). :func:`load_coco` reads any COCO detection file back into the layout above.

Bad input (:func:`sanitize_objects`): boxes sticking out of the image are clipped (or dropped with
``on_bad_box="drop"``), boxes with a non-positive size (also after clipping) are dropped, and both are
counted; images left without objects are kept as negatives or dropped (``keep_empty``); a category id
not in the categories is an error naming it.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

EXTRA_CATEGORIES: tuple[str, ...] = ("neighbour", "star")
"""Categories of the extra (non-target) objects, appended after the galaxy classes."""
BOX_SOURCES = ("auto", "catalog", "segmentation")
REFERENCE_SIZE = 424
_INFO_PREFIX = "hf-galaxy:"


class DetectionError(ValueError):
    """Detection data that cannot be used (unknown category, unreadable COCO file, bad arguments)."""


# ----------------------------------------------------------------------------------------------- config
@dataclass
class BoxConfig:
    """How boxes are made (see the module docstring for the choice of sources)."""

    source: str = "auto"
    radius: str = "r90"
    k: float = 1.0
    native_size: int = REFERENCE_SIZE
    thresh: float = 1.5
    minarea: int = 5
    deblend_nthresh: int = 32
    deblend_cont: float = 0.005
    background_box: int | None = None
    centre_radius: float = 0.15
    merger_categories: tuple[str, ...] = ("merger",)
    extra_objects: bool = True
    extra_min_area: int = 12
    extra_min_peak: float = 5.0
    star_max_a: float = 4.8
    star_min_axis_ratio: float = 0.8

    def __post_init__(self) -> None:
        if self.source not in BOX_SOURCES:
            raise DetectionError(f"BoxConfig.source must be one of {BOX_SOURCES}, got {self.source!r}")
        if self.radius not in ("r90", "r50"):
            raise DetectionError(f"BoxConfig.radius must be 'r90' or 'r50', got {self.radius!r}")
        if not self.k > 0:
            raise DetectionError(f"BoxConfig.k must be > 0, got {self.k}")
        if not self.thresh > 0:
            raise DetectionError(f"BoxConfig.thresh must be > 0 (background sigmas), got {self.thresh}")
        self.merger_categories = tuple(self.merger_categories)


@dataclass
class DetObject:
    """One object of an image: a COCO box ``[x, y, w, h]`` in absolute pixels and its category name."""

    bbox: tuple[float, float, float, float]
    category: str
    target: bool = False
    source: str = "segmentation"


# ----------------------------------------------------------------------------------------------- boxes
def radius_box(width: int, height: int, r_px: float, k: float = 1.0) -> tuple[float, float, float, float]:
    """The square box of half-side ``k * r_px`` centred on the image, clipped to the image."""
    if not (r_px > 0 and math.isfinite(r_px)):
        raise DetectionError(f"radius must be a positive number of pixels, got {r_px!r}")
    cx, cy, half = width / 2.0, height / 2.0, k * r_px
    x0, y0 = max(0.0, cx - half), max(0.0, cy - half)
    x1, y1 = min(float(width), cx + half), min(float(height), cy + half)
    return (x0, y0, x1 - x0, y1 - y0)


def _finite(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def catalog_radius_px(
    row: Mapping[str, Any], image_width: int, *, radius: str = "r90", native_size: int = REFERENCE_SIZE
) -> float | None:
    """The galaxy radius in pixels of an image ``image_width`` px wide, from a canonical-table row.

    Needs the radius (``petro_th90`` or ``radius_arcsec`` for ``r90``, ``petro_th50`` for ``r50``, in
    arcsec) and the cutout scale: ``pixel_scale`` (arcsec/px of the ``native_size`` px cutout) or, for
    GZ DECaLS rows without it, max(min(0.04 th50, 0.02 th90), 0.1). Returns None when the row has no
    usable radius or carries ``wrong_size_warning``.
    """
    if str(row.get("wrong_size_warning", "")).strip().lower() in ("true", "1", "1.0", "yes"):
        return None
    th50, th90 = _finite(row.get("petro_th50")), _finite(row.get("petro_th90"))
    theta = th50 if radius == "r50" else (th90 or _finite(row.get("radius_arcsec")))
    if theta is None:
        return None
    scale = _finite(row.get("pixel_scale"))
    if scale is None and th50 is not None and th90 is not None:
        scale = max(min(0.04 * th50, 0.02 * th90), 0.1)
    if scale is None:
        return None
    return theta / scale * (image_width / native_size)


def _gray(image: Image.Image | np.ndarray) -> np.ndarray:
    arr = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr.mean(axis=2)
    return np.ascontiguousarray(arr, dtype=np.float32)


def _extract(
    data: np.ndarray, cfg: BoxConfig, deblend_cont: float
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    import sep

    h, w = data.shape
    box = cfg.background_box or max(8, min(h, w) // 4)
    bkg = sep.Background(data, bw=box, bh=box)
    rms = float(bkg.globalrms) if bkg.globalrms > 0 else 1.0
    sub = data - bkg.back()
    sep.set_extract_pixstack(max(300000, 4 * h * w))
    objects, seg = sep.extract(
        sub,
        cfg.thresh,
        err=rms,
        minarea=cfg.minarea,
        deblend_nthresh=cfg.deblend_nthresh,
        deblend_cont=deblend_cont,
        segmentation_map=True,
    )
    return objects, seg, rms, sub


def _centre_label(seg: np.ndarray, objects: np.ndarray, cfg: BoxConfig) -> int:
    """Segment label (1-based) of the galaxy at the image centre, 0 when there is none."""
    h, w = seg.shape
    cy, cx = h // 2, w // 2
    r = max(1, round(min(h, w) / 100))
    window = seg[max(0, cy - r) : cy + r + 1, max(0, cx - r) : cx + r + 1]
    labels = window[window > 0]
    if labels.size:
        return int(Counter(labels.tolist()).most_common(1)[0][0])
    if len(objects) == 0:
        return 0
    d = np.hypot(objects["x"] - (w - 1) / 2.0, objects["y"] - (h - 1) / 2.0)
    i = int(np.argmin(d))
    return i + 1 if d[i] <= cfg.centre_radius * min(h, w) else 0


def _seg_box(obj: np.void) -> tuple[float, float, float, float]:
    x0, x1, y0, y1 = int(obj["xmin"]), int(obj["xmax"]), int(obj["ymin"]), int(obj["ymax"])
    return (float(x0), float(y0), float(x1 - x0 + 1), float(y1 - y0 + 1))


def segment_objects(
    image: Image.Image | np.ndarray,
    category: str | None,
    config: BoxConfig | None = None,
) -> list[DetObject]:
    """Source extraction on one cutout: the centre galaxy (first, ``target=True``) and the extra objects.

    ``category`` is the galaxy's vote-derived class (None: no galaxy object, extras only); mergers
    (``config.merger_categories``) get the undeblended blob's box. Returns an empty list when nothing
    is detected.
    """
    cfg = config or BoxConfig()
    data = _gray(image)
    h, w = data.shape
    objects, seg, rms, sub = _extract(data, cfg, cfg.deblend_cont)
    out: list[DetObject] = []
    target_label = _centre_label(seg, objects, cfg)
    in_target = np.zeros(len(objects), dtype=bool)
    if target_label and category is not None:
        if category in cfg.merger_categories:
            blobs, blob_seg, _, _ = _extract(data, cfg, 1.0)
            blob_label = _centre_label(blob_seg, blobs, cfg)
            if blob_label:
                box = _seg_box(blobs[blob_label - 1])
                xi = np.clip(np.round(objects["x"]).astype(int), 0, w - 1)
                yi = np.clip(np.round(objects["y"]).astype(int), 0, h - 1)
                in_target = blob_seg[yi, xi] == blob_label
            else:
                box = _seg_box(objects[target_label - 1])
        else:
            box = _seg_box(objects[target_label - 1])
        in_target[target_label - 1] = True
        out.append(DetObject(box, category, target=True, source="segmentation"))
    elif target_label:
        in_target[target_label - 1] = True
    if cfg.extra_objects:
        scale = min(h, w) / REFERENCE_SIZE
        min_area = max(cfg.minarea, round(cfg.extra_min_area * scale * scale))
        # pixels of each segment above extra_min_peak sigma: noise blobs (JPEG blocks) have few or none
        bright = np.bincount(seg[sub > cfg.extra_min_peak * rms].ravel(), minlength=len(objects) + 1)
        for i, obj in enumerate(objects):
            if in_target[i] or bright[i + 1] < min_area:
                continue
            a, b = float(obj["a"]), float(obj["b"])
            star = a <= cfg.star_max_a * max(scale, 0.25) and a > 0 and b / a >= cfg.star_min_axis_ratio
            out.append(DetObject(_seg_box(obj), "star" if star else "neighbour", target=False))
    return out


def galaxy_objects(
    image: Image.Image,
    category: str | None,
    row: Mapping[str, Any] | None = None,
    config: BoxConfig | None = None,
) -> list[DetObject]:
    """The objects of one cutout: the galaxy's box from the catalogue radius or segmentation, plus extras.

    ``row`` is the galaxy's canonical-table row (for the radius); see :class:`BoxConfig` for the rules.
    """
    cfg = config or BoxConfig()
    w, h = image.size
    r_px = None
    if cfg.source in ("auto", "catalog") and row is not None:
        r_px = catalog_radius_px(row, w, radius=cfg.radius, native_size=cfg.native_size)
    if cfg.source == "catalog" and r_px is None:
        gid = (row or {}).get("id", "?")
        raise DetectionError(
            f"galaxy id={gid}: box source 'catalog' needs petro_th50/petro_th90 (or radius_arcsec) and a "
            "pixel scale in the catalogue row; use source='auto' to fall back to segmentation"
        )
    if r_px is not None:
        objs = [DetObject(radius_box(w, h, r_px, cfg.k), category or "", target=True, source="catalog")]
        if category is None:
            objs = []
        if cfg.extra_objects:
            objs += [o for o in segment_objects(image, None, cfg) if not _covers_centre(o.bbox, w, h)]
        return objs
    return segment_objects(image, category, cfg)


def _covers_centre(bbox: Sequence[float], w: int, h: int) -> bool:
    x, y, bw, bh = bbox
    return x <= w / 2 <= x + bw and y <= h / 2 <= y + bh


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two ``[x, y, w, h]`` boxes."""
    ax1, ay1, bx1, by1 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax1, bx1) - max(a[0], b[0]))
    ih = max(0.0, min(ay1, by1) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


# ----------------------------------------------------------------------------------------------- bad input
@dataclass
class SanitizeReport:
    """What :func:`sanitize_objects` changed."""

    clipped: int = 0
    dropped_outside: int = 0
    dropped_nonpositive: int = 0
    dropped_images: int = 0
    empty_images: int = 0

    def add(self, other: SanitizeReport) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    @property
    def n_dropped_boxes(self) -> int:
        return self.dropped_outside + self.dropped_nonpositive


def sanitize_objects(
    objects: Mapping[str, Sequence[Any]],
    width: int,
    height: int,
    *,
    categories: Sequence[str] | int | None = None,
    on_bad_box: str = "clip",
    where: str = "",
) -> tuple[dict[str, list[Any]], SanitizeReport]:
    """Clip or drop bad boxes of one image's ``objects`` ({id, area, bbox, category}); returns (objects, report).

    Boxes with a non-positive or non-finite size are dropped. Boxes sticking out of the image are
    clipped (``on_bad_box="clip"``; dropped when nothing is left inside) or dropped (``"drop"``);
    ``"error"`` raises instead. ``categories`` (names or their number) checks the category ids: an id
    out of range is a :class:`DetectionError` naming it and ``where``.
    """
    if on_bad_box not in ("clip", "drop", "error"):
        raise DetectionError(f"on_bad_box must be 'clip', 'drop' or 'error', got {on_bad_box!r}")
    n_cat = len(categories) if isinstance(categories, Sequence) else categories
    rep = SanitizeReport()
    bboxes = list(objects.get("bbox", []))
    cats = list(objects.get("category", [0] * len(bboxes)))
    ids = list(objects.get("id", range(len(bboxes))))
    out: dict[str, list[Any]] = {"id": [], "area": [], "bbox": [], "category": []}
    for oid, box, cat in zip(ids, bboxes, cats):
        if n_cat is not None and not (isinstance(cat, (int, np.integer)) and 0 <= int(cat) < n_cat):
            names = f" {list(categories)}" if isinstance(categories, Sequence) else ""
            raise DetectionError(
                f"{where}object id={oid}: category id {cat!r} is not in the categories (0..{n_cat - 1}){names}"
            )
        x, y, bw, bh = (float(v) for v in box)
        if not all(math.isfinite(v) for v in (x, y, bw, bh)) or bw <= 0 or bh <= 0:
            if on_bad_box == "error":
                raise DetectionError(f"{where}object id={oid}: box {list(box)} has a non-positive size")
            rep.dropped_nonpositive += 1
            continue
        x0, y0, x1, y1 = max(x, 0.0), max(y, 0.0), min(x + bw, float(width)), min(y + bh, float(height))
        if (x0, y0, x1, y1) != (x, y, x + bw, y + bh):
            if on_bad_box == "error":
                raise DetectionError(
                    f"{where}object id={oid}: box {list(box)} is outside the {width}x{height} image"
                )
            if on_bad_box == "drop" or x1 <= x0 or y1 <= y0:
                rep.dropped_outside += 1
                continue
            rep.clipped += 1
            x, y, bw, bh = x0, y0, x1 - x0, y1 - y0
        out["id"].append(int(oid))
        out["bbox"].append([x, y, bw, bh])
        out["area"].append(float(bw * bh))
        out["category"].append(int(cat))
    return out, rep


# ----------------------------------------------------------------------------------------------- HF layout
def detection_features(categories: Sequence[str]) -> Any:
    """``datasets.Features`` of the detection layout with ``categories`` as the ClassLabel names."""
    import datasets

    return datasets.Features(
        {
            "image_id": datasets.Value("int64"),
            "image": datasets.Image(),
            "width": datasets.Value("int32"),
            "height": datasets.Value("int32"),
            "objects": {
                "id": datasets.List(datasets.Value("int64")),
                "area": datasets.List(datasets.Value("float32")),
                "bbox": datasets.List(datasets.List(datasets.Value("float32"), length=4)),
                "category": datasets.List(datasets.ClassLabel(names=list(categories))),
            },
            "id": datasets.Value("string"),
        }
    )


def categories_of(dataset: Any) -> list[str]:
    """Category names of a detection-layout dataset (or of the first split of a DatasetDict)."""
    ds = (
        next(iter(dataset.values()))
        if hasattr(dataset, "keys") and not hasattr(dataset, "features")
        else dataset
    )
    try:
        return list(ds.features["objects"]["category"].feature.names)
    except (KeyError, AttributeError, TypeError) as err:
        raise DetectionError(
            f"not a detection-layout dataset (objects.category must be a List of ClassLabel): {ds.features}"
        ) from err


def detection_info(dataset: Any) -> dict[str, Any]:
    """The facts :func:`to_detection` / :func:`make_mosaics` / :func:`load_coco` stored (box source, counts)."""
    ds = (
        next(iter(dataset.values()))
        if hasattr(dataset, "keys") and not hasattr(dataset, "features")
        else dataset
    )
    desc = getattr(ds.info, "description", "") or ""
    if desc.startswith(_INFO_PREFIX):
        try:
            return dict(json.loads(desc[len(_INFO_PREFIX) :]).get("detection", {}))
        except json.JSONDecodeError:
            return {}
    return {}


def _set_info(ds: Any, detection: dict[str, Any]) -> None:
    desc = getattr(ds.info, "description", "") or ""
    info: dict[str, Any] = {}
    if desc.startswith(_INFO_PREFIX):
        try:
            info = json.loads(desc[len(_INFO_PREFIX) :])
        except json.JSONDecodeError:
            info = {}
    info["detection"] = detection
    ds.info.description = _INFO_PREFIX + json.dumps(info)


def _catalog_rows(catalog: Any) -> dict[str, dict[str, Any]]:
    """Canonical-table rows keyed by galaxy id, from a path, a Catalog or a DataFrame."""
    import pandas as pd

    if catalog is None:
        return {}
    if isinstance(catalog, (str, os.PathLike)):
        from hf_galaxy.data.catalogs import read_catalog

        catalog = read_catalog(catalog)
    table = catalog.table if hasattr(catalog, "table") else catalog
    if not isinstance(table, pd.DataFrame) or "id" not in table.columns:
        raise DetectionError("catalog must be a catalogue path, a Catalog or a DataFrame with an 'id' column")
    keep = [
        c
        for c in ("id", "petro_th50", "petro_th90", "radius_arcsec", "pixel_scale", "wrong_size_warning")
        if c in table.columns
    ]
    return {str(r["id"]): r for r in table[keep].to_dict("records")}


def _to_detection_split(
    ds: Any,
    rows: dict[str, dict[str, Any]],
    cfg: BoxConfig,
    categories: list[str],
    class_names: list[str],
    keep_empty: bool,
    num_proc: int | None,
    offset: int,
) -> Any:
    index = {c: i for i, c in enumerate(categories)}

    def convert(example: dict[str, Any], idx: int) -> dict[str, Any]:
        image = example["image"].convert("RGB")
        w, h = image.size
        label = example.get("label")
        category = class_names[label] if label is not None and label >= 0 else None
        gid = str(example.get("id", idx))
        objs = galaxy_objects(image, category, rows.get(gid), cfg)
        boxes = {
            "id": [(offset + idx) * 10_000 + j for j in range(len(objs))],
            "bbox": [list(o.bbox) for o in objs],
            "category": [index[o.category] for o in objs],
        }
        clean, rep = sanitize_objects(boxes, w, h, categories=categories, where=f"galaxy id={gid}: ")
        target = next((o for o in objs if o.target), None)
        stats = {
            "source": target.source if target else "none",
            "clipped": rep.clipped,
            "dropped": rep.n_dropped_boxes,
            "extras": sum(1 for o in objs if not o.target),
        }
        return {
            "image_id": offset + idx,
            "image": image,
            "width": w,
            "height": h,
            "objects": clean,
            "id": gid,
            "_stats": json.dumps(stats),
        }

    import datasets

    features = detection_features(categories)
    feats = datasets.Features({**features, "_stats": datasets.Value("string")})
    out = ds.map(
        convert,
        with_indices=True,
        remove_columns=ds.column_names,
        features=feats,
        num_proc=num_proc if num_proc and num_proc > 1 and len(ds) >= 2 * num_proc else None,
        desc="boxes",
    )
    stats = [json.loads(s) for s in out["_stats"]]
    out = out.remove_columns("_stats")
    n_empty = sum(1 for n in out["objects"] if not n["bbox"])
    summary = {
        "box_source": cfg.source,
        "box_config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "n_images": len(out),
        "target_source": dict(Counter(s["source"] for s in stats)),
        "n_extra_objects": sum(s["extras"] for s in stats),
        "boxes_clipped": sum(s["clipped"] for s in stats),
        "boxes_dropped": sum(s["dropped"] for s in stats),
        "empty_images": n_empty,
        "empty_images_dropped": 0,
    }
    if n_empty and not keep_empty:
        out = out.filter(lambda o: len(o["bbox"]) > 0, input_columns=["objects"], desc="drop empty")
        summary["empty_images_dropped"] = n_empty
    if summary["target_source"].get("none"):
        logger.warning(
            "%d of %d cutouts have no galaxy box (nothing detected near the centre)",
            summary["target_source"]["none"],
            len(stats),
        )
    return out, summary


def to_detection(
    dataset: Any,
    *,
    catalog: Any = None,
    config: BoxConfig | None = None,
    keep_empty: bool = True,
    num_proc: int | None = None,
    **config_overrides: Any,
) -> Any:
    """Turn a classification ``Dataset``/``DatasetDict`` (``image``, ``label`` ClassLabel, ``id``) into the
    transformers detection layout (see the module docstring).

    Args:
        dataset: e.g. the output of :func:`hf_galaxy.load_galaxy_dataset`.
        catalog: catalogue path, ``Catalog`` or canonical DataFrame, for catalogue-radius boxes (matched on
            ``id``); without it every box comes from segmentation.
        config: :class:`BoxConfig`; keyword overrides (``source="segmentation"``, ``k=1.5``...) apply on top.
        keep_empty: keep images without any object as negatives (True) or drop them (counted).
        num_proc: worker processes.

    Returns the same container type; per-split counts (box sources, clipped/dropped boxes, empty images)
    are logged and stored for :func:`detection_info`.
    """
    import datasets

    base = asdict(config) if config is not None else {}
    cfg = BoxConfig(**{**base, **config_overrides})
    rows = _catalog_rows(catalog)
    is_dict = isinstance(dataset, (datasets.DatasetDict, dict))
    splits = dict(dataset.items()) if is_dict else {"data": dataset}
    first = next(iter(splits.values()))
    label = first.features.get("label")
    class_names = list(getattr(label, "names", None) or [])
    if not class_names:
        raise DetectionError(f"to_detection needs a ClassLabel 'label' column; features: {first.features}")
    clash = [c for c in class_names if c in EXTRA_CATEGORIES]
    if clash and cfg.extra_objects:
        raise DetectionError(f"class names {clash} clash with the extra-object categories {EXTRA_CATEGORIES}")
    categories = class_names + (list(EXTRA_CATEGORIES) if cfg.extra_objects else [])
    if cfg.source == "catalog" and not rows:
        raise DetectionError("box source 'catalog' needs catalog= (a catalogue with petro radii)")
    out = {}
    for k, (name, ds) in enumerate(splits.items()):
        converted, summary = _to_detection_split(
            ds, rows, cfg, categories, class_names, keep_empty, num_proc, offset=k * 10_000_000
        )
        _set_info(converted, summary)
        logger.info("detection %s: %s", name, {k2: v for k2, v in summary.items() if k2 != "box_config"})
        out[name] = converted
    result = datasets.DatasetDict(out) if is_dict else out["data"]
    if is_dict:
        # the loader's dataset facts (release, label scheme, class balance...) for the model card
        result.galaxy_info = {
            **dict(getattr(dataset, "galaxy_info", None) or {}),
            **detection_card_facts(result),
            "task": "detection",
            "box_source": cfg.source,
        }
    return result


def object_counts(dataset: Any) -> dict[str, dict[str, int]]:
    """Boxes per category, per split (``{"data": ...}`` for a single ``Dataset``)."""
    is_dict = hasattr(dataset, "keys") and not hasattr(dataset, "features")
    splits = dict(dataset.items()) if is_dict else {"data": dataset}
    names = categories_of(dataset)
    out = {}
    for name, ds in splits.items():
        c = Counter(int(k) for objs in ds["objects"] for k in objs["category"])
        out[name] = {n: int(c.get(i, 0)) for i, n in enumerate(names)}
    return out


def detection_card_facts(dataset: Any) -> dict[str, Any]:
    """Detection facts for a model card: ``categories``, ``object_counts`` per split and category, and the
    per-split box summaries of :func:`detection_info` (``detection_splits``)."""
    is_dict = hasattr(dataset, "keys") and not hasattr(dataset, "features")
    splits = dict(dataset.items()) if is_dict else {"data": dataset}
    return {
        "categories": categories_of(dataset),
        "object_counts": object_counts(dataset),
        "detection_splits": {name: detection_info(ds) for name, ds in splits.items()},
    }


# ----------------------------------------------------------------------------------------------- mosaics
@dataclass
class MosaicConfig:
    """Mosaic fields composed from detection-layout cutouts (see :func:`make_mosaics`)."""

    size: tuple[int, int] = (640, 800)
    cutouts_per_field: tuple[int, int] = (3, 8)
    scale: tuple[float, float] = (0.2, 0.45)
    max_iou: float = 0.1
    rotate: bool = True
    attempts: int = 30

    def __post_init__(self) -> None:
        self.size = tuple(int(s) for s in self.size)  # type: ignore[assignment]
        if not 16 <= self.size[0] <= self.size[1]:
            raise DetectionError(f"mosaic size range must satisfy 16 <= min <= max, got {self.size}")
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise DetectionError(
                f"mosaic scale (cutout side / field side) must be in (0, 1], got {self.scale}"
            )
        if not 0 <= self.max_iou < 1:
            raise DetectionError(f"max_iou must be in [0, 1), got {self.max_iou}")
        if not 1 <= self.cutouts_per_field[0] <= self.cutouts_per_field[1]:
            raise DetectionError(
                f"cutouts_per_field must satisfy 1 <= min <= max, got {self.cutouts_per_field}"
            )


def rot90_box(box: Sequence[float], k: int, w: float, h: float) -> tuple[list[float], float, float]:
    """Box ``[x, y, w, h]`` after ``np.rot90(image, k)`` (counter-clockwise on the displayed image)."""
    x, y, bw, bh = box
    for _ in range(k % 4):
        x, y, bw, bh = y, w - x - bw, bh, bw
        w, h = h, w
    return [x, y, bw, bh], w, h


def make_mosaics(
    dataset: Any,
    n: int,
    *,
    config: MosaicConfig | None = None,
    seed: int = 0,
    image_id_offset: int | None = None,
    show_progress: bool = True,
    **config_overrides: Any,
) -> Any:
    """Compose ``n`` multi-object fields from a detection-layout ``Dataset`` of cutouts.

    Each field is a square of a random side in ``config.size`` on the median sky of its cutouts; each
    cutout is rotated by a random multiple of 90 degrees (boxes stay exact; no flips, so chirality is
    kept), scaled to a random fraction ``config.scale`` of the field side and placed at a random
    position where none of its boxes has an IoU above ``config.max_iou`` with a box already placed
    (``attempts`` tries, then the cutout is skipped and counted). Cutouts whose own boxes overlap by more
    than ``max_iou`` are skipped too (counted), so every pair of boxes in a field obeys the bound. Pixels combine by maximum, so the
    square cutout edges vanish into the sky. Returns a ``Dataset`` in the same layout and categories, with
    ``image_id`` from ``image_id_offset`` on; the default (None) starts just past the largest ``image_id`` of
    ``dataset``, so mosaics can be concatenated with their cutouts without repeating an id.
    """
    import datasets
    from tqdm.auto import tqdm

    base = asdict(config) if config is not None else {}
    cfg = MosaicConfig(**{**base, **config_overrides})
    if n < 1:
        raise DetectionError(f"number of mosaics must be >= 1, got {n}")
    if len(dataset) == 0:
        raise DetectionError("make_mosaics needs a non-empty detection dataset")
    categories = categories_of(dataset)
    if image_id_offset is None:
        image_id_offset = int(max(dataset["image_id"])) + 1
    rng = np.random.default_rng(seed)
    skipped = skipped_internal = 0
    rows: list[dict[str, Any]] = []
    for f in tqdm(range(n), desc="mosaics", disable=not show_progress):
        side = int(rng.integers(cfg.size[0], cfg.size[1] + 1))
        k_cut = int(rng.integers(cfg.cutouts_per_field[0], cfg.cutouts_per_field[1] + 1))
        picks = rng.integers(0, len(dataset), size=k_cut)
        examples = [dataset[int(i)] for i in picks]
        arrays = [np.asarray(e["image"].convert("RGB")) for e in examples]
        sky = np.median(
            np.stack([np.median(np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]]), axis=0) for a in arrays]),
            axis=0,
        )
        field_img = np.broadcast_to(sky.astype(np.uint8), (side, side, 3)).copy()
        placed: list[list[float]] = []
        objects: dict[str, list[Any]] = {"id": [], "area": [], "bbox": [], "category": []}
        for ex, arr in zip(examples, arrays):
            k = int(rng.integers(0, 4)) if cfg.rotate else 0
            arr = np.rot90(arr, k)
            h0, w0 = arr.shape[:2]
            boxes = []
            for b in ex["objects"]["bbox"]:
                rb, _, _ = rot90_box(b, k, ex["width"], ex["height"])
                boxes.append(rb)
            if any(box_iou(a, b) > cfg.max_iou for i, a in enumerate(boxes) for b in boxes[i + 1 :]):
                skipped_internal += 1  # its own objects overlap more than allowed: leave the cutout out
                continue
            target_side = float(rng.uniform(*cfg.scale)) * side
            s = target_side / max(h0, w0)
            nw, nh = max(1, round(w0 * s)), max(1, round(h0 * s))
            sx, sy = nw / w0, nh / h0
            scaled = [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in boxes]
            ok = False
            for _ in range(cfg.attempts):
                ox, oy = int(rng.integers(0, side - nw + 1)), int(rng.integers(0, side - nh + 1))
                moved = [[b[0] + ox, b[1] + oy, b[2], b[3]] for b in scaled]
                if all(box_iou(m, p) <= cfg.max_iou for m in moved for p in placed):
                    ok = True
                    break
            if not ok:
                skipped += 1
                continue
            tile = np.asarray(
                Image.fromarray(np.ascontiguousarray(arr)).resize((nw, nh), Image.Resampling.LANCZOS)
            )
            region = field_img[oy : oy + nh, ox : ox + nw]
            np.maximum(region, tile, out=region)
            for m, c in zip(moved, ex["objects"]["category"]):
                if m[2] <= 0 or m[3] <= 0:
                    continue
                objects["id"].append(f * 1000 + len(objects["id"]))
                objects["bbox"].append(m)
                objects["area"].append(m[2] * m[3])
                objects["category"].append(int(c))
                placed.append(m)
        clean, _ = sanitize_objects(objects, side, side, categories=categories, where=f"mosaic {f}: ")
        rows.append(
            {
                "image_id": image_id_offset + f,
                "image": Image.fromarray(field_img),
                "width": side,
                "height": side,
                "objects": clean,
                "id": f"mosaic-{seed}-{f}",
            }
        )
    ds = datasets.Dataset.from_list(rows, features=detection_features(categories))
    summary = {
        "mosaic_config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "n_images": n,
        "cutouts_skipped_overlap": skipped,
        "cutouts_skipped_internal_overlap": skipped_internal,
        "seed": seed,
    }
    if skipped:
        logger.info("make_mosaics: %d cutouts skipped (no position with IoU <= %.2f)", skipped, cfg.max_iou)
    _set_info(ds, summary)
    return ds


# ----------------------------------------------------------------------------------------------- COCO
def _coco_dict(ds: Any, split: str, image_format: str, description: str) -> dict[str, Any]:
    import datetime

    categories = categories_of(ds)
    counts = Counter(int(i) for i in ds["image_id"])
    duplicates = sorted(i for i, n in counts.items() if n > 1)
    if duplicates:
        shown = ", ".join(f"{i} (x{counts[i]})" for i in duplicates[:20])
        more = f" and {len(duplicates) - 20} more" if len(duplicates) > 20 else ""
        raise DetectionError(
            f"export_coco split {split!r}: duplicate image_id {shown}{more}; each image needs its own id "
            "(its file is <split>/<image_id>.<ext>). Give mosaics an image_id_offset past the cutouts' ids."
        )
    images, annotations = [], []
    ann_id = 1
    for ex in ds.remove_columns("image"):  # annotations only: no image decoding
        iid = int(ex["image_id"])
        images.append(
            {
                "id": iid,
                "file_name": f"{split}/{iid:012d}.{image_format}",
                "width": int(ex["width"]),
                "height": int(ex["height"]),
                "license": 1,
                "galaxy_id": str(ex["id"]) if ex.get("id") is not None else None,
            }
        )
        objs = ex["objects"]
        for box, cat, area in zip(objs["bbox"], objs["category"], objs["area"]):
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": iid,
                    "category_id": int(cat),
                    "bbox": [float(v) for v in box],
                    "area": float(area),
                    "iscrowd": 0,
                }
            )
            ann_id += 1
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "info": {
            "description": description,
            "version": "1.0",
            "year": now.year,
            "contributor": "hf-galaxy",
            "url": "",
            "date_created": now.isoformat(timespec="seconds"),
        },
        "licenses": [{"id": 1, "name": "Galaxy Zoo / survey data terms; see the dataset card", "url": ""}],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i, "name": n, "supercategory": "galaxy" if n not in EXTRA_CATEGORIES else "source"}
            for i, n in enumerate(categories)
        ],
    }


def export_coco(
    dataset: Any,
    out_dir: str | os.PathLike,
    *,
    split: str = "train",
    image_format: str = "jpg",
    description: str = "hf-galaxy detection set from Galaxy Zoo cutouts",
) -> Path | dict[str, Path]:
    """Write a detection-layout ``Dataset`` (or each split of a ``DatasetDict``) as COCO files.

    Writes ``out_dir/annotations/instances_<split>.json`` and the images as ``out_dir/<split>/<image_id
    :012d>.<image_format>`` (``file_name`` in the JSON is relative to ``out_dir``); each image entry also
    carries ``galaxy_id`` (the ``id`` column), which :func:`load_coco` reads back. Returns the JSON path (a
    dict split -> path for a ``DatasetDict``). Raises :class:`DetectionError` naming them when image ids repeat
    within a split (their files would overwrite each other).
    """
    from tqdm.auto import tqdm

    if image_format not in ("jpg", "png"):
        raise DetectionError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    out = Path(out_dir)
    if hasattr(dataset, "keys") and not hasattr(dataset, "features"):
        return {
            name: export_coco(ds, out, split=name, image_format=image_format, description=description)
            for name, ds in dataset.items()
        }
    categories_of(dataset)
    coco = _coco_dict(dataset, split, image_format, description)  # checks the ids before writing anything
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / split).mkdir(parents=True, exist_ok=True)
    for info, ex in tqdm(zip(coco["images"], dataset), total=len(dataset), desc=f"COCO {split}"):
        img = ex["image"].convert("RGB")
        img.save(
            out / info["file_name"],
            format="JPEG" if image_format == "jpg" else "PNG",
            **({"quality": 95} if image_format == "jpg" else {}),
        )
    path = out / "annotations" / f"instances_{split}.json"
    path.write_text(json.dumps(coco))
    return path


def load_coco(
    annotation_file: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    *,
    keep_empty: bool = True,
    on_bad_box: str = "clip",
) -> Any:
    """Read a COCO detection file into the detection layout (a ``datasets.Dataset``).

    ``image_dir``: where ``file_name`` is relative to (default: the parent of the ``annotations`` folder,
    or the JSON's folder). Categories become a ClassLabel in the order of their ids; ``category`` values are
    their positions (equal to the ids for files written by :func:`export_coco`). Bad boxes are clipped or
    dropped and counted (:func:`sanitize_objects`); annotations naming an unknown category id or image id
    raise :class:`DetectionError`.
    """
    import datasets

    path = Path(annotation_file)
    try:
        coco = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DetectionError(f"{path}: cannot read COCO JSON ({err})") from err
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise DetectionError(f"{path}: COCO file has no {key!r} list")
    if image_dir is None:
        image_dir = path.parent.parent if path.parent.name == "annotations" else path.parent
    image_dir = Path(image_dir)
    cats = sorted(coco["categories"], key=lambda c: c["id"])
    cat_pos = {int(c["id"]): i for i, c in enumerate(cats)}
    names = [str(c["name"]) for c in cats]
    for j, im in enumerate(coco["images"]):
        if not isinstance(im, dict) or "id" not in im:
            raise DetectionError(f"{path}: images[{j}] has no 'id'")
        if not isinstance(im.get("file_name"), str) or not im["file_name"]:
            raise DetectionError(f"{path}: image id={im['id']} (images[{j}]) has no 'file_name'")
    by_image: dict[int, list[dict[str, Any]]] = {int(im["id"]): [] for im in coco["images"]}
    for j, ann in enumerate(coco["annotations"]):
        if not isinstance(ann, dict):
            raise DetectionError(f"{path}: annotations[{j}] is not an object: {ann!r}")
        ann["bbox"] = _coco_bbox(ann, path, j)
        cid = ann.get("category_id")
        if cid not in cat_pos:
            raise DetectionError(
                f"{path}: annotation id={ann.get('id')} has category_id {cid!r}, which is not in categories "
                f"{sorted(cat_pos)} ({names})"
            )
        iid = ann.get("image_id")
        if iid not in by_image:
            raise DetectionError(f"{path}: annotation id={ann.get('id')} refers to unknown image_id {iid!r}")
        by_image[iid].append(ann)
    report = SanitizeReport()
    rows = []
    for im in coco["images"]:
        file = image_dir / im["file_name"]
        if not file.is_file():
            raise DetectionError(f"{path}: image id={im['id']}: file {file} does not exist")
        with Image.open(file) as probe:
            w, h = probe.size
        if ("width" in im and int(im["width"]) != w) or ("height" in im and int(im["height"]) != h):
            raise DetectionError(
                f"{path}: image id={im['id']}: {file} is {w}x{h}, the JSON says "
                f"{im.get('width')}x{im.get('height')}"
            )
        anns = by_image[int(im["id"])]
        objs = {
            "id": [int(a.get("id", j)) for j, a in enumerate(anns)],
            "bbox": [a["bbox"] for a in anns],
            "category": [cat_pos[a["category_id"]] for a in anns],
        }
        clean, rep = sanitize_objects(
            objs, w, h, categories=names, on_bad_box=on_bad_box, where=f"{path}: image id={im['id']}: "
        )
        report.add(rep)
        if not clean["bbox"]:
            report.empty_images += 1
            if not keep_empty:
                report.dropped_images += 1
                continue
        rows.append(
            {
                "image_id": int(im["id"]),
                "image": {"bytes": file.read_bytes(), "path": None},
                "width": w,
                "height": h,
                "objects": clean,
                "id": str(im["galaxy_id"] if im.get("galaxy_id") is not None else im["file_name"]),
            }
        )
    if report.n_dropped_boxes or report.clipped or report.dropped_images:
        logger.warning(
            "load_coco %s: %d boxes clipped, %d dropped (outside), %d dropped (non-positive size), "
            "%d empty images dropped",
            path,
            report.clipped,
            report.dropped_outside,
            report.dropped_nonpositive,
            report.dropped_images,
        )
    ds = datasets.Dataset.from_list(rows, features=detection_features(names))
    _set_info(ds, {"source": str(path), **asdict(report)})
    return ds


def _coco_bbox(ann: Mapping[str, Any], path: Path, index: int) -> list[float]:
    """The annotation's ``bbox`` as 4 floats, else a :class:`DetectionError` naming the file and annotation."""
    where = f"{path}: annotation id={ann.get('id', '?')} (annotations[{index}])"
    if "bbox" not in ann:
        raise DetectionError(f"{where} has no 'bbox' (expected [x, y, width, height])")
    box = ann["bbox"]
    if not isinstance(box, (list, tuple)) or len(box) != 4:
        raise DetectionError(f"{where}: bbox {box!r} is not 4 numbers [x, y, width, height]")
    try:
        if any(isinstance(v, (bool, str)) for v in box):
            raise TypeError
        return [float(v) for v in box]
    except (TypeError, ValueError):
        raise DetectionError(f"{where}: bbox {box!r} holds a non-numeric value") from None


def validate_coco(annotation_file: str | os.PathLike) -> dict[str, int]:
    """Load a COCO file with pycocotools (raises on a malformed file); returns image/annotation/category counts."""
    import contextlib
    import io

    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(annotation_file))
    return {
        "images": len(coco.getImgIds()),
        "annotations": len(coco.getAnnIds()),
        "categories": len(coco.getCatIds()),
    }


__all__ = [
    "BOX_SOURCES",
    "EXTRA_CATEGORIES",
    "BoxConfig",
    "DetObject",
    "DetectionError",
    "MosaicConfig",
    "SanitizeReport",
    "box_iou",
    "catalog_radius_px",
    "categories_of",
    "detection_card_facts",
    "detection_features",
    "detection_info",
    "export_coco",
    "galaxy_objects",
    "load_coco",
    "make_mosaics",
    "object_counts",
    "radius_box",
    "sanitize_objects",
    "segment_objects",
    "to_detection",
    "validate_coco",
]
