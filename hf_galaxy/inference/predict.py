"""One batched prediction loop for classifiers, used by ``hf-galaxy evaluate``/``predict``, the recipes' TTA
and the ensembles.

:func:`predict_probs` runs one or more models over a ``datasets.Dataset`` (``image`` column) or over image
files (:class:`ImageRows`) in one pass: each batch is decoded once and preprocessed once per distinct image
processor geometry (:meth:`~hf_galaxy.data.transforms.ProcessorSpec.key`), rotated once per test-time
augmentation angle and fed to every model, under autocast on a GPU. Unreadable images are skipped and
reported, never fatal.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

from hf_galaxy.data.transforms import ProcessorSpec, parse_rotations, rotate_pixel_values
from hf_galaxy.jsonio import write_json

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, or ``cuda`` when a GPU is available, else ``cpu``."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device, precision: str) -> Any:
    """``torch.autocast`` for bf16/fp16 inference on a GPU; a no-op for fp32 or on a CPU."""
    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp32" or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


def _logits(out: Any) -> torch.Tensor:
    return out["logits"] if isinstance(out, dict) else out[0]


def output_probs(model: nn.Module, logits: torch.Tensor) -> torch.Tensor:
    """A model's probabilities from its logits: the softmax over the classes, or, for a whole-tree model
    (``config.galaxy_zoo_tree``), the expected vote fractions of each question's answers."""
    from hf_galaxy.data.tree import tree_layout_of, tree_loss_of

    config = getattr(model, "config", None)
    layout = tree_layout_of(config)
    if layout is None:
        return logits.float().softmax(dim=-1)
    from hf_galaxy.training.tree_loss import expected_fractions

    return expected_fractions(logits.float(), layout.slices(), tree_loss_of(config))


def rotation_averaged_probs(
    models: Sequence[nn.Module], pixel_values: torch.Tensor, rotations: Sequence[int] = (0,)
) -> list[torch.Tensor]:
    """Each model's probabilities (:func:`output_probs`: class probabilities, or a whole-tree model's vote
    fractions per question) averaged over the rotated copies of ``pixel_values``.

    Each rotation (a multiple of 90 degrees) is computed once and fed to every model.
    """
    sums: list[torch.Tensor | None] = [None] * len(models)
    for angle in rotations:
        x = rotate_pixel_values(pixel_values, angle) if angle % 360 else pixel_values
        for i, model in enumerate(models):
            p = output_probs(model, _logits(model(pixel_values=x)))
            sums[i] = p if sums[i] is None else sums[i] + p
    return [s / len(rotations) for s in sums]


class TTAClassifier(nn.Module):
    """Wraps a classifier: logits = log of the softmax probabilities averaged over rotated copies."""

    def __init__(self, model: nn.Module, rotations: Sequence[int] = (0, 90, 180, 270)) -> None:
        super().__init__()
        self.model = model
        self.rotations = parse_rotations(rotations)
        self.config = getattr(model, "config", None)

    def forward(self, pixel_values: torch.Tensor, **kwargs: Any) -> ImageClassifierOutput:
        (probs,) = rotation_averaged_probs([self.model], pixel_values, self.rotations)
        return ImageClassifierOutput(logits=probs.clamp_min(1e-12).log())


class ImageRows(torch.utils.data.Dataset):
    """``(id, image_path, hdf5_index)`` rows (from :func:`list_inputs`) as ``{"id", "image"}`` examples;
    an unreadable or missing image becomes ``{"id", "error"}`` (skipped by the loop, with its reason)."""

    def __init__(
        self, rows: Sequence[tuple[str, str, int | None]], extras: dict[str, Sequence[Any]] | None = None
    ) -> None:
        self.rows = list(rows)
        self.extras = {k: list(v) for k, v in (extras or {}).items()}  # e.g. ra, dec: one value per row
        self.column_names = ["image", "id", *self.extras]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from hf_galaxy.data.dataset import open_image

        gid, path, index = self.rows[i]
        extra = {k: v[i] for k, v in self.extras.items()}
        if not path:
            return {"id": gid, "error": "no image path in the catalogue", **extra}
        try:
            return {"id": gid, "image": open_image(path, index), **extra}
        except (OSError, ValueError) as err:
            return {"id": gid, "error": str(err), **extra}


class BatchPreprocessor:
    """DataLoader collate function: decode once, preprocess once per distinct processor geometry.

    Returns ``pixel_values`` (one tensor per spec, or None when no image of the batch could be read),
    ``labels``/``votes``/``ids`` of the readable rows, ``skipped`` ``(id, reason)`` pairs, and with
    ``keep``, those columns of the readable rows (``extra``); with ``thumbnail_size``, their images
    reduced to that side (``thumbnails``, PIL).
    """

    def __init__(
        self,
        specs: Sequence[ProcessorSpec],
        image_column: str = "image",
        *,
        keep: Sequence[str] = (),
        thumbnail_size: int | None = None,
    ) -> None:
        self.specs = list(specs)
        self.image_column = image_column
        self.keep = list(keep)
        self.thumbnail_size = thumbnail_size

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        good, skipped = [], []
        for r in rows:
            if r.get(self.image_column) is not None:
                good.append(r)
            else:
                skipped.append((str(r.get("id")), r.get("error") or "no image"))
        images = [r[self.image_column] for r in good]
        out: dict[str, Any] = {
            "pixel_values": [torch.stack([spec(img) for img in images]) for spec in self.specs]
            if good
            else None,
            "skipped": skipped,
            "n": len(good),
        }
        if good and "label" in good[0]:
            out["labels"] = np.asarray([-100 if r["label"] is None else int(r["label"]) for r in good])
        if good and "votes" in good[0] and all(r["votes"] is not None for r in good):
            out["votes"] = np.asarray([r["votes"] for r in good], dtype=np.float64)
        if good and "counts" in good[0] and all(r["counts"] is not None for r in good):  # whole-tree datasets
            out["counts"] = np.asarray([r["counts"] for r in good], dtype=np.float64)
        if good and "id" in good[0]:
            out["ids"] = [str(r["id"]) for r in good]
        if self.keep:
            out["extra"] = {k: [r.get(k) for r in good] for k in self.keep}
        if self.thumbnail_size:
            side = self.thumbnail_size
            out["thumbnails"] = [img.convert("RGB") for img in images]  # a copy, in colour
            for thumb in out["thumbnails"]:
                thumb.thumbnail((side, side))
        return out


def image_batches(
    data: Any,
    specs: Sequence[ProcessorSpec],
    *,
    batch_size: int = 32,
    num_workers: int = 0,
    progress: bool = True,
    desc: str = "predict",
    image_column: str = "image",
    **collate: Any,
) -> Any:
    """Batches of ``data`` (a ``datasets.Dataset`` or :class:`ImageRows`) from :class:`BatchPreprocessor`
    (``collate`` are its keyword options), in order, with a tqdm bar over the images (read or skipped); the
    loop of every batched inference pass."""
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    loader = DataLoader(
        data, batch_size=batch_size, shuffle=False, num_workers=num_workers,
        collate_fn=BatchPreprocessor(specs, image_column, **collate),
    )  # fmt: skip
    with tqdm(total=len(data), desc=desc, unit="img", disable=not progress) as bar:
        for batch in loader:
            yield batch
            bar.update(batch["n"] + len(batch["skipped"]))


@dataclass
class RawPredictions:
    """What :func:`predict_probs` returns: ``probs`` is ``(n_models, n, n_classes)`` over the readable rows."""

    probs: np.ndarray
    labels: np.ndarray | None = None
    votes: np.ndarray | None = None
    counts: np.ndarray | None = None  # a whole-tree dataset's answer counts
    ids: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


@torch.no_grad()
def predict_probs(
    models: Sequence[nn.Module],
    processors: Sequence[Any],
    data: Any,
    *,
    batch_size: int = 32,
    tta_rotations: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    num_workers: int = 0,
    progress: bool = True,
    desc: str = "predict",
    image_column: str = "image",
) -> RawPredictions:
    """Class probabilities of every model on ``data`` in one pass (see the module docstring).

    ``data`` is a ``datasets.Dataset`` with an ``image`` column (and optionally ``label``, ``votes``, ``id``)
    or an :class:`ImageRows`. ``processors[i]`` is ``models[i]``'s image processor. Shows a tqdm bar.
    """
    if not models or len(models) != len(processors):
        raise ValueError("predict_probs needs one image processor per model, and at least one model")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if image_column not in data.column_names:
        raise ValueError(
            f"the dataset has no {image_column!r} column (columns: {data.column_names}); expected the "
            "schema of load_galaxy_dataset (image, label, votes, id)"
        )
    rotations = parse_rotations(tta_rotations) if tta_rotations else [0]
    specs: list[ProcessorSpec] = []
    groups: list[list[int]] = []  # the model indices using each distinct spec
    keys: dict[tuple, int] = {}
    for i, processor in enumerate(processors):
        spec = ProcessorSpec.from_processor(processor)
        if spec.key() not in keys:
            keys[spec.key()] = len(specs)
            specs.append(spec)
            groups.append([])
        groups[keys[spec.key()]].append(i)
    if len(specs) > 1:
        logger.info("the models use %d distinct preprocessing configurations", len(specs))
    if hasattr(data, "select_columns"):
        data = data.select_columns(
            [c for c in (image_column, "label", "votes", "counts", "id") if c in data.column_names]
        )
    device = resolve_device(device)
    for m in models:
        m.to(device).eval()
    n_classes = int(getattr(getattr(models[0], "config", None), "num_labels", 0) or 0)
    probs: list[list[np.ndarray]] = [[] for _ in models]
    labels: list[np.ndarray] = []
    votes: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    out = RawPredictions(probs=np.zeros((len(models), 0, n_classes)))
    batches = image_batches(
        data, specs, batch_size=batch_size, num_workers=num_workers, progress=progress, desc=desc,
        image_column=image_column,
    )  # fmt: skip
    with autocast(device, precision):
        for batch in batches:
            out.skipped += batch["skipped"]
            if batch["pixel_values"] is None:
                continue
            for spec_idx, member_idx in enumerate(groups):
                x = batch["pixel_values"][spec_idx].to(device, non_blocking=True)
                ps = rotation_averaged_probs([models[i] for i in member_idx], x, rotations)
                for i, p in zip(member_idx, ps):
                    probs[i].append(p.double().cpu().numpy())
            if "labels" in batch:
                labels.append(batch["labels"])
            if "votes" in batch:
                votes.append(batch["votes"])
            if "counts" in batch:
                counts.append(batch["counts"])
            out.ids.extend(batch.get("ids", []))
    if probs[0]:
        out.probs = np.stack([np.concatenate(p) for p in probs])
    n = out.probs.shape[1]
    out.labels = np.concatenate(labels) if labels else None
    out.votes = np.concatenate(votes) if votes and sum(len(v) for v in votes) == n else None
    out.counts = np.concatenate(counts) if counts and sum(len(c) for c in counts) == n else None
    return out


def list_inputs(
    source: str | os.PathLike, image_dir: str | os.PathLike | None = None
) -> list[tuple[str, str, int | None]]:
    """``(id, image_path, hdf5_index)`` rows from an image folder (recursive) or any supported catalogue;
    :func:`input_rows` without the catalogue columns."""
    return input_rows(source, image_dir)[0]


def input_rows(
    source: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    columns: Sequence[str] = (),
) -> tuple[list[tuple[str, str, int | None]], dict[str, list[Any]]]:
    """``(id, image_path, hdf5_index)`` rows from an image folder (recursive) or any supported catalogue, and
    the catalogue's ``columns`` among those it has (e.g. ``ra``, ``dec``), one value per row.

    In a folder, the image files are those with an extension of
    :data:`hf_galaxy.data.catalogs._common.IMAGE_EXTENSIONS` (the catalogue readers' list); the id is the path
    relative to the folder without that extension (``.fits.gz`` counts as one: ``a/x.fits.gz`` -> ``a/x``).
    """
    from hf_galaxy.data.catalogs._common import IMAGE_EXTENSIONS, split_image_name

    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist (expected an image folder or a catalogue file)")
    if path.is_dir() and image_dir is None:
        rows_dir = []
        for p in sorted(path.rglob("*")):
            parts = split_image_name(p.name) if p.is_file() else None
            if parts is not None:
                rows_dir.append((str(p.relative_to(path).parent / parts[0]), str(p), None))
        if not rows_dir:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {path}")
        return rows_dir, {}
    from hf_galaxy.data.catalogs import read_catalog

    table = read_catalog(path, image_dir).table
    if "image_path" not in table.columns:
        raise ValueError(f"catalogue {path} has no image paths: pass --image_dir with the cutouts")
    index = table["image_index"] if "image_index" in table.columns else [None] * len(table)
    rows = []
    for gid, img, idx in zip(table["id"], table["image_path"], index):
        missing = img is None or (isinstance(img, float) and math.isnan(img))
        no_index = idx is None or (isinstance(idx, float) and math.isnan(idx))
        rows.append((str(gid), "" if missing else str(img), None if missing or no_index else int(idx)))
    return rows, {c: table[c].tolist() for c in columns if c in table.columns}


def inference_inputs(
    source: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    columns: Sequence[str] = (),
    *,
    dataset_config_name: str | None = None,
    revision: str | None = None,
) -> Any:
    """What an inference command reads from ``source``: :class:`ImageRows` of an image folder or catalogue
    (:func:`input_rows`), or, for a dataset with its images inside (a Hub dataset id, a local copy of one, a
    parquet file with images), all its splits as one ``datasets.Dataset`` with ``image``, ``id`` and ``columns``."""
    from hf_galaxy.data.hub import is_embedded, open_embedded

    if not is_embedded(source):
        rows, extras = input_rows(source, image_dir, columns)
        return ImageRows(rows, extras)
    import datasets

    src = open_embedded(source, name=dataset_config_name, revision=revision)
    data = datasets.concatenate_datasets(list(src.splits.values()))
    if src.image_column != "image":
        data = data.rename_column(src.image_column, "image")
    data = data.cast_column("image", datasets.Image())
    if "id" not in data.column_names:
        id_col = next((c for c in ("id_str", "iauname", "dr8_id", "objid") if c in data.column_names), None)
        ids = [str(v) for v in data[id_col]] if id_col else [str(i) for i in range(len(data))]
        data = data.add_column("id", ids)
    return data.select_columns(["image", "id", *(c for c in columns if c in data.column_names)])


def predict_files(
    model: nn.Module,
    image_processor: Any,
    rows: Sequence[tuple[str, str, int | None]],
    *,
    batch_size: int = 32,
    tta_rotations: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[list[str], np.ndarray, list[tuple[str, str]]]:
    """Class probabilities for ``rows`` from :func:`list_inputs`.

    Returns ``(ids, probs, skipped)``: ``skipped`` lists ``(id, reason)`` for unreadable images, which get
    no prediction. Shows a tqdm progress bar.
    """
    out = predict_probs(
        [model], [image_processor], ImageRows(rows), batch_size=batch_size, tta_rotations=tta_rotations,
        device=device, progress=progress,
    )  # fmt: skip
    return out.ids, out.probs[0], out.skipped


def evaluate_model(
    model_name_or_path: str,
    dataset_split: Any,
    *,
    output_dir: str | os.PathLike,
    batch_size: int = 32,
    tta_rotations: Sequence[int] | None = None,
    precision: str = "auto",
    split_name: str = "test",
) -> dict[str, float]:
    """Evaluate a trained model (directory or Hub repo) on a labelled split; writes ``<split>_results.json`` and
    a plot: the confusion matrix of a classifier, or for a whole-tree model (scored per question against the
    split's answer ``counts``) its predicted against volunteer fractions."""
    from accelerate import PartialState

    from hf_galaxy.data.dataset import label_names
    from hf_galaxy.data.tree import tree_layout_of
    from hf_galaxy.metrics import classification_metrics, confusion, nll, tree_metrics
    from hf_galaxy.models import load_for_inference, model_label_names
    from hf_galaxy.plots import plot_confusion_matrix, plot_tree_fractions
    from hf_galaxy.training.precision import resolve_precision

    model, processor = load_for_inference(model_name_or_path)
    layout = tree_layout_of(model.config)
    class_names = model_label_names(model, model_name_or_path)
    if layout is not None:
        if "counts" not in dataset_split.column_names:
            raise ValueError(
                f"{model_name_or_path} is a whole-tree model: evaluate it on a dataset loaded with --label_scheme "
                "tree (the vote count of every answer)"
            )
        width = (
            len(dataset_split.select_columns(["counts"])[0]["counts"])
            if len(dataset_split)
            else layout.n_answers
        )
        if width != layout.n_answers:
            raise ValueError(
                f"the dataset's counts have {width} answers; the model's tree {layout.name!r} has {layout.n_answers}"
            )
    else:
        data_names = label_names(dataset_split)
        if data_names and data_names != class_names:
            raise ValueError(
                f"the dataset's classes {data_names} differ from the model's labels {class_names}; "
                "evaluate on a dataset with the model's label scheme"
            )
    out = predict_probs(
        [model], [processor], dataset_split, batch_size=batch_size, tta_rotations=tta_rotations,
        precision=resolve_precision(precision)[0], desc=f"evaluate ({split_name})",
    )  # fmt: skip
    if out.skipped:
        raise ValueError(
            f"{len(out.skipped)} images of the {split_name} split could not be read, e.g. {out.skipped[0]}"
        )
    probs = out.probs[0]
    labels = out.labels if out.labels is not None else np.full(len(probs), -100)
    known = labels >= 0
    if layout is not None:
        raw = tree_metrics(probs, out.counts, layout)
    else:
        raw = classification_metrics(probs, labels, class_names, votes=out.votes)
        if known.any():  # the cross-entropy the Trainer reports as loss
            raw["loss"] = nll(probs[known], labels[known])
    metrics = {f"{split_name}_{k}": float(v) for k, v in raw.items()}
    metrics[f"{split_name}_samples"] = float(len(probs))
    if not PartialState().is_main_process:
        return metrics
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_json(output_dir / f"{split_name}_results.json", metrics)
    if layout is not None:
        plot_tree_fractions(
            probs, out.counts, layout, output_dir / f"{split_name}_tree_fractions.png",
            title=f"Predicted vs volunteer vote fractions ({split_name}, n={len(probs)})",
        )  # fmt: skip
    else:
        plot_confusion_matrix(
            confusion(labels[known], probs.argmax(axis=1)[known], len(class_names)),
            class_names,
            output_dir / f"{split_name}_confusion_matrix.png",
            title=f"Confusion matrix ({split_name})",
        )
    return metrics
