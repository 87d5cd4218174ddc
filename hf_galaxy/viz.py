"""Pictures of datasets: a grid of sample cutouts per class (prediction grids live in :mod:`hf_galaxy.plots`)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def sample_grid(
    dataset,
    path: str | os.PathLike,
    *,
    per_class: int = 4,
    title: str | None = None,
    seed: int = 0,
) -> Path:
    """Write a PNG grid of up to ``per_class`` random cutouts per class (one row per class, titled with it)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = dataset.features["label"].names
    labels = np.asarray(dataset["label"])
    rng = np.random.default_rng(seed)
    picks = {}
    for c in range(len(names)):
        idx = np.flatnonzero(labels == c)
        if len(idx):
            picks[c] = sorted(rng.choice(idx, size=min(per_class, len(idx)), replace=False).tolist())
    if not picks:
        raise ValueError("sample_grid needs a dataset with at least one row")
    fig = Figure(figsize=(1.9 * per_class, 2.0 * len(picks)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(picks), per_class, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, (c, rows) in enumerate(picks.items()):
        for k, i in enumerate(rows):
            axes[r, k].imshow(dataset[int(i)]["image"].convert("RGB"))
            axes[r, k].set_title(names[c], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out
