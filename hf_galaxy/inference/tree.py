"""Predictions of whole-tree models: the expected vote fraction of every answer of every question.

A whole-tree model is a plain ``AutoModelForImageClassification`` whose ``config.galaxy_zoo_tree`` holds the
decision tree; its outputs are turned into per-question fractions by
:func:`~hf_galaxy.inference.predict.output_probs`, so the batched loop, TTA and the ensembles all work on
fractions. :func:`predict_vote_fractions` is the one-call helper the model cards show::

    from hf_galaxy.inference import predict_vote_fractions

    frame = predict_vote_fractions("user/gz-decals-tree", ["galaxy.jpg"])  # pandas, one column per answer
    frame["smooth-or-featured_smooth_fraction"]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hf_galaxy.data.tree import TreeLayout, tree_layout_of


def fraction_columns(layout: TreeLayout) -> list[str]:
    """CSV/DataFrame column of each answer: ``<question>_<answer>_fraction`` (the GZ DECaLS catalogue names)."""
    return [f"{name}_fraction" for name in layout.answer_names]


def fractions_frame(fractions: np.ndarray, layout: TreeLayout, ids: Sequence[str] | None = None) -> Any:
    """A pandas DataFrame of predicted fractions (``id`` first when given), one column per answer."""
    import pandas as pd

    fractions = np.asarray(fractions, dtype=np.float64).reshape(-1, layout.n_answers)
    frame = pd.DataFrame(fractions, columns=fraction_columns(layout))
    if ids is not None:
        frame.insert(0, "id", list(ids))
    return frame


def require_tree_model(model: nn.Module, where: str = "the model") -> TreeLayout:
    """The tree of a whole-tree model; an error naming ``where`` for a one-question classifier."""
    layout = tree_layout_of(getattr(model, "config", None))
    if layout is None:
        raise ValueError(
            f"{where} is not a whole-tree model (its config.json has no galaxy_zoo_tree); use hf-galaxy predict "
            "or the image-classification pipeline for a classifier"
        )
    return layout


class _Images(torch.utils.data.Dataset):
    """PIL images (or image files) as ``{"id", "image"}`` rows; an unreadable file becomes ``{"id", "error"}``."""

    column_names = ["image", "id"]

    def __init__(self, images: Sequence[Any]) -> None:
        self.images = list(images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from hf_galaxy.inference.predict import ImageRows

        item = self.images[i]
        if isinstance(item, (str, os.PathLike)):  # a file: read as every image file is, errors kept
            return ImageRows([(str(item), str(item), None)])[0]
        return {"id": str(i), "image": item}


def predict_vote_fractions(
    model: str | os.PathLike | nn.Module,
    images: Any,
    *,
    image_processor: Any = None,
    image_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    tta_rotations: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> Any:
    """Expected vote fractions of every answer for ``images``, as a pandas DataFrame (``id`` and one
    ``<question>_<answer>_fraction`` column per answer; each question's fractions sum to 1).

    Args:
        model: a whole-tree model, or its training output directory, ``adapter/`` folder or Hub repo id.
        images: PIL images, image files, an image folder or a catalogue (with ``image_dir``), or a
            ``datasets.Dataset`` with an ``image`` column. Unreadable files are left out (with their ids
            in ``frame.attrs["skipped"]``).
        image_processor: the model's processor (loaded with the model when ``model`` is a name).
        tta_rotations: average each question's fractions over these rotations (multiples of 90 degrees).
    """
    from hf_galaxy.inference.predict import ImageRows, input_rows, predict_probs

    if isinstance(model, (str, os.PathLike)):
        from hf_galaxy.models import load_for_inference

        where = str(model)
        model, loaded = load_for_inference(str(model))
        image_processor = image_processor or loaded
    else:
        where = "the model"
    if image_processor is None:
        raise ValueError("predict_vote_fractions: pass image_processor= with a model object")
    layout = require_tree_model(model, where)
    if isinstance(images, (str, os.PathLike)) and Path(images).exists():
        data: Any = ImageRows(input_rows(images, image_dir)[0])
    elif hasattr(images, "column_names"):
        data = images
    else:
        data = _Images(images if isinstance(images, (list, tuple)) else [images])
    out = predict_probs(
        [model], [image_processor], data, batch_size=batch_size, tta_rotations=tta_rotations, device=device,
        progress=progress, desc="vote fractions",
    )  # fmt: skip
    frame = fractions_frame(out.probs[0], layout, out.ids or None)
    frame.attrs["skipped"] = list(out.skipped)
    return frame
