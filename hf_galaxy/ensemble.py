"""Ensembles of fine-tuned galaxy classifiers: voting, weighted voting, stacking, bagging and boosting.

Members are any ``AutoModelForImageClassification`` checkpoints with the same label set: training output
directories (also LoRA runs), their ``adapter/`` folders, or Hub repo ids. Combination methods:

* ``soft``: the (optionally weighted) mean of the members' class probabilities;
* ``hard``: (optionally weighted) majority vote of the members' predicted classes; the returned scores are
  the vote shares, ties broken by the members' mean probability;
* ``weighted``: soft voting with weights on the simplex fitted on the validation split (minimum log-loss);
* ``stacking``: a scikit-learn meta-learner (logistic regression by default) on the members' validation
  probabilities, cross-fitted (:func:`cross_fit_stacking`) so that no validation sample's own label is
  used to produce its meta-prediction.

Members can also be trained here through the training recipe (:func:`train_members`): ``seeds`` (same data,
different seeds), ``bagging`` (bootstrap resamples of the training split) or ``boosting`` (SAMME with
resampling: samples the previous members got wrong are drawn more often; the members vote with weights
``alpha_t``). Seeds and resampling details are recorded in ``ensemble_config.json``.

Inference makes one pass over the data: each batch is decoded and preprocessed once per distinct image
processor configuration, rotated once per test-time-augmentation angle, and fed to every member::

    ens = GalaxyEnsemble(["runs/seed0", "runs/seed1", "user/vit-gz1"], method="stacking")
    ens.fit(dsd["validation"])                  # weights / meta-learner (no-op for soft/hard voting)
    rows = ens.evaluate(dsd["test"])            # one row per member, the mean member and the ensemble
    print(format_table(rows))
    ens.save_pretrained("gz1-ensemble")         # ensemble_config.json (+ README.md card)
    GalaxyEnsemble.from_pretrained("gz1-ensemble").predict_proba(dsd["test"])
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hf_galaxy.hub.card import jsonable
from hf_galaxy.metrics import classification_metrics, votes_are_informative

logger = logging.getLogger(__name__)

ENSEMBLE_CONFIG_NAME = "ensemble_config.json"
RESULTS_NAME = "ensemble_results.json"
README_NAME = "README.md"
FORMAT_NAME = "hf-galaxy-ensemble"
FORMAT_VERSION = 1
METHODS = ("soft", "hard", "weighted", "stacking")
STRATEGIES = ("seeds", "bagging", "boosting")
MEMBERS_SUBDIR = "members"
#: Files of a member directory that travel with a saved/published ensemble (never checkpoints or optimizer).
MEMBER_FILES = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "preprocessor_config.json",
    "hf_galaxy_card.json",
    "all_results.json",
    "eval_results.json",
    "test_results.json",
    "train_results.json",
)
#: The metric columns of the member/ensemble table.
TABLE_METRICS = ("accuracy", "macro_f1", "ece", "vote_rmse", "nll")


class LabelMismatchError(ValueError):
    """Two members, a member and the ensemble, or the members and a dataset have different label maps."""


# --------------------------------------------------------------------------------------------- members
@dataclass
class MemberSpec:
    """One member: a local checkpoint directory (absolute, or relative to the ensemble folder) or a Hub id.

    ``revision`` is the requested Hub revision, ``commit`` the resolved Hub commit (recorded so that a
    reloaded ensemble uses the same weights). ``seed`` is the training seed when known; ``info`` holds
    provenance such as the bootstrap seed or the boosting round.
    """

    name_or_path: str
    revision: str | None = None
    commit: str | None = None
    seed: int | None = None
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "name_or_path": self.name_or_path,
            "revision": self.revision,
            "commit": self.commit,
            "seed": self.seed,
            "info": jsonable(self.info),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | str) -> MemberSpec:
        """Inverse of :meth:`to_dict` (a bare string is a member id)."""
        if isinstance(data, str):
            return cls(data)
        if not isinstance(data, dict) or not data.get("name_or_path"):
            raise ValueError(
                f"a member entry must be a string or an object with 'name_or_path', got {data!r}"
            )
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"member entry {data.get('name_or_path')!r} has unknown keys {sorted(unknown)}")
        return cls(**data)


@dataclass
class LoadedMember:
    """A member loaded for inference."""

    spec: MemberSpec
    model: nn.Module
    processor: Any
    label_names: list[str]
    path: Path

    @property
    def name(self) -> str:
        return self.spec.name_or_path


def _model_label_names(model: nn.Module, where: str) -> list[str]:
    config = getattr(model, "config", None)
    id2label = getattr(config, "id2label", None) or {}
    n = int(getattr(config, "num_labels", len(id2label)) or len(id2label))
    try:
        names = [str(id2label[i]) for i in range(n)]
    except KeyError as err:
        raise ValueError(f"{where}: config.id2label {id2label} does not cover the ids 0..{n - 1}") from err
    return names


def _commit_of(path: Path) -> str | None:
    """The Hub commit of a snapshot folder (``.../snapshots/<sha>``), or None."""
    if path.parent.name == "snapshots" and len(path.name) == 40:
        return path.name
    return None


def _is_local(name: str, base_dir: Path | None) -> Path | None:
    path = Path(name).expanduser()
    if not path.is_absolute() and base_dir is not None and (base_dir / path).is_dir():
        return base_dir / path
    if path.is_dir():
        return path
    if path.is_absolute() or name.startswith((".", "~")):
        raise FileNotFoundError(f"member directory {path} does not exist")
    return None


def load_member(spec: MemberSpec | str, base_dir: str | os.PathLike | None = None) -> LoadedMember:
    """Load one member for inference (eval mode); local directories win over Hub ids of the same name.

    Relative paths are resolved against ``base_dir`` (the ensemble folder) first. Hub ids are downloaded
    (or taken from the local cache when offline) at ``spec.commit`` or ``spec.revision``.
    """
    from hf_galaxy.models import ModelNotFoundError, load_for_inference

    spec = MemberSpec.from_dict(spec) if not isinstance(spec, MemberSpec) else spec
    base = Path(base_dir) if base_dir is not None else None
    local = _is_local(spec.name_or_path, base)
    if local is None:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

        try:
            local = Path(snapshot_download(spec.name_or_path, revision=spec.commit or spec.revision))
        except HFValidationError as err:
            raise ModelNotFoundError(
                f"member {spec.name_or_path!r} is neither an existing directory nor a valid Hub id ({err})"
            ) from err
        except (LocalEntryNotFoundError, OSError) as err:
            raise ModelNotFoundError(
                f"member {spec.name_or_path!r} (revision {spec.commit or spec.revision or 'main'}) could not be "
                f"downloaded and is not in the local Hugging Face cache: {err}"
            ) from err
        spec.commit = spec.commit or _commit_of(local)
    model, processor = load_for_inference(str(local))
    return LoadedMember(
        spec=spec,
        model=model,
        processor=processor,
        label_names=_model_label_names(model, f"member {spec.name_or_path}"),
        path=local,
    )


def check_label_names(members: Sequence[LoadedMember], expected: Sequence[str] | None = None) -> list[str]:
    """The shared label names of ``members``; :class:`LabelMismatchError` showing both maps otherwise."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    ref_name, ref = (
        ("the ensemble", list(expected)) if expected else (members[0].name, members[0].label_names)
    )
    for m in members:
        if m.label_names != ref:
            raise LabelMismatchError(
                f"label maps differ: member {m.name!r} has id2label {dict(enumerate(m.label_names))} but "
                f"{ref_name!r} has {dict(enumerate(ref))}. All members must share the same classes in the same order."
            )
    return list(ref)


def dataset_label_names(dataset: Any) -> list[str] | None:
    """The class names of a dataset's ``label`` ClassLabel column (``None`` when it has none)."""
    features = getattr(dataset, "features", None)
    label = features.get("label") if features is not None and hasattr(features, "get") else None
    names = getattr(label, "names", None)
    return [str(n) for n in names] if names else None


def check_dataset_labels(dataset: Any, label_names: Sequence[str]) -> None:
    """Check that ``dataset`` labels the classes ``label_names`` (the members' id2label) in the same order.

    Compares the ``label`` ClassLabel names and the width of the ``votes`` column with the members' classes.

    Raises:
        LabelMismatchError: showing the dataset's and the members' label maps (or the votes width).
    """
    names = dataset_label_names(dataset)
    members = dict(enumerate(label_names))
    if names is not None and names != list(label_names):
        raise LabelMismatchError(
            f"the dataset's label names {dict(enumerate(names))} differ from the members' id2label {members}; "
            "the members were trained on other classes (or another order). Load the dataset with the label scheme "
            "the members were trained with."
        )
    features = getattr(dataset, "features", None)
    votes = features.get("votes") if features is not None and hasattr(features, "get") else None
    width = getattr(votes, "length", None)
    if isinstance(width, int) and width >= 0 and width != len(label_names):
        raise LabelMismatchError(
            f"the dataset's 'votes' column has {width} columns but the members have {len(label_names)} classes "
            f"{members}; the vote fractions must be aligned with the class names"
        )


# --------------------------------------------------------------------------------------------- inference
@dataclass
class EnsemblePredictions:
    """Per-member class probabilities for one dataset split.

    Attributes:
        member_probs: ``(n_members, n_samples, n_classes)`` probabilities (TTA-averaged when asked).
        labels: integer labels (``-1``/``-100`` for unlabelled rows) or None.
        votes: vote fractions ``(n_samples, n_classes)`` or None.
        ids: galaxy ids (empty when the split has no ``id`` column).
        member_names: member ids in order.
        class_names: the dataset's class names (its ``label`` ClassLabel), when known.
    """

    member_probs: np.ndarray
    labels: np.ndarray | None
    votes: np.ndarray | None
    ids: list[str]
    member_names: list[str]
    class_names: list[str] | None = None

    def fingerprint(self) -> str:
        """A digest of the member probabilities and labels (identifies the split they were computed on)."""
        digest = hashlib.sha256(np.ascontiguousarray(self.member_probs, dtype=np.float64).tobytes())
        if self.labels is not None:
            digest.update(np.ascontiguousarray(self.labels, dtype=np.int64).tobytes())
        return digest.hexdigest()

    @property
    def n_members(self) -> int:
        return int(self.member_probs.shape[0])

    def subset(self, members: Sequence[int]) -> EnsemblePredictions:
        """The same predictions for a subset of the members."""
        idx = list(members)
        return dataclasses.replace(
            self, member_probs=self.member_probs[idx], member_names=[self.member_names[i] for i in idx]
        )


def _spec_key(spec: Any) -> tuple:
    return (
        spec.height,
        spec.width,
        getattr(spec, "resize_height", None),  # same output size can hide a different resize-then-crop
        getattr(spec, "resize_width", None),
        tuple(np.asarray(spec.mean).ravel().tolist()),
        tuple(np.asarray(spec.std).ravel().tolist()),
        float(spec.rescale_factor),
        bool(spec.do_rescale),
        bool(spec.do_normalize),
        int(spec.resample),
    )


class _BatchPreprocessor:
    """DataLoader collate function: decode once, preprocess once per distinct processor configuration."""

    def __init__(self, specs: Sequence[Any], image_column: str = "image") -> None:
        self.specs = list(specs)
        self.image_column = image_column

    def __call__(self, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        images = [r[self.image_column] for r in rows]
        out: dict[str, Any] = {
            "pixel_values": [torch.stack([spec(img) for img in images]) for spec in self.specs],
        }
        if "label" in rows[0]:
            out["labels"] = np.asarray([-100 if r["label"] is None else int(r["label"]) for r in rows])
        if "votes" in rows[0] and all(r["votes"] is not None for r in rows):
            out["votes"] = np.asarray([r["votes"] for r in rows], dtype=np.float64)
        if "id" in rows[0]:
            out["ids"] = [str(r["id"]) for r in rows]
        return out


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _autocast(device: torch.device, precision: str) -> Any:
    import contextlib

    if precision not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be fp32, bf16 or fp16, got {precision!r}")
    if precision == "fp32" or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


@torch.no_grad()
def predict_members(
    members: Sequence[LoadedMember],
    dataset: Any,
    *,
    batch_size: int = 32,
    tta_rotations: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    precision: str = "fp32",
    progress: bool = True,
    image_column: str = "image",
) -> EnsemblePredictions:
    """Class probabilities of every member on ``dataset`` in one pass over the data.

    ``dataset`` is a ``datasets.Dataset`` with an ``image`` column (and optionally ``label``, ``votes``,
    ``id``). Each batch is decoded once and preprocessed once per distinct image-processor configuration
    (size, mean/std, rescaling, resampling); with ``tta_rotations`` (multiples of 90 degrees) each
    preprocessed batch is rotated once per angle and every member's softmax is averaged over the angles.
    Shows a tqdm progress bar.

    Raises:
        LabelMismatchError: the members' label maps differ from each other, from the dataset's ``label`` names,
            or from the width of its ``votes`` column.
    """
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm

    from hf_galaxy.transforms import ProcessorSpec, rotate_pixel_values

    if not members:
        raise ValueError("predict_members needs at least one member")
    label_names = check_label_names(members)
    check_dataset_labels(dataset, label_names)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if image_column not in dataset.column_names:
        raise ValueError(
            f"the dataset has no {image_column!r} column (columns: {dataset.column_names}); expected the "
            "schema of load_galaxy_dataset (image, label, votes, id)"
        )
    rotations = [0] if not tta_rotations else [int(a) for a in tta_rotations]
    bad = [a for a in rotations if a % 90]
    if bad:
        raise ValueError(f"TTA rotation angles must be multiples of 90 degrees, got {bad}")
    n_classes = len(label_names)
    specs, groups = [], []  # distinct preprocessing configs, and the member indices using each
    keys: dict[tuple, int] = {}
    for i, m in enumerate(members):
        spec = ProcessorSpec.from_processor(m.processor)
        key = _spec_key(spec)
        if key not in keys:
            keys[key] = len(specs)
            specs.append(spec)
            groups.append([])
        groups[keys[key]].append(i)
    if len(specs) > 1:
        logger.info("members use %d distinct preprocessing configurations", len(specs))

    columns = [c for c in (image_column, "label", "votes", "id") if c in dataset.column_names]
    data = dataset.select_columns(columns)
    device = _resolve_device(device)
    for m in members:
        m.model.to(device).eval()
    loader = DataLoader(
        data,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_BatchPreprocessor(specs, image_column),
    )
    n = len(data)
    probs = np.zeros((len(members), n, n_classes), dtype=np.float64)
    labels: list[np.ndarray] = []
    votes: list[np.ndarray] = []
    ids: list[str] = []
    start = 0
    bar = tqdm(total=n, desc=f"predict ({len(members)} members)", unit="img", disable=not progress)
    with _autocast(device, precision):
        for batch in loader:
            b = len(batch["pixel_values"][0])
            for spec_idx, member_idx in enumerate(groups):
                x = batch["pixel_values"][spec_idx].to(device, non_blocking=True)
                for angle in rotations:
                    xr = rotate_pixel_values(x, angle) if angle % 360 else x
                    for i in member_idx:
                        out = members[i].model(pixel_values=xr)
                        logits = out["logits"] if isinstance(out, dict) else out[0]
                        probs[i, start : start + b] += logits.float().softmax(dim=-1).cpu().numpy()
            if "labels" in batch:
                labels.append(batch["labels"])
            if "votes" in batch:
                votes.append(batch["votes"])
            ids.extend(batch.get("ids", []))
            start += b
            bar.update(b)
    bar.close()
    probs /= len(rotations)
    vote_arr = np.concatenate(votes) if votes and sum(len(v) for v in votes) == n else None
    if vote_arr is not None and (vote_arr.ndim != 2 or vote_arr.shape[1] != n_classes):
        raise LabelMismatchError(
            f"the dataset's 'votes' rows have shape {vote_arr.shape[1:]} but the members have {n_classes} classes "
            f"{dict(enumerate(label_names))}; the vote fractions must be aligned with the class names"
        )
    label_arr = np.concatenate(labels) if labels else None
    if label_arr is not None and label_arr.size and int(label_arr.max()) >= n_classes:
        raise LabelMismatchError(
            f"the dataset has label ids up to {int(label_arr.max())} but the members have only {n_classes} classes "
            f"{dict(enumerate(label_names))}"
        )
    return EnsemblePredictions(
        member_probs=probs,
        labels=label_arr,
        votes=vote_arr,
        ids=ids,
        member_names=[m.name for m in members],
        class_names=dataset_label_names(dataset),
    )


# --------------------------------------------------------------------------------------------- combination
def _check_probs(member_probs: np.ndarray) -> np.ndarray:
    member_probs = np.asarray(member_probs, dtype=np.float64)
    if member_probs.ndim != 3:
        raise ValueError(
            f"member probabilities must be (members, samples, classes), got {member_probs.shape}"
        )
    return member_probs


def _normalise_weights(weights: Sequence[float] | None, n_members: int) -> np.ndarray:
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
    p = _check_probs(member_probs)
    w = _normalise_weights(weights, p.shape[0])
    return np.tensordot(w, p, axes=1)


def hard_vote(member_probs: np.ndarray, weights: Sequence[float] | None = None) -> np.ndarray:
    """Weighted majority vote: ``(M, N, C) -> (N, C)`` vote shares of each class.

    Ties between classes with the same vote share are broken by the members' mean probability (added with
    a weight of 1e-6 before renormalising), so ``argmax`` of the result is the voted class.
    """
    p = _check_probs(member_probs)
    w = _normalise_weights(weights, p.shape[0])
    n_classes = p.shape[2]
    one_hot = np.eye(n_classes)[p.argmax(axis=2)]  # (M, N, C)
    shares = np.tensordot(w, one_hot, axes=1) + 1e-6 * p.mean(axis=0)
    return shares / shares.sum(axis=1, keepdims=True)


def _nll(probs: np.ndarray, labels: np.ndarray) -> float:
    p = np.clip(probs[np.arange(len(labels)), labels], 1e-15, None)
    return float(-np.log(p).mean())


def fit_vote_weights(member_probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Soft-voting weights on the simplex that minimise the log-loss of the weighted mean on ``labels``.

    The objective is convex in the weights; it is minimised on the simplex (bounds 0..1, weights summing
    to 1) with scipy's SLSQP, starting from uniform weights, so a member can get exactly zero weight. Rows
    with a negative label are ignored.
    """
    from scipy.optimize import minimize

    p = _check_probs(member_probs)
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


# --------------------------------------------------------------------------------------------- stacking
def stack_features(member_probs: np.ndarray) -> np.ndarray:
    """Meta-features: the members' probabilities side by side, ``(M, N, C) -> (N, M * C)``."""
    p = _check_probs(member_probs)
    return p.transpose(1, 0, 2).reshape(p.shape[1], -1)


def default_meta_learner(seed: int = 0) -> Any:
    """The default stacking meta-learner: multinomial logistic regression (L2, C=1)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=2000, random_state=seed)


def _full_proba(estimator: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
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

    p = _check_probs(member_probs)
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
        oof[test] = _full_proba(model, x[test], n_classes)
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
        raise ValueError(f"invalid meta-learner parameters in {ENSEMBLE_CONFIG_NAME}: {err}") from err
    if est.coef_.shape[1] != est.n_features_in_:
        raise ValueError(
            f"meta-learner coef has {est.coef_.shape[1]} features but n_features_in is {est.n_features_in_}"
        )
    return est


# --------------------------------------------------------------------------------------------- metrics
def member_metrics(
    probs: np.ndarray, labels: np.ndarray, class_names: Sequence[str], votes: np.ndarray | None = None
) -> dict[str, float]:
    """accuracy, macro-F1, ECE, vote RMSE (when ``votes`` are real fractions) and log-loss (``nll``)."""
    out = classification_metrics(probs, labels, class_names, votes=votes)
    y = np.asarray(labels).astype(np.int64)
    keep = y >= 0
    out["nll"] = _nll(np.asarray(probs, dtype=np.float64)[keep], y[keep])
    return out


def evaluation_rows(
    preds: EnsemblePredictions,
    ensemble_probs: np.ndarray,
    class_names: Sequence[str],
    ensemble_name: str = "ensemble",
) -> list[dict[str, Any]]:
    """One row per member, the members' mean, and the ensemble: accuracy, macro_f1, ece, vote_rmse, nll."""
    if preds.labels is None:
        raise ValueError("the split has no 'label' column: cannot compute metrics")
    votes = preds.votes if votes_are_informative(preds.votes) else None
    rows: list[dict[str, Any]] = []
    for name, p in zip(preds.member_names, preds.member_probs):
        rows.append({"model": name, **_table_metrics(member_metrics(p, preds.labels, class_names, votes))})
    member_rows = list(rows)
    mean = {"model": "mean of members"}
    for k in TABLE_METRICS:
        vals = [r[k] for r in member_rows if k in r]
        if vals:
            mean[k] = float(np.mean(vals))
    rows.append(mean)
    ens = member_metrics(ensemble_probs, preds.labels, class_names, votes)
    rows.append({"model": ensemble_name, **_table_metrics(ens)})
    return rows


def _table_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(metrics[k]) for k in TABLE_METRICS if k in metrics}


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """A fixed-width text table of :func:`evaluation_rows` output (metrics with 4 decimals)."""
    if not rows:
        return ""
    if columns is None:
        columns = ["model"] + [k for k in TABLE_METRICS if any(k in r for r in rows)]
    cells = [[str(c) for c in columns]]
    for r in rows:
        cells.append(
            [(f"{r[c]:.4f}" if isinstance(r.get(c), float) else str(r.get(c, "-"))) for c in columns]
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = []
    for j, row in enumerate(cells):
        lines.append(
            "  ".join(v.ljust(widths[i]) if i == 0 else v.rjust(widths[i]) for i, v in enumerate(row))
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- the ensemble
class GalaxyEnsemble:
    """An ensemble of image classifiers with the same label set.

    Args:
        members: member ids (local directories or Hub ids) or :class:`MemberSpec` entries.
        method: ``soft``, ``hard``, ``weighted`` or ``stacking``.
        weights: member weights (``soft``/``hard``; fitted for ``weighted``). Normalised to sum to 1.
        meta_learner: a scikit-learn classifier with ``predict_proba`` for ``stacking`` (fitted by
            :meth:`fit`; default logistic regression). Only LogisticRegression can be saved.
        label_names: the expected class names (checked against every member when loaded).
        tta_rotations: default test-time rotation angles (multiples of 90) for predictions.
        provenance: how the members were made and the combination fitted (saved in the config).
        base_dir: folder that relative member paths are resolved against (set by :meth:`from_pretrained`).
    """

    def __init__(
        self,
        members: Sequence[str | MemberSpec | dict],
        *,
        method: str = "soft",
        weights: Sequence[float] | None = None,
        meta_learner: Any = None,
        label_names: Sequence[str] | None = None,
        tta_rotations: Sequence[int] | None = None,
        provenance: dict[str, Any] | None = None,
        base_dir: str | os.PathLike | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.members = [m if isinstance(m, MemberSpec) else MemberSpec.from_dict(m) for m in members]
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        self.method = method
        self.weights = None if weights is None else _normalise_weights(weights, len(self.members))
        self.meta_learner = meta_learner
        self.label_names = list(label_names) if label_names else None
        self.tta_rotations = list(tta_rotations) if tta_rotations else None
        self.provenance: dict[str, Any] = dict(provenance or {})
        self.base_dir = Path(base_dir) if base_dir is not None else None
        self.fit_info: dict[str, Any] = {}
        self.stacking_fit: StackingFit | None = None
        self._loaded: list[LoadedMember] | None = None
        self._fit_fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"GalaxyEnsemble(method={self.method!r}, members={[m.name_or_path for m in self.members]})"

    # ---- members
    def load(self) -> list[LoadedMember]:
        """Load every member (once) and check that they share the label map."""
        if self._loaded is None:
            loaded = [load_member(spec, self.base_dir) for spec in self.members]
            self.label_names = check_label_names(loaded, self.label_names)
            self._loaded = loaded
        return self._loaded

    @classmethod
    def from_loaded(cls, members: Sequence[LoadedMember], **kwargs: Any) -> GalaxyEnsemble:
        """An ensemble over members that are already loaded (e.g. trained in this process)."""
        ens = cls([m.spec for m in members], **kwargs)
        ens.label_names = check_label_names(members, ens.label_names)
        ens._loaded = list(members)
        return ens

    # ---- prediction
    def predict_members(self, dataset: Any, **kwargs: Any) -> EnsemblePredictions:
        """Every member's probabilities on ``dataset`` in one pass (see :func:`predict_members`)."""
        kwargs.setdefault("tta_rotations", self.tta_rotations)
        return predict_members(self.load(), dataset, **kwargs)

    def check_predictions(self, preds: EnsemblePredictions) -> None:
        """Check that member predictions fit this ensemble: as many members, the same classes as the ensemble,
        and a dataset labelled with those classes (:class:`LabelMismatchError` showing both otherwise)."""
        n_members, _, n_classes = _check_probs(preds.member_probs).shape
        if n_members != len(self.members):
            raise ValueError(
                f"predictions of {n_members} members given; the ensemble has {len(self.members)}"
            )
        names = self.label_names
        if names and len(names) != n_classes:
            raise LabelMismatchError(
                f"the predictions have {n_classes} classes but the ensemble's label map is {dict(enumerate(names))}"
            )
        if names and preds.class_names is not None and list(preds.class_names) != list(names):
            raise LabelMismatchError(
                f"the dataset's label names {dict(enumerate(preds.class_names))} differ from the ensemble's "
                f"{dict(enumerate(names))}"
            )
        if preds.votes is not None and np.asarray(preds.votes).shape[-1] != n_classes:
            raise LabelMismatchError(
                f"the dataset's 'votes' have {np.asarray(preds.votes).shape[-1]} columns but the ensemble has "
                f"{n_classes} classes" + (f" {dict(enumerate(names))}" if names else "")
            )

    def combine(self, member_probs: np.ndarray) -> np.ndarray:
        """The ensemble's class probabilities ``(N, C)`` from member probabilities ``(M, N, C)``."""
        p = _check_probs(member_probs)
        if p.shape[0] != len(self.members):
            raise ValueError(
                f"probabilities of {p.shape[0]} members given; the ensemble has {len(self.members)}"
            )
        if self.method == "soft":
            return soft_vote(p, self.weights)
        if self.method == "hard":
            return hard_vote(p, self.weights)
        if self.method == "weighted":
            if self.weights is None:
                raise ValueError("method 'weighted' needs fitted weights: call fit(validation_split) first")
            return soft_vote(p, self.weights)
        if self.meta_learner is None or not hasattr(self.meta_learner, "classes_"):
            raise ValueError(
                "method 'stacking' needs a fitted meta-learner: call fit(validation_split) first"
            )
        return _full_proba(self.meta_learner, stack_features(p), p.shape[2])

    def predict_proba(self, dataset: Any, **kwargs: Any) -> np.ndarray:
        """The ensemble's class probabilities on ``dataset`` (one pass over the data for all members)."""
        return self.combine(self.predict_members(dataset, **kwargs).member_probs)

    # ---- fitting
    def fit(
        self,
        validation: Any,
        *,
        n_folds: int = 5,
        seed: int = 0,
        folds: np.ndarray | None = None,
        **predict_kwargs: Any,
    ) -> GalaxyEnsemble:
        """Fit the weights (``weighted``) or the cross-fitted meta-learner (``stacking``) on ``validation``.

        ``validation`` is a labelled dataset split or :class:`EnsemblePredictions` for it. Soft and hard
        voting need no fitting (their validation metrics are still recorded in ``fit_info``). A fitted
        ``weighted``/``stacking`` ensemble refuses to be evaluated on the same split (see :meth:`evaluate`).
        """
        preds = (
            validation
            if isinstance(validation, EnsemblePredictions)
            else self.predict_members(validation, **predict_kwargs)
        )
        self.check_predictions(preds)
        if preds.labels is None:
            raise ValueError("fitting the ensemble needs a labelled validation split ('label' column)")
        n_classes = preds.member_probs.shape[2]
        names = self.label_names or [str(i) for i in range(n_classes)]
        info: dict[str, Any] = {"fit_split_size": int(len(preds.labels))}
        if self.method == "weighted":
            self.weights = fit_vote_weights(preds.member_probs, preds.labels)
            info["weights"] = self.weights.tolist()
        elif self.method == "stacking":
            fit = cross_fit_stacking(
                preds.member_probs,
                preds.labels,
                n_classes,
                meta_learner=self.meta_learner,
                n_folds=n_folds,
                seed=seed,
                folds=folds,
            )
            self.meta_learner = fit.meta_learner
            self.stacking_fit = fit
            keep = preds.labels >= 0
            info.update(n_folds=len(fit.fold_models), fold_seed=seed)
            info["cross_fitted_validation"] = _table_metrics(
                member_metrics(fit.oof_probs[keep], preds.labels[keep], names)
            )
        if self.method != "stacking":
            info["validation"] = _table_metrics(
                member_metrics(self.combine(preds.member_probs), preds.labels, names)
            )
        self.fit_info = info
        self.provenance["fit"] = jsonable(info)
        self._fit_fingerprint = preds.fingerprint() if self.method in ("weighted", "stacking") else None
        return self

    # ---- evaluation
    def evaluate(self, dataset: Any, **predict_kwargs: Any) -> list[dict[str, Any]]:
        """Metrics of every member, the members' mean and the ensemble on a labelled split (one pass).

        Raises:
            ValueError: a ``weighted``/``stacking`` ensemble is evaluated on the split it was fitted on (its
                figures would be optimistic); evaluate on a held-out split.
            LabelMismatchError: the dataset's classes differ from the ensemble's.
        """
        preds = (
            dataset
            if isinstance(dataset, EnsemblePredictions)
            else self.predict_members(dataset, **predict_kwargs)
        )
        self.check_predictions(preds)
        if self._fit_fingerprint is not None and preds.fingerprint() == self._fit_fingerprint:
            raise ValueError(
                f"the {self.method!r} ensemble was fitted on this split ({len(preds.member_probs[0])} galaxies): its "
                "metrics here would be optimistic. Evaluate it on a held-out split (the test split); the "
                "cross-fitted validation figures of stacking are in fit_info['cross_fitted_validation']."
            )
        names = self.label_names or [str(i) for i in range(preds.member_probs.shape[2])]
        return evaluation_rows(preds, self.combine(preds.member_probs), names, f"ensemble ({self.method})")

    # ---- persistence
    def to_config(self) -> dict[str, Any]:
        """The content of ``ensemble_config.json``."""
        from hf_galaxy import __version__

        if self.method == "weighted" and self.weights is None:
            raise ValueError("method 'weighted' has no fitted weights yet: call fit(validation_split) first")
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "method": self.method,
            "label_names": list(self.label_names or []),
            "members": [m.to_dict() for m in self.members],
            "weights": None if self.weights is None else self.weights.tolist(),
            "meta_learner": meta_learner_to_json(self.meta_learner) if self.method == "stacking" else None,
            "tta_rotations": self.tta_rotations,
            "provenance": jsonable(self.provenance),
            "hf_galaxy_version": __version__,
        }

    def save_pretrained(
        self,
        save_dir: str | os.PathLike,
        *,
        copy_members: bool = False,
        results: dict[str, Any] | None = None,
        repo_id: str | None = None,
    ) -> Path:
        """Write ``ensemble_config.json`` (and ``ensemble_results.json`` + the ``README.md`` card).

        Local members inside ``save_dir`` are referenced by relative paths, other local members by absolute
        paths; with ``copy_members`` they are copied into ``save_dir/members/`` (model, processor, card data)
        so the folder is self-contained. Hub members keep their id, revision and resolved commit.
        """
        save_dir = Path(save_dir)
        save_dir.mkdir(parents=True, exist_ok=True)
        for spec in self.members:  # relative paths were relative to the folder the ensemble came from
            local = _is_local(spec.name_or_path, self.base_dir)
            if local is not None:
                spec.name_or_path = str(local.resolve())
        self.base_dir = None
        if copy_members:
            self._copy_local_members(save_dir)
        config = self.to_config()
        for entry in config["members"]:
            local = _is_local(entry["name_or_path"], None)
            if local is not None:
                entry["name_or_path"] = _relative_or_absolute(local, save_dir)
        _write_json(save_dir / ENSEMBLE_CONFIG_NAME, config)
        if results is not None:
            _write_json(save_dir / RESULTS_NAME, jsonable(results))
        elif (save_dir / RESULTS_NAME).is_file():
            results = json.loads((save_dir / RESULTS_NAME).read_text())
        (save_dir / README_NAME).write_text(render_ensemble_card(config, results, repo_id=repo_id))
        return save_dir

    def _copy_local_members(self, save_dir: Path) -> None:
        loaded = self.load()
        used: set[str] = set()
        for i, (spec, member) in enumerate(zip(self.members, loaded)):
            local = _is_local(spec.name_or_path, None)
            if local is None or _inside(local, save_dir):
                continue
            name = _unique_name(f"member-{i}-{local.resolve().name}", used)
            dst = save_dir / MEMBERS_SUBDIR / name
            export_member(member, dst)
            spec.name_or_path = str(dst.resolve())

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, *, revision: str | None = None, load_members: bool = True
    ) -> GalaxyEnsemble:
        """Reload a saved ensemble from a folder or a Hub repo (downloaded, or from the cache when offline)."""
        path = Path(name_or_path).expanduser()
        if not path.is_dir():
            if str(name_or_path).startswith((".", "/", "~")):
                raise FileNotFoundError(f"ensemble directory {path} does not exist")
            from hf_galaxy.hub.publish import pull

            path = pull(str(name_or_path), revision=revision)
        config_path = path / ENSEMBLE_CONFIG_NAME
        if not config_path.is_file():
            raise FileNotFoundError(f"{path} holds no {ENSEMBLE_CONFIG_NAME}: not a saved hf-galaxy ensemble")
        try:
            config = json.loads(config_path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{config_path} is not valid JSON: {err}") from err
        if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
            raise ValueError(f"{config_path} is not an hf-galaxy ensemble config (format {FORMAT_NAME!r})")
        if int(config.get("format_version", 0)) > FORMAT_VERSION:
            raise ValueError(
                f"{config_path} has format_version {config['format_version']}; this hf-galaxy reads up to "
                f"{FORMAT_VERSION}: upgrade hf-galaxy"
            )
        missing = [key for key in ("members", "method") if not config.get(key)]
        if missing:
            raise ValueError(
                f"{config_path} lacks (or has empty) the required key(s) {missing}: an ensemble config needs 'members' (the member "
                f"ids) and 'method' (one of {METHODS}); save the ensemble with GalaxyEnsemble.save_pretrained"
            )
        if not isinstance(config["members"], list):
            raise ValueError(
                f"{config_path}: 'members' must be a list of member ids, got {config['members']!r}"
            )
        meta = config.get("meta_learner")
        needs = {"stacking": ("meta_learner", meta), "weighted": ("weights", config.get("weights"))}
        if config["method"] in needs and not needs[config["method"]][1]:
            key = needs[config["method"]][0]
            raise ValueError(
                f"{config_path}: method {config['method']!r} needs the key {key!r} (fitted on validation)"
            )
        try:
            ens = cls(
                config["members"],
                method=config["method"],
                weights=config.get("weights"),
                meta_learner=meta_learner_from_json(meta) if meta else None,
                label_names=config.get("label_names"),
                tta_rotations=config.get("tta_rotations"),
                provenance=config.get("provenance"),
                base_dir=path,
            )
        except ValueError as err:
            raise ValueError(f"{config_path}: {err}") from err
        if load_members:
            ens.load()
        return ens

    def push_to_hub(self, repo_id: str, save_dir: str | os.PathLike | None = None, **kwargs: Any) -> Any:
        """Save (to ``save_dir`` or a temporary folder) and publish with :func:`publish_ensemble`."""
        if save_dir is not None:
            return publish_ensemble(self.save_pretrained(save_dir), repo_id, **kwargs)
        with tempfile.TemporaryDirectory(prefix="hf_galaxy_ensemble_") as tmp:
            return publish_ensemble(self.save_pretrained(tmp), repo_id, **kwargs)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _relative_or_absolute(path: Path, folder: Path) -> str:
    if _inside(path, folder):
        return path.resolve().relative_to(folder.resolve()).as_posix()
    return str(path.resolve())


def _unique_name(name: str, used: set[str]) -> str:
    base, k = name, 1
    while name in used:
        k += 1
        name = f"{base}-{k}"
    used.add(name)
    return name


def export_member(member: LoadedMember, dst: str | os.PathLike) -> Path:
    """Write a member's publishable files to ``dst``: its model files (a LoRA run's merged model when the
    directory has no top-level model), image processor and card data. Never checkpoints or optimizer states.
    """
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    src = member.path
    if (src / "config.json").is_file() and (
        (src / "model.safetensors").is_file() or (src / "model.safetensors.index.json").is_file()
    ):
        for name in MEMBER_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, dst / name)
        index = src / "model.safetensors.index.json"
        if index.is_file():
            for shard in set(json.loads(index.read_text()).get("weight_map", {}).values()):
                shutil.copyfile(src / shard, dst / shard)
    else:  # adapter-only output or a non-safetensors checkpoint: save the loaded (merged) model
        member.model.save_pretrained(dst)
        member.processor.save_pretrained(dst)
        for name in ("hf_galaxy_card.json", "test_results.json", "all_results.json"):
            if (src / name).is_file():
                shutil.copyfile(src / name, dst / name)
    if not (dst / "preprocessor_config.json").is_file():
        member.processor.save_pretrained(dst)
    _strip_member_paths(dst)
    return dst


def _strip_member_paths(folder: Path) -> None:
    """Reduce the local paths in a member copy's JSON files (card data, metrics, configs) to base names."""
    from hf_galaxy.hub.card import CARD_DATA_FILENAME, GalaxyCardData
    from hf_galaxy.hub.publish import public_card_dict
    from hf_galaxy.hub.sanitize import clean_json_file

    card_path = folder / CARD_DATA_FILENAME
    for path in sorted(folder.rglob("*.json")):
        if path == card_path:
            try:
                _write_json(path, public_card_dict(GalaxyCardData.load(path)))
                continue
            except (TypeError, ValueError) as err:  # card data of another version: clean it as plain JSON
                logger.warning("%s: %s; cleaning it as plain JSON", path, err)
        clean_json_file(path, path)


# --------------------------------------------------------------------------------------------- the card
def _is_hub_id(name: str) -> bool:
    from hf_galaxy.hub.render import is_hub_repo_id

    return not Path(name).is_absolute() and not name.startswith(MEMBERS_SUBDIR + "/") and is_hub_repo_id(name)


_METHOD_TEXT = {
    "soft": "soft voting: the mean of the members' class probabilities",
    "hard": "hard voting: the majority of the members' predicted classes (vote shares as scores)",
    "weighted": "weighted soft voting: member weights fitted on the validation split (minimum log-loss)",
    "stacking": "stacking: a logistic-regression meta-learner on the members' class probabilities, fitted "
    "on the validation split with cross-fitting",
}
_STRATEGY_TEXT = {
    "seeds": "trained on the same data with different random seeds",
    "bagging": "each trained on a bootstrap resample of the training split (bagging)",
    "boosting": "trained in sequence on resamples weighted towards the previous members' errors "
    "(SAMME boosting); they vote with the weights alpha below",
}
ENSEMBLE_TEMPLATE = "ensemble.jinja"


def render_ensemble_card(
    config: dict[str, Any],
    results: dict[str, Any] | None = None,
    *,
    repo_id: str | None = None,
    license: str = "mit",
) -> str:
    """The ensemble's model card (README.md): members, method, weights, member/ensemble metrics, usage.

    Rendered from ``model_cards/ensemble.jinja`` through the card machinery of :mod:`hf_galaxy.hub.render`:
    the YAML header (license, pipeline tag, tags, the Hub members as ``base_model``, the dataset and the
    ensemble row's metrics as ``model-index``, named after the Galaxy Zoo release as in a model card) is
    built with ``huggingface_hub.ModelCardData``, parsed back strictly and validated with
    :func:`hf_galaxy.hub.validate_card_metadata` (without ``library_name``: no single library loads an ensemble).

    Raises:
        CardValidationError: the metadata is invalid (e.g. an unknown license); the error names the key.
    """
    from huggingface_hub import ModelCardData

    from hf_galaxy.hub.render import (
        check_card_text,
        dataset_name_and_type,
        eval_results,
        markdown_table,
        render_template,
    )
    from hf_galaxy.hub.validate import HUB_LICENSES, REQUIRED_TAGS, CardValidationError

    if license not in HUB_LICENSES:
        raise CardValidationError("license", f"{license!r} is not a Hub license identifier (e.g. 'mit')")
    method = config["method"]
    members = [MemberSpec.from_dict(m) for m in config["members"]]
    weights = config.get("weights")
    prov = config.get("provenance") or {}
    strategy = prov.get("strategy")
    results = results or {}
    rows = results.get("rows") or []
    split = results.get("split", "test")
    dataset_info = results.get("dataset_info") if isinstance(results.get("dataset_info"), dict) else {}
    dataset_name, dataset_type = dataset_name_and_type(dataset_info)
    dataset_id = dataset_info.get("dataset_id")
    ens_row = rows[-1] if rows else {}
    index = eval_results(
        ens_row,
        task="image-classification",
        split=split,
        dataset_name=dataset_name,
        dataset_type=dataset_type,
    )
    model_name = repo_id.split("/")[-1] if repo_id else "galaxy-zoo-ensemble"
    hub_members = [m.name_or_path for m in members if _is_hub_id(m.name_or_path)]
    metadata = ModelCardData(
        license=license,
        pipeline_tag="image-classification",
        tags=[*REQUIRED_TAGS, "image-classification", "vision", "ensemble", "hf-galaxy"],
        base_model=hub_members or None,
        datasets=[dataset_id] if dataset_id else None,
        metrics=sorted({r.metric_type for r in index}) or None,
        # huggingface_hub folds model_name into model-index; without results it would stay a stray key
        model_name=model_name if index else None,
        eval_results=index or None,
    )
    member_rows = []
    for i, m in enumerate(members):
        where = m.name_or_path
        details = ", ".join(f"{k}={v}" for k, v in (m.info or {}).items() if not isinstance(v, dict))
        member_rows.append(
            {
                "#": i,
                "model": f"[`{where}`](https://huggingface.co/{where})"
                if _is_hub_id(where)
                else f"`{where}`",
                "revision": m.commit or m.revision,
                "seed": m.seed,
                "weight": None if weights is None else float(weights[i]),
                "details": details or None,
            }
        )
    cols = [k for k in TABLE_METRICS if any(k in r for r in rows)]
    fit = prov.get("fit") or {}
    cv = fit.get("cross_fitted_validation") if method == "stacking" else None
    context = {
        "metadata_yaml": metadata.to_yaml(),
        "model_name": model_name,
        "repo_id": repo_id or "<namespace>/<ensemble-name>",
        "n_members": len(members),
        "method": method,
        "method_text": _METHOD_TEXT[method],
        "strategy_text": _STRATEGY_TEXT.get(strategy),
        "member_table": markdown_table(member_rows, ["#", "model", "revision", "seed", "weight", "details"]),
        "results_table": markdown_table(
            [{"model": r.get("model"), **{c: r.get(c) for c in cols}} for r in rows], ["model", *cols]
        ),
        "split": split,
        "n_samples": results.get("n_samples"),
        "dataset_name": dataset_name,
        "tta_rotations": results.get("tta_rotations"),
        "fitted": method in ("weighted", "stacking"),
        "fit_split_size": fit.get("fit_split_size"),
        "n_folds": fit.get("n_folds"),
        "fold_seed": fit.get("fold_seed"),
        "stacking_cv": markdown_table([{"metric": k, "value": v} for k, v in cv.items()]) if cv else [],
        "label_names": list(config.get("label_names") or []),
    }
    text = render_template(ENSEMBLE_TEMPLATE, context)
    check_card_text(text, library_required=False)
    return text


# --------------------------------------------------------------------------------------------- publishing
def _published_results(results: dict[str, Any], member_names: Sequence[str]) -> dict[str, Any]:
    """``ensemble_results.json`` as published: the member rows named as in the published config, and every
    local path (the dataset argument, ...) reduced to its base name."""
    from hf_galaxy.hub.sanitize import strip_local_paths

    results = copy.deepcopy(results)
    rows = results.get("rows")
    if isinstance(rows, list) and len(rows) == len(member_names) + 2:  # members, their mean, the ensemble
        for row, name in zip(rows, member_names):
            if isinstance(row, dict):
                row["model"] = name
    return strip_local_paths(results)


def publish_ensemble(
    ensemble_dir: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    license: str = "mit",
) -> Any:
    """Publish a saved ensemble folder to the Hub in one commit, with its card listing the members.

    Uploads ``ensemble_config.json``, ``ensemble_results.json``, the rendered ``README.md`` and the members
    that are local directories (their model, processor and card data under ``members/``; the uploaded config
    points at them by relative path), so ``GalaxyEnsemble.from_pretrained(repo_id)`` works anywhere. Hub
    members stay references (id + commit). Local paths in the published JSON are reduced to base names.

    The push goes through :func:`hf_galaxy.hub.push_plan`, like :func:`hf_galaxy.hub.publish`: ``repo_id`` and
    ``revision`` are validated before any network call, ``dry_run_dir`` (new or empty, outside
    ``ensemble_dir``) gets the folder that would be pushed instead, ``private=True`` is refused for an existing
    public repo, a missing token for the real Hub says how to log in, and a rejected or dropped upload raises
    :class:`hf_galaxy.hub.PublishError`. Returns a :class:`hf_galaxy.hub.PublishResult`.
    """
    from hf_galaxy.hub.publish import UploadPlan, check_repo_id, check_revision, push_plan
    from hf_galaxy.hub.sanitize import strip_local_paths

    check_repo_id(repo_id)
    check_revision(revision)
    ensemble_dir = Path(ensemble_dir)
    ens = GalaxyEnsemble.from_pretrained(ensemble_dir, load_members=False)
    with tempfile.TemporaryDirectory(prefix="hf_galaxy_publish_ensemble_") as tmp:
        staging = Path(tmp)
        used: set[str] = set()
        for i, spec in enumerate(ens.members):
            local = _is_local(spec.name_or_path, ensemble_dir)
            if local is None:
                continue
            name = _unique_name(
                local.resolve().relative_to(ensemble_dir.resolve() / MEMBERS_SUBDIR).as_posix()
                if _inside(local, ensemble_dir / MEMBERS_SUBDIR)
                else f"member-{i}-{local.resolve().name}",
                used,
            )
            export_member(
                load_member(MemberSpec(str(local.resolve())), None), staging / MEMBERS_SUBDIR / name
            )
            spec.name_or_path = f"{MEMBERS_SUBDIR}/{name}"
        ens.base_dir = staging
        # member ids stay as they are (Hub ids, or members/... in this upload); everything else loses local paths
        config = strip_local_paths(
            ens.to_config(),
            keep=lambda where: len(where) == 3 and where[0] == "members" and where[2] == "name_or_path",
        )
        _write_json(staging / ENSEMBLE_CONFIG_NAME, config)
        results = None
        if (ensemble_dir / RESULTS_NAME).is_file():
            results = json.loads((ensemble_dir / RESULTS_NAME).read_text(encoding="utf-8"))
            results = _published_results(results, [m["name_or_path"] for m in config["members"]])
            _write_json(staging / RESULTS_NAME, results)

        def render_card(target: str) -> str:
            return render_ensemble_card(config, results, repo_id=target, license=license)

        (staging / README_NAME).write_text(render_card(repo_id), encoding="utf-8")
        files = {p.relative_to(staging).as_posix(): p for p in sorted(staging.rglob("*")) if p.is_file()}
        plan = UploadPlan(
            files=files,
            staging=staging,
            source=ensemble_dir,
            render_card=render_card,
            default_commit_message="Publish ensemble with hf-galaxy",
            dry_run_option="--publish_dry_run DIR",
        )
        return push_plan(
            plan,
            repo_id,
            private=private,
            revision=revision,
            commit_message=commit_message,
            dry_run_dir=dry_run_dir,
            token=token,
            endpoint=endpoint,
        )


# --------------------------------------------------------------------------------------------- training members
def _bootstrap(n: int, seed: int, k: int) -> tuple[np.ndarray, list[int]]:
    """Bootstrap indices of member ``k``, drawn from ``numpy.random.SeedSequence([seed, k])``; returns
    the indices and the seed-sequence entropy that reproduces them."""
    entropy = [int(seed), int(k)]
    return np.random.default_rng(np.random.SeedSequence(entropy)).integers(0, n, size=n), entropy


def train_members(
    dataset_dict: Any,
    output_dir: str | os.PathLike,
    *,
    n_members: int = 3,
    strategy: str = "seeds",
    seed: int = 42,
    training_args: Any = None,
    model_args: Any = None,
    data_args: Any = None,
    script_args: Any = None,
    boosting_learning_rate: float = 1.0,
    predict_kwargs: dict[str, Any] | None = None,
) -> tuple[list[LoadedMember], dict[str, Any]]:
    """Train ``n_members`` members through the training recipe (:func:`hf_galaxy.training.run_training`).

    ``strategy``: ``seeds`` (all of the training split, training seed ``seed + k``), ``bagging`` (member
    ``k`` trains on a bootstrap resample drawn from ``SeedSequence([seed, k])``, training seed ``seed + k``) or
    ``boosting`` (SAMME by resampling: round ``k`` draws its training sample with the current sample
    weights from ``SeedSequence([seed, k, 1])``; weighted training error ``err``, member weight ``alpha = lr * (log((1 - err) / err) +
    log(C - 1))``; misclassified samples' weights are multiplied by ``exp(alpha)``; boosting stops when a
    member is no better than chance). Members go to ``output_dir/members/member-k``; every seed, resample
    size and boosting weight is recorded. Returns the loaded members and the provenance dict
    (``provenance["weights"]`` holds the boosting alphas).
    """
    from transformers import TrainingArguments

    from hf_galaxy.training import (
        DataArguments,
        ModelArguments,
        ScriptArguments,
        class_names_of,
        run_training,
    )

    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if n_members < 1:
        raise ValueError(f"n_members must be >= 1, got {n_members}")
    output_dir = Path(output_dir)
    script_args = script_args or ScriptArguments()
    model_args = model_args or ModelArguments()
    data_args = data_args or DataArguments()
    if training_args is None or isinstance(training_args, dict):
        training_args = TrainingArguments(
            **{
                "report_to": "none",
                "remove_unused_columns": False,
                **(training_args or {}),
                "output_dir": str(output_dir),
            }
        )
    # members are evaluated by the ensemble, not one by one with TTA
    script_args = dataclasses.replace(script_args, tta=False)
    train = dataset_dict["train"]
    n = len(train)
    class_names = class_names_of(dataset_dict)
    n_classes = len(class_names)
    y = np.asarray(train["label"], dtype=np.int64)
    weights = np.full(n, 1.0 / n)
    members: list[LoadedMember] = []
    alphas: list[float] = []
    rounds: list[dict[str, Any]] = []
    provenance: dict[str, Any] = {"strategy": strategy, "base_seed": int(seed), "n_requested": int(n_members)}
    for k in range(n_members):
        member_dir = output_dir / MEMBERS_SUBDIR / f"member-{k}"
        train_seed = int(seed) + k
        info: dict[str, Any] = {"strategy": strategy, "train_seed": train_seed}
        dsd = dataset_dict
        if strategy in ("bagging", "boosting"):
            if strategy == "bagging":
                idx, entropy = _bootstrap(n, seed, k)
            else:
                entropy = [int(seed), int(k), 1]
                rng = np.random.default_rng(np.random.SeedSequence(entropy))
                idx = rng.choice(n, size=n, replace=True, p=weights)
            info.update(resample_seed_sequence=entropy, n_unique=int(len(np.unique(idx))), n_resampled=int(n))
            dsd = copy.copy(dataset_dict)  # keeps the dataset facts of a GalaxyDatasetDict for the card
            dsd["train"] = train.select(idx.tolist())
        args_k = dataclasses.replace(training_args, output_dir=str(member_dir), seed=train_seed)
        logger.warning(
            "training ensemble member %d/%d (%s, seed %d) in %s",
            k + 1,
            n_members,
            strategy,
            train_seed,
            member_dir,
        )
        run_training(script_args, args_k, model_args, data_args, dataset_dict=dsd)
        member = load_member(MemberSpec(str(member_dir.resolve()), seed=train_seed, info=info))
        if strategy == "boosting":
            pred = predict_members([member], train, **(predict_kwargs or {})).member_probs[0].argmax(axis=1)
            miss = pred != y
            err = float(weights[miss].sum())
            chance = 1.0 - 1.0 / n_classes
            rounds.append({"round": k, "weighted_error": err})
            if err >= chance:
                if not members:
                    raise ValueError(
                        f"boosting: the first member's weighted training error {err:.3f} is no better than chance "
                        f"({chance:.3f}); train longer or use another strategy"
                    )
                logger.warning("boosting stopped at round %d: weighted error %.3f >= %.3f", k, err, chance)
                provenance["stopped_early"] = f"round {k}: weighted training error {err:.4f} >= {chance:.4f}"
                break
            err = max(err, 1e-10)
            alpha = float(boosting_learning_rate * (math.log((1 - err) / err) + math.log(n_classes - 1)))
            info.update(weighted_error=err, alpha=alpha)
            alphas.append(alpha)
            weights = weights * np.exp(alpha * miss)
            weights /= weights.sum()
        members.append(member)
    if strategy == "boosting":
        provenance["rounds"] = rounds
        provenance["weights"] = alphas
    provenance["n_members"] = len(members)
    return members, provenance


# --------------------------------------------------------------------------------------------- the recipe flow
@dataclass
class EnsembleArguments:
    """What the ensemble recipe / ``hf-galaxy ensemble`` combines and how."""

    members: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated member checkpoints (directories or Hub ids, 'id@revision' pins a revision). "
            "When absent, --n_members members are trained with --strategy."
        },
    )
    ensemble: str | None = field(
        default=None, metadata={"help": "A saved ensemble (folder or Hub id) to evaluate instead."}
    )
    method: str = field(default="soft", metadata={"help": "soft, hard, weighted or stacking."})
    strategy: str = field(
        default="seeds", metadata={"help": "How to train members: seeds, bagging or boosting."}
    )
    n_members: int = field(default=3, metadata={"help": "Members to train (without --members)."})
    n_folds: int = field(default=5, metadata={"help": "Cross-fitting folds of stacking."})
    boosting_learning_rate: float = field(default=1.0, metadata={"help": "Shrinkage of the boosting alphas."})
    publish_repo_id: str | None = field(
        default=None, metadata={"help": "Publish the ensemble to this Hub repo."}
    )
    publish_dry_run: str | None = field(
        default=None, metadata={"help": "Write the folder that publishing would push here (pushes nothing)."}
    )
    publish_private: bool = field(
        default=False,
        metadata={"help": "Create the ensemble repo as private (refused for an existing public repo)."},
    )
    publish_revision: str | None = field(
        default=None,
        metadata={"help": "Branch to publish the ensemble to (created when missing); default main."},
    )
    license: str = field(default="mit", metadata={"help": "Hub license id for the ensemble card."})

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"--method must be one of {METHODS}, got {self.method!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"--strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        if self.n_members < 1:
            raise ValueError(f"--n_members must be >= 1, got {self.n_members}")
        if self.publish_repo_id is not None or self.publish_revision is not None:
            from hf_galaxy.hub.publish import check_repo_id, check_revision

            if self.publish_repo_id is not None:
                check_repo_id(self.publish_repo_id)
            check_revision(self.publish_revision)

    def member_specs(self) -> list[MemberSpec]:
        """``--members`` parsed into specs (``id@revision`` sets the revision of a Hub id)."""
        specs = []
        for item in (self.members or "").split(","):
            item = item.strip()
            if not item:
                continue
            name, _, rev = item.partition("@") if "@" in item and not Path(item).exists() else (item, "", "")
            specs.append(MemberSpec(name, revision=rev or None))
        return specs


def _dataset_facts(dataset_dict: Any) -> dict[str, Any]:
    """The release / Hub dataset id / synthetic flag of the evaluation data, for the card's model-index."""
    try:
        from hf_galaxy.dataset import describe

        facts = describe(dataset_dict)
    except Exception as err:  # describe degrades for plain DatasetDicts; never fail a run over card facts
        logger.warning("could not describe the dataset for the ensemble card: %s", err)
        return {}
    return {k: jsonable(facts[k]) for k in ("release", "dataset_id", "synthetic") if facts.get(k) is not None}


def run_ensemble(
    script_args: Any,
    training_args: Any,
    model_args: Any,
    data_args: Any,
    ensemble_args: EnsembleArguments,
    *,
    dataset_dict: Any = None,
    print_table: bool = True,
) -> dict[str, Any]:
    """The ensemble recipe: members (given, or trained) -> fit on validation -> evaluate on the test split ->
    print the member/ensemble table -> save ``output_dir`` (config, results, card) -> publish when asked.

    Returns ``{"rows": [...], "split": ..., "ensemble_dir": ..., "validation": fit info}``.
    """
    from hf_galaxy.training import load_training_data, parse_rotations

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    output_dir = Path(training_args.output_dir)
    if dataset_dict is None:
        dataset_dict = load_training_data(
            script_args.dataset,
            data_args,
            output_dir=output_dir,
            data_dir=script_args.data_dir,
            seed=training_args.seed,
        )
    split = script_args.eval_split if script_args.eval_split in dataset_dict else "validation"
    if split not in dataset_dict:
        raise ValueError(f"the dataset has neither a {script_args.eval_split!r} nor a 'validation' split")
    boosted = ensemble_args.strategy == "boosting" and not ensemble_args.member_specs()  # alphas, no fit
    fitted_here = (
        not ensemble_args.ensemble and not boosted and ensemble_args.method in ("weighted", "stacking")
    )
    if split == "validation" and fitted_here:
        raise ValueError(
            f"--method {ensemble_args.method} is fitted on the 'validation' split, and the dataset has no "
            f"{script_args.eval_split!r} split to evaluate it on: scoring it on the rows it was fitted on would be "
            "optimistic. Give a dataset with a test split, or use --method soft/hard."
        )
    tta = parse_rotations(script_args.tta_rotations) if script_args.tta else None
    device = "cpu" if training_args.use_cpu else None
    predict_kwargs = dict(
        batch_size=training_args.per_device_eval_batch_size,
        num_workers=training_args.dataloader_num_workers,
        device=device,
        # the parser resolves --precision auto to bf16/fp16 on GPUs and fp32 on CPUs
        precision=script_args.precision if script_args.precision in ("bf16", "fp16") else "fp32",
    )
    if ensemble_args.ensemble:
        ens = GalaxyEnsemble.from_pretrained(ensemble_args.ensemble)
        if tta:
            ens.tta_rotations = tta
        if split == "validation" and ens.method in ("weighted", "stacking"):
            logger.warning(
                "the %s ensemble %s was fitted on a validation split and is now evaluated on the 'validation' "
                "split of %s: if that is the split it was fitted on, these figures are optimistic",
                ens.method,
                ensemble_args.ensemble,
                script_args.dataset,
            )
    else:
        specs = ensemble_args.member_specs()
        if specs:
            members = [load_member(s) for s in specs]
            provenance: dict[str, Any] = {"strategy": "given"}
        else:
            members, provenance = train_members(
                dataset_dict,
                output_dir,
                n_members=ensemble_args.n_members,
                strategy=ensemble_args.strategy,
                seed=training_args.seed,
                training_args=training_args,
                model_args=model_args,
                data_args=data_args,
                script_args=script_args,
                boosting_learning_rate=ensemble_args.boosting_learning_rate,
                predict_kwargs=predict_kwargs,
            )
        method, weights = ensemble_args.method, None
        if ensemble_args.strategy == "boosting" and not specs:
            if method not in ("hard", "soft"):
                logger.warning(
                    "boosting members vote with their alphas: method %s replaced by 'hard'", method
                )
                method = "hard"
            weights = provenance["weights"]
        for m in members:  # members trained here are named relative to the ensemble folder
            local = _is_local(m.spec.name_or_path, None)
            if local is not None and _inside(local, output_dir):
                m.spec.name_or_path = _relative_or_absolute(local, output_dir)
        ens = GalaxyEnsemble.from_loaded(
            members, method=method, weights=weights, tta_rotations=tta, provenance=provenance
        )
        ens.base_dir = output_dir
        if ens.method in ("weighted", "stacking") or "validation" in dataset_dict:
            if "validation" not in dataset_dict:
                raise ValueError(
                    f"method {ens.method!r} is fitted on a 'validation' split; the dataset has none"
                )
            ens.fit(
                dataset_dict["validation"],
                n_folds=ensemble_args.n_folds,
                seed=training_args.seed,
                **predict_kwargs,
            )
    rows = ens.evaluate(dataset_dict[split], **predict_kwargs)
    results = {
        "split": split,
        "n_samples": len(dataset_dict[split]),
        "tta_rotations": tta,
        "dataset": script_args.dataset,
        "dataset_info": _dataset_facts(dataset_dict),
        "rows": rows,
        "validation": ens.fit_info,
    }
    if print_table:
        print(
            f"\nmembers and ensemble on the {split} split ({len(dataset_dict[split])} galaxies"
            + (f", TTA {tta}" if tta else "")
            + "):"
        )
        print(format_table(rows))
    ens.save_pretrained(output_dir, results=results, repo_id=ensemble_args.publish_repo_id)
    print(f"ensemble saved to {output_dir / ENSEMBLE_CONFIG_NAME}")
    if ensemble_args.publish_repo_id or ensemble_args.publish_dry_run:
        result = publish_ensemble(
            output_dir,
            ensemble_args.publish_repo_id or "hf-galaxy/ensemble-dry-run",
            private=ensemble_args.publish_private,
            revision=ensemble_args.publish_revision,
            dry_run_dir=ensemble_args.publish_dry_run,
            license=ensemble_args.license,
        )
        where = result.dry_run_dir or result.repo_url
        print(f"published the ensemble ({len(result.files)} files) to {where}")
    return {**results, "ensemble_dir": str(output_dir)}


__all__ = [
    "ENSEMBLE_CONFIG_NAME",
    "EnsembleArguments",
    "EnsemblePredictions",
    "GalaxyEnsemble",
    "LabelMismatchError",
    "LoadedMember",
    "MemberSpec",
    "StackingFit",
    "check_dataset_labels",
    "check_label_names",
    "cross_fit_stacking",
    "dataset_label_names",
    "default_meta_learner",
    "evaluation_rows",
    "export_member",
    "fit_vote_weights",
    "format_table",
    "hard_vote",
    "load_member",
    "member_metrics",
    "meta_learner_from_json",
    "meta_learner_to_json",
    "predict_members",
    "publish_ensemble",
    "render_ensemble_card",
    "run_ensemble",
    "soft_vote",
    "stack_features",
    "train_members",
]
