"""Galaxy embeddings and similarity search.

:func:`load_encoder` loads the backbone of any trained model (a classifier output directory, its LoRA
``adapter/``, an MAE encoder from ``recipes/vit_mae.py`` or a Hub repo) as an ``AutoModel``.
:func:`embed_images` runs it over a ``datasets.Dataset`` or image files with the batched inference loop of
:mod:`~hf_galaxy.inference.predict` and returns a ``datasets.Dataset`` of pooled features (``id``, ``ra``/
``dec`` when known, ``label`` when the data has one, ``embedding``, and a small ``thumbnail`` for pictures).
:func:`nearest_neighbours` searches it with scikit-learn.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from hf_galaxy.data.transforms import ProcessorSpec
from hf_galaxy.inference.predict import autocast, image_batches, resolve_device

logger = logging.getLogger(__name__)

POOLINGS = ("auto", "mean", "cls", "pooler")
#: file next to a saved embedding Dataset recording the model and pooling that made it (hf-galaxy similar reads it)
EMBEDDING_INFO = "hf_galaxy_embedding.json"
#: columns an embedding dataset carries over from its input when present
CARRIED_COLUMNS = ("ra", "dec")


def load_encoder(model_name_or_path: str, revision: str | None = None) -> tuple[nn.Module, Any]:
    """The backbone (``AutoModel``, no task head) of a checkpoint and its image processor, in eval mode."""
    from transformers import AutoConfig, AutoModel

    from hf_galaxy.models.loading import checkpoint_dir, checkpoint_processor, load_for_inference

    path = checkpoint_dir(model_name_or_path, revision)
    if (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        classifier, processor = load_for_inference(str(path))
        return classifier.base_model.eval(), processor
    config = AutoConfig.from_pretrained(path)
    if getattr(config, "model_type", None) == "vit_mae":  # a whole autoencoder (DIR/mae): embed every patch
        config.mask_ratio = 0.0
    model_class = AutoModel._model_mapping[type(config)]
    kwargs = {}
    if "add_pooling_layer" in inspect.signature(model_class.__init__).parameters:
        kwargs["add_pooling_layer"] = (
            False  # a ViT's pooler is a classification-head layer, never trained here
        )
    model = model_class.from_pretrained(path, config=config, **kwargs)
    return model.eval(), checkpoint_processor(path)


def pool(output: Any, pooling: str = "auto") -> torch.Tensor:
    """One vector per image from a backbone's output.

    ``mean``: the mean of the patch tokens (a ViT's ``last_hidden_state`` without its [CLS] token; the MAE
    paper's choice); ``cls``: the [CLS] token; ``pooler``: ``pooler_output`` (a CNN's global average pool).
    ``auto`` takes ``pooler`` for CNNs and ``mean`` for transformers.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    hidden = output["last_hidden_state"] if isinstance(output, dict) else output[0]
    pooled = output.get("pooler_output") if isinstance(output, dict) else None
    sequence = hidden.dim() == 3
    if pooling == "auto":
        pooling = "mean" if sequence else "pooler"
    if pooling == "pooler":
        if pooled is None:
            raise ValueError("this model has no pooler_output: use pooling 'mean' or 'cls'")
        return pooled.flatten(1)
    if not sequence:
        raise ValueError(
            f"pooling {pooling!r} needs a token sequence; this model gives feature maps: use 'pooler'"
        )
    return hidden[:, 0] if pooling == "cls" else hidden[:, 1:].mean(dim=1)


@torch.no_grad()
def embed_images(
    model: nn.Module,
    processor: Any,
    data: Any,
    *,
    pooling: str = "auto",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    thumbnail_size: int | None = 64,
    progress: bool = True,
) -> tuple[Any, list[tuple[str, str]]]:
    """Pooled features of every readable image of ``data`` (a ``datasets.Dataset`` with an ``image`` column, or
    :class:`~hf_galaxy.inference.predict.ImageRows`).

    Returns ``(embeddings, skipped)``: a ``datasets.Dataset`` with ``id``, ``ra``/``dec`` and ``label`` when the
    data has them, ``embedding`` (float32) and ``thumbnail`` (unless ``thumbnail_size`` is None), and the
    ``(id, reason)`` of the images that could not be read. Shows a progress bar.
    """
    from datasets import ClassLabel, Dataset, Features, Image, List, Value

    columns = list(getattr(data, "column_names", []))
    if "image" not in columns:
        raise ValueError(f"the data has no 'image' column (columns: {columns})")
    keep = [c for c in CARRIED_COLUMNS if c in columns]
    if hasattr(data, "select_columns"):
        data = data.select_columns([c for c in ("image", "id", "label", *keep) if c in columns])
        if "id" not in columns:  # rows are named by their position, before any is skipped
            data = data.add_column("id", [str(i) for i in range(len(data))])
    device = resolve_device(device)
    model.to(device).eval()
    spec = ProcessorSpec.from_processor(processor)
    ids: list[str] = []
    vectors: list[np.ndarray] = []
    labels: list[int] = []
    extra: dict[str, list[Any]] = {k: [] for k in keep}
    thumbs: list[Any] = []
    skipped: list[tuple[str, str]] = []
    batches = image_batches(
        data, [spec], batch_size=batch_size, progress=progress, desc="embed", keep=keep,
        thumbnail_size=thumbnail_size,
    )  # fmt: skip
    with autocast(device, precision):
        for batch in batches:
            skipped += batch["skipped"]
            if batch["pixel_values"] is None:
                continue
            out = model(pixel_values=batch["pixel_values"][0].to(device))
            vectors.append(pool(out, pooling).float().cpu().numpy())
            ids += batch["ids"]
            if "labels" in batch:
                labels += [int(v) for v in batch["labels"]]
            for k in keep:
                extra[k] += batch["extra"][k]
            thumbs += batch.get("thumbnails", [])
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, 0), np.float32)
    table: dict[str, Any] = {"id": ids, **extra}
    features: dict[str, Any] = {"id": Value("string"), **{k: Value("float64") for k in keep}}
    label_feature = getattr(data, "features", {}).get("label") if hasattr(data, "features") else None
    if labels and len(labels) == len(ids):
        table["label"] = labels
        features["label"] = label_feature if isinstance(label_feature, ClassLabel) else Value("int64")
    table["embedding"] = list(matrix)
    features["embedding"] = List(Value("float32"), length=int(matrix.shape[1]) if len(matrix) else -1)
    if thumbnail_size:
        table["thumbnail"] = thumbs
        features["thumbnail"] = Image()
    return Dataset.from_dict(table, features=Features(features)), skipped


def embedding_matrix(embeddings: Any) -> np.ndarray:
    """The ``embedding`` column of an embedding dataset as an ``(n, d)`` float32 array."""
    return np.asarray(embeddings.with_format("numpy")["embedding"], dtype=np.float32)


def nearest_neighbours(
    embeddings: Any, query: str | int | np.ndarray, k: int = 8, metric: str = "cosine"
) -> list[dict[str, Any]]:
    """The ``k`` galaxies of ``embeddings`` closest to ``query`` (an ``id`` of the dataset, a row index, or a
    vector), nearest first, as ``{"index", "id", "distance"}`` (the query galaxy itself is left out).

    Uses ``sklearn.neighbors.NearestNeighbors`` (exact search; ``metric`` is any of its metrics).
    """
    from sklearn.neighbors import NearestNeighbors

    matrix = embedding_matrix(embeddings)
    if len(matrix) == 0:
        raise ValueError("the embedding dataset is empty")
    ids = list(embeddings["id"])
    exclude = None
    if isinstance(query, np.ndarray):
        vector = np.asarray(query, dtype=np.float32).reshape(1, -1)
    else:
        if isinstance(query, str):
            if query not in ids:
                close = [i for i in ids if query in i][:3]
                hint = f"; ids containing it: {', '.join(close)}" if close else ""
                raise ValueError(f"no galaxy with id {query!r} in the embeddings ({len(ids)} galaxies){hint}")
            exclude = ids.index(query)
        else:
            exclude = int(query)
            if not 0 <= exclude < len(ids):
                raise ValueError(f"row {exclude} is outside the embeddings (0..{len(ids) - 1})")
        vector = matrix[exclude : exclude + 1]
    n = min(len(matrix), k + (exclude is not None))
    index = NearestNeighbors(n_neighbors=n, metric=metric).fit(matrix)
    distances, rows = index.kneighbors(vector)
    found = [
        {"index": int(r), "id": ids[int(r)], "distance": float(d)}
        for d, r in zip(distances[0], rows[0])
        if int(r) != exclude
    ]
    return found[:k]


def neighbour_labels(embeddings: Any, neighbours: Sequence[dict[str, Any]]) -> list[str] | None:
    """The class names of ``neighbours`` when the embedding dataset has a ``label`` ClassLabel column."""
    feature = embeddings.features.get("label")
    if feature is None:
        return None
    values = [embeddings[n["index"]]["label"] for n in neighbours]
    names = getattr(feature, "names", None)
    return [names[v] if names else str(v) for v in values]
