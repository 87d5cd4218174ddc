"""Pictures of datasets: a grid of sample cutouts with their labels."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def sample_grid(
    dataset,
    path: str | os.PathLike,
    *,
    per_class: int = 4,
    predictions: Sequence[int] | None = None,
    title: str | None = None,
    seed: int = 0,
) -> Path:
    """Write a PNG grid of ``per_class`` cutouts per class (rows = classes), labelled with the true class
    and, when ``predictions`` (indices aligned with ``dataset``) are given, the predicted class in green
    (right) or red (wrong)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = dataset.features["label"].names
    labels = np.asarray(dataset["label"])
    rng = np.random.default_rng(seed)
    picks: list[list[int]] = []
    for c in range(len(names)):
        idx = np.flatnonzero(labels == c)
        picks.append(sorted(rng.choice(idx, size=min(per_class, len(idx)), replace=False).tolist()) if len(idx) else [])
    rows = [r for r in range(len(names)) if picks[r]]
    fig, axes = plt.subplots(len(rows), per_class, figsize=(1.9 * per_class, 2.0 * len(rows)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, c in enumerate(rows):
        for k, i in enumerate(picks[c]):
            ax = axes[r, k]
            ax.imshow(dataset[int(i)]["image"].convert("RGB"))
            text, color = names[c], "black"
            if predictions is not None:
                p = int(predictions[int(i)])
                text = f"true: {names[c]}\npred: {names[p]}"
                color = "green" if p == c else "red"
            ax.set_title(text, fontsize=7, color=color)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
