"""Every picture hf-galaxy writes: dataset grids, confusion matrices, prediction grids, curves, detections.

Figures are built with :class:`matplotlib.figure.Figure` directly (Agg canvas), so nothing here touches
pyplot's global state or needs a display.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image


def _save(fig: Figure, path: str | Path, *, dpi: int = 110, tight: bool = True) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=dpi, bbox_inches="tight" if tight else None)
    return path


def _image_grid(n: int, ncols: int, cell: tuple[float, float], what: str) -> tuple[Figure, list[Any]]:
    """A figure of ``n`` image panels (axes off) in rows of ``ncols``; ``cell`` is a panel's (width, height)."""
    if n == 0:
        raise ValueError(f"{what} needs at least one image")
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(cell[0] * ncols, cell[1] * nrows))
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes:
        ax.set_axis_off()
    return fig, axes[:n]


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
    fig, axes = _image_grid(len(images), ncols, (2.6, 2.9), "plot_sample_grid")
    for k, (ax, img) in enumerate(zip(axes, images)):
        ax.imshow(np.asarray(img))
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


def sample_grid(
    dataset,
    path: str | os.PathLike,
    *,
    per_class: int = 4,
    title: str | None = None,
    seed: int = 0,
) -> Path:
    """Write a PNG grid of up to ``per_class`` random cutouts per class (one row per class, titled with it)."""
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
    fig, axes = _image_grid(len(picks) * per_class, per_class, (1.9, 2.0), "sample_grid")
    for r, (c, rows) in enumerate(picks.items()):
        for k, i in enumerate(rows):
            axes[r * per_class + k].imshow(dataset[int(i)]["image"].convert("RGB"))
            axes[r * per_class + k].set_title(names[c], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, tight=False)


def plot_detections(
    images: Sequence[Image.Image],
    detections: Sequence[dict[str, np.ndarray]],
    categories: Sequence[str],
    path: str | Path,
    *,
    truths: Sequence[dict[str, Any]] | None = None,
    score_threshold: float = 0.3,
    columns: int = 4,
) -> Path:
    """Draw predicted boxes (solid, with category and score) and true boxes (dashed) on a grid; save PNG."""
    from matplotlib import colormaps
    from matplotlib.patches import Rectangle

    fig, axes = _image_grid(len(images), columns, (3.2, 3.2), "plot_detections")
    colours = colormaps["tab10"]
    for i, (ax, img, det) in enumerate(zip(axes, images, detections)):
        ax.imshow(img)
        if truths is not None:
            t = truths[i]
            for b, c in zip(t["bbox"], t["category"]):
                ax.add_patch(
                    Rectangle(
                        (b[0], b[1]),
                        b[2],
                        b[3],
                        fill=False,
                        ls="--",
                        lw=1.0,
                        ec=colours(int(c) % 10),
                        alpha=0.8,
                    )
                )
        scores = np.asarray(det["scores"])
        keep = scores >= score_threshold
        title = f"{int(keep.sum())} predicted (score >= {score_threshold})"
        if not keep.any() and scores.size:  # an untrained model: show its best guesses anyway
            keep = np.zeros_like(keep)
            keep[np.argsort(-scores)[:3]] = True
            title = f"none >= {score_threshold}; best 3 shown"
        for b, s, c in zip(
            np.asarray(det["boxes"])[keep], np.asarray(det["scores"])[keep], np.asarray(det["labels"])[keep]
        ):
            ax.add_patch(
                Rectangle((b[0], b[1]), b[2] - b[0], b[3] - b[1], fill=False, lw=1.5, ec=colours(int(c) % 10))
            )
            ax.text(
                b[0],
                b[1],
                f"{categories[int(c)]} {s:.2f}",
                fontsize=6,
                color="white",
                bbox={"facecolor": colours(int(c) % 10), "alpha": 0.7, "pad": 1, "lw": 0},
                va="bottom",
            )
        ax.set_title(title, fontsize=7)
    fig.suptitle("predictions (solid) and true boxes (dashed)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path, dpi=100, tight=False)


def plot_reconstructions(
    panels: dict[str, np.ndarray], path: str | Path, mask_ratio: float | None = None
) -> Path:
    """Rows of galaxies, columns of ``panels`` (e.g. original / masked input / reconstruction), each a
    ``(n, H, W, 3)`` array in [0, 1]."""
    names = list(panels)
    n = len(panels[names[0]])
    fig, axes = _image_grid(n * len(names), len(names), (1.9, 2.0), "plot_reconstructions")
    for row in range(n):
        for col, name in enumerate(names):
            ax = axes[row * len(names) + col]
            ax.imshow(panels[name][row])
            if row == 0:
                title = (
                    name if name != "masked" or mask_ratio is None else f"masked ({mask_ratio:.0%} hidden)"
                )
                ax.set_title(title, fontsize=9)
    return _save(fig, path)


def plot_neighbours(
    query: Any, neighbours: Sequence[Any], titles: Sequence[str], path: str | Path, query_title: str = "query"
) -> Path:
    """The query galaxy (first panel, framed) and its nearest neighbours, each titled (e.g. id, distance)."""
    fig, axes = _image_grid(1 + len(neighbours), min(5, 1 + len(neighbours)), (2.2, 2.5), "plot_neighbours")
    for ax, img, title in zip(axes, [query, *neighbours], [query_title, *titles]):
        ax.imshow(np.asarray(img))
        ax.set_title(title, fontsize=8)
    axes[0].set_axis_on()
    axes[0].set_xticks([])
    axes[0].set_yticks([])
    for spine in axes[0].spines.values():
        spine.set_edgecolor("tab:blue")
        spine.set_linewidth(3)
    return _save(fig, path)


def plot_tree_fractions(
    pred_fractions: np.ndarray,
    counts: np.ndarray,
    layout: Any,
    path: str | Path,
    title: str = "Predicted vs volunteer vote fractions",
) -> Path:
    """One panel per question of a whole-tree model: predicted against volunteer vote fraction of each answer
    (a colour per answer), over the galaxies where somebody answered the question, with its vote RMSE."""
    pred = np.asarray(pred_fractions, dtype=np.float64)
    true = layout.fractions(counts)
    n = len(layout.questions)
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(3.2 * ncols, 3.4 * nrows), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_axis_off()
    for ax, q, answers, s in zip(axes, layout.questions, layout.answers, layout.slices()):
        answered = ~np.isnan(true[:, s]).any(axis=1)
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--")
        for j, a in enumerate(answers):
            ax.scatter(true[answered, s.start + j], pred[answered, s.start + j], s=6, alpha=0.6, label=a)
        rmse = (
            float(np.sqrt(np.mean((pred[answered, s] - true[answered, s]) ** 2)))
            if answered.any()
            else np.nan
        )
        ax.set_title(f"{q}\nn={int(answered.sum())}, RMSE {rmse:.3f}", fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("volunteer fraction", fontsize=7)
        ax.set_ylabel("predicted fraction", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5, loc="upper left", markerscale=1.5)
    fig.suptitle(title)
    return _save(fig, path)
