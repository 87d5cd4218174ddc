"""Training plots written to the output directory (matplotlib, no display needed).

Figures are built with :class:`matplotlib.figure.Figure` directly (Agg canvas), so nothing here touches
pyplot's global state or needs a display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_confusion_matrix(
    cm: np.ndarray, class_names: Sequence[str], path: str | Path, title: str = "Confusion matrix"
) -> Path:
    """Confusion matrix (rows true, columns predicted) with counts and row-normalised colours."""
    cm = np.asarray(cm)
    n = len(class_names)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(1.1 * n + 2.5, 1.0 * n + 2))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    ax.set_xticks(range(n), labels=list(class_names), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(class_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(int(cm[i, j])),
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
            )
    return _save(fig, path)


def plot_sample_grid(
    images: Sequence[Any],
    true_labels: Sequence[int],
    pred_labels: Sequence[int],
    class_names: Sequence[str],
    path: str | Path,
    probs: np.ndarray | None = None,
    ncols: int = 4,
) -> Path:
    """Grid of images titled with true and predicted class (green when right, red when wrong)."""
    n = len(images)
    if n == 0:
        raise ValueError("plot_sample_grid needs at least one image")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(2.6 * ncols, 2.9 * nrows))
    for k, img in enumerate(images):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        ax.imshow(np.asarray(img))
        ax.set_axis_off()
        t, p = int(true_labels[k]), int(pred_labels[k])
        conf = f" ({probs[k, p]:.2f})" if probs is not None else ""
        true_name = class_names[t] if t >= 0 else "?"
        ax.set_title(
            f"true: {true_name}\npred: {class_names[p]}{conf}", fontsize=8, color="green" if t == p else "red"
        )
    return _save(fig, path)


def plot_training_curves(log_history: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Training/validation loss and validation metrics against step, from ``trainer.state.log_history``."""
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    evals = [h for h in log_history if "eval_loss" in h and "step" in h]
    metric_keys = [
        k for k in ("eval_accuracy", "eval_macro_f1", "eval_top2_accuracy") if any(k in h for h in evals)
    ]
    fig = Figure(figsize=(11, 4))
    ax1 = fig.add_subplot(1, 2, 1)
    if train:
        ax1.plot(*zip(*train), label="training loss", marker=".")
    if evals:
        ax1.plot(
            [h["step"] for h in evals], [h["eval_loss"] for h in evals], label="validation loss", marker="o"
        )
    ax1.set_xlabel("step")
    ax1.set_ylabel("loss")
    ax1.set_title("Loss")
    if train or evals:
        ax1.legend()
    ax2 = fig.add_subplot(1, 2, 2)
    for key in metric_keys:
        pts = [(h["step"], h[key]) for h in evals if key in h]
        ax2.plot(*zip(*pts), label=key.removeprefix("eval_"), marker="o")
    ax2.set_xlabel("step")
    ax2.set_ylim(0, 1.02)
    ax2.set_title("Validation metrics")
    if metric_keys:
        ax2.legend()
    else:
        ax2.text(0.5, 0.5, "no evaluation logged", ha="center", va="center", transform=ax2.transAxes)
    return _save(fig, path)
