"""Metrics computed locally (numpy, scikit-learn, pycocotools; no metric downloads). The classification
metrics are also shipped as ``evaluate`` modules (:func:`load_metric`), which the Trainer path combines.

* classification: accuracy, macro-F1, per-class precision/recall, top-2 accuracy, expected calibration error
  (15 equal-width confidence bins) and, when volunteer vote fractions are available, the vote RMSE of the
  2014 Kaggle Galaxy Challenge (root-mean-square error between predicted probabilities and vote fractions);
* detection: COCO mAP, mAP50, mAP75, mAR@1/10/100 and per-class AP (:func:`coco_map`).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

logger = logging.getLogger(__name__)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax over the last axis."""
    logits = np.asarray(logits, dtype=np.float64)
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood (log-loss) of integer ``labels`` under ``probs`` (N x C)."""
    p = np.clip(np.asarray(probs)[np.arange(len(labels)), np.asarray(labels)], 1e-15, None)
    return float(-np.log(p).mean())


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Expected calibration error: sum over equal-width confidence bins of |accuracy - confidence| x weight."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        return float("nan")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # bin i holds confidences in (edges[i], edges[i+1]]; confidence 0 falls in the first bin
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = idx == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


def vote_rmse(probs: np.ndarray, votes: np.ndarray) -> float:
    """Root-mean-square error between predicted class probabilities and volunteer vote fractions."""
    probs = np.asarray(probs, dtype=np.float64)
    votes = np.asarray(votes, dtype=np.float64)
    if probs.shape != votes.shape:
        raise ValueError(f"probabilities {probs.shape} and votes {votes.shape} must have the same shape")
    return float(np.sqrt(np.mean((probs - votes) ** 2)))


def votes_are_informative(votes: np.ndarray | None) -> bool:
    """True when ``votes`` hold real vote fractions (not only one-hot rows standing in for missing votes)."""
    if votes is None:
        return False
    votes = np.asarray(votes, dtype=np.float64)
    if votes.size == 0:
        return False
    one_hot = np.isclose(votes, 0.0) | np.isclose(votes, 1.0)
    return not bool(one_hot.all())


def accuracy_metrics(probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict[str, float]:
    """accuracy, macro-F1, top-2 accuracy and per-class precision/recall of probabilities ``probs`` (N x C)
    against integer ``labels`` (N, all known)."""
    n_classes = len(class_names)
    classes = list(range(n_classes))
    pred = probs.argmax(axis=1)
    out: dict[str, float] = {
        "accuracy": float(accuracy_score(labels, pred)),
        "macro_f1": float(f1_score(labels, pred, labels=classes, average="macro", zero_division=0)),
        "top2_accuracy": float(top_k_accuracy_score(labels, probs, k=min(2, n_classes), labels=classes))
        if n_classes > 2
        else 1.0,
    }
    prec, rec, _, _ = precision_recall_fscore_support(labels, pred, labels=classes, zero_division=0)
    for name, pr, rc in zip(class_names, prec, rec):
        out[f"precision_{name}"] = float(pr)
        out[f"recall_{name}"] = float(rc)
    return out


def classification_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    votes: np.ndarray | None = None,
    n_bins: int = 15,
) -> dict[str, float]:
    """All metrics for predicted probabilities ``probs`` (N x C) against integer ``labels`` (N).

    Rows with a negative label (e.g. -100, no label) are ignored. ``vote_rmse`` is added when ``votes``
    (N x C) hold real vote fractions.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    n_classes = len(class_names)
    if probs.ndim != 2 or probs.shape[1] != n_classes:
        raise ValueError(
            f"probabilities must be N x {n_classes} for classes {list(class_names)}, got {probs.shape}"
        )
    keep = labels >= 0
    p, y = probs[keep], labels[keep]
    out = accuracy_metrics(p, y, class_names)
    out["ece"] = expected_calibration_error(p, y, n_bins=n_bins)
    if votes is not None:
        v = np.asarray(votes, dtype=np.float64)[keep]
        if votes_are_informative(v):
            out["vote_rmse"] = vote_rmse(p, v)
    return out


def confusion(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrix (rows: true class, columns: predicted class), ignoring negative labels."""
    labels = np.asarray(labels).reshape(-1)
    preds = np.asarray(preds).reshape(-1)
    keep = labels >= 0
    return confusion_matrix(labels[keep], preds[keep], labels=list(range(n_classes)))


def split_label_ids(label_ids: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Split Trainer ``label_ids`` into (labels, votes): a tuple when ``label_names=["labels", "votes"]``."""
    if isinstance(label_ids, (tuple, list)):
        labels = np.asarray(label_ids[0])
        votes = np.asarray(label_ids[1]) if len(label_ids) > 1 and label_ids[1] is not None else None
        return labels, votes
    return np.asarray(label_ids), None


#: The project's metrics as local ``evaluate`` modules (loaded from the package; nothing is downloaded).
METRIC_MODULES = Path(__file__).parent / "evaluate_metrics"


def metric_info(description: str, inputs: str, *, references: str = "labels", citation: str = "") -> Any:
    """The ``evaluate.MetricInfo`` of one of the project's metric modules: ``predictions`` are class
    probabilities (a list of floats per galaxy); ``references`` are class ids (``"labels"``) or vote fractions
    (``"fractions"``, a list of floats per galaxy)."""
    import datasets
    import evaluate

    probs = datasets.Sequence(datasets.Value("float64"))
    refs = probs if references == "fractions" else datasets.Value("int64")
    return evaluate.MetricInfo(
        description=description,
        citation=citation,
        inputs_description=inputs,
        features=datasets.Features({"predictions": probs, "references": refs}),
    )


@functools.cache
def load_metric(name: str) -> Any:
    """One of the project's ``evaluate`` modules: ``galaxy_classification`` (accuracy, macro-F1, top-2,
    per-class precision/recall), ``galaxy_ece`` (expected calibration error) or ``vote_rmse`` (the Kaggle
    metric against vote fractions); ``evaluate.load`` from the package folder, offline."""
    import evaluate

    path = METRIC_MODULES / name
    if not (path / f"{name}.py").is_file():
        known = sorted(p.name for p in METRIC_MODULES.iterdir() if p.is_dir() and not p.name.startswith("_"))
        raise ValueError(f"no hf-galaxy metric module {name!r}; the modules are {known}")
    return evaluate.load(str(path))


def make_compute_metrics(class_names: Sequence[str]) -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics`` function for ``transformers.Trainer`` (logits in, metrics dict out): the
    project's ``evaluate`` modules, combined with ``evaluate.combine``, on the labelled rows; ``vote_rmse``
    when the batch carries real vote fractions."""
    import evaluate

    names = list(class_names)
    combined = evaluate.combine([load_metric("galaxy_classification"), load_metric("galaxy_ece")])

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        logits = eval_pred.predictions
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        labels, votes = split_label_ids(eval_pred.label_ids)
        probs = softmax(logits)
        if probs.ndim != 2 or probs.shape[1] != len(names):
            raise ValueError(f"probabilities must be N x {len(names)} for classes {names}, got {probs.shape}")
        keep = np.asarray(labels).reshape(-1) >= 0
        if not keep.any():  # nothing labelled: no metric is defined
            return {}
        out = combined.compute(
            predictions=probs[keep], references=np.asarray(labels)[keep], class_names=names
        )
        if votes is not None and votes_are_informative(np.asarray(votes)[keep]):
            out.update(
                load_metric("vote_rmse").compute(predictions=probs[keep], references=np.asarray(votes)[keep])
            )
        return {k: float(v) for k, v in out.items()}

    return compute_metrics


# --------------------------------------------------------------------------------------------- detection
# ------------------------------------------------------------------------------------------ whole trees
def tree_metrics(
    pred_fractions: np.ndarray, counts: np.ndarray, layout: Any, *, confident: float = 0.8
) -> dict[str, float]:
    """Per-question quality of predicted vote fractions against the volunteers' counts.

    For each question (over the galaxies where somebody answered it): ``<question>_rmse`` and ``<question>_mae``
    of the fractions over its answers, and ``<question>_accuracy`` of the predicted majority answer on the
    galaxies whose volunteers agreed by at least ``confident`` (``<question>_confident`` of them; NaN when
    none). ``<question>_calibration`` is :func:`fraction_calibration_error` over its answers. ``tree_rmse``,
    ``tree_mae`` and ``tree_calibration`` pool every answered (galaxy, answer) pair.
    ``layout`` is a :class:`~hf_galaxy.data.tree.TreeLayout`.
    """
    pred = np.asarray(pred_fractions, dtype=np.float64)
    true = layout.fractions(counts)
    out: dict[str, float] = {}
    errors: list[np.ndarray] = []
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    for q, s in zip(layout.questions, layout.slices()):
        answered = ~np.isnan(true[:, s]).any(axis=1)
        out[f"{q}_answered"] = int(answered.sum())
        if not answered.any():
            out[f"{q}_rmse"] = out[f"{q}_mae"] = out[f"{q}_accuracy"] = float("nan")
            out[f"{q}_calibration"] = float("nan")
            out[f"{q}_confident"] = 0
            continue
        diff = pred[answered, s] - true[answered, s]
        errors.append(diff.ravel())
        pairs.append((pred[answered, s].ravel(), true[answered, s].ravel()))
        out[f"{q}_rmse"] = float(np.sqrt(np.mean(diff**2)))
        out[f"{q}_mae"] = float(np.mean(np.abs(diff)))
        out[f"{q}_calibration"] = fraction_calibration_error(*pairs[-1])
        sure = answered & (np.nan_to_num(true[:, s], nan=0.0).max(axis=1) >= confident)
        out[f"{q}_confident"] = int(sure.sum())
        out[f"{q}_accuracy"] = (
            float(np.mean(pred[sure, s].argmax(axis=1) == true[sure, s].argmax(axis=1)))
            if sure.any()
            else float("nan")
        )
    flat = np.concatenate(errors) if errors else np.array([np.nan])
    out["tree_rmse"] = float(np.sqrt(np.mean(flat**2)))
    out["tree_mae"] = float(np.mean(np.abs(flat)))
    out["tree_calibration"] = (
        fraction_calibration_error(
            np.concatenate([p for p, _ in pairs]), np.concatenate([t for _, t in pairs])
        )
        if pairs
        else float("nan")
    )
    return out


def fraction_calibration_error(pred: np.ndarray, true: np.ndarray, n_bins: int = 15) -> float:
    """Calibration of predicted vote fractions, the regression analogue of the expected calibration error:
    the predictions are put in ``n_bins`` equal-width bins of [0, 1], and the gaps between each bin's mean
    predicted and mean volunteer fraction are averaged, weighted by the bin's share of the pairs."""
    pred = np.asarray(pred, dtype=np.float64).ravel()
    true = np.asarray(true, dtype=np.float64).ravel()
    if not len(pred):
        return float("nan")
    idx = np.clip((pred * n_bins).astype(int), 0, n_bins - 1)
    total = 0.0
    for b in np.unique(idx):
        mask = idx == b
        total += mask.mean() * abs(pred[mask].mean() - true[mask].mean())
    return float(total)


#: the question the Kaggle targets leave unscaled by its parent ("anything odd?" sums to 1; formats doc 3.3)
KAGGLE_UNSCALED = ("something-odd",)


def kaggle_tree_rmse(pred_fractions: np.ndarray, target_weighted: np.ndarray, layout: Any) -> float:
    """The Kaggle Galaxy Challenge metric: RMSE over all 37 outputs of the tree-weighted fractions.

    ``pred_fractions`` are within-question fractions (what a whole-tree model predicts); they are weighted by
    the predicted reach of each question (Q6 unscaled, as the Kaggle targets are) and compared with the
    Kaggle-style ``target_weighted`` (``ClassN.M`` values, in layout order).
    """
    weighted = layout.weighted(pred_fractions, unscaled=KAGGLE_UNSCALED)
    return float(np.sqrt(np.mean((weighted - np.asarray(target_weighted, dtype=np.float64)) ** 2)))


def xyxy_to_xywh(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


def cxcywh_to_xywh(b: np.ndarray, size_hw: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    h, w = float(size_hw[0]), float(size_hw[1])
    return np.stack(
        [(b[:, 0] - b[:, 2] / 2) * w, (b[:, 1] - b[:, 3] / 2) * h, b[:, 2] * w, b[:, 3] * h], axis=1
    )


def coco_map(
    targets: Sequence[dict[str, Any]],
    detections: Sequence[dict[str, Any]],
    categories: Sequence[str],
    *,
    per_class: bool = True,
) -> dict[str, float]:
    """COCO box metrics with pycocotools ``COCOeval``.

    ``targets``: per image ``{"boxes": (n, 4) xywh absolute, "labels": (n,)}`` (optionally ``"size"`` (h, w));
    ``detections``: per image ``{"boxes": (m, 4) xyxy absolute, "scores": (m,), "labels": (m,)}``.
    Returns ``map``, ``map_50``, ``map_75``, ``map_small/medium/large``, ``mar_1``, ``mar_10``, ``mar_100`` and
    ``map_<category>`` for the categories present in the targets (COCO's -1, "no ground truth", becomes NaN;
    :class:`DetectionMetrics` drops those keys with :func:`finite_metrics` before the ``Trainer`` sees them).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for i, t in enumerate(targets):
        size = t.get("size", (1, 1))
        images.append({"id": i, "height": int(size[0]), "width": int(size[1])})
        for b, c in zip(np.asarray(t["boxes"]).reshape(-1, 4), np.asarray(t["labels"]).reshape(-1)):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(c),
                    "bbox": [float(v) for v in b],
                    "area": float(b[2] * b[3]),
                    "iscrowd": 0,
                }
            )
    for i, d in enumerate(detections):
        for b, s, c in zip(
            xyxy_to_xywh(d["boxes"]),
            np.asarray(d["scores"]).reshape(-1),
            np.asarray(d["labels"]).reshape(-1),
        ):
            dets.append(
                {"image_id": i, "category_id": int(c), "bbox": [float(v) for v in b], "score": float(s)}
            )
    keys = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100"]
    if not anns:
        logger.warning("coco_map: no ground-truth boxes; mAP is undefined")
        return dict.fromkeys(keys, float("nan"))
    if not dets:
        return dict.fromkeys(keys, 0.0)
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": anns,
        "categories": [{"id": i, "name": n} for i, n in enumerate(categories)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(dets)
        ev = COCOeval(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    out = {k: float(s[j]) for k, j in zip(keys, (0, 1, 2, 3, 4, 5, 6, 7, 8))}
    out = {k: (float("nan") if v < 0 else v) for k, v in out.items()}
    if per_class:
        precision = ev.eval["precision"]  # [iou, recall, class, area, maxdets]
        present = {a["category_id"] for a in anns}
        for k, cid in enumerate(ev.params.catIds):
            if cid not in present:
                continue
            p = precision[:, :, k, 0, -1]
            p = p[p > -1]
            out[f"map_{categories[cid]}"] = float(p.mean()) if p.size else float("nan")
    return out


def finite_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """``metrics`` without the undefined (NaN/inf) values.

    COCO reports -1 for a metric with no ground truth (e.g. ``map_large`` when every box is small), which
    :func:`coco_map` turns into NaN; ``Trainer.save_metrics`` would write that NaN into
    ``eval_results.json`` (not valid JSON) and the model card. The dropped keys are logged.
    """
    out = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}
    dropped = sorted(set(metrics) - set(out))
    if dropped:
        logger.info("metrics undefined on this split (no ground truth of that kind), left out: %s", dropped)
    return out
