"""Combination maths of an ensemble (numpy and scikit-learn only): soft and hard voting, vote weights fitted
by minimum log-loss, cross-fitted stacking, and the JSON form of the meta-learner."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


def check_probs(member_probs: np.ndarray) -> np.ndarray:
    member_probs = np.asarray(member_probs, dtype=np.float64)
    if member_probs.ndim != 3:
        raise ValueError(
            f"member probabilities must be (members, samples, classes), got {member_probs.shape}"
        )
    return member_probs


def normalise_weights(weights: Sequence[float] | None, n_members: int) -> np.ndarray:
    if weights is None:
        return np.full(n_members, 1.0 / n_members)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(w) != n_members:
        raise ValueError(f"{len(w)} weights given for {n_members} members")
    if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"weights must be finite, non-negative and not all zero, got {w.tolist()}")
    return w / w.sum()


def soft_vote(member_probs: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted mean of the members' class probabilities: ``(M, N, C) -> (N, C)``."""
    p = check_probs(member_probs)
    w = normalise_weights(weights, p.shape[0])
    return np.tensordot(w, p, axes=1)


def hard_vote(member_probs: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted majority vote: ``(M, N, C) -> (N, C)`` vote shares of each class.

    Ties between classes with the same vote share are broken by the members' mean probability (added with
    a weight of 1e-6 before renormalising), so ``argmax`` of the result is the voted class.
    """
    p = check_probs(member_probs)
    w = normalise_weights(weights, p.shape[0])
    n_classes = p.shape[2]
    one_hot = np.eye(n_classes)[p.argmax(axis=2)]  # (M, N, C)
    shares = np.tensordot(w, one_hot, axes=1) + 1e-6 * p.mean(axis=0)
    return shares / shares.sum(axis=1, keepdims=True)


def fit_vote_weights(member_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Soft-voting weights on the simplex that minimise the log-loss of the weighted mean on ``labels``.

    The objective is convex in the weights; it is minimised on the simplex (bounds 0..1, weights summing
    to 1) with scipy's SLSQP, starting from uniform weights, so a member can get exactly zero weight. Rows
    with a negative label are ignored.
    """
    from scipy.optimize import minimize

    p = check_probs(member_probs)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    keep = y >= 0
    if not keep.any():
        raise ValueError("fitting vote weights needs labelled validation samples")
    q = np.clip(p[:, keep, :][:, np.arange(keep.sum()), y[keep]], 1e-15, None)  # (M, N) true-class prob
    m = p.shape[0]
    if m == 1:
        return np.ones(1)

    def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = np.clip(w @ q, 1e-300, None)
        return float(-np.log(s).mean()), -(q / s).mean(axis=1)

    res = minimize(
        objective,
        np.full(m, 1.0 / m),
        jac=True,
        method="SLSQP",
        bounds=[(0.0, 1.0)] * m,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)}],
        options={"ftol": 1e-12, "maxiter": 500},
    )
    if not res.success:
        logger.warning("vote-weight fit did not converge (%s); using its last iterate", res.message)
    w = np.clip(res.x, 0.0, None)
    return w / w.sum()


def stack_features(member_probs: np.ndarray) -> np.ndarray:
    """Meta-features: the members' probabilities side by side, ``(M, N, C) -> (N, M * C)``."""
    p = check_probs(member_probs)
    return p.transpose(1, 0, 2).reshape(p.shape[1], -1)


def default_meta_learner(seed: int = 0) -> Any:
    """The default stacking meta-learner: multinomial logistic regression (L2, C=1)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=2000, random_state=seed)


def full_proba(estimator: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """``predict_proba`` mapped onto all ``n_classes`` columns (classes unseen in training get 0)."""
    out = np.zeros((len(x), n_classes))
    classes = np.asarray(estimator.classes_).astype(np.int64)
    out[:, classes] = estimator.predict_proba(x)
    return out


@dataclass
class StackingFit:
    """A cross-fitted stacking meta-learner.

    Attributes:
        meta_learner: fitted on all samples; used for new data.
        oof_probs: out-of-fold meta-predictions ``(N, C)``: sample ``i``'s row comes from the model of its
            fold, fitted on the other folds only.
        folds: fold id of each sample.
        fold_models: the per-fold meta-learners.
        fold_train_indices: the sample indices each fold model was fitted on.
    """

    meta_learner: Any
    oof_probs: np.ndarray
    folds: np.ndarray
    fold_models: list[Any]
    fold_train_indices: list[np.ndarray]


class _ConstantClassifier:
    """A fold whose training part holds one class only: predicts that class."""

    def __init__(self, label: int) -> None:
        self.classes_ = np.asarray([label])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.ones((len(x), 1))


def cross_fit_stacking(
    member_probs: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    *,
    meta_learner: Any = None,
    n_folds: int = 5,
    seed: int = 0,
    folds: np.ndarray | None = None,
) -> StackingFit:
    """Fit a stacking meta-learner on the members' (validation) probabilities with cross-fitting.

    Samples are assigned to ``n_folds`` folds at random (``seed``), independently of their labels, or by
    ``folds``. For each fold a clone of ``meta_learner`` (default :func:`default_meta_learner`) is fitted
    on the other folds and predicts the fold: the out-of-fold probabilities never use a sample's own label.
    The returned ``meta_learner`` is refitted on all samples for use on new data. Rows with a negative
    label are left out.
    """
    from sklearn.base import clone
    from sklearn.model_selection import KFold

    p = check_probs(member_probs)
    y = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(y) != p.shape[1]:
        raise ValueError(f"{len(y)} labels for {p.shape[1]} samples")
    keep = np.flatnonzero(y >= 0)
    if len(keep) < len(y):
        logger.warning("stacking: %d unlabelled samples left out of the meta-learner fit", len(y) - len(keep))
    x_all = stack_features(p)
    x, y = x_all[keep], y[keep]
    if len(np.unique(y)) < 2:
        raise ValueError(
            f"stacking needs at least two classes among the labelled samples, got {np.unique(y)}"
        )
    base = meta_learner if meta_learner is not None else default_meta_learner(seed)
    if folds is None:
        k = min(int(n_folds), len(y))
        if k < 2:
            raise ValueError(
                f"cross-fitting needs n_folds >= 2 and at least 2 samples, got {n_folds}, {len(y)}"
            )
        folds = np.empty(len(y), dtype=np.int64)
        for f, (_, test_idx) in enumerate(KFold(n_splits=k, shuffle=True, random_state=seed).split(x)):
            folds[test_idx] = f
    else:
        folds = np.asarray(folds, dtype=np.int64).reshape(-1)
        if len(folds) != len(y):
            raise ValueError(f"folds has {len(folds)} entries for {len(y)} labelled samples")
    oof = np.zeros((len(y), n_classes))
    models, train_indices = [], []
    for f in np.unique(folds):
        train = np.flatnonzero(folds != f)
        test = np.flatnonzero(folds == f)
        if len(np.unique(y[train])) < 2:
            model: Any = _ConstantClassifier(int(y[train][0]))
        else:
            model = clone(base).fit(x[train], y[train])
        oof[test] = full_proba(model, x[test], n_classes)
        models.append(model)
        train_indices.append(keep[train])
    final = clone(base).fit(x, y)
    oof_full = np.full((p.shape[1], n_classes), np.nan)
    oof_full[keep] = oof
    fold_full = np.full(p.shape[1], -1, dtype=np.int64)
    fold_full[keep] = folds
    return StackingFit(
        meta_learner=final,
        oof_probs=oof_full,
        folds=fold_full,
        fold_models=models,
        fold_train_indices=train_indices,
    )


def meta_learner_to_json(estimator: Any) -> dict[str, Any]:
    """The parameters of a fitted ``LogisticRegression`` meta-learner as JSON (no pickle)."""
    from sklearn.linear_model import LogisticRegression

    if not isinstance(estimator, LogisticRegression):
        raise TypeError(
            f"only LogisticRegression meta-learners can be saved as JSON (no pickles are written), got "
            f"{type(estimator).__name__}; use the default meta-learner to save and publish the ensemble"
        )
    if not hasattr(estimator, "coef_"):
        raise ValueError("the meta-learner is not fitted: call GalaxyEnsemble.fit(validation) first")
    params = {
        k: v for k, v in estimator.get_params().items() if isinstance(v, (int, float, str, bool, type(None)))
    }
    return {
        "class": "sklearn.linear_model.LogisticRegression",
        "params": params,
        "classes": np.asarray(estimator.classes_).astype(int).tolist(),
        "coef": np.asarray(estimator.coef_, dtype=np.float64).tolist(),
        "intercept": np.asarray(estimator.intercept_, dtype=np.float64).tolist(),
        "n_features_in": int(estimator.n_features_in_),
    }


def meta_learner_from_json(data: dict[str, Any]) -> Any:
    """Rebuild a fitted ``LogisticRegression`` from :func:`meta_learner_to_json` output."""
    from sklearn.linear_model import LogisticRegression

    if data.get("class") != "sklearn.linear_model.LogisticRegression":
        raise ValueError(
            f"unsupported meta-learner class {data.get('class')!r} (expected LogisticRegression)"
        )
    try:
        est = LogisticRegression(**data.get("params", {}))
        est.classes_ = np.asarray(data["classes"], dtype=np.int64)
        est.coef_ = np.asarray(data["coef"], dtype=np.float64)
        est.intercept_ = np.asarray(data["intercept"], dtype=np.float64)
        est.n_features_in_ = int(data["n_features_in"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"invalid meta-learner parameters in ensemble_config.json: {err}") from err
    if est.coef_.shape[1] != est.n_features_in_:
        raise ValueError(
            f"meta-learner coef has {est.coef_.shape[1]} features but n_features_in is {est.n_features_in_}"
        )
    return est
